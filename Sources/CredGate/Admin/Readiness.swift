/// Whether the gateway should get traffic: the answer of `GET /credgate/readiness`.
///
/// Ready means: the configuration is loaded (it is, once the gateway serves), the gateway is not draining, and
/// every `jwt_session` credential holds a valid (unexpired) token, except those that set
/// `required_for_ready: false`. A session that is renewing a still-valid token is ready; one with no token, or
/// only an expired one, is not, whatever it is doing about it. Liveness and startup never look at any of this:
/// a platform that is down must not get credgate restarted.
///
/// Built from ``CredentialStatus`` values only, so it carries states and the last error sentence, never a secret.
struct Readiness: Sendable, Equatable {
    /// A credential that keeps the gateway from being ready, and why.
    struct Blocker: Sendable, Equatable, Encodable {
        var credential: String
        /// The session's state (`no_token`, `logging_in`, `backing_off`, `circuit_open`, ...).
        var state: String
        /// The last failure as a short sentence ("login answered 401"); nil when nothing failed yet.
        var lastError: String?
        /// One sentence for a person.
        var reason: String

        enum CodingKeys: String, CodingKey {
            case credential, state, reason
            case lastError = "last_error"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(credential, forKey: .credential)
            try c.encode(state, forKey: .state)
            try c.encode(lastError, forKey: .lastError)
            try c.encode(reason, forKey: .reason)
        }
    }

    var draining: Bool
    var blockers: [Blocker]
    /// Sessions that are not ready but do not count (`required_for_ready: false`), by name.
    var ignored: [String]

    var isReady: Bool { !draining && blockers.isEmpty }

    /// `notRequired`: names of the credentials that set `required_for_ready: false`.
    init(credentials: [CredentialStatus], notRequired: Set<String>, draining: Bool) {
        self.draining = draining
        var blockers: [Blocker] = []
        var ignored: [String] = []
        for credential in credentials where credential.kind == "jwt_session" && credential.expiresInSeconds == nil {
            if notRequired.contains(credential.name) {
                ignored.append(credential.name)
                continue
            }
            blockers.append(
                Blocker(
                    credential: credential.name, state: credential.state, lastError: credential.lastError,
                    reason: Self.reason(credential)))
        }
        self.blockers = blockers
        self.ignored = ignored
    }

    static func reason(_ c: CredentialStatus) -> String {
        let why: String
        switch c.state {
        case "logging_in": why = "it is logging in"
        case "refreshing": why = "it is renewing an expired token"
        case "backing_off": why = "logins are failing and the next attempt waits (backoff)"
        case "circuit_open":
            why = "logins failed repeatedly and credgate stopped trying for a while (circuit breaker open)"
        default: why = "none obtained yet, or the last one expired or was rejected"
        }
        var sentence = "session '\(c.name)' holds no valid token: \(why)"
        if let error = c.lastError { sentence += "; last error: \(error)" }
        return sentence
    }

    /// One sentence for a person: what is not ready, or that all is.
    var summary: String {
        if draining { return "credgate is draining (shutting down)" }
        if blockers.isEmpty { return "ready" }
        return blockers.map(\.reason).joined(separator: "; ")
    }
}
