import Hummingbird
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An emulator of the Assured Platform API on a loopback port, for tests and for `credgate serve --sandbox`.
///
/// ```swift
/// let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: "test-key"))
/// defer { ... try await sandbox.shutdown() }
/// // talk to sandbox.baseURL, then inspect await sandbox.recorder.all()
/// ```
///
/// Besides the API-key routes it emulates the platform's session: `POST /api/v1/users/login/` (accounts from
/// ``SandboxOptions/users``), HS256 access and refresh tokens, `token/refresh/` with rotation, the routes that need
/// the JWT (upload, presign, provider documents, the SSN routes), and test controls to revoke tokens, fail logins
/// and read counters (``revokeTokens()``, ``failLogins(_:status:)``, ``counters()``, or the same under `/sandbox/`).
///
/// Uploads (`POST /api/v1/files/handle/`) are stored in memory and served back through presigned URLs
/// (`POST /api/v1/files/presign-s3-url/presign_s3_url/`) at `/sandbox-s3/<bucket>/<key>`, which checks their
/// signature and expiry as S3 would.
public final class SandboxServer: Sendable {
    /// Port the sandbox listens on (the ephemeral one when the options said 0).
    public let port: Int
    /// `http://<host>:<port>`, without a trailing slash.
    public let baseURL: String
    /// Every request received, for tests to inspect.
    public let recorder: RequestRecorder
    let state: SandboxState
    private let task: Task<Void, any Error>
    private let closeListener: @Sendable () async -> Void

    private init(
        port: Int,
        baseURL: String,
        recorder: RequestRecorder,
        state: SandboxState,
        task: Task<Void, any Error>,
        closeListener: @escaping @Sendable () async -> Void
    ) {
        self.port = port
        self.baseURL = baseURL
        self.recorder = recorder
        self.state = state
        self.task = task
        self.closeListener = closeListener
    }

    /// A sandbox dropped without ``shutdown()`` still stops, abruptly.
    deinit {
        task.cancel()
    }

    /// The listening socket as `onServerRunning` hands it over: its port, and a way to close it.
    struct Listener: Sendable {
        var port: Int?
        var close: @Sendable () async -> Void
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
        let state = SandboxState(options: options)
        let (listening, listeningContinuation) = AsyncThrowingStream<Listener, any Error>.makeStream()
        let app = makeApplication(options, recorder: recorder, state: state) { listener in
            listeningContinuation.yield(listener)
        }
        let task = Task {
            do {
                try await app.run()
                listeningContinuation.finish()
            } catch {
                listeningContinuation.finish(throwing: error)
                throw error
            }
        }
        do {
            var iterator = listening.makeAsyncIterator()
            guard let listener = try await iterator.next() else { throw StartError.stoppedBeforeListening }
            let port = listener.port ?? options.port
            return SandboxServer(
                port: port,
                baseURL: baseURL(host: options.host, port: port),
                recorder: recorder,
                state: state,
                task: task,
                closeListener: listener.close
            )
        } catch {
            task.cancel()
            throw error
        }
    }

    /// Stops accepting connections, then closes the open ones (a request still in flight is cut off).
    public func shutdown() async throws {
        // Closing the listening socket first ends Hummingbird's accept loop normally; cancelling the server
        // task then closes the connections a client keeps alive. Cancelling alone makes the accept loop log
        // a CancellationError at error level.
        await closeListener()
        task.cancel()
        _ = await task.result
    }

    /// Runs in the foreground until SIGINT or SIGTERM, after printing one line saying where it listens.
    public static func run(_ options: SandboxOptions) async throws {
        let app = makeApplication(options, recorder: RequestRecorder(), state: SandboxState(options: options)) {
            listener in
            let port = listener.port ?? options.port
            writeLine(
                "credgate sandbox (Assured Platform emulator) listening on \(baseURL(host: options.host, port: port))"
                    + "; API under /api/v1/ (x-api-key required; login at /api/v1/users/login/ as "
                    + "\(options.users.keys.sorted().joined(separator: ", "))), recorded requests at /sandbox/requests"
            )
        }
        try await app.runService()
    }

    // MARK: Building

    static func makeApplication(
        _ options: SandboxOptions,
        recorder: RequestRecorder,
        state: SandboxState,
        onListening: @escaping @Sendable (Listener) -> Void
    ) -> Application<SandboxResponder> {
        var logger = Logger(label: "credgate.sandbox")
        logger.logLevel = options.logLevel
        let responder = SandboxResponder(options: options, recorder: recorder, state: state, logger: logger)
        return Application(
            responder: responder,
            // Hummingbird's HTTP/1 server with every received byte counted (``SandboxCounters/bytesReceived``).
            server: .countingHTTP1(state.counters.transport),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
            onServerRunning: { channel in
                onListening(Listener(port: channel.localAddress?.port, close: { try? await channel.close() }))
            },
            logger: logger
        )
    }

    static func baseURL(host: String, port: Int) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(port)"
    }

    /// Writes straight to file descriptor 1, so the line is seen at once even when stdout is a pipe.
    private static func writeLine(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
        }
    }
}
