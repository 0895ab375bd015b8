import NIOCore

/// A session credential: the gateway logs in with a user's credentials, keeps the access token fresh, and writes
/// it into requests. Everything a platform's login looks like is data, so another platform needs no code.
struct JWTSessionConfig: Sendable {
    /// A call the session makes itself (login or refresh).
    struct Call: Sendable {
        var method: String = "POST"
        /// Path (and query) on the session's upstream, e.g. `/api/v1/users/login/`.
        var path: String
        /// JSON body template. In `login`, `${VAR}`s are already expanded (so it is a secret); `{refresh_token}`
        /// and `{access_token}` are filled in at call time, JSON-escaped.
        var body: Secret
        /// Extra headers for the call, e.g. the API key (values are secrets).
        var headers: [(name: String, value: Secret)] = []
        /// Dotted path of the access token in the JSON answer, e.g. `data.jwt.access`.
        var accessTokenPath: String
        /// Dotted path of the refresh token in the answer; `nil` when the platform has none.
        var refreshTokenPath: String?
        /// Send the current access token in the token header too (refresh only).
        var sendAccessToken: Bool = false

        init(path: String, body: Secret, accessTokenPath: String, refreshTokenPath: String?) {
            self.path = path
            self.body = body
            self.accessTokenPath = accessTokenPath
            self.refreshTokenPath = refreshTokenPath
        }
    }

    /// Name of the upstream that logins and refreshes go to.
    var upstream: String
    var login: Call
    /// `nil`: no refresh endpoint, the session logs in again instead.
    var refresh: Call?
    /// Header the token is written to.
    var header: String = "Authorization"
    /// How the token is written; `{token}` stands for it (the loader checks it is there).
    var format: String = "Bearer {token}" {
        didSet { tokenFormat = TokenFormat(format) }
    }
    /// ``format`` taken apart once, for every filter that writes or reads the header.
    private(set) var tokenFormat = TokenFormat("Bearer {token}")
    /// Lifetime assumed when the token is not a JWT or has no `exp`.
    var defaultLifetime: TimeAmount = .seconds(3600)
    /// Renew this long before expiry; `nil` uses the default rule: 10% of the lifetime, at least 60 s, at most
    /// half the lifetime.
    var refreshMargin: TimeAmount? = nil
    /// Login retries after failures: first delay and cap of the jittered exponential backoff.
    var backoffInitial: TimeAmount = .seconds(1)
    var backoffMax: TimeAmount = .seconds(300)
    /// Consecutive failed logins after which the circuit opens (no login attempt until `circuitOpenFor` passes).
    var circuitFailures: Int = 5
    var circuitOpenFor: TimeAmount = .seconds(300)
    /// Answer the platform's login route locally with a placeholder token, so unmodified SDKs work without the
    /// real password; the placeholder is replaced on the way out.
    var placeholderLogin: Bool = false
    /// `GET /credgate/readiness` answers 503 until this session holds a valid token. `false` for a session that
    /// only some rarely used routes need, so that the pod takes traffic for the others without it.
    var requiredForReady: Bool = true

    /// The path (without query) of the login route answered locally when ``placeholderLogin`` is on.
    var placeholderLoginPath: String {
        String(login.path.split(separator: "?", maxSplits: 1).first ?? "")
    }

    init(upstream: String, login: Call) {
        self.upstream = upstream
        self.login = login
    }
}

/// A header value with `{token}` where the token goes (`Bearer {token}`), split once around it.
struct TokenFormat: Sendable, Equatable {
    let prefix: String
    let suffix: String

    init(_ format: String) {
        if let range = format.range(of: "{token}") {
            prefix = String(format[..<range.lowerBound])
            suffix = String(format[range.upperBound...])
        } else {
            prefix = format
            suffix = ""
        }
    }

    /// The header value for `token`.
    func render(_ token: String) -> String { prefix + token + suffix }

    /// The token inside a header value written this way, or nil when the value is not.
    func token(in value: String) -> Substring? {
        guard value.count >= prefix.count + suffix.count, value.hasPrefix(prefix), value.hasSuffix(suffix) else {
            return nil
        }
        return value.dropFirst(prefix.count).dropLast(suffix.count)
    }
}

/// Two sessions are the same when every setting is, secrets included (``Secret`` compares its value): a reload
/// keeps a session, its token and its refresh token only when nothing it logs in or renews with changed.
extension JWTSessionConfig.Call: Equatable {
    static func == (a: Self, b: Self) -> Bool {
        a.method == b.method && a.path == b.path && a.body == b.body
            && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
            && a.accessTokenPath == b.accessTokenPath && a.refreshTokenPath == b.refreshTokenPath
            && a.sendAccessToken == b.sendAccessToken
    }
}

extension JWTSessionConfig: Equatable {
    static func == (a: Self, b: Self) -> Bool {
        a.upstream == b.upstream && a.login == b.login && a.refresh == b.refresh && a.header == b.header
            && a.format == b.format && a.defaultLifetime == b.defaultLifetime && a.refreshMargin == b.refreshMargin
            && a.backoffInitial == b.backoffInitial && a.backoffMax == b.backoffMax
            && a.circuitFailures == b.circuitFailures && a.circuitOpenFor == b.circuitOpenFor
            && a.placeholderLogin == b.placeholderLogin && a.requiredForReady == b.requiredForReady
    }
}
