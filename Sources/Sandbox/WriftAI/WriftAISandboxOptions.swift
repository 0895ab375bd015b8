import Logging

/// How a ``WriftAISandboxServer`` listens and what it accepts.
public struct WriftAISandboxOptions: Sendable {
    /// Address to bind. Loopback by default: the sandbox is for tests and demos, never for a network.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks an ephemeral port (read it back from ``WriftAISandboxServer/port``).
    public var port = 0
    /// The only bearer token accepted under `/v1/` (`Authorization: Bearer <token>`).
    public var accessToken: String
    /// How many models `GET /v1/models` pages through (5: three pages at `page_size=2`).
    public var modelCount = 5
    /// Size of every upload part but the last (`part_size` in `POST /v1/uploads`). Small by default so that a
    /// test file of a few hundred KiB already has several parts; the platform's are megabytes.
    public var partSize = 256 * 1024
    /// Largest `size` an upload (or a one-step file URL) may declare; larger ones get 413. Uploads are held in memory.
    public var maxUploadBytes = 256 * 1024 * 1024
    /// Lifetime of the presigned part, upload and download URLs (whole seconds, 1 to 604800).
    /// Can be changed while running (``WriftAISandboxServer/setURLLifetime(_:)`` or `POST /sandbox/urls`).
    public var urlLifetime: Duration = .seconds(3_600)
    /// The bucket completed files are stored in, served under `/sandbox-s3/<bucket>/`.
    public var bucket = "wriftai-sandbox-files"
    /// Access key id named in presigned URLs. Not a secret: real URLs carry it in the clear.
    public var presignAccessKeyID = "AKIAWRIFTAISANDBOX42"
    /// How prediction streams are paced unless changed (``WriftAISandboxServer/setStream(_:)``).
    public var stream = StreamPlan.default
    /// Whether list pages also carry `next_url` and `previous_url` (absolute links), which SDK 0.28 requires and
    /// SDK 0.34 refuses. Off: the current platform's shape. Can be changed while running (``WriftAISandboxServer/setPageURLs(_:)``).
    public var pageURLs = false
    /// Log level of the sandbox and of the Hummingbird server under it. Quiet unless asked.
    public var logLevel: Logger.Level = .warning

    public init(accessToken: String, host: String = "127.0.0.1", port: Int = 0) {
        self.accessToken = accessToken
        self.host = host
        self.port = port
    }
}

extension WriftAISandboxOptions: CustomStringConvertible {
    /// Never shows the token.
    public var description: String {
        "WriftAISandboxOptions(host: \(host), port: \(port), accessToken: <redacted>, modelCount: \(modelCount), "
            + "partSize: \(partSize), maxUploadBytes: \(maxUploadBytes), urlLifetime: \(urlLifetime), bucket: \(bucket), "
            + "stream: \(stream))"
    }
}

/// When a prediction stream's events are sent: an `init` event at once, then one `output` event after each delay,
/// then a `done` event (the SDK reads until `done` or `error`).
public struct StreamPlan: Sendable, Equatable, CustomStringConvertible {
    /// The pause before each `output` event, from the previous event.
    public var delays: [Duration]
    /// The pause between the last `output` and `done`.
    public var finalDelay: Duration
    /// When set, a `: keep-alive` comment is written whenever nothing else was sent for this long (SSE comments,
    /// which the SDK skips), so a client that went away is noticed within that time even in a long pause.
    public var heartbeat: Duration?

    public init(delays: [Duration], finalDelay: Duration = .zero, heartbeat: Duration? = nil) {
        self.delays = delays
        self.finalDelay = finalDelay
        self.heartbeat = heartbeat
    }

    /// `count` outputs, `interval` apart (the first one `interval` after `init`).
    public static func every(_ interval: Duration, count: Int, heartbeat: Duration? = nil) -> StreamPlan {
        StreamPlan(delays: Array(repeating: interval, count: max(0, count)), heartbeat: heartbeat)
    }

    /// Three outputs 100 ms apart: quick, but visibly spaced.
    public static let `default` = StreamPlan.every(.milliseconds(100), count: 3)

    /// From `init` to `done`.
    public var totalDuration: Duration {
        delays.reduce(finalDelay, +)
    }

    public var description: String {
        "StreamPlan(delays: \(delays.map(\.wholeMilliseconds)) ms, final: \(finalDelay.wholeMilliseconds) ms, heartbeat: \(heartbeat.map { "\($0.wholeMilliseconds) ms" } ?? "off"))"
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var wholeMilliseconds: Int {
        let parts = components
        return Int(parts.seconds) * 1000 + Int(parts.attoseconds / 1_000_000_000_000_000)
    }
}
