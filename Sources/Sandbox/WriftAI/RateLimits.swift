/// Injected 429s: "the next N requests (or the next N to one path) are throttled until now + S seconds".
actor RateLimits {
    struct Rule: Sendable, Equatable {
        /// A request path (`/v1/models`) or route template (`/v1/predictions/{id}/stream`); nil for any `/v1/` path.
        var path: String?
        var remaining: Int
        var resetAfter: Int
    }

    private var rules: [Rule] = []

    /// Adds a rule; `count` 0 removes the pending ones for that path (every one when `path` is nil).
    func add(count: Int, path: String?, resetAfter: Int) {
        if count == 0 {
            rules.removeAll { path == nil || $0.path == path }
        } else {
            rules.append(Rule(path: path, remaining: count, resetAfter: resetAfter))
        }
    }

    /// The `x-ratelimit-reset` (epoch seconds) to throttle this request with, consuming one pending 429 of the
    /// first rule that matches; nil to answer normally. A rule without a path matches API paths only.
    func take(path: String, template: String?, isAPI: Bool, now: Int) -> Int? {
        guard
            let index = rules.firstIndex(where: { rule in
                if let wanted = rule.path { return wanted == path || wanted == template }
                return isAPI
            })
        else { return nil }
        rules[index].remaining -= 1
        let reset = now + rules[index].resetAfter
        if rules[index].remaining <= 0 { rules.remove(at: index) }
        return reset
    }

    var pending: [Rule] { rules }
}
