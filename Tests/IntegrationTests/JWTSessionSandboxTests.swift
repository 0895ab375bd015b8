import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Sandbox
import Testing

@testable import CredGate

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A ``JWTSession`` configured from YAML, talking to the sandbox's login and refresh through
/// ``AsyncHTTPSessionTransport`` over a real loopback socket.
@Suite("JWT session against the sandbox")
struct JWTSessionSandboxTests {
    static let apiKey = "jwt-session-sandbox-key-77"
    static let email = "session-user@example.com"
    static let password = "pa\"ss\\word with quotes"

    /// The session as the Assured profile writes it, pointed at `port`, with `backoff` as the YAML writes it.
    static func session(
        port: Int, client: HTTPClient, backoff: String = "{initial: 1s, max: 2s}"
    ) throws -> (JWTSession, AsyncHTTPSessionTransport) {
        let yaml = """
            upstreams:
              assured:
                url: http://127.0.0.1:\(port)
                connect_timeout: 2s
                response_timeout: 5s
            credentials:
              assured_session:
                kind: jwt_session
                upstream: assured
                login:
                  path: /api/v1/users/login/
                  body: '{"email": "${ASSURED_USER}", "password": "${ASSURED_PASS}", "remember": true}'
                  headers: {x-api-key: "${ASSURED_API_KEY}"}
                  access_token: data.jwt.access
                  refresh_token: data.jwt.refresh
                refresh:
                  path: /api/v1/users/token/refresh/
                  body: '{"refresh": "{refresh_token}"}'
                  access_token: access
                  refresh_token: refresh
                  send_access_token: true
                backoff: \(backoff)
            routes:
              - {name: api, path: /api/**, upstream: assured, credentials: [assured_session]}
            """
        // The password is JSON-escaped in the variable, as the configuration reference asks.
        let escaped = password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let config = try ConfigLoader.parse(
            yaml: yaml,
            environment: [
                "ASSURED_USER": email, "ASSURED_PASS": escaped, "ASSURED_API_KEY": apiKey,
            ])
        guard case .jwtSession(let sessionConfig) = config.credentials["assured_session"]?.kind,
            let upstream = config.upstreams["assured"]
        else { throw ConfigError(issues: []) }
        let transport = AsyncHTTPSessionTransport(upstream: upstream, client: client)
        let session = JWTSession(
            name: "assured_session", config: sessionConfig, transport: transport,
            logger: Logger(label: "test.session"))
        return (session, transport)
    }

    /// The real clock and a real socket (the unit tests step the same rules on a manual clock). An 8 s token is
    /// renewed after 4 s, half its life, so the refresh may come 4 s late before the data path sees a gap: every
    /// assertion holds through a stall of 2 s or more on a loaded machine.
    @Test func loginThenRefreshAheadThroughTheSandbox() async throws {
        var options = SandboxOptions(apiKey: Self.apiKey, user: Self.email, password: Self.password)
        options.accessLifetime = .seconds(8)
        let sandbox = try await SandboxServer.start(options)
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: AsyncHTTPSessionTransport.makeClientConfiguration())
        let (session, transport) = try Self.session(port: sandbox.port, client: client)
        do {
            session.start()
            let first = try await session.validToken()
            #expect(await sandbox.counters().logins == 1)

            // The background task refreshes before the first token lapses; the data path never sees a gap. Watched
            // until the renewed token shows (about 4 s), at most until a second after the first would have lapsed.
            let deadline = first.expiresAt + .seconds(1)
            var gaps = 0
            var refreshed: SessionToken?
            while refreshed == nil, ContinuousClock.now < deadline {
                if let token = session.currentToken() {
                    if token.generation > first.generation { refreshed = token }
                } else {
                    gaps += 1
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(gaps == 0)
            #expect(refreshed != nil, "no renewal before the first token lapsed")
            let counters = await sandbox.counters()
            #expect(counters.logins == 1)
            #expect(counters.refreshes >= 1)
            #expect(counters.refreshFailures == 0)
            let current = try #require(session.currentToken())
            #expect(current.generation > first.generation)

            // The platform accepts the refreshed token.
            let verify = try await transport.send(
                method: "POST", path: "/api/v1/users/token/verify/", headers: [("content-type", "application/json")],
                body: #"{"token": "\#(current.value.reveal())"}"#)
            #expect(verify.status == 200)

            // Everything revoked: the refresh fails, and one login replaces it.
            await sandbox.revokeTokens()
            session.rejected(current)
            let renewed = try await session.validToken()
            #expect(renewed.generation > current.generation)
            let after = await sandbox.counters()
            #expect(after.logins == 2)
            #expect(after.refreshFailures == 1)
            let status = session.status()
            #expect(status.logins == 2)
            #expect(status.refreshFailures == 1)
            #expect(status.state == "valid" || status.state == "refreshing")
        } catch {
            Issue.record(error)
        }
        await session.shutdown()
        try await client.shutdown()
        try await sandbox.shutdown()
    }

    @Test func wrongPasswordIsUnavailableThenRecovers() async throws {
        let sandbox = try await SandboxServer.start(
            SandboxOptions(apiKey: Self.apiKey, user: Self.email, password: Self.password))
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: AsyncHTTPSessionTransport.makeClientConfiguration())
        // The first retry waits 2 to 4 s (half of 4 s for sure, the rest jitter): the checks right after the
        // failure hold through a 2 s stall, and the test waits out exactly the delay the session announced.
        let (session, _) = try Self.session(port: sandbox.port, client: client, backoff: "{initial: 4s, max: 4s}")
        do {
            try await sandbox.failLogins(1, status: 401)
            var retryAfter = Duration.zero
            let asked = ContinuousClock.now
            do {
                _ = try await session.validToken()
                Issue.record("logged in through a failing login")
            } catch {
                #expect(error.reason.contains("login answered 401"))
                #expect(error.retryAfter >= .seconds(2) && error.retryAfter <= .seconds(4))
                retryAfter = error.retryAfter
            }
            let failed = ContinuousClock.now
            #expect(session.status().lastError == "login answered 401")
            // The backoff ends `retryAfter` after the failure, which came after `asked`: while that is still ahead,
            // the session must say it is unavailable. (A stall longer than the backoff skips this check; the unit
            // tests step the same rule on a manual clock.)
            let unavailable = session.unavailable()
            if ContinuousClock.now < asked + retryAfter {
                #expect(unavailable != nil)
            }
            // Once the backoff has passed, the next caller logs in.
            try await Task.sleep(until: failed + retryAfter + .milliseconds(100), clock: .continuous)
            #expect(session.unavailable() == nil)
            _ = try await session.validToken()
            #expect(await sandbox.counters().logins == 1)
        } catch {
            Issue.record(error)
        }
        await session.shutdown()
        try await client.shutdown()
        try await sandbox.shutdown()
    }

    // MARK: - The transport's own rules, against a scripted upstream

    /// A minimal session for `upstream`, whose login answers a token at `token`.
    static func scriptedSession(_ upstream: UpstreamConfig, client: HTTPClient) -> JWTSession {
        let login = JWTSessionConfig.Call(
            path: "/login", body: Secret(#"{"user": "u"}"#), accessTokenPath: "token",
            refreshTokenPath: nil)
        var config = JWTSessionConfig(upstream: upstream.name, login: login)
        config.backoffInitial = .seconds(10)
        config.backoffMax = .seconds(10)
        return JWTSession(
            name: "scripted", config: config, transport: AsyncHTTPSessionTransport(upstream: upstream, client: client),
            logger: Logger(label: "test.session"))
    }

    @Test func tlsWithTheUpstreamsCAFile() async throws {
        let fixtures = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let cert = try NIOSSLCertificate.fromPEMFile(fixtures.appendingPathComponent("server.pem").path)
        let key = try NIOSSLPrivateKey(file: fixtures.appendingPathComponent("server.key").path, format: .pem)
        let tls = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: cert.map { .certificate($0) }, privateKey: .privateKey(key)))
        let server = try await TestUpstream.start(tls: tls) { request in
            request.head.uri == "/base/login" ? .respond(.ok, body: #"{"token": "opaque-token"}"#) : .respond(.notFound)
        }
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: AsyncHTTPSessionTransport.makeClientConfiguration())
        var upstream = UpstreamConfig(
            name: "secure",
            url: UpstreamURL(
                scheme: .https, host: "localhost", port: server.port,
                basePath: "/base"))
        upstream.caFile = fixtures.appendingPathComponent("ca.pem").path
        let trusted = Self.scriptedSession(upstream, client: client)
        upstream.caFile = nil // the system trust store does not know the test CA
        let untrusted = Self.scriptedSession(upstream, client: client)
        do {
            let token = try await trusted.validToken()
            #expect(token.value.reveal() == "opaque-token")
            do {
                _ = try await untrusted.validToken()
                Issue.record("a certificate from an unknown CA was accepted")
            } catch {
                #expect(
                    error.reason.contains(
                        "login could not connect: TLS certificate not trusted (see the upstream's ca_file)"))
            }
        } catch {
            Issue.record(error)
        }
        await trusted.shutdown()
        await untrusted.shutdown()
        try await client.shutdown()
        try await server.shutdown()
    }

    @Test func redirectsAreNotFollowed() async throws {
        let server = try await TestUpstream.start { _ in
            .respond(.found, headers: ["location": "/elsewhere"], body: #"{"token": "t"}"#)
        }
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: AsyncHTTPSessionTransport.makeClientConfiguration())
        let upstream = UpstreamConfig(
            name: "plain", url: UpstreamURL(scheme: .http, host: "127.0.0.1", port: server.port))
        let session = Self.scriptedSession(upstream, client: client)
        do {
            _ = try await session.validToken()
            Issue.record("a redirect was taken for a login")
        } catch {
            #expect(error.reason.contains("login answered 302"))
        }
        #expect(server.requests == 1)
        await session.shutdown()
        try await client.shutdown()
        try await server.shutdown()
    }

    @Test func refusedConnectionIsASentence() async throws {
        // A port bound but not listening refuses connections, and stays ours while the test runs (a port closed
        // after use can be taken by another test's server meanwhile).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: AsyncHTTPSessionTransport.makeClientConfiguration())
        let session = Self.scriptedSession(
            UpstreamConfig(name: "gone", url: UpstreamURL(scheme: .http, host: "127.0.0.1", port: port)), client: client
        )
        await #expect(throws: SessionUnavailable.self) { try await session.validToken() }
        #expect(session.status().lastError == "login could not connect: connection refused")
        await session.shutdown()
        try await client.shutdown()
    }
}
