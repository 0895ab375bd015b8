import Foundation
import Logging
import NIOCore
import Testing

@testable import CredGate

/// Every secret in the session tests contains this marker, so one search proves nothing leaked.
let sessionMarker = "SESSIONSECRET"
let sessionPassword = "pw-\(sessionMarker)-\"quoted\"\\"
let sessionAPIKey = "key-\(sessionMarker)-123"

/// A JWT as the platform mints it (HS256-shaped; the signature is not checked by credgate, so fake bytes do).
func makeJWT(claims: [String: Any]) -> String {
    func b64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    let header = try! JSONSerialization.data(withJSONObject: ["alg": "HS256", "typ": "JWT"], options: [.sortedKeys])
    let payload = try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
    return "\(b64url(header)).\(b64url(payload)).\(b64url(Data("signature-\(UUID().uuidString)".utf8)))"
}

/// Scripted stand-in for the platform's login and refresh endpoints: counts calls, mints real-looking JWTs
/// (access and refresh tokens carry the marker in a claim, so a leak of any token is found by the marker search).
actor FakePlatform: SessionTransport {
    enum LoginBehaviour: Sendable {
        case accept
        /// Answer `status` (400/401: wrong password; 5xx; 429) with optional `Retry-After` seconds.
        case reject(status: Int, retryAfter: Int? = nil)
        /// Throw as a refused connection does.
        case unreachable
    }

    struct Recorded: Sendable {
        var path: String
        var headers: [(String, String)]
        var body: String
    }

    var login: LoginBehaviour = .accept
    var refreshAccepted = true
    /// Lifetime written into access tokens (`exp - iat`, whole seconds as simplejwt writes them).
    var accessLifetime = 3600
    /// While set, logins are counted and then wait for ``releaseLogins()``: a flight held open for as long as a
    /// test needs, with no sleeping.
    private var holdingLogins = false
    private var heldLogins: [CheckedContinuation<Void, Never>] = []
    /// Write `iat` into tokens.
    var withIssuedAt = true

    private(set) var loginCalls = 0
    private(set) var refreshCalls = 0
    private(set) var requests: [Recorded] = []
    /// Every token minted, to search outputs for them.
    private(set) var minted: [String] = []

    func set(login: LoginBehaviour) { self.login = login }
    func set(refreshAccepted: Bool) { self.refreshAccepted = refreshAccepted }
    func set(accessLifetime: Int) { self.accessLifetime = accessLifetime }
    func holdLogins() { holdingLogins = true }
    func releaseLogins() {
        holdingLogins = false
        for login in heldLogins { login.resume() }
        heldLogins = []
    }

    private func mint(_ type: String, lifetime: Int) -> String {
        let now = Int(Date().timeIntervalSince1970)
        var claims: [String: Any] = [
            "token_type": type, "exp": now + lifetime, "jti": UUID().uuidString, "user_id": 7,
            "note": sessionMarker,
        ]
        if withIssuedAt { claims["iat"] = now }
        let token = makeJWT(claims: claims)
        minted.append(token)
        return token
    }

    private func json(_ object: Any) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object))
    }

    func send(
        method: String, path: String, headers: [(String, String)], body: String
    ) async throws -> (status: Int, headers: [(String, String)], body: [UInt8]) {
        requests.append(Recorded(path: path, headers: headers, body: body))
        switch path {
        case "/api/v1/users/login/":
            loginCalls += 1
            if holdingLogins { await withCheckedContinuation { heldLogins.append($0) } }
            switch login {
            case .accept:
                let access = mint("access", lifetime: accessLifetime)
                let refresh = mint("refresh", lifetime: 86_400)
                return (
                    200, [("content-type", "application/json")],
                    json([
                        "data": ["id": 7, "email": "a@example.com", "jwt": ["access": access, "refresh": refresh]],
                        "msg": "ok",
                    ])
                )
            case .reject(let status, let retryAfter):
                let headers = retryAfter.map { [("Retry-After", "\($0)")] } ?? []
                return (
                    status, headers,
                    json(["detail": "No active account found with the given credentials \(sessionMarker)"])
                )
            case .unreachable:
                throw FakeConnectionError()
            }
        case "/api/v1/users/token/refresh/":
            refreshCalls += 1
            guard refreshAccepted else {
                return (401, [], json(["detail": "Token is invalid or expired", "code": "token_not_valid"]))
            }
            return (
                200, [],
                json(["access": mint("access", lifetime: accessLifetime), "refresh": mint("refresh", lifetime: 86_400)])
            )
        default:
            return (404, [], [])
        }
    }
}

struct FakeConnectionError: Error, CustomStringConvertible {
    var description: String { "connection refused" }
}

/// The Assured login as the configuration describes it.
func assuredSessionConfig(
    refresh: Bool = true, backoff: (TimeAmount, TimeAmount) = (.milliseconds(50), .milliseconds(100)),
    circuit: (Int, TimeAmount) = (3, .seconds(60))
) -> JWTSessionConfig {
    var login = JWTSessionConfig.Call(
        path: "/api/v1/users/login/",
        body: Secret(
            #"{"email": "a@example.com", "password": "\#(SessionCall.jsonEscaped(sessionPassword))", "remember": true}"#
        ),
        accessTokenPath: "data.jwt.access", refreshTokenPath: "data.jwt.refresh")
    login.headers = [(name: "x-api-key", value: Secret(sessionAPIKey))]
    var config = JWTSessionConfig(upstream: "assured", login: login)
    if refresh {
        var call = JWTSessionConfig.Call(
            path: "/api/v1/users/token/refresh/", body: Secret(#"{"refresh": "{refresh_token}"}"#),
            accessTokenPath: "access", refreshTokenPath: "refresh")
        call.sendAccessToken = true
        config.refresh = call
    }
    config.backoffInitial = backoff.0
    config.backoffMax = backoff.1
    config.circuitFailures = circuit.0
    config.circuitOpenFor = circuit.1
    return config
}

/// Log lines kept in memory, to search them for secrets.
final class LogStore: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var text: String { lock.withLock { lines.joined(separator: "\n") } }

    func logger() -> Logger {
        var logger = Logger(label: "test.session") { _ in StoreHandler(store: self) }
        logger.logLevel = .trace
        return logger
    }

    struct StoreHandler: LogHandler {
        let store: LogStore
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            store.append("\(event.level) \(event.message) \(all)")
        }
    }
}

/// Polls `condition` until it holds, for work running in other tasks (a login flight, the background task).
///
/// The bound is on the real clock but is only a bound for a test that fails: on a manual clock the condition holds
/// within a few scheduler turns or never. It is long because the whole suite runs at once on a cooperative pool as
/// wide as the machine has cores (two here), where a test's tasks may wait seconds for a thread.
func eventually(
    timeout: Duration = .seconds(30), _ condition: @Sendable () async -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    var round = 0
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        round += 1
        if round < 100 { await Task.yield() } else { try? await Task.sleep(for: .milliseconds(1)) }
    }
    return await condition()
}

// MARK: - Sessions on a manual clock

/// A session on `clock`, its backoff's jitter from `random` (0: half the delay, 1: all of it; 0.5 unless told).
func manualSession(
    _ platform: FakePlatform, clock: ManualClock, config: JWTSessionConfig = assuredSessionConfig(),
    random: @escaping @Sendable () -> Double = { 0.5 }, logger: Logger = Logger(label: "t"), name: String = "s"
) -> JWTSession {
    JWTSession(name: name, config: config, transport: platform, logger: logger, random: random, clock: clock)
}

/// The session's background task did not go back to sleep on the manual clock: the test stops there.
struct NotParked: Error {}

/// Waits until the session's background task is asleep on `clock` (its only sleeper), that is until what the
/// last ``ManualClock/advance(by:)`` set off (a login, a refresh) is over. Throws if it never is, so that a broken
/// session fails its test once instead of at every step.
func parked(_ clock: ManualClock, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    guard await eventually({ clock.sleeperCount == 1 }) else {
        Issue.record("the session's background task did not go back to sleep", sourceLocation: sourceLocation)
        throw NotParked()
    }
}

/// Moves `clock` forward by `duration` for a started session, stopping at every instant its background task sleeps
/// until and letting the task run there, as the real clock would.
func step(_ clock: ManualClock, by duration: Duration, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let target = clock.now + duration
    try await parked(clock, sourceLocation: sourceLocation)
    while let next = clock.nextDeadline, next <= target {
        clock.advance(to: next)
        try await parked(clock, sourceLocation: sourceLocation)
    }
    clock.advance(to: target)
    try await parked(clock, sourceLocation: sourceLocation)
}
