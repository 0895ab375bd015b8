/// What the sandbox has seen, in numbers: for tests that assert how many logins or refreshes a gateway made.
public struct SandboxCounters: Sendable, Codable, Equatable {
    /// Successful logins.
    public var logins = 0
    /// Logins refused: bad credentials, invalid bodies and injected failures.
    public var loginFailures = 0
    /// Successful `token/refresh/` calls.
    public var refreshes = 0
    /// Refused `token/refresh/` calls (invalid, expired, blacklisted or revoked refresh token, or no token).
    public var refreshFailures = 0
    /// Requests a JWT route refused for want of a valid access token (401 only; the SSN route's 403 for a key is
    /// not counted: it is about the key, not the token).
    public var jwtRejections = 0
    /// Every request under `/api/v1/` (and any other recorded one) by `"METHOD path-template"`, whatever the
    /// answer: e.g. `"PATCH /api/v1/users/retrieve-update-provider-ssn-sym-encrypted/{profile_id}/"`. Paths the
    /// sandbox has no template for are counted as they arrived, without the query.
    public var routes: [String: Int] = [:]
    /// Bytes received on all the sandbox's connections, counted on the socket before any HTTP parsing (request
    /// lines, headers and bodies, of every request, control routes included). A request that never reached the
    /// sandbox leaves it unchanged. Read over `GET /sandbox/counters`, it already includes that GET itself.
    public var bytesReceived = 0
    /// Connections the sandbox accepted.
    public var connections = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case logins
        case loginFailures = "login_failures"
        case refreshes
        case refreshFailures = "refresh_failures"
        case jwtRejections = "jwt_rejections"
        case routes
        case bytesReceived = "bytes_received"
        case connections
    }

    /// Tolerates counters written before `bytes_received` and `connections` existed.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        logins = try container.decode(Int.self, forKey: .logins)
        loginFailures = try container.decode(Int.self, forKey: .loginFailures)
        refreshes = try container.decode(Int.self, forKey: .refreshes)
        refreshFailures = try container.decode(Int.self, forKey: .refreshFailures)
        jwtRejections = try container.decode(Int.self, forKey: .jwtRejections)
        routes = try container.decode([String: Int].self, forKey: .routes)
        bytesReceived = try container.decodeIfPresent(Int.self, forKey: .bytesReceived) ?? 0
        connections = try container.decodeIfPresent(Int.self, forKey: .connections) ?? 0
    }

    /// Requests counted for one route, 0 when none.
    public func route(_ method: String, _ template: String) -> Int {
        routes["\(method) \(template)"] ?? 0
    }
}

/// The live counters behind ``SandboxCounters``.
actor CounterBook {
    private var counters = SandboxCounters()
    /// Fed by the connections' first handler, outside the actor (see ``ByteCountingHandler``).
    nonisolated let transport = TransportCounter()

    enum Event { case login, loginFailure, refresh, refreshFailure, jwtRejection }

    func count(_ event: Event) {
        switch event {
        case .login: counters.logins += 1
        case .loginFailure: counters.loginFailures += 1
        case .refresh: counters.refreshes += 1
        case .refreshFailure: counters.refreshFailures += 1
        case .jwtRejection: counters.jwtRejections += 1
        }
    }

    /// Distinct route keys kept; beyond it, new ones are counted under ``overflowKey`` (the echo accepts any
    /// path, and a long demo with ids in literal paths must not grow the table forever).
    static let routeCapacity = 10_000
    static let overflowKey = "(other routes)"

    func count(route key: String) {
        if counters.routes[key] == nil && counters.routes.count >= Self.routeCapacity {
            counters.routes[Self.overflowKey, default: 0] += 1
        } else {
            counters.routes[key, default: 0] += 1
        }
    }

    func snapshot() -> SandboxCounters {
        var snapshot = counters
        (snapshot.bytesReceived, snapshot.connections) = transport.snapshot
        return snapshot
    }

    func reset() {
        counters = SandboxCounters()
        transport.reset()
    }
}
