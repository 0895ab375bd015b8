import Foundation
import Subprocess

// The tests spawn processes (credgate, curl, Python) with swift-subprocess, never with Foundation's `Process`:
// Swift 6.3.1's `Process.run()` can crash the whole test process (it copies 256 bytes of each /proc/self/fd dirent
// and may read past glibc's buffer, swiftlang/swift-corelibs-foundation#5472), which happened in about one full
// run in three. swift-subprocess has no such scan: it closes the child's other descriptors with posix_spawn's
// closefrom action or close_range.

/// A child process that outlives the call that starts it (a gateway the test sends requests and signals to, then
/// stops), with what `Process` offered: its pid, `isRunning`, `terminationStatus` and signals.
///
/// swift-subprocess keeps a running process inside the closure given to its `run`, and its `Execution` must not
/// leave that closure. So the closure runs in a task of its own: it streams the output to `output` and sends the
/// signals asked for with `signal(_:)` through the `Execution` (its pidfd) until the process exits; `run` then
/// reaps it and `isRunning` turns false.
final class ChildProcess: @unchecked Sendable {
    enum StandardError {
        /// Into the same stream as standard output (`2>&1`).
        case combinedWithOutput
        /// To /dev/null.
        case discarded
    }

    private let lock = NSLock()
    private var pid: Int32?
    private var status: TerminationStatus?
    private let signals: AsyncStream<Int32>.Continuation

    private init(signals: AsyncStream<Int32>.Continuation) {
        self.signals = signals
    }

    /// Spawns `executable` with exactly `environment` (as `Process.environment` did) and returns once it runs.
    /// `output` is called with each chunk of its output as it arrives, from another task.
    static func start(
        _ executable: URL, arguments: [String], environment: [String: String], workingDirectory: URL,
        standardError: StandardError, output: @escaping @Sendable (String) -> Void
    ) async throws -> ChildProcess {
        let (requests, sink) = AsyncStream.makeStream(of: Int32.self)
        let child = ChildProcess(signals: sink)
        // `.init`: a `FilePath` (swift-system), a type this package does not name as it does not depend on it.
        let configuration = Subprocess.Configuration(
            executable: .path(.init(executable.path)), arguments: Arguments(arguments),
            environment: .exactly(environment),
            workingDirectory: .init(workingDirectory.path))
        try await withCheckedThrowingContinuation { (started: CheckedContinuation<Void, any Error>) in
            Task {
                do {
                    let status: TerminationStatus
                    switch standardError {
                    case .combinedWithOutput:
                        status = try await Subprocess.run(
                            configuration, input: .none, output: .sequence, error: .combinedWithOutput
                        ) { execution in
                            child.running(execution.processIdentifier.value, started)
                            await ChildProcess.serve(execution, requests, output)
                        }.terminationStatus
                    case .discarded:
                        status = try await Subprocess.run(
                            configuration, input: .none, output: .sequence, error: .discarded
                        ) { execution in
                            child.running(execution.processIdentifier.value, started)
                            await ChildProcess.serve(execution, requests, output)
                        }.terminationStatus
                    }
                    child.exited(status)
                } catch {
                    // Before the closure ran, the process was not spawned: `start` throws. After, the wait for it
                    // failed: it counts as exited, as it can no longer be seen.
                    if child.exited(.exited(-1)) { started.resume(throwing: error) }
                }
            }
        }
        return child
    }

    /// Streams the output and sends the signals asked for until the process exits (swift-subprocess ends the
    /// output stream then, even if a descendant kept the pipe open).
    private static func serve<Failure: OutputProtocol>(
        _ execution: Execution<NoInput, SequenceOutput, Failure>, _ requests: AsyncStream<Int32>,
        _ output: @escaping @Sendable (String) -> Void
    ) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await signal in requests { try? execution.send(signal: Signal(rawValue: signal)) }
            }
            do {
                for try await buffer in execution.standardOutput {
                    output(buffer.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
                }
            } catch {
                // A failed read ends the stream as the end of the output did.
            }
            group.cancelAll()
        }
    }

    private func running(_ pid: Int32, _ started: CheckedContinuation<Void, any Error>) {
        lock.withLock { self.pid = pid }
        started.resume()
    }

    /// Records the exit; returns whether the process had never run.
    @discardableResult
    private func exited(_ status: TerminationStatus) -> Bool {
        signals.finish()
        return lock.withLock {
            self.status = status
            return pid == nil
        }
    }

    var processIdentifier: Int32 { lock.withLock { pid ?? -1 } }

    /// False once the process has exited and was reaped, and all its output was passed to `output`.
    var isRunning: Bool { lock.withLock { status == nil } }

    /// As `Process.terminationStatus`: the exit code, or the number of the signal that ended the process; -1 while
    /// it runs (where `Process` trapped).
    var terminationStatus: Int32 { lock.withLock { status?.code ?? -1 } }

    /// Sends `signal` to the process if it still runs.
    func signal(_ signal: Int32) { signals.yield(signal) }

    /// SIGTERM, as `Process.terminate()`.
    func terminate() { signal(SIGTERM) }
}

extension TerminationStatus {
    /// As `Process.terminationStatus`: the exit code, or the signal's number.
    var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): signal
        }
    }
}

extension Subprocess.Environment {
    /// `environment` as the child's whole environment, as `Process.environment` set it.
    static func exactly(_ environment: [String: String]) -> Self {
        .custom(Dictionary(uniqueKeysWithValues: environment.map { (Key(stringLiteral: $0.key), $0.value) }))
    }
}

/// Runs `executable` to completion and returns its termination status and its standard output (with standard
/// error when `standardError` is `.combinedWithOutput`). The wait is asynchronous: no thread of the cooperative
/// pool (2 on a 2-core machine) is blocked while it runs. `environment` is the child's whole environment; nil
/// inherits the test process's.
func runToCompletion(
    _ executable: URL, arguments: [String], environment: [String: String]? = nil,
    workingDirectory: URL? = nil, standardError: ChildProcess.StandardError
) async throws -> (status: Int32, output: String) {
    let configuration = Subprocess.Configuration(
        executable: .path(.init(executable.path)), arguments: Arguments(arguments),
        environment: environment.map { .exactly($0) } ?? .inherit,
        workingDirectory: workingDirectory.map { .init($0.path) })
    // No limit on the output, as `readDataToEndOfFile()` had none.
    switch standardError {
    case .combinedWithOutput:
        let result = try await Subprocess.run(
            configuration, output: .bytes(limit: .max), error: .combinedWithOutput)
        return (result.terminationStatus.code, String(decoding: result.standardOutput, as: UTF8.self))
    case .discarded:
        let result = try await Subprocess.run(configuration, output: .bytes(limit: .max), error: .discarded)
        return (result.terminationStatus.code, String(decoding: result.standardOutput, as: UTF8.self))
    }
}
