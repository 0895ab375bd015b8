import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

@testable import CredGate

/// Session JWTs through real sockets: the shipped Assured profile, the gateway and the sandbox platform.
@Suite struct SessionTests {
    static let key = "sk-test-SESSIONKEY-7c1d"
    static let user = "provider-admin@example.com"
    static let password = "pw-SESSIONPASS-93ab-never-log"

    /// A gateway running the shipped `Config/credgate.yaml` against a fresh sandbox.
    struct Fixture {
        let gateway: Gateway
        let sandbox: SandboxServer
        let logs: LogCapture
        var base: String { "http://127.0.0.1:\(gateway.port)" }

        func providerProfileID() async throws -> String {
            let list = try await send(.GET, base + "/api/v1/users/providers-list/?limit=1").json()
            return try #require(((list["results"] as? [[String: Any]])?.first?["profile_id"]) as? String)
        }
    }

    /// A gateway on the shipped profile against a fresh sandbox, its log (at `logLevel`) and access log captured.
    /// `password` is what credgate is configured with (the sandbox always takes the account's own); `account`
    /// replaces the default key, user and password on both sides, for suites that search logs for their own.
    static func withGateway(
        lifetime: Duration = .seconds(600),
        password: String = password,
        account: (key: String, user: String, password: String)? = nil,
        logLevel: Logger.Level = .trace,
        configure: (inout GatewayConfig) -> Void = { _ in },
        accessLogSink: (@Sendable (ByteBuffer) -> Void)? = nil,
        _ body: (Fixture) async throws -> Void
    ) async throws {
        let (key, user, sandboxPassword) = account ?? (Self.key, Self.user, Self.password)
        var options = SandboxOptions(apiKey: key, user: user, password: sandboxPassword)
        options.accessLifetime = lifetime
        let sandbox = try await SandboxServer.start(options)
        let profile = CLITests.packageRoot.appendingPathComponent("Config/credgate.yaml").path
        var config: GatewayConfig
        let logs = LogCapture()
        let gateway: Gateway
        do {
            config = try ConfigLoader.load(
                path: profile,
                environment: [
                    "ASSURED_BASE_URL": sandbox.baseURL, "ASSURED_API_KEY": key, "ASSURED_USER": user,
                    "ASSURED_PASS": account?.password ?? password,
                ])
            config.listen.port = 0
            config.listen.threads = 2
            configure(&config)
            var logger = logs.logger()
            logger.logLevel = logLevel
            gateway = try await Gateway.start(
                config: config, logger: logger, accessLogSink: accessLogSink ?? logs.accessSink)
        } catch {
            try? await sandbox.shutdown()
            throw error
        }
        let fixture = Fixture(gateway: gateway, sandbox: sandbox, logs: logs)
        do {
            try await body(fixture)
        } catch {
            try? await gateway.shutdown()
            try? await sandbox.shutdown()
            throw error
        }
        try await gateway.shutdown()
        try await sandbox.shutdown()
    }

    static func withSession(_ config: inout GatewayConfig, _ change: (inout JWTSessionConfig) -> Void) {
        guard case .jwtSession(var session) = config.credentials["assured_session"]!.kind else { return }
        change(&session)
        config.credentials["assured_session"]!.kind = .jwtSession(session)
    }

    @Test func jwtRoutesGetBothCredentialsAndSSNRoutesTheJWTOnly() async throws {
        try await Self.withGateway { f in
            let presign = try await send(
                .POST, f.base + "/api/v1/files/presign-s3-url/presign_s3_url/",
                headers: ["content-type": "application/json", "authorization": "Bearer client-junk"],
                body: #"{"s3_url": "s3://bucket/key.pdf", "presigned_url": ""}"#)
            #expect(presign.status.code < 300, "\(presign.text)")
            let p = try #require(await f.sandbox.recorder.last())
            #expect(p.headerValues("x-api-key") == [Self.key])
            let bearer = try #require(p.header("authorization"))
            #expect(bearer.hasPrefix("Bearer ey") && bearer != "Bearer client-junk")

            let docs = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=5")
            #expect(docs.status == .ok)
            let d = try #require(await f.sandbox.recorder.last())
            #expect(d.headerValues("x-api-key") == [Self.key])
            #expect(d.header("authorization") == bearer)

            var form = MultipartBody()
            form.file("license.pdf", Samples.pdf(1000))
            form.close()
            let upload = try await sendBytes(
                .POST, f.base + "/api/v1/files/handle/", headers: ["content-type": form.contentType], body: form.bytes)
            #expect(upload.status.code < 300, "\(upload.text)")
            #expect(try #require(await f.sandbox.recorder.last()).header("authorization") == bearer)

            let profileID = try await f.providerProfileID()
            let ssn = try await send(
                .PATCH, f.base + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(profileID)/",
                headers: ["content-type": "application/json", "x-api-key": "client-key"],
                body: #"{"ssn": "123-45-6789"}"#)
            #expect(ssn.status == .ok, "\(ssn.text)")
            let s = try #require(await f.sandbox.recorder.last())
            #expect(s.headerValues("x-api-key").isEmpty, "the platform rejects the key on SSN routes")
            #expect(s.header("authorization") == bearer)
        }
    }

    @Test func ssnRoundTripInvalidSSNAndCiphertextPassThrough() async throws {
        try await Self.withGateway { f in
            let profileID = try await f.providerProfileID()
            let path = "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(profileID)/"
            for (input, stored) in [
                ("123-45-6789", "123456789"), ("987 65 4321", "987654321"), ("111223333", "111223333"),
            ] {
                let r = try await send(
                    .PATCH, f.base + path, headers: ["content-type": "application/json"], body: #"{"ssn": "\#(input)"}"#
                )
                #expect(r.status == .ok, "\(r.text)")
                let back = try await send(.GET, f.base + "/api/v1/users/retrieve-update-provider-ssn/\(profileID)/")
                    .json()
                #expect(back["ssn"] as? String == stored)
            }
            // What went over the wire was ciphertext, never the digits.
            let wire = try #require(await f.sandbox.recorder.all().last { $0.method == "PATCH" })
            #expect(wire.bodyBytes > 30)

            let before = await f.sandbox.recorder.count(path: path)
            for bad in [
                #"{"ssn": "12-34"}"#, #"{"ssn": "1234567890"}"#, #"{"ssn": 123456789}"#, #"{"other": 1}"#, "not json",
                #"{"ssn": "abc-de-fghi"}"#,
            ] {
                let r = try await send(.PATCH, f.base + path, headers: ["content-type": "application/json"], body: bad)
                #expect(r.status.code == 422, "\(bad): \(r.text)")
                #expect(r.headers.first(name: "content-type") == "application/problem+json")
                #expect(r.headers.first(name: "x-credgate-error") == "invalid-ssn")
            }
            #expect(await f.sandbox.recorder.count(path: path) == before, "nothing reached the platform")

            // Ciphertext that is not a placeholder's passes through untouched (here the platform cannot read it).
            let foreign = try SSNCipher.encrypt("123456789", token: "some-other-token")
            let r = try await send(
                .PATCH, f.base + path, headers: ["content-type": "application/json"], body: #"{"ssn": "\#(foreign)"}"#)
            #expect(r.status == .badRequest)
            #expect(r.headers["x-credgate-error"].isEmpty, "the platform's own answer")
        }
    }

    /// Through the gateway, whose sessions run on the real clock. A 6 s token is renewed 3 s before its expiry; the
    /// platform may count it out up to 1 s sooner (`exp` is whole seconds), so a refresh may come 2 s late before
    /// the platform would refuse a token: every assertion holds through a 2 s stall. 6.5 s of requests outlast the
    /// first token, so requests after its end carry a renewed one.
    @Test func continuousRequestsAcrossSeveralShortLifetimesNeverFail() async throws {
        try await Self.withGateway(lifetime: .seconds(6)) { f in
            let profileID = try await f.providerProfileID()
            // the session's first login is done
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            let start = await f.sandbox.counters()
            #expect(start.logins == 1)
            let end = ContinuousClock.now + .milliseconds(6_500)
            let failures = try await withThrowingTaskGroup(of: [String].self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var failures: [String] = []
                        var i = 0
                        while ContinuousClock.now < end {
                            let r: SimpleResponse
                            if worker == 0 {
                                r = try await send(
                                    .PATCH,
                                    f.base + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(profileID)/",
                                    headers: ["content-type": "application/json"],
                                    body: #"{"ssn": "123-45-\#(String(format: "%04d", i % 10000))"}"#)
                            } else {
                                r = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
                            }
                            if r.status.code >= 300 { failures.append("\(r.status.code) \(r.text.prefix(120))") }
                            i += 1
                            try await Task.sleep(for: .milliseconds(25))
                        }
                        return failures
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            let counters = await f.sandbox.counters()
            #expect(counters.logins - start.logins == 0, "the first login happened at start-up; refreshes did the rest")
            #expect(
                counters.refreshes - start.refreshes >= 1, "a 6 s token is renewed 3 s early: about 2 renewals in 6.5 s"
            )
            #expect(counters.jwtRejections == start.jwtRejections)
        }
    }

    @Test func hundredConcurrentFirstRequestsCauseOneLogin() async throws {
        try await Self.withGateway { f in
            let statuses = try await withThrowingTaskGroup(of: UInt.self) { group in
                for _ in 0..<100 {
                    group.addTask { try await send(.GET, f.base + "/api/v1/users/provider-documents/").status.code }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0 == 200 })
            #expect(await f.sandbox.counters().logins == 1)
        }
    }

    @Test func revokedTokensMidFlightCauseOneReloginAndEveryRequestSucceeds() async throws {
        try await Self.withGateway { f in
            let profileID = try await f.providerProfileID()
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
            let before = await f.sandbox.counters()
            _ = await f.sandbox.revokeTokens()
            let results = try await withThrowingTaskGroup(of: (UInt, String).self) { group in
                for i in 0..<30 {
                    group.addTask {
                        let r =
                            i % 3 == 0
                            ? try await send(
                                .PATCH,
                                f.base + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(profileID)/",
                                headers: ["content-type": "application/json"], body: #"{"ssn": "555-44-3333"}"#)
                            : try await send(
                                .POST, f.base + "/api/v1/users/provider-documents/",
                                headers: ["content-type": "application/json"],
                                body:
                                    #"{"provider": "p-\#(i)", "document_name": "License", "document_type": "license", "document_url": "s3://b/k\#(i).pdf"}"#
                            )
                        return (r.status.code, r.text)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.0 < 300 }, "\(results.filter { $0.0 >= 300 }.prefix(3))")
            let after = await f.sandbox.counters()
            #expect(after.logins + after.refreshes - before.logins - before.refreshes == 1, "one shared re-login")
            #expect(after.jwtRejections > before.jwtRejections)
            let back = try await send(.GET, f.base + "/api/v1/users/retrieve-update-provider-ssn/\(profileID)/").json()
            #expect(back["ssn"] as? String == "555443333", "re-encrypted with the new token on replay")
        }
    }

    @Test func aBodyOverTheReplayCapIsNotReplayed() async throws {
        try await Self.withGateway(configure: { config in
            for i in config.routes.indices where config.routes[i].name == "assured-provider-documents" {
                config.routes[i].replayMaxBodyBytes = 1024
            }
        }) { f in
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
            _ = await f.sandbox.revokeTokens()
            let big =
                #"{"provider": "p", "document_name": "\#(String(repeating: "x", count: 2000))", "document_type": "license", "document_url": "s3://b/k.pdf"}"#
            let r = try await send(
                .POST, f.base + "/api/v1/users/provider-documents/", headers: ["content-type": "application/json"],
                body: big)
            #expect(r.status == .unauthorized)
            #expect(r.headers.first(name: "x-credgate-error") == "session-rejected-not-replayed")
            #expect(r.text.contains("replay cap of 1024 bytes"))
            // The session was renewed meanwhile: sending it again works.
            let again = try await send(
                .POST, f.base + "/api/v1/users/provider-documents/", headers: ["content-type": "application/json"],
                body: big)
            #expect(again.status == .created, "\(again.text)")
        }
    }

    @Test func failingLoginsGive503WithRetryAfterThenRecover() async throws {
        try await Self.withGateway(configure: { config in
            Self.withSession(&config) {
                $0.backoffInitial = .milliseconds(200)
                $0.backoffMax = .seconds(1)
                $0.circuitFailures = 10
            }
        }) { f in
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
            try await f.sandbox.failLogins(3, status: 500)
            _ = await f.sandbox.revokeTokens()
            var sawUnavailable = false
            var recovered = false
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                let r = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
                if r.status == .serviceUnavailable {
                    sawUnavailable = true
                    #expect(r.headers.first(name: "content-type") == "application/problem+json")
                    #expect(Int(r.headers.first(name: "retry-after") ?? "") ?? 0 >= 1)
                    // API-key routes keep working meanwhile.
                    #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)
                } else if r.status == .ok {
                    if sawUnavailable {
                        recovered = true
                        break
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(sawUnavailable)
            #expect(recovered)
        }
    }

    @Test func aWrongPasswordCannotFloodTheLoginEndpoint() async throws {
        try await Self.withGateway(
            password: "wrong-password-ZZZ",
            configure: { config in
                Self.withSession(&config) {
                    $0.backoffInitial = .milliseconds(100)
                    $0.backoffMax = .milliseconds(400)
                    $0.circuitFailures = 3
                    $0.circuitOpenFor = .seconds(60)
                }
            }
        ) { f in
            var codes: [UInt] = []
            for _ in 0..<40 {
                let r = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
                codes.append(r.status.code)
                if r.status == .serviceUnavailable { #expect(r.headers.first(name: "retry-after") != nil) }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(codes.allSatisfy { $0 == 503 })
            let counters = await f.sandbox.counters()
            #expect(counters.loginFailures <= 3, "the circuit opened after 3 failed logins")
            #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)
            let status = try await send(.GET, f.base + "/credgate/status").text
            #expect(status.contains("circuit_open"))
            #expect(!status.contains("wrong-password"))
        }
    }

    @Test func placeholderLoginLetsAnUnmodifiedSDKWork() async throws {
        try await Self.withGateway { f in
            // The session's own first login runs in the background from start-up: wait for it (a JWT route waits
            // for the token), so that it is not mistaken for the SDK's login reaching the platform.
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            let logins = await f.sandbox.counters().logins
            #expect(logins == 1)
            let login = try await send(
                .POST, f.base + "/api/v1/users/login/",
                headers: ["content-type": "application/json", "x-api-key": "placeholder"],
                body: #"{"email": "anyone@example.com", "password": "placeholder", "remember": true}"#)
            #expect(login.status == .ok)
            let placeholder = try #require(
                (((try login.json()["data"] as? [String: Any])?["jwt"]) as? [String: Any])?["access"] as? String)
            #expect(await f.sandbox.counters().logins == logins, "answered by credgate, not the platform")

            // The SDK encrypts with the placeholder and sends it as its bearer token.
            let profileID = try await f.providerProfileID()
            let ciphertext = try SSNCipher.encrypt("222334444", token: placeholder)
            let r = try await send(
                .PATCH, f.base + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(profileID)/",
                headers: ["content-type": "application/json", "authorization": "Bearer \(placeholder)"],
                body: #"{"ssn": "\#(ciphertext)"}"#)
            #expect(r.status == .ok, "\(r.text)")
            let wire = try #require(await f.sandbox.recorder.last())
            #expect(wire.header("authorization") != "Bearer \(placeholder)", "the placeholder never leaves")
            let back = try await send(
                .GET, f.base + "/api/v1/users/retrieve-update-provider-ssn/\(profileID)/",
                headers: ["authorization": "Bearer \(placeholder)"]
            ).json()
            #expect(back["ssn"] as? String == "222334444")
        }
    }

    @Test func statusAndLogsHoldNoSecret() async throws {
        try await Self.withGateway { f in
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
            _ = await f.sandbox.revokeTokens()
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
            let status = try await send(.GET, f.base + "/credgate/status")
            #expect(status.status == .ok)
            let json = try status.json()
            let credentials = try #require(json["credentials"] as? [[String: Any]])
            let session = try #require(credentials.first { $0["name"] as? String == "assured_session" })
            #expect(session["kind"] as? String == "jwt_session")
            #expect(session["state"] as? String == "valid")
            #expect((session["expires_in_seconds"] as? Int ?? 0) > 500)
            #expect((session["logins"] as? Int ?? 0) + (session["refreshes"] as? Int ?? 0) >= 2)
            // Every token the platform ever saw, plus the password and the key.
            let tokens = await f.sandbox.recorder.all().compactMap { $0.header("authorization") }.map {
                String($0.dropFirst("Bearer ".count))
            }
            #expect(!tokens.isEmpty)
            for secret in tokens + [Self.password, Self.key] {
                #expect(!status.text.contains(secret))
                #expect(!f.logs.text.contains(secret))
            }
        }
    }
}
