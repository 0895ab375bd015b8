/// The clock a ``JWTSession`` reads "now" from and sleeps on: until a renewal is due, and between failed logins.
///
/// A standard `Clock` whose instants are `ContinuousClock`'s, so that token expiry, ``LoginGate`` and
/// ``SessionToken/expiresAt`` stay on the monotonic clock that keeps counting through a suspend (see
/// ``TokenLifetime``). Production uses `ContinuousClock` itself; tests pass a manual clock that moves only when the
/// test says so, and so check refresh-ahead, expiry, backoff and the circuit breaker to the millisecond without
/// sleeping on a loaded machine.
protocol SessionClock: Clock<Duration>, Sendable where Instant == ContinuousClock.Instant {}

extension ContinuousClock: SessionClock {}
