/// An access token a ``JWTSession`` holds, as handed to the requests that carry it.
public struct SessionToken: Sendable {
    /// The raw token, not the header value (the credential's `format` puts it in one).
    public let value: Secret
    /// Increases with every token the session obtains, so a 401 on an old token cannot drop a newer one.
    public let generation: Int
    /// When the token lapses, on the monotonic clock (see ``TokenLifetime``).
    public let expiresAt: ContinuousClock.Instant

    public init(value: Secret, generation: Int, expiresAt: ContinuousClock.Instant) {
        self.value = value
        self.generation = generation
        self.expiresAt = expiresAt
    }

    /// Whether the token is still usable at `now`.
    public func isValid(at now: ContinuousClock.Instant = .now) -> Bool { now < expiresAt }
}

/// The session has no token to give and will not try to get one before `retryAfter`: the caller answers 503 with
/// `Retry-After` instead of waiting.
public struct SessionUnavailable: Error, Sendable, CustomStringConvertible {
    /// Time until the next login attempt is allowed; always positive.
    public let retryAfter: Duration
    /// A short sentence for people ("login answered 401; circuit open"). Never holds a secret or a response body.
    public let reason: String

    public init(retryAfter: Duration, reason: String) {
        self.retryAfter = max(retryAfter, .milliseconds(1))
        self.reason = reason
    }

    /// `retryAfter` in whole seconds, rounded up and at least 1, as a `Retry-After` header wants it.
    public var retryAfterSeconds: Int {
        let (seconds, attoseconds) = retryAfter.components
        return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
    }

    public var description: String { "session unavailable for \(retryAfterSeconds) s: \(reason)" }
}
