import Foundation
import NIOCore
import Sandbox
import Testing

@testable import CredGate

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `/credgate/readiness` through real sockets: 503 while a session holds no valid token (with the reason), 200
/// once it does; `required_for_ready: false` opts a session out; `startup` and `liveness` never depend on the
/// platform.
@Suite struct ReadinessProbeTests {
    static let key = "sk-test-READYKEY-41aa"
    static let user = "provider-admin@example.com"
    static let password = "pw-READYPASS-6e0f-never-show"

    struct Fixture {
        let gateway: Gateway
        let sandbox: SandboxServer
        var base: String { "http://127.0.0.1:\(gateway.port)" }

        /// Every secret the test must never see in an answer: the key, the password, the issued tokens.
        func secrets() async -> [String] {
            [ReadinessProbeTests.key, ReadinessProbeTests.password] + (await sandbox.issuedTokens())
        }
    }

    /// The shipped profile against a fresh sandbox. `failLogins` logins fail with 401 before any succeeds (set
    /// before the gateway starts, so its first login already meets them); `password` is what credgate logs in
    /// with (the sandbox accepts only ``password``).
    static func withGateway(
        password: String = password, failLogins: Int = 0,
        configure: (inout GatewayConfig) -> Void = { _ in },
        session: (inout JWTSessionConfig) -> Void = { _ in },
        _ body: (Fixture) async throws -> Void
    ) async throws {
        let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: key, user: user, password: Self.password))
        let gateway: Gateway
        do {
            if failLogins > 0 { try await sandbox.failLogins(failLogins, status: 401) }
            let profile = CLITests.packageRoot.appendingPathComponent("Config/credgate.yaml").path
            var config = try ConfigLoader.load(
                path: profile,
                environment: [
                    "ASSURED_BASE_URL": sandbox.baseURL, "ASSURED_API_KEY": key, "ASSURED_USER": user,
                    "ASSURED_PASS": password,
                ])
            config.listen.port = 0
            config.listen.threads = 2
            configure(&config)
            SessionTests.withSession(&config, session)
            gateway = try await Gateway.start(config: config, logger: testLogger)
        } catch {
            try? await sandbox.shutdown()
            throw error
        }
        do {
            try await body(Fixture(gateway: gateway, sandbox: sandbox))
        } catch {
            try? await gateway.shutdown()
            try? await sandbox.shutdown()
            throw error
        }
        try await gateway.shutdown()
        try await sandbox.shutdown()
    }

    /// Polls `url` every 50 ms for up to `seconds` until `done` holds; returns the last answer.
    static func poll(_ url: String, seconds: Double = 8, until done: (SimpleResponse) throws -> Bool) async throws
        -> SimpleResponse
    {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        var last = try await send(.GET, url)
        while try !done(last), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            last = try await send(.GET, url)
        }
        return last
    }

    /// The one credential a 503 readiness answer names.
    static func blocker(_ response: SimpleResponse) throws -> [String: Any] {
        let notReady = try #require(try response.json()["not_ready"] as? [[String: Any]], "\(response.text)")
        try #require(notReady.count == 1, "\(response.text)")
        return notReady[0]
    }

    static func expectProbesUp(_ f: Fixture) async throws {
        for path in ["/credgate/startup", "/credgate/liveness", "/credgate/healthz"] {
            let r = try await send(.GET, f.base + path)
            #expect(r.status == .ok, "\(path): \(r.text)")
        }
    }

    @Test func notReadyUntilTheSessionLogsInThenReady() async throws {
        // Three failed logins with short backoffs: at least ~0.5 s without a token, then a login succeeds.
        try await Self.withGateway(
            failLogins: 3,
            session: { s in
                s.backoffInitial = .milliseconds(200)
                s.backoffMax = .milliseconds(400)
            }
        ) { f in
            let first = try await send(.GET, f.base + "/credgate/readiness")
            #expect(first.status == .serviceUnavailable, "\(first.text)")
            #expect(first.headers.first(name: "content-type") == "application/json")
            #expect(first.headers.first(name: "cache-control") == "no-store")

            // Once a login has failed, the answer says which credential, its state and the last error.
            let failing = try await Self.poll(f.base + "/credgate/readiness") { r in
                guard r.status == .serviceUnavailable else { return false }
                return (try Self.blocker(r)["last_error"] as? String) != nil
            }
            #expect(failing.status == .serviceUnavailable, "\(failing.text)")
            let json = try failing.json()
            #expect(json["status"] as? String == "not_ready")
            #expect(json["draining"] as? Bool == false)
            let blocker = try Self.blocker(failing)
            #expect(blocker["credential"] as? String == "assured_session")
            #expect(
                ["logging_in", "backing_off", "no_token"].contains(blocker["state"] as? String ?? ""), "\(failing.text)"
            )
            #expect((blocker["last_error"] as? String)?.contains("401") == true, "\(failing.text)")
            #expect((blocker["reason"] as? String)?.contains("assured_session") == true)
            #expect((json["detail"] as? String)?.contains("assured_session") == true)
            try await Self.expectProbesUp(f)

            let ready = try await Self.poll(f.base + "/credgate/readiness") { $0.status == .ok }
            #expect(ready.status == .ok, "\(ready.text)")
            #expect(ready.text == #"{"status":"ok"}"#)
            #expect(await f.sandbox.counters().logins >= 1)
            for secret in await f.secrets() {
                #expect(!first.text.contains(secret) && !failing.text.contains(secret))
            }
        }
    }

    @Test func aWrongPasswordKeepsItNotReadyButLivenessUp() async throws {
        try await Self.withGateway(password: "pw-WRONG-readiness-4b1c") { f in
            let r = try await Self.poll(f.base + "/credgate/readiness") { r in
                (try Self.blocker(r)["last_error"] as? String) != nil
            }
            #expect(r.status == .serviceUnavailable)
            let blocker = try Self.blocker(r)
            #expect(
                ["backing_off", "circuit_open", "logging_in", "no_token"].contains(blocker["state"] as? String ?? ""),
                "\(r.text)")
            #expect(!r.text.contains("pw-WRONG") && !r.text.contains(Self.password) && !r.text.contains(Self.key))
            try await Self.expectProbesUp(f)
            // Routes with only the API key keep working: not ready is advice to the load balancer, not a refusal.
            #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)

            // `/credgate/status` carries the same verdict.
            let status = try await send(.GET, f.base + "/credgate/status").json()
            let readiness = try #require(status["readiness"] as? [String: Any])
            #expect(readiness["status"] as? String == "not_ready")
            #expect(
                ((readiness["not_ready"] as? [[String: Any]])?.first?["credential"]) as? String == "assured_session")
        }
    }

    @Test func aSessionWhoseUpstreamRefusesIsNotReady() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        try await Self.withGateway(
            configure: { config in
                // Short timeouts: the session's HTTP client retries a refused connection until they pass.
                config.upstreams["nowhere"] = TestConfig.upstream("nowhere", url: "http://127.0.0.1:\(refusing.port)") {
                    $0.connectTimeout = .milliseconds(300)
                    $0.responseTimeout = .milliseconds(300)
                }
            },
            session: { s in
                s.upstream = "nowhere"
            }
        ) { f in
            let r = try await Self.poll(f.base + "/credgate/readiness") { r in
                (try Self.blocker(r)["last_error"] as? String) != nil
            }
            #expect(r.status == .serviceUnavailable, "\(r.text)")
            let status = try await send(.GET, f.base + "/credgate/status").text
            let lastError = try #require(try Self.blocker(r)["last_error"] as? String, "\(r.text) \(status)")
            #expect(!lastError.isEmpty)
            try await Self.expectProbesUp(f)
        }
    }

    @Test func requiredForReadyFalseMakesItReadyRegardless() async throws {
        try await Self.withGateway(
            password: "pw-WRONG-optional-77d0",
            session: { s in
                s.requiredForReady = false
            }
        ) { f in
            // Wait for the failed login, so that "ready" is not merely "before the first attempt".
            let status = try await Self.poll(f.base + "/credgate/status") { r in
                let credentials = try r.json()["credentials"] as? [[String: Any]] ?? []
                return credentials.contains { $0["name"] as? String == "assured_session" && $0["last_error"] is String }
            }
            let session = try #require(
                (try status.json()["credentials"] as? [[String: Any]])?.first {
                    $0["name"] as? String == "assured_session"
                })
            #expect(session["state"] as? String != "valid")
            let r = try await send(.GET, f.base + "/credgate/readiness")
            #expect(r.status == .ok, "\(r.text)")
            #expect(r.text == #"{"status":"ok"}"#)
            let readiness = try #require(try status.json()["readiness"] as? [String: Any])
            #expect(readiness["status"] as? String == "ok")
            #expect(readiness["not_required"] as? [String] == ["assured_session"])
        }
    }
}

/// A loopback port that refuses connections: bound but not listening, and held (so no parallel test's server can
/// take it) until ``close()``.
final class RefusingPort: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLITests.CLIError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(fd)
            throw CLITests.CLIError("bind() failed")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(fd) }
}
