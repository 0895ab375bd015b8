/// Decides when the next login may be tried after failures: jittered exponential backoff, and a circuit breaker
/// so that a wrong password costs at most `failuresToOpen` attempts per `openFor` (an account lock-out or a flood
/// of the login endpoint is worse than a gateway that waits).
///
/// A plain value: ``JWTSession`` keeps it under its lock and asks it at each step.
struct LoginGate: Sendable {
    let initial: Duration
    let maximum: Duration
    let failuresToOpen: Int
    let openFor: Duration

    /// Failed logins since the last success.
    private(set) var consecutiveFailures = 0
    /// No login before this instant.
    private(set) var blockedUntil: ContinuousClock.Instant?

    init(initial: Duration, maximum: Duration, failuresToOpen: Int, openFor: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.failuresToOpen = max(1, failuresToOpen)
        self.openFor = openFor
    }

    /// Whether the circuit is open (enough failures in a row): the next try is a single half-open one.
    var isCircuitOpen: Bool { consecutiveFailures >= failuresToOpen }

    /// Time left before a login may be tried, or nil when one may be tried now.
    func wait(at now: ContinuousClock.Instant) -> Duration? {
        guard let blockedUntil, now < blockedUntil else { return nil }
        return blockedUntil - now
    }

    /// Records a failed login and returns the time until the next attempt. `retryAfter` (the platform's
    /// `Retry-After`) is honoured when it is longer, up to the longer of the backoff cap and `openFor`, so that a
    /// broken header cannot stop the session for days. `random` gives a number in 0...1 (injected by tests).
    @discardableResult
    mutating func failed(
        at now: ContinuousClock.Instant, retryAfter: Duration? = nil,
        random: () -> Double = { Double.random(in: 0...1) }
    ) -> Duration {
        consecutiveFailures += 1
        var delay: Duration
        if isCircuitOpen {
            // Also after a failed half-open try: the count stays at or above the threshold.
            delay = openFor
        } else {
            // Equal jitter: half the exponential delay for sure, the other half random. Spreads retries of many
            // gateways without ever retrying at once.
            let exponent = min(consecutiveFailures - 1, 30)
            let base = min(maximum, initial * (1 << exponent))
            delay = base / 2 + (base / 2) * min(max(random(), 0), 1)
        }
        if let retryAfter, retryAfter > delay {
            delay = min(retryAfter, max(maximum, openFor))
        }
        blockedUntil = now + delay
        return delay
    }

    /// A login succeeded: the gate closes and the count restarts.
    mutating func succeeded() {
        consecutiveFailures = 0
        blockedUntil = nil
    }
}
