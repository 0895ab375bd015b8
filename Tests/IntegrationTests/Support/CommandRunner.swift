import Foundation

/// Runs the `credgate` executable to completion without blocking a thread of the cooperative pool (the gateway
/// under test may run in this process, and a 2-core machine has two such threads).
enum CommandRunner {
    struct Result {
        var code: Int32
        /// Standard output and standard error, interleaved.
        var output: String
        /// Wall-clock time from launch to exit.
        var elapsed: Duration
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        let process = Process()
        process.executableURL = try CLITests.binary()
        process.arguments = arguments
        process.currentDirectoryURL = CLITests.packageRoot
        process.environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("ASSURED_") && !$0.key.hasPrefix("CREDGATE_")
        }
        .merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let started = ContinuousClock.now
        try process.run()
        // Read to the end on a Dispatch thread: the blocking read stays off the cooperative pool.
        let output: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                continuation.resume(returning: String(decoding: data, as: UTF8.self))
            }
        }
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        let elapsed = ContinuousClock.now - started
        let code = process.terminationStatus
        return Result(code: code, output: output, elapsed: elapsed)
    }
}
