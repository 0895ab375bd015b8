import Foundation
import Testing

/// The `credgate` executable run as a process (`serve --sandbox` with the shipped profile and a `listen:` block
/// of the test's), so that its descriptors and memory can be read from `/proc/PID` apart from the test's own,
/// and signals can be sent to it.
final class SpawnedGateway: @unchecked Sendable {
    let process: ChildProcess
    let port: Int
    let configDirectory: URL
    private let collected: LockedText
    var base: String { "http://127.0.0.1:\(port)" }
    var pid: Int32 { process.processIdentifier }

    /// Starts `credgate serve --sandbox` with `listen` (YAML lines, indented by two spaces) in place of the
    /// profile's `listen:` block.
    static func start(
        listen: [String] = [], replacing: [String: String] = [:], arguments: [String] = [],
        logLevel: String = "notice"
    ) async throws -> SpawnedGateway {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "credgate-spawn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let profile = try String(
            contentsOf: CLITests.packageRoot.appendingPathComponent("Config/credgate.yaml"), encoding: .utf8)
        let rest = profile[profile.range(of: "\nupstreams:")!.lowerBound...]
        var config = "listen:\n  host: 127.0.0.1\n" + listen.map { "  \($0)\n" }.joined() + rest
        for (old, new) in replacing {
            guard config.contains(old) else { throw CLITests.CLIError("the profile has no '\(old)' to replace") }
            config = config.replacingOccurrences(of: old, with: new)
        }
        let configURL = directory.appendingPathComponent("credgate.yaml")
        try config.write(to: configURL, atomically: true, encoding: .utf8)

        let collected = LockedText()
        let process = try await ChildProcess.start(
            try CLITests.binary(),
            arguments: ["serve", "--sandbox", "--config", configURL.path, "--port", "0", "--log-level", logLevel]
                + arguments,
            environment: ProcessInfo.processInfo.environment.filter {
                !$0.key.hasPrefix("ASSURED_") && !$0.key.hasPrefix("CREDGATE_")
            },
            workingDirectory: CLITests.packageRoot, standardError: .combinedWithOutput, output: { collected.append($0) }
        )
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let match = collected.text.firstMatch(of: #/listening on http://127\.0\.0\.1:(\d+)/#),
                let port = Int(match.output.1)
            {
                return SpawnedGateway(process: process, port: port, configDirectory: directory, collected: collected)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw CLITests.CLIError("credgate did not start: \(collected.text)")
    }

    private init(process: ChildProcess, port: Int, configDirectory: URL, collected: LockedText) {
        self.process = process
        self.port = port
        self.configDirectory = configDirectory
        self.collected = collected
    }

    /// Everything the process printed so far.
    var log: String { collected.text }

    /// Open file descriptors of the gateway process.
    func descriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Resident memory of the gateway process, in KiB (`VmRSS`).
    func rssKiB() -> Int { status("VmRSS") }

    /// Resident anonymous memory (the heap, stacks; not mapped code) of the gateway process, in KiB (`RssAnon`).
    func anonKiB() -> Int { status("RssAnon") }

    private func status(_ field: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") })
        else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
    }

    /// Waits up to `seconds` for `condition`, polling.
    func eventually(_ seconds: Double, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return condition()
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    @discardableResult
    func stop() async throws -> Int32 {
        if process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + .seconds(15)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.signal(SIGKILL) }
        TestLogs.keep(collected.text, from: "spawned-credgate")
        try? FileManager.default.removeItem(at: configDirectory)
        return process.isRunning ? -1 : process.terminationStatus
    }

    final class LockedText: @unchecked Sendable {
        private let lock = NSLock()
        private var value = ""
        var text: String { lock.withLock { value } }
        func append(_ s: String) { lock.withLock { value += s } }
    }
}
