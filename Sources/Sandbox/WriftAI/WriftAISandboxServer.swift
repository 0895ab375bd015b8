import Foundation
import Hummingbird
import Logging

/// An emulator of the WriftAI API (what the `wriftai` Python SDK 0.28 to 0.34 calls) on a loopback port, for tests
/// and for `credgate serve --sandbox`.
///
/// ```swift
/// let sandbox = try await WriftAISandboxServer.start(WriftAISandboxOptions(accessToken: "test-token"))
/// // WRIFTAI_API_BASE_URL=\(sandbox.apiBaseURL), then inspect await sandbox.recorder.all(), await sandbox.counters()
/// try await sandbox.shutdown()
/// ```
///
/// Under `/v1/` with `Authorization: Bearer <token>` (else a 401 problem): `GET /user`, `GET /models` (cursor
/// pages), `/models/{owner}`, `/models/{owner}/{name}`, `/hardware`, `/predictions` (create, list, get, cancel, and
/// `GET /predictions/{id}/stream`, a server-sent event stream paced by a ``StreamPlan``), `/uploads` and
/// `/uploads/{id}/complete` (the three-step upload), `/files/urls` (SDK 0.28's one step). Presigned part, upload
/// and download URLs are served by the same server at `/sandbox-s3/<bucket>/<key>`, which checks their signature,
/// expiry, exact `Content-Length` and `Content-Type` and refuses any `Authorization` header. Test controls are
/// Swift methods here and HTTP routes under `/sandbox/` (see ``WriftAIResponder/control(_:target:)``).
public final class WriftAISandboxServer: Sendable {
    /// Port the sandbox listens on (the ephemeral one when the options said 0).
    public let port: Int
    /// `http://<host>:<port>`, without `/v1` and without a trailing slash.
    public let baseURL: String
    /// Every request received except the controls, for tests to inspect (part PUTs included, headers and all).
    public let recorder: RequestRecorder
    let state: WriftAIState
    private let task: Task<Void, any Error>
    private let closeListener: @Sendable () async -> Void

    /// What the SDK's `WRIFTAI_API_BASE_URL` should be: ``baseURL`` + `/v1`.
    public var apiBaseURL: String { baseURL + WriftAIRoute.apiPrefix }

    private init(
        port: Int, baseURL: String, recorder: RequestRecorder, state: WriftAIState,
        task: Task<Void, any Error>, closeListener: @escaping @Sendable () async -> Void
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

    /// Starts the sandbox and returns once it is listening; a bind failure is thrown from here.
    public static func start(_ options: WriftAISandboxOptions) async throws -> WriftAISandboxServer {
        let recorder = RequestRecorder()
        let state = WriftAIState(options: options)
        let (listening, continuation) = AsyncThrowingStream<SandboxServer.Listener, any Error>.makeStream()
        var logger = Logger(label: "credgate.sandbox.wriftai")
        logger.logLevel = options.logLevel
        let responder = WriftAIResponder(state: state, recorder: recorder, bindHost: options.host, logger: logger)
        let app = Application(
            responder: responder,
            server: .countingHTTP1(state.counters.transport),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
            onServerRunning: { channel in
                continuation.yield(
                    SandboxServer.Listener(port: channel.localAddress?.port, close: { try? await channel.close() }))
            },
            logger: logger
        )
        let task = Task {
            do {
                try await app.run()
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
                throw error
            }
        }
        do {
            var iterator = listening.makeAsyncIterator()
            guard let listener = try await iterator.next() else {
                throw SandboxServer.StartError.stoppedBeforeListening
            }
            let port = listener.port ?? options.port
            return WriftAISandboxServer(
                port: port, baseURL: SandboxServer.baseURL(host: options.host, port: port),
                recorder: recorder, state: state, task: task, closeListener: listener.close)
        } catch {
            task.cancel()
            throw error
        }
    }

    /// Stops accepting connections, then closes the open ones (a stream still running is cut off).
    public func shutdown() async throws {
        await closeListener()
        task.cancel()
        _ = await task.result
    }
}

/// Test controls, the same as the HTTP ones under `/sandbox/`, for tests holding the server in-process.
extension WriftAISandboxServer {
    /// Makes the next `count` requests (to `path`, a request path such as `/v1/models` or a route template such as
    /// `/v1/predictions/{id}/stream` or `/sandbox-s3/{bucket}/{key}`; else to any `/v1/` path) answer 429 with
    /// `x-ratelimit-reset` = now + `resetAfter` (whole seconds). Rules add up; `count` 0 cancels the pending ones
    /// for `path` (all of them when nil).
    public func rateLimit(next count: Int, path: String? = nil, resetAfter: Duration = .seconds(1)) async throws {
        try await state.rateLimit(count: count, path: path, resetAfter: Int(resetAfter.components.seconds))
    }

    /// How predictions created from now on stream (and how long they take to succeed).
    public func setStream(_ plan: StreamPlan) async throws {
        try await state.setStream(plan)
    }

    /// The stream plan in force.
    public func streamPlan() async -> StreamPlan {
        await state.settings.values.stream
    }

    /// Changes, from now on, the lifetime of presigned URLs (whole seconds, 1 s to 7 days) and the part size of
    /// new uploads; nil keeps a setting.
    public func setURLs(lifetime: Duration? = nil, partSize: Int? = nil) async throws {
        _ = try await state.setURLs(lifetime: lifetime.map { Int($0.components.seconds) }, partSize: partSize)
    }

    /// Whether list pages carry `next_url` and `previous_url` (absolute links to the pages, which SDK 0.28
    /// requires and SDK 0.34 refuses).
    public func setPageURLs(_ on: Bool) async {
        await state.settings.setPageURLs(on)
    }

    /// Requests per route, part PUTs, completes, streams and more since start (or the last reset).
    public func counters() async -> WriftAISandboxCounters {
        await state.counters.snapshot()
    }

    /// Zeroes the counters.
    public func resetCounters() async {
        await state.counters.reset()
    }

    /// The bucket completed files are stored in.
    public var bucket: String { state.bucket }

    /// Keys of the stored files (completed uploads: `uploads/<id>`; one-step uploads: `files/<uuid><.ext>`), oldest first.
    public func storedObjectKeys() async -> [String] {
        await state.objects.keys(bucket: state.bucket)
    }

    /// The bytes of a stored file and the content type it was uploaded with; nil when there is none.
    public func storedObject(key: String) async -> (bytes: [UInt8], contentType: String?)? {
        await state.objects.get(bucket: state.bucket, key: key).map {
            (Array($0.bytes.readableBytesView), $0.contentType)
        }
    }

    /// The status a prediction has now (`started`, `succeeded`, `cancelled`); nil when there is none.
    public func predictionStatus(id: String) async -> String? {
        await state.predictions.get(id)?.status(now: Date().timeIntervalSince1970)
    }
}
