import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A session token held for every client of the gateway: it logs in with the configured user, renews the token
/// before it lapses, and logs in again when renewal fails or the platform rejects the token.
///
/// Requests read the token with ``currentToken()``, a lock-protected snapshot that never waits, so the data path
/// stays on its event loop. Only when there is no valid token does a request await ``validToken()``, and all such
/// requests share one login (single flight). A background task renews the token ahead of expiry, so in the steady
/// state no request waits at all.
///
/// Failed logins back off (jittered, exponential) and open a circuit after repeated failures (``LoginGate``);
/// meanwhile ``unavailable()`` tells callers how long to wait, so they answer 503 at once. Nothing logged or
/// reported holds a token, a password or a login answer's body.
///
/// Call ``start()`` once and ``shutdown()`` before dropping the session: the background task holds it.
final class JWTSession: Sendable {
    let name: String
    let config: JWTSessionConfig
    private let transport: any SessionTransport
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// Source of jitter for the backoff (tests inject a fixed one).
    private let random: @Sendable () -> Double
    /// "Now" for expiry and backoff, and what the background task sleeps on: `ContinuousClock` in production, a
    /// manual clock in tests, so that they step through a token's life instead of waiting it out.
    private let clock: any SessionClock

    /// What the session is doing right now, for ``status()``.
    private enum Phase: Sendable {
        case loggingIn, refreshing
    }

    private typealias Flight = Task<Result<SessionToken, SessionUnavailable>, Never>

    private struct State {
        /// The last token obtained; may have expired (``currentToken()`` checks), nil after a 401 dropped it.
        var token: SessionToken?
        /// When the background task renews `token`.
        var refreshAt: ContinuousClock.Instant?
        var refreshToken: Secret?
        var nextGeneration = 1
        /// The one login or refresh in progress, shared by every waiter.
        var flight: Flight?
        var phase: Phase?
        var gate: LoginGate
        var loop: Task<Void, Never>?
        var isShutDown = false

        var logins = 0
        var refreshes = 0
        var loginFailures = 0
        var refreshFailures = 0
        var lastSuccess: Date?
        var lastError: String?
    }

    convenience init(name: String, config: JWTSessionConfig, transport: any SessionTransport, logger: Logger) {
        self.init(
            name: name, config: config, transport: transport, logger: logger, random: { Double.random(in: 0...1) })
    }

    init(
        name: String, config: JWTSessionConfig, transport: any SessionTransport, logger: Logger,
        random: @escaping @Sendable () -> Double, clock: any SessionClock = ContinuousClock()
    ) {
        self.name = name
        self.config = config
        self.transport = transport
        var logger = logger
        logger[metadataKey: "credential"] = "\(name)"
        self.logger = logger
        self.random = random
        self.clock = clock
        let gate = LoginGate(
            initial: Self.duration(config.backoffInitial), maximum: Self.duration(config.backoffMax),
            failuresToOpen: config.circuitFailures, openFor: Self.duration(config.circuitOpenFor))
        self.state = NIOLockedValueBox(State(gate: gate))
    }

    // MARK: - The data path

    /// The header the token is written to.
    var headerName: String { config.header }

    /// The token to use now, or nil when there is none or it has expired. Never blocks beyond a short lock, never
    /// does I/O: safe on an event loop for every request.
    func currentToken() -> SessionToken? {
        let now = clock.now
        return state.withLockedValue { s in
            guard let token = s.token, token.isValid(at: now) else { return nil }
            return token
        }
    }

    /// A valid token, obtained if needed. Concurrent callers share one login or refresh. Throws at once, without
    /// a network call, while logins are backing off or the circuit is open.
    func validToken() async throws(SessionUnavailable) -> SessionToken {
        enum Step {
            case token(SessionToken)
            case unavailable(SessionUnavailable)
            case wait(Flight)
        }
        let now = clock.now
        let step: Step = state.withLockedValue { s in
            if let token = s.token, token.isValid(at: now) { return .token(token) }
            if s.isShutDown { return .unavailable(Self.shutDown) }
            if let flight = s.flight { return .wait(flight) }
            if let blocked = unavailable(s, at: now) { return .unavailable(blocked) }
            return .wait(startFlight(&s))
        }
        switch step {
        case .token(let token): return token
        case .unavailable(let error): throw error
        case .wait(let flight): return try await flight.value.get()
        }
    }

    /// Set while there is no valid token and logins are backing off or the circuit is open: callers answer 503
    /// with `Retry-After` at once. Nil whenever ``validToken()`` would not throw at once.
    func unavailable() -> SessionUnavailable? {
        let now = clock.now
        return state.withLockedValue { s in
            if let token = s.token, token.isValid(at: now) { return nil }
            if s.isShutDown { return Self.shutDown }
            return unavailable(s, at: now)
        }
    }

    /// A request carrying `token` got 401: drop it so the next caller obtains a new one, unless a newer token has
    /// already replaced it (requests in flight during a renewal must not throw the new token away).
    func rejected(_ token: SessionToken) {
        let dropped = state.withLockedValue { s -> Bool in
            guard let held = s.token, held.generation == token.generation else { return false }
            s.token = nil
            s.refreshAt = nil
            return true
        }
        if dropped {
            logger.notice(
                "the platform rejected the session token; a new one will be obtained",
                metadata: ["generation": "\(token.generation)"])
        }
    }

    // MARK: - Lifecycle

    /// Starts the background task: a first login right away, then renewal ahead of each expiry. Idempotent.
    func start() {
        state.withLockedValue { s in
            guard s.loop == nil, !s.isShutDown else { return }
            s.loop = Task { await self.runLoop() }
        }
    }

    /// Stops the background task and any login in progress; afterwards ``validToken()`` throws.
    func shutdown() async {
        let (loop, flight) = state.withLockedValue { s -> (Task<Void, Never>?, Flight?) in
            s.isShutDown = true
            defer { s.loop = nil }
            return (s.loop, s.flight)
        }
        loop?.cancel()
        flight?.cancel()
        await loop?.value
        _ = await flight?.value
    }

    // MARK: - Status

    func status() -> CredentialStatus {
        let now = clock.now
        return state.withLockedValue { s in
            let valid = s.token.flatMap { $0.isValid(at: now) ? $0 : nil }
            let stateName: String
            switch s.phase {
            case .refreshing: stateName = "refreshing"
            case .loggingIn: stateName = "logging_in"
            case nil:
                if s.gate.wait(at: now) != nil {
                    stateName = s.gate.isCircuitOpen ? "circuit_open" : "backing_off"
                } else {
                    stateName = valid == nil ? "no_token" : "valid"
                }
            }
            let expiresIn = valid.map { token -> Int in
                Int((token.expiresAt - now).components.seconds)
            }
            return CredentialStatus(
                name: name, kind: "jwt_session", state: stateName, expiresInSeconds: expiresIn,
                lastRefresh: s.lastSuccess.map { $0.formatted(.iso8601) }, lastError: s.lastError,
                logins: s.logins, refreshes: s.refreshes, loginFailures: s.loginFailures,
                refreshFailures: s.refreshFailures)
        }
    }

    // MARK: - Background renewal

    /// Longest single sleep: the loop looks again at least this often, so a suspended machine, a dropped token or
    /// a changed plan is noticed without relying on one long timer.
    private static let maxNap: Duration = .seconds(30)

    private func runLoop() async {
        while !Task.isCancelled {
            let now = clock.now
            let plan: (wake: ContinuousClock.Instant, flight: Flight?)? = state.withLockedValue { s in
                if s.isShutDown { return nil }
                if let flight = s.flight { return (now, flight) }
                let blockedUntil = s.gate.wait(at: now).map { now + $0 }
                var wake: ContinuousClock.Instant
                if let token = s.token, token.isValid(at: now) {
                    wake = s.refreshAt ?? token.expiresAt
                    if let blockedUntil { wake = max(wake, blockedUntil) }
                } else {
                    wake = blockedUntil ?? now
                }
                if wake <= now { return (now, startFlight(&s)) }
                return (wake, nil)
            }
            guard let plan else { return }
            if let flight = plan.flight {
                if case .failure = await flight.value {
                    // The gate now holds the next attempt back; this pause only guards against a busy loop.
                    try? await clock.sleep(until: clock.now + .milliseconds(50), tolerance: nil)
                }
            } else {
                let nap = min(plan.wake - now, Self.maxNap)
                do {
                    try await clock.sleep(until: now + nap, tolerance: nil)
                } catch {
                    return
                }
            }
        }
    }

    // MARK: - Obtaining a token

    /// Starts the shared flight; the caller holds the lock.
    private func startFlight(_ s: inout State) -> Flight {
        if let flight = s.flight { return flight }
        // The task's last step takes the lock to clear `flight`, so it cannot finish before this assignment.
        let flight = Flight { await self.obtain() }
        s.flight = flight
        return flight
    }

    /// Refreshes when it can, else (or when that fails) logs in. Runs only as the shared flight.
    private func obtain() async -> Result<SessionToken, SessionUnavailable> {
        let (refreshToken, accessToken) = state.withLockedValue { s in (s.refreshToken, s.token?.value) }
        if let refresh = config.refresh, canRefresh(refresh, refreshToken: refreshToken, accessToken: accessToken) {
            state.withLockedValue { $0.phase = .refreshing }
            let sentAt = clock.now
            let outcome = await perform(
                SessionCall(purpose: .refresh, call: refresh),
                refreshToken: refreshToken, accessToken: accessToken)
            switch outcome.flatMap({ accept($0, sentAt: sentAt, purpose: .refresh) }) {
            case .success(let accepted):
                return finish { s in .success(install(accepted, in: &s, purpose: .refresh)) }
            case .failure(let failure):
                state.withLockedValue { s in
                    s.refreshFailures += 1
                    s.lastError = failure.message
                    // A refresh token that failed once is not tried again: a rotated one is single-use anyway.
                    s.refreshToken = nil
                }
                logger.notice("session refresh failed; logging in again", metadata: ["reason": "\(failure.message)"])
            }
        }

        if Task.isCancelled { return finish { _ in .failure(Self.shutDown) } }
        let now = clock.now
        if let blocked = state.withLockedValue({ s in unavailable(s, at: now) }) {
            return finish { _ in .failure(blocked) }
        }
        state.withLockedValue { $0.phase = .loggingIn }
        let sentAt = clock.now
        let outcome = await perform(
            SessionCall(purpose: .login, call: config.login), refreshToken: nil, accessToken: nil)
        switch outcome.flatMap({ accept($0, sentAt: sentAt, purpose: .login) }) {
        case .success(let accepted):
            return finish { s in
                s.gate.succeeded()
                return .success(install(accepted, in: &s, purpose: .login))
            }
        case .failure(let failure):
            let failedAt = clock.now
            let (delay, circuitOpen, count) = state.withLockedValue { s in
                s.loginFailures += 1
                s.lastError = failure.message
                let delay = s.gate.failed(at: failedAt, retryAfter: failure.retryAfter, random: random)
                return (delay, s.gate.isCircuitOpen, s.gate.consecutiveFailures)
            }
            let retry = "\(Self.seconds(delay)) s"
            if circuitOpen {
                logger.error(
                    "session login failed; circuit open, next attempt in \(retry)",
                    metadata: [
                        "reason": "\(failure.message)", "consecutive_failures": "\(count)",
                    ])
            } else {
                logger.warning(
                    "session login failed; next attempt in \(retry)",
                    metadata: [
                        "reason": "\(failure.message)", "consecutive_failures": "\(count)",
                    ])
            }
            return finish { s in
                .failure(
                    unavailable(s, at: failedAt)
                        ?? SessionUnavailable(
                            retryAfter: delay, reason: failure.message))
            }
        }
    }

    /// A token ready to install: the answer plus its lifetime.
    private struct Accepted {
        var answer: SessionCall.Answer
        var lifetime: Duration
        var source: TokenLifetime.Source
        var sentAt: ContinuousClock.Instant
    }

    /// Sends a call; a thrown error (no answer at all) becomes a failure with a short reason.
    private func perform(
        _ call: SessionCall, refreshToken: Secret?, accessToken: Secret?
    ) async -> Result<SessionCall.Answer, SessionCall.Failure> {
        let request = call.request(
            refreshToken: refreshToken, accessToken: accessToken,
            tokenHeader: config.header, format: config.format)
        do {
            let answer = try await transport.send(
                method: request.method, path: request.path,
                headers: request.headers, body: request.body)
            return call.read(status: answer.status, headers: answer.headers, body: answer.body)
        } catch is CancellationError {
            return .failure(SessionCall.Failure(message: "\(call.purpose.rawValue) cancelled"))
        } catch {
            return .failure(
                SessionCall.Failure(message: "\(call.purpose.rawValue) could not connect: \(Self.short(error))"))
        }
    }

    /// The lifetime of a new token; a token that is already expired counts as a failure, not as a success that
    /// would be renewed in a tight loop.
    private func accept(
        _ answer: SessionCall.Answer, sentAt: ContinuousClock.Instant, purpose: SessionCall.Purpose
    ) -> Result<Accepted, SessionCall.Failure> {
        let (lifetime, source) = TokenLifetime.lifetime(
            of: answer.accessToken,
            default: Self.duration(config.defaultLifetime))
        guard lifetime > .zero else {
            return .failure(
                SessionCall.Failure(message: "\(purpose.rawValue) answered an access token that is already expired"))
        }
        return .success(Accepted(answer: answer, lifetime: lifetime, source: source, sentAt: sentAt))
    }

    /// Installs a new token; the caller holds the lock.
    ///
    /// Expiry is counted from when the call was *sent*: the token was issued after that, so the session never
    /// believes a token valid after the platform stopped accepting it.
    private func install(_ accepted: Accepted, in s: inout State, purpose: SessionCall.Purpose) -> SessionToken {
        let token = SessionToken(
            value: Secret(accepted.answer.accessToken),
            headerValue: Secret(config.tokenFormat.render(accepted.answer.accessToken)), generation: s.nextGeneration,
            expiresAt: accepted.sentAt + accepted.lifetime)
        s.nextGeneration += 1
        s.token = token
        let configuredMargin = config.refreshMargin.map(Self.duration)
        let margin = TokenLifetime.refreshMargin(lifetime: accepted.lifetime, configured: configuredMargin)
        s.refreshAt = token.expiresAt - margin
        if let refresh = accepted.answer.refreshToken {
            s.refreshToken = Secret(refresh)
        } else if purpose == .login {
            s.refreshToken = nil
        } // A refresh answer without a new refresh token keeps the current one (no rotation).
        switch purpose {
        case .login: s.logins += 1
        case .refresh: s.refreshes += 1
        }
        s.lastSuccess = Date()
        s.lastError = nil
        let verb = purpose == .login ? "session login succeeded" : "session token refreshed"
        logger.info(
            "\(verb)",
            metadata: [
                "generation": "\(token.generation)",
                "lifetime_seconds": "\(Self.seconds(accepted.lifetime))",
                "lifetime_from": "\(accepted.source.rawValue)",
                "renew_in_seconds": "\(Self.seconds(accepted.lifetime - margin))",
            ])
        return token
    }

    /// Ends the flight: applies `body` and clears the flight in one step, so no caller can see neither a token
    /// nor a flight and start a second login.
    private func finish(
        _ body: (inout State) -> Result<SessionToken, SessionUnavailable>
    ) -> Result<SessionToken, SessionUnavailable> {
        state.withLockedValue { s in
            let result = body(&s)
            s.flight = nil
            s.phase = nil
            return result
        }
    }

    /// Whether the session holds what the refresh call's body needs. `send_access_token` is not a condition: the
    /// access token is sent when held, and left out after a 401 dropped it (the refresh token may still work).
    private func canRefresh(_ call: JWTSessionConfig.Call, refreshToken: Secret?, accessToken: Secret?) -> Bool {
        let body = call.body.reveal()
        if body.contains("{refresh_token}") && refreshToken == nil { return false }
        if body.contains("{access_token}") && accessToken == nil { return false }
        return refreshToken != nil || accessToken != nil
    }

    /// Why no login may be tried now; the caller holds the lock.
    private func unavailable(_ s: State, at now: ContinuousClock.Instant) -> SessionUnavailable? {
        guard let wait = s.gate.wait(at: now) else { return nil }
        let last = s.lastError.map { " (last: \($0))" } ?? ""
        let reason =
            s.gate.isCircuitOpen
            ? "login circuit open after \(s.gate.consecutiveFailures) consecutive failures\(last)"
            : "login backing off after \(s.gate.consecutiveFailures) failed attempt\(s.gate.consecutiveFailures == 1 ? "" : "s")\(last)"
        return SessionUnavailable(retryAfter: wait, reason: reason)
    }

    // MARK: - Helpers

    private static let shutDown = SessionUnavailable(retryAfter: .seconds(1), reason: "the gateway is shutting down")

    /// `format` with `{token}` replaced.
    static func format(_ token: String, with format: String) -> String {
        format.replacingOccurrences(of: "{token}", with: token)
    }

    static func duration(_ amount: TimeAmount) -> Duration { .nanoseconds(amount.nanoseconds) }

    /// Whole seconds, rounded up, for logs.
    private static func seconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds + (attoseconds > 0 ? 1 : 0)
    }

    /// An error in a few words: transport errors name the failure (refused, timeout, TLS), never a body.
    private static func short(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.count > 160 ? String(text.prefix(160)) + "…" : text
    }
}
