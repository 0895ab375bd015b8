/// What the WriftAI sandbox has seen, in numbers: for tests that assert how many calls a gateway made.
public struct WriftAISandboxCounters: Sendable, Codable, Equatable {
    /// Every request except the `/sandbox/` controls, by `"METHOD path-template"`, whatever the answer:
    /// e.g. `"POST /v1/uploads/{id}/complete"`, `"PUT /sandbox-s3/{bucket}/{key}"`. Paths with no template are
    /// counted as they arrived, without the query.
    public var routes: [String: Int] = [:]
    /// Requests refused for a missing or wrong bearer token.
    public var unauthorized = 0
    /// Requests answered with an injected 429.
    public var rateLimited = 0
    /// Part PUTs to presigned part URLs that were stored.
    public var partPuts = 0
    /// PUTs to presigned URLs (parts and one-step uploads) that were refused, whatever the reason.
    public var putRejections = 0
    /// One-step (`/v1/files/urls`) uploads stored.
    public var singlePuts = 0
    /// Uploads completed (`POST /v1/uploads/{id}/complete` answered 200).
    public var completes = 0
    /// Stored files served through their signed download URL.
    public var downloads = 0
    /// Prediction streams opened (the `stream` route and `POST /v1/predictions` with `Prefer: wait` and `stream`).
    public var streamsOpened = 0
    /// Streams that ended with their terminal event written.
    public var streamsFinished = 0
    /// Streams whose client went away (a write failed) before the end.
    public var streamsAborted = 0
    /// Events written on all streams (comments not counted).
    public var streamEvents = 0
    /// Bytes received on all the sandbox's connections, counted on the socket before any HTTP parsing.
    public var bytesReceived = 0
    /// Connections the sandbox accepted.
    public var connections = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case routes, unauthorized, completes, downloads
        case rateLimited = "rate_limited"
        case partPuts = "part_puts"
        case putRejections = "put_rejections"
        case singlePuts = "single_puts"
        case streamsOpened = "streams_opened"
        case streamsFinished = "streams_finished"
        case streamsAborted = "streams_aborted"
        case streamEvents = "stream_events"
        case bytesReceived = "bytes_received"
        case connections
    }

    /// Requests counted for one route template, 0 when none.
    public func route(_ method: String, _ template: String) -> Int {
        routes["\(method) \(template)"] ?? 0
    }
}

/// The live counters behind ``WriftAISandboxCounters``.
actor WriftAICounterBook {
    private var counters = WriftAISandboxCounters()
    /// Fed by the connections' first handler, outside the actor (see ``ByteCountingHandler``).
    nonisolated let transport = TransportCounter()

    func count(route key: String) {
        // Same bound as the Assured sandbox: a long demo with ids in literal paths must not grow the table forever.
        if counters.routes[key] == nil && counters.routes.count >= CounterBook.routeCapacity {
            counters.routes[CounterBook.overflowKey, default: 0] += 1
        } else {
            counters.routes[key, default: 0] += 1
        }
    }

    /// Adds one to a counter.
    func count(_ field: WritableKeyPath<WriftAISandboxCounters, Int>) {
        counters[keyPath: field] += 1
    }

    func snapshot() -> WriftAISandboxCounters {
        var snapshot = counters
        (snapshot.bytesReceived, snapshot.connections) = transport.snapshot
        return snapshot
    }

    func reset() {
        counters = WriftAISandboxCounters()
        transport.reset()
    }
}
