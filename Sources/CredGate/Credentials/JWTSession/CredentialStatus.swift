/// What `GET /credgate/status` shows of one credential. Built from counters and states only, so it cannot hold a
/// token, a password or a response body.
struct CredentialStatus: Sendable, Codable, Equatable {
    var name: String
    /// `jwt_session` or `api_key`.
    var kind: String
    /// `valid`, `refreshing`, `logging_in`, `backing_off`, `circuit_open`, `no_token`, or `static` (an API key).
    var state: String
    /// Whole seconds until the held token lapses; nil when there is none (or the credential never lapses).
    var expiresInSeconds: Int?
    /// Wall-clock time (ISO 8601, UTC) of the last successful login or refresh.
    var lastRefresh: String?
    /// The last failure as a short sentence ("login answered 401"); cleared by the next success.
    var lastError: String?
    var logins: Int
    var refreshes: Int
    var loginFailures: Int
    var refreshFailures: Int

    init(
        name: String, kind: String, state: String, expiresInSeconds: Int? = nil, lastRefresh: String? = nil,
        lastError: String? = nil, logins: Int = 0, refreshes: Int = 0, loginFailures: Int = 0, refreshFailures: Int = 0
    ) {
        self.name = name
        self.kind = kind
        self.state = state
        self.expiresInSeconds = expiresInSeconds
        self.lastRefresh = lastRefresh
        self.lastError = lastError
        self.logins = logins
        self.refreshes = refreshes
        self.loginFailures = loginFailures
        self.refreshFailures = refreshFailures
    }

    /// The status of a static API key: always usable, nothing to count.
    /// A credential with a fixed value (`api_key`, `aws_sigv4`): always `static`.
    static func staticKey(name: String, kind: String = "api_key") -> CredentialStatus {
        CredentialStatus(name: name, kind: kind, state: "static")
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, state
        case expiresInSeconds = "expires_in_seconds"
        case lastRefresh = "last_refresh"
        case lastError = "last_error"
        case logins, refreshes
        case loginFailures = "login_failures"
        case refreshFailures = "refresh_failures"
    }

    /// Absent optionals are written as `null`, so every key is always there for a reader to find.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(kind, forKey: .kind)
        try c.encode(state, forKey: .state)
        try c.encode(expiresInSeconds, forKey: .expiresInSeconds)
        try c.encode(lastRefresh, forKey: .lastRefresh)
        try c.encode(lastError, forKey: .lastError)
        try c.encode(logins, forKey: .logins)
        try c.encode(refreshes, forKey: .refreshes)
        try c.encode(loginFailures, forKey: .loginFailures)
        try c.encode(refreshFailures, forKey: .refreshFailures)
    }
}
