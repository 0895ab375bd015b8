import Foundation
import Sandbox
import Testing

/// Graceful drain (issue 12 item 3; issue 8 item 7, "SIGTERM cuts transfers in flight"), through the real
/// executable, real sockets and real signals: transfers in flight when SIGTERM arrives complete intact, readiness
/// is 503 while the listener still accepts (`shutdown.delay`), a new connection is refused once it has closed, the
/// process exits 0; and a second SIGTERM ends it at once.
@Suite(.serialized) struct DrainTests {
    static let size = 200 * 1024 * 1024

    /// The shipped profile with a `shutdown:` block and a catch-all route that takes a 200 MiB body (the echo).
    static func start(delay: String, grace: String) async throws -> SpawnedGateway {
        try await SpawnedGateway.start(replacing: [
            "max_body_bytes: 128MiB": "max_body_bytes: 512MiB",
            "\nupstreams:": "\nshutdown:\n  delay: \(delay)\n  grace: \(grace)\nupstreams:",
        ])
    }

    static func scratchDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "credgate-drain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func sha256(of file: URL) async throws -> String {
        let (status, output) = try await runTool(["sha256sum", file.path])
        try #require(status == 0)
        return String(output.prefix(while: { $0 != " " }))
    }

    /// `curl -w '%{http_code}'` for readiness on a new connection: "000" when the connection is refused.
    static func readiness(_ base: String) async throws -> String {
        let (_, output) = try await runTool([
            "curl", "-s", "-o", "/dev/null", "--max-time", "5", "-w", "%{http_code}",
            "\(base)/credgate/readiness",
        ])
        return output
    }

    static func waitForExit(_ gateway: SpawnedGateway, seconds: Int) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while gateway.process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        return !gateway.process.isRunning
    }

    final class Stamp: @unchecked Sendable {
        private let lock = NSLock()
        private var value: ContinuousClock.Instant?
        var instant: ContinuousClock.Instant? { lock.withLock { value } }
        func set() { lock.withLock { value = ContinuousClock.now } }
    }

    @Test(
        "200 MiB download and 200 MiB upload in flight at SIGTERM complete intact; readiness 503; listener closed; exit 0"
    )
    func transfersInFlightComplete() async throws {
        let gateway = try await Self.start(delay: "2s", grace: "20s")
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let upload = directory.appendingPathComponent("upload.bin")
        let downloaded = directory.appendingPathComponent("download.bin")
        let uploadHeaders = directory.appendingPathComponent("upload.headers")
        let made = try await runTool(["sh", "-c", "head -c \(Self.size) /dev/urandom > '\(upload.path)'"])
        try #require(made.status == 0)
        let uploadDigest = try await Self.sha256(of: upload)

        let base = gateway.base
        let downloadDone = Stamp()
        let uploadDone = Stamp()
        async let download = { () async throws -> (status: Int32, output: String) in
            defer { downloadDone.set() }
            return try await runTool([
                "curl", "-sS", "--limit-rate", "32M", "-o", downloaded.path, "-w", "%{http_code} %{size_download}",
                "\(base)/api/v1/sandbox/download/?bytes=\(Self.size)",
            ])
        }()
        async let echoed = { () async throws -> (status: Int32, output: String) in
            defer { uploadDone.set() }
            return try await runTool([
                "curl", "-sS", "--limit-rate", "32M", "-X", "POST", "-T", upload.path, "-H", "Expect:",
                "-H", "Content-Type: application/octet-stream", "-D", uploadHeaders.path,
                "\(base)/api/v1/drain-test/echo/",
            ])
        }()

        // Both transfers take about 6 s at the rate limit (the drain's 2 s delay ends well before them, even on a
        // loaded machine); signal once they are under way.
        try await Task.sleep(for: .seconds(1))
        let signalled = ContinuousClock.now
        #expect(kill(gateway.pid, SIGTERM) == 0)

        // Readiness answers 503 at once, on a connection accepted during shutdown.delay.
        var ready = try await Self.readiness(base)
        let readyDeadline = ContinuousClock.now + .milliseconds(1500)
        while ready != "503", ContinuousClock.now < readyDeadline {
            try await Task.sleep(for: .milliseconds(50))
            ready = try await Self.readiness(base)
        }
        #expect(ready == "503", "readiness during the drain: \(ready)")

        // Once the delay is over the listener is closed: a new connection is refused (curl's 000).
        var refused = false
        let refuseDeadline = ContinuousClock.now + .seconds(10)
        while !refused, ContinuousClock.now < refuseDeadline {
            refused = try await Self.readiness(base) == "000"
            if !refused { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(refused, "a new connection after the listener closed was accepted")

        let (downloadStatus, downloadOutput) = try await download
        let (uploadStatus, uploadOutput) = try await echoed
        #expect(downloadStatus == 0)
        #expect(downloadOutput == "200 \(Self.size)")
        #expect(try await Self.sha256(of: downloaded) == SandboxPayload.sha256Hex(count: Self.size))
        #expect(uploadStatus == 0)
        let answer = try JSONSerialization.jsonObject(with: Data(uploadOutput.utf8)) as? [String: Any]
        #expect(answer?["body_bytes"] as? Int == Self.size, "\(uploadOutput)")
        #expect(answer?["body_sha256"] as? String == uploadDigest)
        // The answer that ended the upload came after the drain began, so it closed its keep-alive connection.
        let headers = (try? String(contentsOf: uploadHeaders, encoding: .utf8))?.lowercased() ?? ""
        #expect(headers.contains("connection: close"), "\(headers)")
        // Both were still running when the signal arrived.
        #expect(downloadDone.instant.map { $0 > signalled } == true)
        #expect(uploadDone.instant.map { $0 > signalled } == true)

        // Within the grace period: exits 0 once the transfers are done.
        #expect(try await Self.waitForExit(gateway, seconds: 20))
        #expect(!gateway.process.isRunning && gateway.process.terminationStatus == 0, "\(gateway.log)")
        #expect(gateway.log.contains("credgate draining"))
        try await gateway.stop()
    }

    @Test("A second SIGTERM during the drain exits at once (status 143) instead of waiting for the grace period")
    func secondSignalExitsAtOnce() async throws {
        let gateway = try await Self.start(delay: "0s", grace: "25s")
        let base = gateway.base
        // A slow download (about 40 s) that holds the drain open for longer than this test waits.
        async let download = runTool([
            "curl", "-sS", "--limit-rate", "5M", "-o", "/dev/null", "-w", "%{size_download}",
            "\(base)/api/v1/sandbox/download/?bytes=\(Self.size)",
        ])
        try await Task.sleep(for: .seconds(1))
        #expect(kill(gateway.pid, SIGTERM) == 0)
        // The first signal drains: the process is still running, waiting for the download.
        let refusedDeadline = ContinuousClock.now + .seconds(5)
        var refused = false
        while !refused, ContinuousClock.now < refusedDeadline {
            refused = try await Self.readiness(base) == "000"
            if !refused { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(refused)
        #expect(gateway.process.isRunning, "the first SIGTERM should drain, not exit: \(gateway.log)")
        #expect(kill(gateway.pid, SIGTERM) == 0)
        #expect(try await Self.waitForExit(gateway, seconds: 5), "a second SIGTERM did not end the process")
        #expect(!gateway.process.isRunning && gateway.process.terminationStatus == 128 + SIGTERM)
        #expect(gateway.log.contains("second SIGTERM"))
        let (curlStatus, bytes) = try await download
        #expect(curlStatus != 0 && Int(bytes) ?? 0 < Self.size, "the download was cut: \(curlStatus) \(bytes)")
        try await gateway.stop()
    }
}
