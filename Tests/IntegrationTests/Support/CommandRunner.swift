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
        let binary = try CLITests.binary()
        let started = ContinuousClock.now
        let (code, output) = try await runToCompletion(
            binary, arguments: arguments,
            environment: ProcessInfo.processInfo.environment.filter {
                !$0.key.hasPrefix("ASSURED_") && !$0.key.hasPrefix("CREDGATE_")
            }
            .merging(environment) { $1 },
            workingDirectory: CLITests.packageRoot, standardError: .combinedWithOutput)
        let elapsed = ContinuousClock.now - started
        return Result(code: code, output: output, elapsed: elapsed)
    }
}
