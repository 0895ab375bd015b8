import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// The `credgate` executable as a user runs it.
@Suite struct CLITests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func binary() throws -> URL {
        for candidate in [
            ".build/debug/credgate", ".build/x86_64-unknown-linux-gnu/debug/credgate",
            ".build/aarch64-unknown-linux-gnu/debug/credgate",
        ] {
            let url = packageRoot.appendingPathComponent(candidate)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw CLIError("the credgate executable was not built (run `swift build` first)")
    }

    struct CLIError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Runs credgate to completion and returns (exit code, stdout + stderr).
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String) {
        let result = try await CommandRunner.run(arguments, environment: environment)
        return (result.code, result.output)
    }

    /// Starts `credgate` with `arguments` (no ASSURED_/CREDGATE_/WRIFTAI_ variables but `environment`) and returns
    /// it with its first line of output, the start line ("listening on http://127.0.0.1:PORT ...").
    static func startServing(_ arguments: [String], environment: [String: String] = [:]) async throws -> (
        ChildProcess, String
    ) {
        let out = SpawnedGateway.LockedText()
        let process = try await ChildProcess.start(
            try binary(), arguments: arguments,
            environment: ProcessInfo.processInfo.environment.filter {
                !$0.key.hasPrefix("ASSURED_") && !$0.key.hasPrefix("CREDGATE_") && !$0.key.hasPrefix("WRIFTAI_")
            }.merging(environment) { $1 },
            workingDirectory: packageRoot, standardError: .discarded, output: { out.append($0) })
        let deadline = Date().addingTimeInterval(30)
        while !out.text.contains("\n"), process.isRunning, Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return (process, out.text)
    }

    @Test func serveSandboxEndToEnd() async throws {
        let (process, text) = try await Self.startServing([
            "serve", "--sandbox", "--port", "0", "--log-level", "warning",
        ])
        defer { if process.isRunning { process.terminate() } }
        let match = try #require(text.firstMatch(of: #/listening on http://127\.0\.0\.1:(\d+)/#), "\(text)")
        let base = "http://127.0.0.1:\(match.output.1)"

        let list = try await send(.GET, base + "/api/v1/users/providers-list/")
        #expect(list.status == .ok)
        let json = try list.json()
        #expect(json["count"] as? Int == 57)
        #expect((json["results"] as? [Any])?.count == 10)
        let health = try await send(.GET, base + "/credgate/healthz")
        #expect(health.status == .ok)

        // `credgate status` asks the running gateway: the session is logged in, and no secret is shown.
        _ = try await send(.GET, base + "/api/v1/users/provider-documents/")
        let (statusCode, statusOutput) = try await Self.run(["status", "--url", base])
        #expect(statusCode == 0, "\(statusOutput)")
        #expect(statusOutput.contains("assured_session"))
        #expect(statusOutput.contains("jwt_session"))
        #expect(statusOutput.contains("valid"))
        #expect(!statusOutput.contains("sandbox-"), "the generated key and password start with 'sandbox-'")
        #expect(!statusOutput.contains("eyJ"), "no JWT")
        let (downCode, downOutput) = try await Self.run(["status", "--url", "http://127.0.0.1:1"])
        #expect(downCode == 1)
        #expect(downOutput.contains("no gateway answering"))

        process.terminate() // SIGTERM, as docker stop sends
        let stopped = Date().addingTimeInterval(10)
        while process.isRunning, Date() < stopped { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning)
        #expect(process.terminationStatus == 0)
    }

    @Test func checkConfigPrintsEveryProblemWithItsPath() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("credgate-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.yaml")
        try """
        upstreams:
          assured: {url: "ftp://nowhere"}
        credentials:
          assured_key: {kind: api_key, header: x-api-key, value: "${SECRET_FOR_CLI_TEST}"}
        routes:
          - {name: a, path: "/api/**", upstream: assured, credentials: [assured_kee]}
        """.write(to: bad, atomically: true, encoding: .utf8)
        let (status, output) = try await Self.run(
            ["check-config", "--config", bad.path], environment: ["SECRET_FOR_CLI_TEST": "hunter2-do-not-print"])
        #expect(status == 1)
        #expect(output.contains("upstreams.assured.url:"))
        #expect(output.contains("routes[0].credentials[0]: unknown credential 'assured_kee'"))
        #expect(!output.contains("hunter2"))

        let (okStatus, okOutput) = try await Self.run(
            ["check-config", "--config", "Config/credgate.yaml"],
            environment: ["ASSURED_API_KEY": "k", "ASSURED_USER": "u@example.com", "ASSURED_PASS": "p"])
        #expect(okStatus == 0, "\(okOutput)")

        // serve refuses to start on the same errors.
        let (serveStatus, serveOutput) = try await Self.run(["serve", "--config", bad.path, "--port", "0"])
        #expect(serveStatus == 1)
        #expect(serveOutput.contains("routes[0].credentials[0]"))
    }

    @Test func servesSeveralProfilesEachOnItsOwnListener() async throws {
        // --sandbox starts the WriftAI emulator too, whose variables replace these.
        let (process, text) = try await Self.startServing(
            [
                "serve", "--sandbox", "--config", "Config/credgate.yaml", "--config", "Config/wriftai.yaml", "--port",
                "0", "--log-level", "warning",
            ],
            environment: ["WRIFTAI_ACCESS_TOKEN": "cli-test-token", "WRIFTAI_API_BASE_URL": "http://127.0.0.1:1/v1"])
        defer { if process.isRunning { process.terminate() } }
        let match = try #require(
            text.firstMatch(of: #/listening on http://127\.0\.0\.1:(\d+), and wriftai on http://127\.0\.0\.1:(\d+)/#),
            "\(text)")
        let assured = "http://127.0.0.1:\(match.output.1)"
        let wriftai = "http://127.0.0.1:\(match.output.2)"
        #expect(assured != wriftai)
        #expect(try await send(.GET, assured + "/api/v1/users/providers-list/").status == .ok)
        #expect(try await send(.GET, wriftai + "/api/v1/users/providers-list/").status == .notFound)
        #expect(try await send(.GET, wriftai + "/credgate/healthz").status == .ok)
        process.terminate()
        let stopped = Date().addingTimeInterval(10)
        while process.isRunning, Date() < stopped { try await Task.sleep(for: .milliseconds(50)) }
        #expect(process.terminationStatus == 0)
    }

    @Test func checkConfigNamesBothFilesOfAClash() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("credgate-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let other = dir.appendingPathComponent("other.yaml")
        try """
        listen: {port: 8081}
        upstreams:
          wriftai: {url: "https://example.com"}
        routes:
          - {name: other, path: "/other/**", upstream: wriftai}
        """.write(to: other, atomically: true, encoding: .utf8)
        let environment = [
            "ASSURED_API_KEY": "k", "ASSURED_USER": "u@example.com", "ASSURED_PASS": "p", "WRIFTAI_ACCESS_TOKEN": "t",
        ]
        let (status, output) = try await Self.run(
            ["check-config", "--config", "Config/examples/combined.yaml", "--config", other.path],
            environment: environment)
        #expect(status == 1)
        #expect(output.contains("\(other.path) upstreams.wriftai: upstream 'wriftai' is also defined in"))
        #expect(output.contains("\(other.path) listen.port: port 8081 on 127.0.0.1 is also the listener of"))
        let (okStatus, okOutput) = try await Self.run(
            ["check-config", "--config", "Config/examples/combined.yaml"], environment: environment)
        #expect(okStatus == 0, "\(okOutput)")
        #expect(okOutput.contains("listener credgate: 127.0.0.1:8080"))
        #expect(okOutput.contains("listener wriftai: 127.0.0.1:8081"))
        // One port cannot be two listeners'.
        let (portStatus, portOutput) = try await Self.run(
            ["serve", "--config", "Config/examples/combined.yaml", "--port", "9999"], environment: environment)
        #expect(portStatus != 0)
        #expect(portOutput.contains("has 2 listeners"))
    }
}
