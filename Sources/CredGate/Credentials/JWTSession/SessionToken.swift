/// An access token a ``JWTSession`` holds, as handed to the requests that carry it.
struct SessionToken: Sendable {
    /// The raw token, not the header value (the credential's `format` puts it in one).
    let value: Secret
    /// The header value, `value` written in the session's `format`: made once per token, not per request (it is a
    /// few hundred bytes, so each rendering allocated).
    let headerValue: Secret
    /// Increases with every token the session obtains, so a 401 on an old token cannot drop a newer one.
    let generation: Int
    /// When the token lapses, on the monotonic clock (see ``TokenLifetime``).
    let expiresAt: ContinuousClock.Instant

    /// Whether the token is still usable at `now`.
    func isValid(at now: ContinuousClock.Instant = .now) -> Bool { now < expiresAt }
}

/// The session has no token to give and will not try to get one before `retryAfter`: the caller answers 503 with
/// `Retry-After` instead of waiting.
struct SessionUnavailable: Error, Sendable, CustomStringConvertible {
    /// Time until the next login attempt is allowed; always positive.
    let retryAfter: Duration
    /// A short sentence for people ("login answered 401; circuit open"). Never holds a secret or a response body.
    let reason: String

    init(retryAfter: Duration, reason: String) {
        self.retryAfter = max(retryAfter, .milliseconds(1))
        self.reason = reason
    }

    /// `retryAfter` in whole seconds, rounded up and at least 1, as a `Retry-After` header wants it.
    var retryAfterSeconds: Int {
        let (seconds, attoseconds) = retryAfter.components
        return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
    }

    var description: String { "session unavailable for \(retryAfterSeconds) s: \(reason)" }
}
