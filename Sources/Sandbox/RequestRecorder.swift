/// One request as the sandbox received it.
public struct RecordedRequest: Sendable, Codable, Equatable {
    /// Method as sent (`GET`, `PATCH`, ...).
    public var method: String
    /// Request target, path and query, exactly as received (no decoding, no normalisation).
    public var uri: String
    /// Header fields as `[name, value]` pairs in arrival order, names in their received case.
    /// The first `Host` field comes first: the HTTP/1 decoder lifts it out of the list, so its original
    /// position is lost (its value is not).
    public var headers: [[String]]
    /// Body bytes the handler consumed: 0 when it answered without reading the body (401, list, download).
    public var bodyBytes: Int
    /// Hex SHA-256 of the consumed body; nil when the body was not read to its end.
    public var bodySHA256: String?

    public init(method: String, uri: String, headers: [[String]], bodyBytes: Int = 0, bodySHA256: String? = nil) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.bodyBytes = bodyBytes
        self.bodySHA256 = bodySHA256
    }

    /// The path part of ``uri`` (before the first `?`).
    public var path: String {
        uri.firstIndex(of: "?").map { String(uri[..<$0]) } ?? uri
    }

    /// The query part of ``uri`` (after the first `?`), nil when there is no `?`.
    public var query: String? {
        uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) }
    }

    /// Values of a header, matched case-insensitively, in arrival order.
    public func headerValues(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return headers.compactMap { pair in
            pair.count == 2 && pair[0].lowercased() == wanted ? pair[1] : nil
        }
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        headerValues(name).first
    }
}

/// What the sandbox has received, newest last, bounded so a long demo cannot grow it forever.
public actor RequestRecorder {
    /// How many requests are kept; older ones are dropped first.
    public nonisolated let capacity: Int
    private var ring: [RecordedRequest] = []
    /// Index of the oldest entry once the ring is full.
    private var oldest = 0

    public init(capacity: Int = 1000) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    /// Adds a request, dropping the oldest when full.
    public func record(_ request: RecordedRequest) {
        if ring.count < capacity {
            ring.append(request)
        } else {
            ring[oldest] = request
            oldest = (oldest + 1) % capacity
        }
    }

    /// All kept requests, oldest first.
    public func all() -> [RecordedRequest] {
        Array(ring[oldest...] + ring[..<oldest])
    }

    /// The newest request.
    public func last() -> RecordedRequest? {
        guard !ring.isEmpty else { return nil }
        return ring[(oldest + ring.count - 1) % ring.count]
    }

    /// Forgets everything.
    public func reset() {
        ring.removeAll(keepingCapacity: true)
        oldest = 0
    }

    /// How many kept requests had exactly this path (query ignored).
    public func count(path: String) -> Int {
        ring.reduce(0) { $0 + ($1.path == path ? 1 : 0) }
    }
}
