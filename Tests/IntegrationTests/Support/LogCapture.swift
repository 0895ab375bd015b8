import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Collects every log line (message and metadata) so tests can search them for secrets.
final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }

    func logger(label: String = "capture") -> Logger {
        Logger(label: label) { _ in Handler(capture: self) }
    }

    fileprivate func append(_ line: String) { lines.withLockedValue { $0.append(line) } }

    /// Takes the access log's batches (one line each) into the same capture.
    var accessSink: @Sendable (ByteBuffer) -> Void {
        { [self] buffer in
            for line in String(buffer: buffer).split(separator: "\n") { append("access " + line) }
        }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(
            level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
            function: String, line: UInt
        ) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }
            capture.append("\(level) \(message) \(all.map { "\($0)=\($1)" }.joined(separator: " "))")
        }
    }
}
