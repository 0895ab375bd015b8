#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Hummingbird
import Logging

/// An emulator of the Assured Platform API on a loopback port, for tests and for `credgate serve --sandbox`.
///
/// ```swift
/// let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: "test-key"))
/// defer { ... try await sandbox.shutdown() }
/// // talk to sandbox.baseURL, then inspect await sandbox.recorder.all()
/// ```
public final class SandboxServer: Sendable {
    /// Port the sandbox listens on (the ephemeral one when the options said 0).
    public let port: Int
    /// `http://<host>:<port>`, without a trailing slash.
    public let baseURL: String
    /// Every request received, for tests to inspect.
    public let recorder: RequestRecorder
    private let task: Task<Void, any Error>

    private init(port: Int, baseURL: String, recorder: RequestRecorder, task: Task<Void, any Error>) {
        self.port = port
        self.baseURL = baseURL
        self.recorder = recorder
        self.task = task
    }

    /// Errors from starting the sandbox.
    public enum StartError: Error, CustomStringConvertible {
        /// The server stopped before it was listening.
        case stoppedBeforeListening

        public var description: String {
            switch self {
            case .stoppedBeforeListening: "the sandbox server stopped before it was listening"
            }
        }
    }

    /// Starts the sandbox and returns once it is listening; a bind failure is thrown from here.
    public static func start(_ options: SandboxOptions) async throws -> SandboxServer {
        let recorder = RequestRecorder()
        let (ports, portContinuation) = AsyncThrowingStream<Int, any Error>.makeStream()
        let app = makeApplication(options, recorder: recorder) { port in
            portContinuation.yield(port ?? options.port)
        }
        let task = Task {
            do {
                try await app.run()
                portContinuation.finish()
            } catch {
                portContinuation.finish(throwing: error)
                throw error
            }
        }
        do {
            var iterator = ports.makeAsyncIterator()
            guard let port = try await iterator.next() else { throw StartError.stoppedBeforeListening }
            return SandboxServer(port: port, baseURL: baseURL(host: options.host, port: port), recorder: recorder, task: task)
        } catch {
            task.cancel()
            throw error
        }
    }

    /// Stops listening and closes open connections (requests still in flight are cut off).
    public func shutdown() async throws {
        task.cancel()
        // Cancellation is the expected way out; anything else already surfaced while running.
        _ = await task.result
    }

    /// Runs in the foreground until SIGINT or SIGTERM, after printing one line saying where it listens.
    public static func run(_ options: SandboxOptions) async throws {
        let app = makeApplication(options, recorder: RequestRecorder()) { port in
            let port = port ?? options.port
            writeLine(
                "credgate sandbox (Assured Platform emulator) listening on \(baseURL(host: options.host, port: port))"
                    + " — API under /api/v1/ (x-api-key required), recorded requests at /sandbox/requests"
            )
        }
        try await app.runService()
    }

    // MARK: Building

    static func makeApplication(
        _ options: SandboxOptions,
        recorder: RequestRecorder,
        onListening: @escaping @Sendable (_ port: Int?) -> Void
    ) -> Application<SandboxResponder> {
        var logger = Logger(label: "credgate.sandbox")
        logger.logLevel = options.logLevel
        let responder = SandboxResponder(options: options, recorder: recorder, logger: logger)
        return Application(
            responder: responder,
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
            onServerRunning: { channel in onListening(channel.localAddress?.port) },
            logger: logger
        )
    }

    static func baseURL(host: String, port: Int) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }

    /// Writes straight to file descriptor 1, so the line is seen at once even when stdout is a pipe.
    private static func writeLine(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
        }
    }
}
