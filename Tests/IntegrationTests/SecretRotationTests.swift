import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// Secret files (`*_FILE`) watched by the real `credgate` binary (issue 12 item 4): a Kubernetes-style rotation of
/// a mounted Secret (a new timestamped directory, the `..data` symlink renamed onto it) is used without a restart.
/// A changed password makes its session log in again with the new password; a changed API key leaves the session
/// (and its token) alone. No secret and no token ever shows in the gateway's output.
@Suite(.serialized) struct SecretRotationTests {
    /// A Secret mounted the way the kubelet mounts it: `DIR/..data -> ..<version>`, and `DIR/<key> -> ..data/<key>`.
    final class MountedSecret: @unchecked Sendable {
        let directory: URL
        private var version = 0

        init(_ values: [String: String]) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "credgate-secret-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try write(values)
            for key in values.keys {
                try FileManager.default.createSymbolicLink(
                    atPath: directory.appendingPathComponent(key).path,
                    withDestinationPath: "..data/\(key)")
            }
        }

        func path(_ key: String) -> String { directory.appendingPathComponent(key).path }

        /// Writes every value into a new version directory and swaps `..data` onto it in one rename, as the
        /// kubelet's atomic writer does; the old version is then removed.
        func write(_ values: [String: String]) throws {
            version += 1
            let name = "..2026_12_02_v\(version)"
            let versioned = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: versioned, withIntermediateDirectories: true)
            for (key, value) in values {
                try Data((value + "\n").utf8).write(to: versioned.appendingPathComponent(key))
            }
            let temporary = directory.appendingPathComponent("..data_tmp").path
            try? FileManager.default.removeItem(atPath: temporary)
            try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: name)
            #expect(rename(temporary, directory.appendingPathComponent("..data").path) == 0)
            if version > 1 {
                try? FileManager.default.removeItem(
                    at: directory.appendingPathComponent("..2026_12_02_v\(version - 1)"))
            }
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    /// A platform with a password login (`POST /login`, JSON body) that hands out opaque tokens, and
    /// `GET /whoami`, which answers the credentials it was sent (this is a test double: echoing them is its job).
    final class LoginPlatform: Sendable {
        struct State {
            var password: String
            /// Successful logins, by the password used.
            var logins: [String: Int] = [:]
            var refused = 0
            var issued = 0
        }

        let channel: any Channel
        let state: NIOLockedValueBox<State>
        var port: Int { channel.localAddress!.port! }

        private init(channel: any Channel, state: NIOLockedValueBox<State>) {
            self.channel = channel
            self.state = state
        }

        static func start(password: String) async throws -> LoginPlatform {
            let state = NIOLockedValueBox(State(password: password))
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(Handler(state: state))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            return LoginPlatform(channel: channel, state: state)
        }

        /// The platform's password changes (tokens already issued stay good, as on a real platform).
        func changePassword(to password: String) { state.withLockedValue { $0.password = password } }
        var logins: [String: Int] { state.withLockedValue { $0.logins } }
        var refused: Int { state.withLockedValue { $0.refused } }

        func shutdown() async { try? await channel.close() }

        final class Handler: ChannelInboundHandler {
            typealias InboundIn = HTTPServerRequestPart
            typealias OutboundOut = HTTPServerResponsePart
            let state: NIOLockedValueBox<State>
            var head: HTTPRequestHead?
            var body = ByteBuffer()

            init(state: NIOLockedValueBox<State>) { self.state = state }

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                switch unwrapInboundIn(data) {
                case .head(let h):
                    head = h
                    body.clear()
                case .body(var chunk):
                    body.writeBuffer(&chunk)
                case .end:
                    guard let head else { return }
                    let (status, answer) = respond(head)
                    var headers: HTTPHeaders = [
                        "content-type": "application/json", "content-length": String(answer.utf8.count),
                    ]
                    if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
                    context.write(
                        wrapOutboundOut(
                            .head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                        promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
            }

            private func respond(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String) {
                switch (head.method, head.uri) {
                case (.POST, "/login"):
                    let sent =
                        (try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any])?[
                            "password"] as? String
                    return state.withLockedValue { s in
                        guard let sent, sent == s.password else {
                            s.refused += 1
                            return (.unauthorized, #"{"detail": "bad credentials"}"#)
                        }
                        s.logins[sent, default: 0] += 1
                        s.issued += 1
                        return (.ok, #"{"access": "SESSIONTOKEN-\#(s.issued)-b7c1"}"#)
                    }
                case (.GET, "/whoami"):
                    let answer: [String: String] = [
                        "authorization": head.headers.first(name: "authorization") ?? "",
                        "key": head.headers.first(name: "x-api-key") ?? "",
                    ]
                    let data = (try? JSONSerialization.data(withJSONObject: answer)) ?? Data("{}".utf8)
                    return (.ok, String(decoding: data, as: UTF8.self))
                default:
                    return (.notFound, #"{"detail": "not found"}"#)
                }
            }
        }
    }

    /// The gateway as a process, with a configuration whose key and password are read from `secret`'s files.
    static func startGateway(platform: LoginPlatform, secret: MountedSecret) async throws -> (
        ChildProcess, SpawnedGateway.LockedText, String, URL
    ) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "credgate-rotation-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = """
            listen: {host: 127.0.0.1, port: 0}
            upstreams:
              platform: {url: "http://127.0.0.1:\(platform.port)"}
            credentials:
              platform_key: {kind: api_key, header: x-api-key, value: "${PLATFORM_KEY}"}
              platform_session:
                kind: jwt_session
                upstream: platform
                login:
                  path: /login
                  body: '{"email": "ops@example.com", "password": "${PLATFORM_PASSWORD}"}'
                  access_token: access
                backoff: {initial: 100ms, max: 1s}
            routes:
              - {name: whoami, methods: [GET], path: /whoami, upstream: platform, credentials: [platform_key, platform_session]}
            reload: {secret_files_interval: 200ms}
            """
        let file = directory.appendingPathComponent("credgate.yaml")
        try config.write(to: file, atomically: true, encoding: .utf8)
        let collected = SpawnedGateway.LockedText()
        let process = try await ChildProcess.start(
            try CLITests.binary(), arguments: ["serve", "--config", file.path, "--log-level", "debug"],
            environment: ProcessInfo.processInfo.environment.filter {
                !$0.key.hasPrefix("CREDGATE_") && !$0.key.hasPrefix("PLATFORM_")
            }
            .merging(["PLATFORM_KEY_FILE": secret.path("key"), "PLATFORM_PASSWORD_FILE": secret.path("password")]) {
                $1
            },
            workingDirectory: CLITests.packageRoot, standardError: .combinedWithOutput, output: { collected.append($0) }
        )
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let match = collected.text.firstMatch(of: #/listening on (http://127\.0\.0\.1:\d+)/#) {
                return (process, collected, String(match.output.1), directory)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw CLITests.CLIError("credgate did not start: \(collected.text)")
    }

    static func stop(_ process: ChildProcess, _ directory: URL) async throws -> Int32 {
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(15)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.signal(SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
        return process.isRunning ? -1 : process.terminationStatus
    }

    /// What `/whoami` says credgate sent.
    static func whoami(_ base: String) async throws -> [String: String] {
        let response = try await send(.GET, base + "/whoami")
        return (try? JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: String]) ?? [
            "status": "\(response.status.code)"
        ]
    }

    /// Polls `body` until it returns true or `seconds` pass (generous: the machine may be busy).
    static func eventually(_ seconds: Int, _ body: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await body() { return true }
            try await Task.sleep(for: .milliseconds(200))
        }
        return try await body()
    }

    static func expectNoSecrets(in log: String, _ secrets: [String]) {
        for secret in secrets {
            #expect(!log.contains(secret), "the gateway's output shows a secret or a token")
        }
    }

    @Test("A rotated password file: the session logs in again with the new password, without a restart")
    func rotatedPasswordLogsInAgain() async throws {
        let platform = try await LoginPlatform.start(password: "pw-first-8d2c")
        let secret = try MountedSecret(["key": "KEY-first-41aa", "password": "pw-first-8d2c"])
        defer { secret.remove() }
        let (process, log, base, directory) = try await Self.startGateway(platform: platform, secret: secret)

        let before = try await Self.whoami(base)
        #expect(before["authorization"] == "Bearer SESSIONTOKEN-1-b7c1", "\(before)")
        #expect(before["key"] == "KEY-first-41aa")
        #expect(platform.logins == ["pw-first-8d2c": 1])

        // The password changes on the platform, then in the mounted Secret.
        platform.changePassword(to: "pw-second-5e9f")
        try secret.write(["key": "KEY-first-41aa", "password": "pw-second-5e9f"])
        let relogged = try await Self.eventually(30) {
            try await Self.whoami(base)["authorization"] == "Bearer SESSIONTOKEN-2-b7c1"
        }
        #expect(relogged, "the session did not log in again: \(log.text)")
        #expect(platform.logins == ["pw-first-8d2c": 1, "pw-second-5e9f": 1])
        #expect(platform.refused == 0, "a login was tried with the old password")
        #expect(try await Self.whoami(base)["key"] == "KEY-first-41aa")
        #expect(log.text.contains("secret file changed"), "\(log.text)")
        #expect(log.text.contains("sessions_new=platform_session"), "\(log.text)")
        // Readiness follows the new session.
        #expect(try await Self.eventually(20) { try await send(.GET, base + "/credgate/readiness").status == .ok })
        let metrics = try await send(.GET, base + "/credgate/metrics").text
        #expect(metrics.contains(#"credgate_config_reloads_total{result="success"} 1"#), "\(metrics)")

        #expect(try await Self.stop(process, directory) == 0)
        await platform.shutdown()
        Self.expectNoSecrets(in: log.text, ["pw-first-8d2c", "pw-second-5e9f", "KEY-first-41aa", "SESSIONTOKEN"])
    }

    @Test("A rotated API key file is used at once; the unchanged session keeps its token (no new login)")
    func rotatedKeyKeepsTheSession() async throws {
        let platform = try await LoginPlatform.start(password: "pw-only-3b7d")
        let secret = try MountedSecret(["key": "KEY-one-90fe", "password": "pw-only-3b7d"])
        defer { secret.remove() }
        let (process, log, base, directory) = try await Self.startGateway(platform: platform, secret: secret)
        #expect(try await Self.whoami(base) == ["authorization": "Bearer SESSIONTOKEN-1-b7c1", "key": "KEY-one-90fe"])

        // The kubelet rewrites every file of the Secret (new inodes), the password with the same value.
        try secret.write(["key": "KEY-two-c3d2", "password": "pw-only-3b7d"])
        let rotated = try await Self.eventually(30) { try await Self.whoami(base)["key"] == "KEY-two-c3d2" }
        #expect(rotated, "the new key was not used: \(log.text)")
        #expect(try await Self.whoami(base)["authorization"] == "Bearer SESSIONTOKEN-1-b7c1")
        #expect(platform.logins == ["pw-only-3b7d": 1])
        #expect(log.text.contains("sessions_kept=platform_session"), "\(log.text)")

        // A Secret rewritten with the same values is no change: no reload.
        try secret.write(["key": "KEY-two-c3d2", "password": "pw-only-3b7d"])
        try await Task.sleep(for: .seconds(1))
        #expect(log.text.components(separatedBy: "configuration reloaded").count - 1 == 1, "\(log.text)")

        #expect(try await Self.stop(process, directory) == 0)
        await platform.shutdown()
        Self.expectNoSecrets(in: log.text, ["pw-only-3b7d", "KEY-one-90fe", "KEY-two-c3d2", "SESSIONTOKEN"])
    }
}
