import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import CredGate

// MARK: - Pure rules

@Suite struct JWTSessionRuleTests {
    @Test(arguments: [
        (10_080, 1_008), // the platform's 2.8 h token: 10%, renewed ~17 minutes early
        (3_600, 360), // 1 h: 10%
        (300, 60), // 10% is 30 s: raised to 60 s
        (100, 50), // 60 s would be more than half: half
        (4, 2), // a 4 s test token: renewed after 2 s
    ])
    func defaultRefreshMargin(lifetime: Int, margin: Int) {
        #expect(TokenLifetime.refreshMargin(lifetime: .seconds(lifetime)) == .seconds(margin))
    }

    @Test func configuredMarginIsUsedButNeverMoreThanHalf() {
        #expect(TokenLifetime.refreshMargin(lifetime: .seconds(3600), configured: .seconds(30)) == .seconds(30))
        #expect(TokenLifetime.refreshMargin(lifetime: .seconds(4), configured: .seconds(60)) == .seconds(2))
    }

    @Test func lifetimeFromExpMinusIssuedAt() {
        // Issued long ago by a clock far from ours: exp - iat is all that counts.
        let token = makeJWT(claims: ["exp": 1_000_003_600, "iat": 1_000_000_000, "token_type": "access"])
        let (lifetime, source) = TokenLifetime.lifetime(of: token, default: .seconds(1))
        #expect(lifetime == .seconds(3600))
        #expect(source == .issuedAt)
    }

    @Test func lifetimeFromExpOnly() {
        let now = Date(timeIntervalSince1970: 2_000_000_000)
        let token = makeJWT(claims: ["exp": 2_000_000_100])
        let (lifetime, source) = TokenLifetime.lifetime(of: token, default: .seconds(1), now: now)
        #expect(lifetime == .seconds(100))
        #expect(source == .wallClock)
    }

    @Test(arguments: ["opaque-token-1234", "a.b.c", makeJWT(claims: ["sub": "x"]), "", "x.\("{}".utf8.count).y"])
    func lifetimeFallsBackToDefault(token: String) {
        let (lifetime, source) = TokenLifetime.lifetime(of: token, default: .seconds(1234))
        #expect(lifetime == .seconds(1234))
        #expect(source == .assumed)
    }

    @Test func backoffGrowsWithJitterAndOpensTheCircuit() {
        let start = ContinuousClock.now
        var gate = LoginGate(initial: .seconds(1), maximum: .seconds(4), failuresToOpen: 5, openFor: .seconds(300))
        #expect(gate.wait(at: start) == nil)
        // Equal jitter: between half and all of 1, 2, 4, 4 (capped) seconds.
        #expect(gate.failed(at: start, random: { 0 }) == .milliseconds(500))
        #expect(gate.failed(at: start, random: { 1 }) == .seconds(2))
        #expect(gate.failed(at: start, random: { 0.5 }) == .seconds(3))
        #expect(gate.failed(at: start, random: { 1 }) == .seconds(4))
        #expect(!gate.isCircuitOpen)
        #expect(gate.failed(at: start, random: { 1 }) == .seconds(300))
        #expect(gate.isCircuitOpen)
        #expect(gate.wait(at: start + .seconds(100)) == .seconds(200))
        // The half-open try fails: open again for the whole period.
        #expect(gate.failed(at: start + .seconds(300), random: { 0 }) == .seconds(300))
        gate.succeeded()
        #expect(gate.wait(at: start + .seconds(301)) == nil)
        #expect(!gate.isCircuitOpen)
        #expect(gate.failed(at: start, random: { 0 }) == .milliseconds(500))
    }

    @Test func longerRetryAfterIsHonouredWithinBounds() {
        let start = ContinuousClock.now
        var gate = LoginGate(initial: .seconds(1), maximum: .seconds(60), failuresToOpen: 5, openFor: .seconds(300))
        #expect(gate.failed(at: start, retryAfter: .seconds(30), random: { 0 }) == .seconds(30))
        #expect(gate.failed(at: start, retryAfter: .seconds(1), random: { 1 }) == .seconds(2))
        #expect(gate.failed(at: start, retryAfter: .seconds(86_400), random: { 0 }) == .seconds(300))
    }

    @Test func callRequestFillsTokensJSONEscaped() {
        var call = JWTSessionConfig.Call(
            path: "/refresh/", body: Secret(#"{"refresh": "{refresh_token}", "a": "{access_token}"}"#),
            accessTokenPath: "access", refreshTokenPath: "refresh")
        call.sendAccessToken = true
        let request = SessionCall(purpose: .refresh, call: call).request(
            refreshToken: Secret("r\"1\\\n"), accessToken: Secret("acc"), tokenHeader: "Authorization",
            format: "Bearer {token}")
        #expect(request.body == #"{"refresh": "r\"1\\\n", "a": "acc"}"#)
        let parsed = try? JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: String]
        #expect(parsed?["refresh"] == "r\"1\\\n")
        #expect(request.headers.contains { $0.0 == "Authorization" && $0.1 == "Bearer acc" })
        #expect(request.headers.contains { $0.0 == "content-type" && $0.1 == "application/json" })
    }

    @Test func callAnswerReading() {
        let call = SessionCall(purpose: .login, call: assuredSessionConfig().login)
        func body(_ object: Any) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }

        let ok = call.read(status: 200, headers: [], body: body(["data": ["jwt": ["access": "A", "refresh": "R"]]]))
        #expect((try? ok.get())?.accessToken == "A")
        #expect((try? ok.get())?.refreshToken == "R")

        guard
            case .failure(let denied) = call.read(
                status: 429, headers: [("retry-after", "7")], body: body(["x": sessionMarker]))
        else {
            Issue.record("429 accepted")
            return
        }
        #expect(denied.message == "login answered 429")
        #expect(denied.retryAfter == .seconds(7))

        let missing = call.read(status: 200, headers: [], body: body(["data": ["jwt": ["access": 5]]]))
        #expect(missing.failureMessage == "login answer has no access token at 'data.jwt.access'")
        let notJSON = call.read(status: 200, headers: [], body: Array("<html>\(sessionMarker)".utf8))
        #expect(notJSON.failureMessage == "login answered 200 with a body that is not JSON")
        let injected = call.read(status: 200, headers: [], body: body(["data": ["jwt": ["access": "A\r\nx-evil: 1"]]]))
        #expect(injected.failureMessage == "login answer's access token has characters a header cannot carry")
    }

    @Test func retryAfterForms() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(SessionCall.retryAfter("120", now: now) == .seconds(120))
        #expect(SessionCall.retryAfter("Tue, 14 Nov 2023 22:15:00 GMT", now: now) == .seconds(100))
        #expect(SessionCall.retryAfter("soon", now: now) == nil)
    }

    @Test func unavailableRoundsRetryAfterUp() {
        #expect(SessionUnavailable(retryAfter: .milliseconds(1), reason: "x").retryAfterSeconds == 1)
        #expect(SessionUnavailable(retryAfter: .milliseconds(2100), reason: "x").retryAfterSeconds == 3)
        #expect(SessionUnavailable(retryAfter: .seconds(5), reason: "x").retryAfterSeconds == 5)
    }
}

extension Result where Failure == SessionCall.Failure {
    var failureMessage: String? {
        if case .failure(let failure) = self { return failure.message }
        return nil
    }
}

// MARK: - The session against a scripted platform, on a manual clock

/// Every session here runs on a ``ManualClock``: time moves only when a test moves it, so expiry, refresh-ahead,
/// backoff and the circuit breaker are checked at exact instants, and nothing sleeps on the real clock.
@Suite struct JWTSessionBehaviourTests {
    @Test func firstLoginWritesTheConfiguredRequest() async throws {
        let platform = FakePlatform()
        let session = manualSession(platform, clock: ManualClock())
        let token = try await session.validToken()
        #expect(session.currentToken()?.generation == token.generation)
        let request = try #require(await platform.requests.first)
        let body = try #require(JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
        #expect(body["password"] as? String == sessionPassword)
        #expect(request.headers.contains { $0.0 == "x-api-key" && $0.1 == sessionAPIKey })
        await session.shutdown()
    }

    /// The login is held open until all 100 callers are waiting, so they must share it: one call to the platform.
    @Test func hundredConcurrentCallersShareOneLogin() async throws {
        let platform = FakePlatform()
        await platform.holdLogins()
        let session = manualSession(platform, clock: ManualClock())
        let callers = NIOLockedValueBox(0)
        async let generations = withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    callers.withLockedValue { $0 += 1 }
                    return try await session.validToken().generation
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(
            await eventually {
                let logins = await platform.loginCalls
                return logins == 1 && callers.withLockedValue { $0 } == 100
            })
        // A few turns of the scheduler for the last callers to reach the shared flight.
        for _ in 0..<50 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(5))
        #expect(await platform.loginCalls == 1)
        #expect(session.status().state == "logging_in")
        await platform.releaseLogins()
        #expect(try await generations == [1])
        #expect(await platform.loginCalls == 1)
        #expect(session.status().logins == 1)
        await session.shutdown()
    }

    /// A 3 s token, renewed in the background half-way through its life: over 10 s the data path always has a
    /// token with at least the margin left, and it is renewed exactly when due, by refresh, after one login.
    @Test func refreshAheadKeepsATokenAtAllTimes() async throws {
        let platform = FakePlatform()
        await platform.set(accessLifetime: 3)
        let clock = ManualClock()
        let start = clock.now
        let session = manualSession(platform, clock: clock)
        session.start()
        try await parked(clock)
        let first = try #require(session.currentToken())
        #expect(first.expiresAt == start + .seconds(3))
        // The margin for a 3 s token is half of it: the background task sleeps until 1.5 s.
        #expect(clock.nextDeadline == start + .milliseconds(1500))

        var generations: Set<Int> = [first.generation]
        var renewedAt: [Duration] = []
        for _ in 0..<100 { // 10 s, 100 ms at a time
            try await step(clock, by: .milliseconds(100))
            let token = try #require(session.currentToken(), "no token at \(clock.now - start)")
            #expect(token.expiresAt - clock.now >= .milliseconds(1500), "a token near its end at \(clock.now - start)")
            if generations.insert(token.generation).inserted { renewedAt.append(clock.now - start) }
        }
        #expect(renewedAt == [1500, 3000, 4500, 6000, 7500, 9000].map { Duration.milliseconds($0) })
        let status = session.status()
        #expect(status.logins == 1)
        #expect(status.refreshes == 6)
        #expect(await platform.loginCalls == 1)
        #expect(await platform.refreshCalls == 6)
        // The refresh sent the refresh token and the current access token.
        let refresh = try #require(await platform.requests.last { $0.path == "/api/v1/users/token/refresh/" })
        #expect(refresh.headers.contains { $0.0 == "Authorization" && $0.1.hasPrefix("Bearer ey") })
        #expect(refresh.body.hasPrefix(#"{"refresh": "ey"#))
        await session.shutdown()
    }

    /// Without renewal (no background task), a token is served up to the last instant before its expiry and never
    /// at it; the next caller then obtains a new one, by refresh.
    @Test func aTokenIsNeverServedPastItsExpiry() async throws {
        let platform = FakePlatform()
        await platform.set(accessLifetime: 60)
        let clock = ManualClock()
        let session = manualSession(platform, clock: clock)
        let token = try await session.validToken()
        #expect(token.expiresAt == clock.now + .seconds(60))
        clock.advance(by: .seconds(30))
        #expect(session.status().expiresInSeconds == 30)
        clock.advance(by: .seconds(30) - .milliseconds(1))
        #expect(session.currentToken()?.generation == token.generation)
        #expect(session.status().state == "valid")
        clock.advance(by: .milliseconds(1))
        #expect(session.currentToken() == nil)
        #expect(session.status().state == "no_token")
        #expect(session.status().expiresInSeconds == nil)
        #expect(session.unavailable() == nil) // nothing holds the next caller back

        let next = try await session.validToken()
        #expect(next.generation == token.generation + 1)
        #expect(next.expiresAt == clock.now + .seconds(60))
        #expect(await platform.refreshCalls == 1)
        #expect(await platform.loginCalls == 1)
        await session.shutdown()
    }

    /// A token dropped after a 401 with no request waiting is replaced by the background task when it next looks,
    /// within its longest nap (30 s), not only when the old token would have been renewed (54 minutes later).
    @Test func aDroppedTokenIsReplacedByTheBackgroundTaskWithinItsLongestNap() async throws {
        let platform = FakePlatform()
        let clock = ManualClock()
        let start = clock.now
        let session = manualSession(platform, clock: clock)
        session.start()
        try await parked(clock)
        let first = try #require(session.currentToken())
        #expect(clock.nextDeadline == start + .seconds(30))
        session.rejected(first)
        #expect(session.currentToken() == nil)
        try await step(clock, by: .seconds(30) - .milliseconds(1))
        #expect(session.currentToken() == nil)
        try await step(clock, by: .milliseconds(1))
        let second = try #require(session.currentToken())
        #expect(second.generation == first.generation + 1)
        #expect(await platform.refreshCalls == 1)
        #expect(await platform.loginCalls == 1)
        await session.shutdown()
    }

    /// After a 401 the refresh is tried first; when the platform refuses it, one login follows.
    @Test func failedRefreshFallsBackToLogin() async throws {
        let platform = FakePlatform()
        await platform.set(refreshAccepted: false)
        let session = manualSession(platform, clock: ManualClock())
        let first = try await session.validToken()
        session.rejected(first)
        #expect(session.currentToken() == nil)
        let second = try await session.validToken()
        #expect(second.generation > first.generation)
        #expect(await platform.refreshCalls == 1)
        #expect(await platform.loginCalls == 2)
        let status = session.status()
        #expect(status.refreshFailures == 1)
        #expect(status.logins == 2)
        #expect(status.lastError == nil) // the login that followed succeeded
        await session.shutdown()
    }

    @Test func rejectingAnOldGenerationKeepsTheNewerToken() async throws {
        let platform = FakePlatform()
        let session = manualSession(platform, clock: ManualClock())
        let old = try await session.validToken()
        session.rejected(old)
        let new = try await session.validToken() // by refresh
        #expect(new.generation == old.generation + 1)
        #expect(await platform.refreshCalls == 1)
        session.rejected(old) // a late 401 of a request that carried the old token
        #expect(session.currentToken()?.generation == new.generation)
        session.rejected(new)
        #expect(session.currentToken() == nil)
        await session.shutdown()
    }

    @Test func alreadyExpiredTokenIsAFailureNotALoop() async throws {
        let platform = FakePlatform()
        await platform.set(accessLifetime: -10)
        let session = manualSession(platform, clock: ManualClock())
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }
        #expect(session.status().lastError == "login answered an access token that is already expired")
        #expect(session.unavailable() != nil)
        #expect(await platform.loginCalls == 1)
        await session.shutdown()
    }

    /// Each failed login holds the next one back by an exponential delay (1, 2, 4 s, capped at 4 s) of which half
    /// is certain and half is jitter; meanwhile callers are refused at once, with the time left, and the platform
    /// sees no call.
    @Test func backoffIsExponentialWithJitter() async throws {
        let platform = FakePlatform()
        await platform.set(login: .reject(status: 500))
        let clock = ManualClock()
        let jitter = NIOLockedValueBox([0.0, 1.0, 0.5, 0.25])
        let session = manualSession(
            platform, clock: clock,
            config: assuredSessionConfig(backoff: (.seconds(1), .seconds(4)), circuit: (10, .seconds(300))),
            random: { jitter.withLockedValue { $0.removeFirst() } })
        let delays: [Duration] = [.milliseconds(500), .seconds(2), .seconds(3), .milliseconds(2500)]
        for (attempt, delay) in delays.enumerated() {
            await #expect(throws: SessionUnavailable.self) { try await session.validToken() }
            #expect(await platform.loginCalls == attempt + 1)
            #expect(session.unavailable()?.retryAfter == delay)
            #expect(session.status().state == "backing_off")

            clock.advance(by: delay - .milliseconds(1))
            do {
                _ = try await session.validToken()
                Issue.record("logged in while backing off")
            } catch {
                #expect(error.retryAfter == .milliseconds(1))
                #expect(error.reason.contains("login backing off after \(attempt + 1) failed attempt"))
                #expect(error.reason.contains("(last: login answered 500)"))
            }
            #expect(await platform.loginCalls == attempt + 1)

            clock.advance(by: .milliseconds(1))
            #expect(session.unavailable() == nil)
            #expect(session.status().state == "no_token")
        }
        #expect(session.status().loginFailures == 4)
        await session.shutdown()
    }

    /// A wrong password, with the background task running: five attempts with backoff (0.75, 1.5, 3, 3 s), then
    /// the circuit opens for 60 s and no attempt is made while it is open; callers are told at once how long to
    /// wait; a failed half-open try opens it again; once the password works, the next try logs in and the backoff
    /// starts over.
    @Test func wrongPasswordIsBoundedAndRecovers() async throws {
        let platform = FakePlatform()
        await platform.set(login: .reject(status: 401))
        let clock = ManualClock()
        let start = clock.now
        let config = assuredSessionConfig(backoff: (.seconds(1), .seconds(4)), circuit: (5, .seconds(60)))
        let session = manualSession(platform, clock: clock, config: config)
        session.start()
        try await parked(clock)

        var attempts: [Duration] = [.zero]
        #expect(await platform.loginCalls == 1)
        for _ in 0..<50 where attempts.count < 5 {
            guard let next = clock.nextDeadline else { break }
            clock.advance(to: next)
            try await parked(clock)
            if await platform.loginCalls > attempts.count { attempts.append(clock.now - start) }
        }
        #expect(attempts == [0, 750, 2250, 5250, 8250].map { Duration.milliseconds($0) })
        #expect(session.status().state == "circuit_open")
        let blocked = try #require(session.unavailable())
        #expect(blocked.retryAfter == .seconds(60))
        #expect(blocked.reason.contains("login circuit open after 5 consecutive failures (last: login answered 401)"))
        // Callers fail at once, without a call to the platform.
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }

        try await step(clock, by: .seconds(60) - .milliseconds(1))
        #expect(await platform.loginCalls == 5)
        #expect(session.unavailable()?.retryAfter == .milliseconds(1))

        // The half-open try fails: open again for the whole period.
        try await step(clock, by: .milliseconds(1))
        #expect(await platform.loginCalls == 6)
        #expect(session.status().state == "circuit_open")
        #expect(session.unavailable()?.retryAfter == .seconds(60))

        await platform.set(login: .accept)
        try await step(clock, by: .seconds(60) - .milliseconds(1))
        #expect(await platform.loginCalls == 6)
        try await step(clock, by: .milliseconds(1))
        #expect(await platform.loginCalls == 7) // one half-open try, which succeeded
        #expect(session.currentToken() != nil)
        #expect(session.unavailable() == nil)
        let status = session.status()
        #expect(status.state == "valid")
        #expect(status.loginFailures == 6)
        #expect(status.logins == 1)
        #expect(status.lastError == nil)

        // Closed again: the next failure backs off from the start (0.75 s), not for the circuit's 60 s.
        await platform.set(refreshAccepted: false)
        await platform.set(login: .reject(status: 401))
        session.rejected(try #require(session.currentToken()))
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }
        #expect(session.unavailable()?.retryAfter == .milliseconds(750))
        #expect(session.status().state == "backing_off")
        await session.shutdown()
    }

    @Test func unreachablePlatformBacksOffWithAReason() async throws {
        let platform = FakePlatform()
        await platform.set(login: .unreachable)
        let config = assuredSessionConfig(backoff: (.seconds(10), .seconds(20)))
        let session = manualSession(platform, clock: ManualClock(), config: config)
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }
        let status = session.status()
        #expect(status.state == "backing_off")
        #expect(status.lastError == "login could not connect: connection refused")
        #expect(try #require(session.unavailable()).retryAfter == .milliseconds(7500))
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }
        #expect(await platform.loginCalls == 1)
        await session.shutdown()
    }

    @Test func retryAfterOf429IsHonoured() async throws {
        let platform = FakePlatform()
        await platform.set(login: .reject(status: 429, retryAfter: 30))
        let session = manualSession(platform, clock: ManualClock())
        do {
            _ = try await session.validToken()
            Issue.record("logged in")
        } catch {
            #expect(error.retryAfter == .seconds(30))
            #expect(error.retryAfterSeconds == 30)
        }
        await session.shutdown()
    }

    /// Status and logs after logins, refreshes and failures hold no password, key, token or answer body.
    @Test func statusAndLogsHoldNoSecret() async throws {
        let platform = FakePlatform()
        let logs = LogStore()
        let session = manualSession(platform, clock: ManualClock(), logger: logs.logger(), name: "assured_session")
        let first = try await session.validToken()
        session.rejected(first)
        _ = try await session.validToken() // refresh
        await platform.set(refreshAccepted: false)
        await platform.set(login: .reject(status: 401))
        session.rejected(session.currentToken()!)
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }

        let status = session.status()
        #expect(status.logins == 1)
        #expect(status.refreshes == 1)
        #expect(status.refreshFailures == 1)
        #expect(status.loginFailures == 1)
        #expect(status.lastError == "login answered 401")
        #expect(status.lastRefresh != nil)
        let json = try JSONEncoder().encode(status)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains(#""login_failures":1"#))
        #expect(text.contains(#""expires_in_seconds":null"#))

        let minted = await platform.minted
        #expect(minted.count == 4)
        let secrets =
            [sessionMarker, sessionPassword, sessionAPIKey, "correct"] + minted
            + minted.map { String($0.split(separator: ".")[1]) } // any token's payload alone
        for (what, haystack) in [
            ("status", Array(json)), ("logs", Array(logs.text.utf8)),
            ("unavailable", Array("\(try #require(session.unavailable()))".utf8)),
        ] {
            #expect(!haystack.isEmpty)
            for secret in secrets {
                #expect(haystack.firstRange(of: Array(secret.utf8)) == nil, "\(what) holds a secret")
            }
        }
        #expect(logs.text.contains("session login succeeded"))
        #expect(logs.text.contains("session token refreshed"))
        #expect(logs.text.contains("login answered 401"))
        await session.shutdown()
    }

    @Test func statusOfAValidToken() async throws {
        let platform = FakePlatform()
        let clock = ManualClock()
        let session = manualSession(platform, clock: clock)
        #expect(session.status().state == "no_token")
        _ = try await session.validToken()
        var status = session.status()
        #expect(status.state == "valid")
        #expect(status.kind == "jwt_session")
        #expect(status.expiresInSeconds == 3600)
        clock.advance(by: .seconds(600))
        status = session.status()
        #expect(status.expiresInSeconds == 3000)
        #expect(CredentialStatus.staticKey(name: "k").state == "static")
        await session.shutdown()
        await #expect(throws: SessionUnavailable.self) {
            session.rejected(session.currentToken()!)
            return try await session.validToken()
        }
    }
}
