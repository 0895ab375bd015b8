import Yams

/// `routes:`: each route's fields, its references to upstreams and credentials, and shadowing by earlier routes.
extension ConfigLoader {
    /// A route read far enough to check it against the routes before it.
    struct Matcher {
        var index: Int
        var name: String
        var methods: Set<String>?
        var pattern: PathPattern
    }

    static func readRoutes(
        _ node: Node, at path: ConfigPath,
        upstreams: Named<UpstreamConfig>, credentials: Named<CredentialConfig>, _ w: ConfigWalker
    ) -> [RouteConfig]? {
        guard let items = w.sequence(node, at: path) else { return nil }
        if items.isEmpty { w.issue(path, "at least one route is required") }
        var routes: [RouteConfig] = []
        var firstByName: [String: Int] = [:]
        var earlier: [Matcher] = []
        let keys = [
            "name", "methods", "path", "upstream", "credentials", "max_body_bytes", "replay_max_body_bytes",
            "transforms",
            "forward_cookies", "raw_path", "idle_timeout", "retry",
        ]
        for (index, item) in items.enumerated() {
            let path = path.index(index)
            guard let f = w.mapping(item, at: path, allowed: keys) else { continue }

            var name = w.required(f, "name") { w.string($0, at: $1) }
            if let n = name, !w.name(n, at: path.key("name")) {
                name = nil
            } else if let n = name, let first = firstByName[n] {
                w.issue(path.key("name"), "duplicate route name '\(n)' (first used by routes[\(first)])")
            } else if let n = name {
                firstByName[n] = index
            }
            // nil: invalid (reported); .some(nil): every method, also when the key is absent.
            let methods = f["methods"].map { methodSet($0, at: path.key("methods"), w) } ?? .some(nil)
            let pattern = w.required(f, "path") { pathPattern($0, at: $1, w) }
            let upstream = w.required(f, "upstream") { reference($0, at: $1, in: upstreams.declared, "upstream", w) }
            let names: [String]? =
                f["credentials"] == nil
                ? [] : f.value("credentials") { routeCredentials($0, at: $1, credentials, w) }
            let maxBody = f.value("max_body_bytes") { w.byteSize($0, at: $1, in: 0...Int64.max) }
            let replayMax = f.value("replay_max_body_bytes") { w.byteSize($0, at: $1, in: 0...Int64(Int32.max)) }
            let transforms = f.value("transforms") { transformList($0, at: $1, w) }
            let forwardCookies = f.value("forward_cookies") { boolean($0, at: $1, w) }
            let rawPath = f.value("raw_path") { boolean($0, at: $1, w) }
            let retry = f.value("retry") { readRetry($0, at: $1, w) }
            let idleTimeout = f.value("idle_timeout") { node, at -> RouteIdleTimeout? in
                if let text = node.scalar?.string, ["off", "none", "0", "0s"].contains(text) { return .off }
                return w.duration(node, at: at).map { .after($0) }
            }

            guard let name, let methods, let pattern else { continue }
            if let shadow = earlier.first(where: { covers($0, methods, pattern) }) {
                w.issue(
                    path,
                    "route '\(name)' can never match: every request it takes is taken first by "
                        + "routes[\(shadow.index)] ('\(shadow.name)')")
            }
            earlier.append(Matcher(index: index, name: name, methods: methods, pattern: pattern))

            guard let upstream, let names else { continue }
            var route = RouteConfig(name: name, methods: methods, path: pattern, upstream: upstream, credentials: names)
            if let maxBody { route.maxBodyBytes = maxBody }
            if let replayMax { route.replayMaxBodyBytes = Int(replayMax) }
            if let transforms {
                route.transforms = transforms
                checkTransforms(route, at: path, credentials: credentials, w)
            }
            if let forwardCookies { route.forwardCookies = forwardCookies }
            if let rawPath { route.rawPath = rawPath }
            if let idleTimeout { route.idleTimeout = idleTimeout }
            if let retry { route.retry = retry }
            routes.append(route)
        }
        return routes
    }

    /// `retry: {attempts, statuses, max_wait, backoff}`.
    static func readRetry(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> RetryPolicy? {
        guard let f = w.mapping(node, at: path, allowed: ["attempts", "statuses", "max_wait", "backoff"]) else {
            return nil
        }
        var policy = RetryPolicy()
        if let v = f.value("attempts", { w.integer($0, at: $1, in: 0...5) }) { policy.attempts = v }
        if let v = f.value(
            "statuses",
            { node, at -> Set<UInt>? in
                guard let items = w.sequence(node, at: at) else { return nil }
                var statuses = Set<UInt>()
                for (i, item) in items.enumerated() {
                    guard let code = w.integer(item, at: at.index(i), in: 400...599) else { return nil }
                    statuses.insert(UInt(code))
                }
                return statuses
            })
        {
            policy.statuses = v
        }
        if let v = f.value("max_wait", { w.duration($0, at: $1) }) { policy.maxWait = v }
        if let v = f.value("backoff", { w.duration($0, at: $1) }) { policy.initialBackoff = v }
        return policy
    }

    /// The request transforms this build knows, as written in a route's `transforms:`.
    static let knownTransforms = RouteTransform.allCases.map(\.rawValue)

    /// `transforms`: a list of known transform names, each at most once.
    static func transformList(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> [RouteTransform]? {
        guard let items = w.sequence(node, at: path) else { return nil }
        var result: [RouteTransform] = []
        for (i, item) in items.enumerated() {
            guard let name = w.scalar(item, at: path.index(i)) else { return nil }
            guard let transform = RouteTransform(rawValue: name.value) else {
                w.issue(
                    path.index(i),
                    "unknown transform \(name.shown) (expected one of: \(knownTransforms.joined(separator: ", ")))")
                return nil
            }
            if result.contains(transform) {
                w.issue(path.index(i), "transform '\(name.value)' is listed twice")
                return nil
            }
            result.append(transform)
        }
        return result
    }

    /// Checks that need a route's credentials and transforms together (and so cannot be made while reading
    /// either): `serve` would otherwise refuse a file `check-config` accepted.
    static func checkTransforms(
        _ route: RouteConfig, at path: ConfigPath, credentials: Named<CredentialConfig>, _ w: ConfigWalker
    ) {
        guard let index = route.transforms.firstIndex(of: .ssnEncryption) else { return }
        // A credential that did not load has its own issue; judge only when all of them did.
        guard route.credentials.allSatisfy({ credentials.valid[$0] != nil }) else { return }
        let hasSession = route.credentials.contains { name in
            if case .jwtSession? = credentials.valid[name]?.kind { return true }
            return false
        }
        if !hasSession {
            w.issue(
                path.key("transforms").index(index),
                "ssn_encryption needs a jwt_session credential on the route: the SSN is encrypted with its token")
        }
    }

    /// Whether `route` takes every request that (methods, pattern) would: methods a superset (nil = all) and a
    /// pattern that covers.
    static func covers(_ route: Matcher, _ methods: Set<String>?, _ pattern: PathPattern) -> Bool {
        switch (route.methods, methods) {
        case (nil, _): break
        case (.some, nil): return false
        case (.some(let mine), .some(let theirs)): if !mine.isSuperset(of: theirs) { return false }
        }
        return route.pattern.covers(pattern)
    }

    /// `methods`: a list of methods, or `"*"` (or no key) for every method. Returns `.some(nil)` for every
    /// method and nil when invalid.
    static func methodSet(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Set<String>?? {
        let items: [(Node, ConfigPath)]
        if case .sequence(let sequence) = node {
            items = sequence.enumerated().map { ($1, path.index($0)) }
        } else {
            items = [(node, path)]
        }
        guard !items.isEmpty else {
            w.issue(
                path, "an empty list takes no request: list methods, or write \"*\" or omit the key for every method")
            return nil
        }
        var methods = Set<String>()
        var valid = true
        var every = false
        for (node, path) in items {
            guard let method = w.scalar(node, at: path) else {
                valid = false
                continue
            }
            if method.value == "*" {
                every = true
            } else if HTTPToken.isValid(method.value) {
                methods.insert(method.value.uppercased())
            } else {
                w.issue(path, "\(method.shown) is not an HTTP method (a token such as GET or POST)")
                valid = false
            }
        }
        if every && items.count > 1 {
            w.issue(path, "\"*\" (every method) cannot be listed with other methods")
            valid = false
        }
        guard valid else { return nil }
        return .some(every ? nil : methods)
    }

    static func pathPattern(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> PathPattern? {
        guard let text = w.scalar(node, at: path) else { return nil }
        do {
            return try PathPattern(text.value)
        } catch {
            w.issue(path, "bad path pattern \(text.shown): \(error)")
            return nil
        }
    }

    /// A name that must be among `declared`.
    static func reference(
        _ node: Node, at path: ConfigPath, in declared: [String], _ what: String, _ w: ConfigWalker
    ) -> String? {
        guard let name = w.scalar(node, at: path) else { return nil }
        guard declared.contains(name.value) else {
            w.issue(path, "unknown \(what) \(name.shown)")
            return nil
        }
        return name.value
    }

    /// A route's credentials: each defined, listed once, and no two writing the same header (the second would
    /// silently overwrite the first).
    static func routeCredentials(
        _ node: Node, at path: ConfigPath, _ credentials: Named<CredentialConfig>, _ w: ConfigWalker
    ) -> [String]? {
        guard let items = w.sequence(node, at: path) else { return nil }
        var names: [String] = []
        var valid = true
        var writers: [String: String] = [:] // header (lower-cased) -> credential writing it
        for (index, item) in items.enumerated() {
            let path = path.index(index)
            guard let name = reference(item, at: path, in: credentials.declared, "credential", w) else {
                valid = false
                continue
            }
            guard !names.contains(name) else {
                w.issue(path, "credential '\(name)' is listed twice")
                valid = false
                continue
            }
            names.append(name)
            for header in credentials.valid[name]?.headerNames ?? [] {
                if let other = writers[header] {
                    w.issue(path, "credentials '\(other)' and '\(name)' both write header '\(header)'")
                    valid = false
                } else {
                    writers[header] = name
                }
            }
        }
        return valid ? names : nil
    }
}
