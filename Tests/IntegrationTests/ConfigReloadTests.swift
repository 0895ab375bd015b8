import Foundation
import Testing

@testable import CredGate

/// Reload without restart (issue 12 item 4), through the real executable (`serve --sandbox` with the shipped
/// profile), real sockets and real signals: SIGHUP serves a new route at once and keeps the session (no new
/// login) and the presign cache; a broken file leaves the old configuration serving, with each problem logged at
/// its YAML path and counted in `/credgate/metrics`; a request in flight finishes on the route it started with;
/// `credgate reload` works through the pid file and through `POST /credgate/reload`. Every wait polls with a
/// generous deadline.
@Suite(.serialized) struct ConfigReloadTests {
    static let newRoute = """

          - name: reload-test
            path: /reload-test/**
            upstream: assured
            credentials: [assured_key]
        """

    /// The sandbox's address, from the start line ("... to the sandbox at http://127.0.0.1:PORT").
    static func sandbox(_ gateway: SpawnedGateway) throws -> String {
        let match = try #require(
            gateway.log.firstMatch(of: #/to the sandbox at (http://127\.0\.0\.1:\d+)/#), "\(gateway.log)")
        return String(match.output.1)
    }

    static func logins(_ sandbox: String) async throws -> Int {
        try await send(.GET, sandbox + "/sandbox/counters").json()["logins"] as? Int ?? -1
    }

    static func configFile(_ gateway: SpawnedGateway) -> URL {
        gateway.configDirectory.appendingPathComponent("credgate.yaml")
    }

    /// Rewrites the running gateway's configuration file (atomically, as an editor or a ConfigMap update does).
    static func edit(_ gateway: SpawnedGateway, _ change: (String) -> String) throws {
        let file = configFile(gateway)
        let text = try String(contentsOf: file, encoding: .utf8)
        let changed = change(text)
        #expect(changed != text, "the edit changed nothing")
        try changed.write(to: file, atomically: true, encoding: .utf8)
    }

    static func addingRoute(_ yaml: String, _ route: String = newRoute) -> String {
        yaml.replacingOccurrences(of: "\nroutes:", with: "\nroutes:" + route)
    }

    /// Whether the gateway has a route for the path (the sandbox's own 404 carries no credgate error code).
    static func routed(_ gateway: SpawnedGateway, _ path: String) async throws -> Bool {
        try await send(.GET, gateway.base + path).headers.first(name: "x-credgate-error") != "no-route"
    }

    /// The value of one series of `/credgate/metrics`, e.g. `credgate_config_reloads_total{result="failure"}`.
    static func metric(_ gateway: SpawnedGateway, _ series: String) async throws -> Double? {
        let text = try await send(.GET, gateway.base + "/credgate/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    static func presign(_ gateway: SpawnedGateway) async throws -> SimpleResponse {
        try await send(
            .POST, gateway.base + "/api/v1/files/presign-s3-url/presign_s3_url/",
            headers: ["content-type": "application/json"],
            body: #"{"s3_url": "s3://assured-sandbox-files/reload/license.pdf", "presigned_url": ""}"#)
    }

    static func eventually(_ seconds: Int, _ body: () async throws -> Bool) async throws -> Bool {
        try await SecretRotationTests.eventually(seconds, body)
    }

    @Test("SIGHUP with a new route: served at once; the session does not log in again; cached presigned URLs are kept")
    func sighupServesANewRoute() async throws {
        let gateway = try await SpawnedGateway.start()
        let sandbox = try Self.sandbox(gateway)
        #expect(
            try await Self.eventually(30) { try await send(.GET, gateway.base + "/credgate/readiness").status == .ok })
        let miss = try await Self.presign(gateway)
        #expect(miss.status == .ok && miss.headers.first(name: "x-cache") == "MISS", "\(miss.text)")
        let url = try miss.json()["presigned_url"] as? String
        #expect(try await Self.logins(sandbox) == 1)
        #expect(try await Self.routed(gateway, "/reload-test/x") == false)
        #expect(try await Self.metric(gateway, "credgate_config_last_reload_success") == 1)

        try Self.edit(gateway) { Self.addingRoute($0) }
        #expect(kill(gateway.pid, SIGHUP) == 0)
        #expect(try await Self.eventually(30) { try await Self.routed(gateway, "/reload-test/x") }, "\(gateway.log)")
        #expect(gateway.log.contains("configuration reloaded"))
        #expect(gateway.log.contains("trigger=SIGHUP"))
        #expect(gateway.log.contains("sessions_kept=assured_session"), "\(gateway.log)")

        // The session and the cache came through: no new login, the same URL from the cache.
        let hit = try await Self.presign(gateway)
        #expect(hit.headers.first(name: "x-cache") == "HIT", "\(hit.headers)")
        #expect(try hit.json()["presigned_url"] as? String == url)
        #expect(try await Self.logins(sandbox) == 1)
        #expect(try await send(.GET, gateway.base + "/api/v1/users/providers-list/").status == .ok)
        #expect(try await send(.GET, gateway.base + "/credgate/readiness").status == .ok)
        #expect(try await Self.metric(gateway, #"credgate_config_reloads_total{result="success"}"#) == 1)
        #expect(!gateway.log.contains("correct horse battery staple"), "the sandbox password is in the log")
        // Requests and errors since start go on across the reload.
        let status = try await send(.GET, gateway.base + "/credgate/status").json()
        let routes = status["routes"] as? [[String: Any]] ?? []
        #expect(routes.first { $0["route"] as? String == "assured-presign" }?["requests"] as? Int == 2, "\(routes)")
        #expect(try await gateway.stop() == 0)
    }

    @Test(
        "SIGHUP with a broken file: the old configuration keeps serving; each problem is logged at its YAML path and counted"
    )
    func aBrokenFileKeepsTheOldConfiguration() async throws {
        let gateway = try await SpawnedGateway.start()
        let original = try String(contentsOf: Self.configFile(gateway), encoding: .utf8)
        try Self.edit(gateway) {
            Self.addingRoute($0, Self.newRoute + "\n    retries: 3")
                .replacingOccurrences(of: "    connect_timeout: 5s", with: "    connect_timeout: soon")
        }
        #expect(kill(gateway.pid, SIGHUP) == 0)
        #expect(try await Self.eventually(30) { gateway.log.contains("configuration reload failed") }, "\(gateway.log)")
        #expect(
            try await Self.eventually(10) { gateway.log.contains("routes[0].retries: unknown key") }, "\(gateway.log)")
        #expect(gateway.log.contains("upstreams.assured.connect_timeout:"), "\(gateway.log)")
        #expect(gateway.log.contains("the previous configuration keeps serving"))
        #expect(try await Self.metric(gateway, #"credgate_config_reloads_total{result="failure"}"#) == 1)
        #expect(try await Self.metric(gateway, "credgate_config_last_reload_success") == 0)
        // The old routes serve; the new one is not there.
        #expect(try await send(.GET, gateway.base + "/api/v1/users/providers-list/").status == .ok)
        #expect(try await Self.routed(gateway, "/reload-test/x") == false)
        #expect(try await send(.GET, gateway.base + "/credgate/readiness").status == .ok)

        // Without admin.reload_endpoint, `credgate reload` at the address says how to turn it on.
        let off = try await CommandRunner.run(["reload", "--url", gateway.base])
        #expect(off.code == 1 && off.output.contains("reload_endpoint"), "\(off.output)")

        // Fixed: the next SIGHUP applies it.
        try original.write(to: Self.configFile(gateway), atomically: true, encoding: .utf8)
        try Self.edit(gateway) { Self.addingRoute($0) }
        #expect(kill(gateway.pid, SIGHUP) == 0)
        #expect(try await Self.eventually(30) { try await Self.routed(gateway, "/reload-test/x") }, "\(gateway.log)")
        #expect(try await Self.metric(gateway, "credgate_config_last_reload_success") == 1)
        #expect(try await Self.metric(gateway, #"credgate_config_reloads_total{result="success"}"#) == 1)
        #expect(try await gateway.stop() == 0)
    }

    @Test(
        "A download in flight when SIGHUP narrows its route finishes intact; the next request on that keep-alive connection takes the new routes"
    )
    func aRequestInFlightFinishesOnItsRoute() async throws {
        let gateway = try await SpawnedGateway.start()
        let size = 30 * 1024 * 1024
        let finished = DrainTests.Stamp()
        let directory = try DrainTests.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let partial = directory.appendingPathComponent("download.bin")
        // One curl, one connection: a download of about 6 s at 5 MB/s (the reload happens in the middle), then the
        // same path again on the same keep-alive connection (%{num_connects} 0: no new one), which the new
        // configuration no longer routes.
        async let transfers = { () async throws -> (status: Int32, output: String) in
            defer { finished.set() }
            return try await runTool([
                "curl", "-sS", "--limit-rate", "5M",
                "-w", "%{http_code} %{size_download} %{num_connects} %header{x-credgate-error}\n",
                "-o", partial.path, "\(gateway.base)/api/v1/sandbox/download/?bytes=\(size)",
                "-o", "/dev/null", "\(gateway.base)/api/v1/sandbox/download/?bytes=10",
            ])
        }()
        // The download is under way once its first bytes are on disk.
        let started = try await Self.eventually(30) {
            ((try? FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int) ?? 0) > 0
        }
        #expect(started, "the download did not start")
        try Self.edit(gateway) { $0.replacingOccurrences(of: "    path: /api/**", with: "    path: /api/v1/users/**") }
        #expect(kill(gateway.pid, SIGHUP) == 0)
        #expect(try await Self.eventually(30) { gateway.log.contains("configuration reloaded") }, "\(gateway.log)")
        let reloaded = ContinuousClock.now
        #expect(try await Self.routed(gateway, "/api/v1/sandbox/download/?bytes=10") == false)
        let (status, output) = try await transfers
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(lines.first == ["200", "\(size)", "1"], "the download in flight: \(output)")
        #expect(
            lines.dropFirst().first.map { $0.count == 4 ? [$0[0], $0[2], $0[3]] : $0 } == ["404", "0", "no-route"],
            "the next request on the kept-alive connection: \(output)")
        // The download was still running when the new configuration took over.
        #expect(finished.instant.map { $0 > reloaded } == true)
        #expect(try await gateway.stop() == 0)
    }

    @Test("credgate reload: through the pid file (SIGHUP), and through POST /credgate/reload with the outcome")
    func reloadCommand() async throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("credgate-\(UUID().uuidString).pid")
            .path
        let gateway = try await SpawnedGateway.start(
            replacing: ["\nupstreams:": "\nadmin: {reload_endpoint: true}\nupstreams:"],
            arguments: ["--pid-file", pidFile])
        let written = try String(contentsOfFile: pidFile, encoding: .utf8)
        #expect(written == "\(gateway.pid)\n")

        try Self.edit(gateway) { Self.addingRoute($0) }
        let signalled = try await CommandRunner.run(["reload", "--pid-file", pidFile])
        #expect(
            signalled.code == 0 && signalled.output.contains("sent SIGHUP to pid \(gateway.pid)"), "\(signalled.output)"
        )
        #expect(try await Self.eventually(30) { try await Self.routed(gateway, "/reload-test/x") }, "\(gateway.log)")

        // At the admin address the answer is the outcome: applied before the command returns.
        try Self.edit(gateway) {
            Self.addingRoute(
                $0, "\n  - {name: reload-two, path: /reload-two/**, upstream: assured, credentials: [assured_key]}")
        }
        let requested = try await CommandRunner.run(["reload", "--url", gateway.base])
        #expect(requested.code == 0, "\(requested.output)")
        #expect(
            requested.output.contains("reloaded its configuration (sessions kept: assured_session"),
            "\(requested.output)")
        #expect(try await Self.routed(gateway, "/reload-two/x"))

        // A refused one: exit 1, every problem at its YAML path, the old configuration still serving.
        try Self.edit(gateway) {
            $0.replacingOccurrences(
                of: "\nroutes:", with: "\nroutes:\n  - {name: bad, path: /bad/**, upstream: nowhere}")
        }
        let refused = try await CommandRunner.run(["reload", "--url", gateway.base])
        #expect(refused.code == 1, "\(refused.output)")
        #expect(refused.output.contains("keeps serving the old one"), "\(refused.output)")
        #expect(refused.output.contains("routes[0].upstream"), "\(refused.output)")
        #expect(try await Self.routed(gateway, "/reload-two/x"))
        #expect(try await Self.metric(gateway, #"credgate_config_reloads_total{result="failure"}"#) == 1)
        #expect(try await Self.metric(gateway, #"credgate_config_reloads_total{result="success"}"#) == 2)

        #expect(try await gateway.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: pidFile), "the pid file is left after the exit")
        // No gateway behind the pid file any more.
        try "999999\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        let stale = try await CommandRunner.run(["reload", "--pid-file", pidFile])
        #expect(stale.code == 1 && stale.output.contains("no such process"), "\(stale.output)")
        try? FileManager.default.removeItem(atPath: pidFile)
    }

    @Test("In process: a session a reload replaced logs in anew, and the old one stops once no request can use it")
    func aReplacedSessionStops() async throws {
        try await SessionTests.withGateway { f in
            #expect(try await send(.GET, f.base + "/api/v1/users/provider-documents/").status == .ok)
            #expect(await f.sandbox.counters().logins == 1)
            weak var oldRuntime = f.gateway.runtime
            weak var oldSession = f.gateway.runtime.sessions["assured_session"]
            var config = f.gateway.runtime.config
            guard case .jwtSession(var session)? = config.credentials["assured_session"]?.kind else {
                Issue.record("no session in the profile")
                return
            }
            session.defaultLifetime = .seconds(1800)
            config.credentials["assured_session"]?.kind = .jwtSession(session)
            let outcome = f.gateway.reload(to: config)
            #expect(outcome.result == .reloaded)
            #expect(outcome.sessionsNew == ["assured_session"] && outcome.sessionsKept.isEmpty)
            #expect(f.gateway.runtime.sessions["assured_session"] !== oldSession)
            #expect(try await send(.GET, f.base + "/api/v1/users/provider-documents/").status == .ok)
            #expect(await f.sandbox.counters().logins == 2)
            // Once the connections moved on to the new runtime, the old one is freed and its replaced session
            // stopped (a running session's renewal task would keep it alive).
            let released = try await Self.eventually(30) {
                _ = try await send(.GET, f.base + "/credgate/healthz")
                return oldRuntime == nil && oldSession == nil
            }
            #expect(released, "runtime freed: \(oldRuntime == nil), session stopped: \(oldSession == nil)")
            // The same configuration again: everything is carried over.
            let again = f.gateway.reload(to: config)
            #expect(again.sessionsKept == ["assured_session"] && again.sessionsNew.isEmpty)
            #expect(await f.sandbox.counters().logins == 2)
        }
    }
}
