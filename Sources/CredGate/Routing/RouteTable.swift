/// Ordered (method, path pattern) -> payload lookup: the first route whose pattern and methods match wins.
///
/// Generic over what a route carries so the table stays a pure value that tests can use without a gateway.
struct RouteTable<Payload: Sendable>: Sendable {
    struct Entry: Sendable {
        var methods: Set<String>?
        var pattern: PathPattern
        var payload: Payload

    }

    enum Lookup {
        case matched(Payload)
        /// The path matches some route but none for this method.
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    let entries: [Entry]

    init(_ entries: [Entry]) { self.entries = entries }

    func lookup(method: String, path: Substring) -> Lookup {
        // The path's bytes are taken once and every pattern compares them in place (a pattern that took them
        // itself, in a closure, copied itself for each route a request met: a retain and release of each of its
        // arrays).
        if !path.isEmpty,
            let result = path.utf8.withContiguousStorageIfAvailable({ bytes in
                lookup(method: method) { $0.matches(bytes: bytes) }
            })
        {
            return result
        }
        return lookup(method: method) { $0.matches(path) }
    }

    private func lookup(method: String, matching matches: (PathPattern) -> Bool) -> Lookup {
        var allowed: [String] = []
        var pathMatched = false
        // By index: `for entry in entries` copies each entry, retaining and releasing its method set, its
        // pattern's arrays and its payload for every route a request is matched against.
        for i in entries.indices where matches(entries[i].pattern) {
            guard let methods = entries[i].methods else { return .matched(entries[i].payload) }
            if methods.contains(method) { return .matched(entries[i].payload) }
            pathMatched = true
            allowed.append(contentsOf: methods)
        }
        if pathMatched { return .methodNotAllowed(allowed: Array(Set(allowed)).sorted()) }
        return .notFound
    }
}
