import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// One finished request, as the access log records it. Plain values taken on the event loop (no formatting
/// there); the writer thread turns them into a line. Never a header value, body or query string (queries carry
/// tokens) unless `log.query` allows the query: so no secret can reach the log by construction.
struct AccessRecord: Sendable {
    /// Wall-clock time the request started, in nanoseconds since 1970.
    var startedAtNanos: Int64
    var requestID: String
    var route: String?
    var method: String
    /// The request target as the client sent it; the query is cut off by the writer unless allowed.
    var target: String
    var status: UInt
    var bytesIn: Int64
    var bytesOut: Int64
    var durationNanos: Int64
    var upstream: String?
    /// From sending the request to having an upstream connection (0 for a pooled one), and to the answer's head.
    var connectNanos: Int64?
    var firstByteNanos: Int64?
    /// The route's credential names (never values).
    var credentials: [String]
    /// `HIT` or `MISS` when a cache answered or was consulted.
    var cache: String?
    /// `X-Credgate-Error` of an answer credgate made itself.
    var error: String?
    /// How the exchange ended when not normally (`client closed`, `upstream closed mid-response`).
    var outcome: String?
}

/// The access log: records gathered per event loop without a lock, handed over in batches to one writer thread
/// that formats and writes them, so a request never waits on a file or a terminal. When the writer falls behind
/// by more than `maxPending` records, new ones are dropped and counted (``dropped``), never blocking (as Envoy's
/// access log flushes on its own thread; nginx's `access_log ... buffer=`).
public final class AccessLog: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        /// One JSON object per line.
        case json
        /// `time method path status bytes_in bytes_out ms route request_id`, for a terminal.
        case text
    }

    let format: Format
    let includeQuery: Bool
    let maxPending: Int
    private let sink: @Sendable (ByteBuffer) -> Void
    private let state = NIOLockedValueBox(State())
    private let condition = ConditionLock(value: 0)

    private struct State {
        var pending: [AccessRecord] = []
        var dropped = 0
        var written = 0
        var stopping = false
    }

    /// - Parameter sink: where formatted batches go (standard output by default).
    init(
        format: Format, includeQuery: Bool, maxPending: Int = 8192,
        sink: @escaping @Sendable (ByteBuffer) -> Void = AccessLog.standardOutput
    ) {
        self.format = format
        self.includeQuery = includeQuery
        self.maxPending = maxPending
        self.sink = sink
        // One writer thread for the process's access log; it ends at ``shutdown()``.
        let thread = Thread { [self] in self.run() }
        thread.name = "credgate-access-log"
        thread.start()
    }

    /// Records dropped because the writer fell behind.
    var dropped: Int { state.withLockedValue { $0.dropped } }
    /// Records written.
    var written: Int { state.withLockedValue { $0.written } }

    /// Takes a batch from an event loop's buffer (one lock per batch, not per request).
    func submit(_ batch: [AccessRecord]) {
        guard !batch.isEmpty else { return }
        let accepted = state.withLockedValue { s -> Bool in
            let room = maxPending - s.pending.count
            if room <= 0 {
                s.dropped += batch.count
                return false
            }
            if batch.count > room {
                s.dropped += batch.count - room
                s.pending.append(contentsOf: batch.prefix(room))
            } else {
                s.pending.append(contentsOf: batch)
            }
            return true
        }
        if accepted {
            condition.lock()
            condition.unlock(withValue: 1)
        }
    }

    /// Writes what is pending and stops the writer thread.
    func shutdown() {
        state.withLockedValue { $0.stopping = true }
        condition.lock()
        condition.unlock(withValue: 1)
        // Wait (bounded) for the writer to drain.
        for _ in 0..<200 where state.withLockedValue({ !$0.pending.isEmpty }) { usleep(5_000) }
    }

    private func run() {
        var buffer = ByteBufferAllocator().buffer(capacity: 64 * 1024)
        while true {
            condition.lock(whenValue: 1)
            condition.unlock(withValue: 0)
            let (batch, stopping) = state.withLockedValue { s -> ([AccessRecord], Bool) in
                defer { s.pending.removeAll(keepingCapacity: true) }
                return (s.pending, s.stopping)
            }
            if !batch.isEmpty {
                buffer.clear()
                for record in batch { write(record, into: &buffer) }
                sink(buffer)
                state.withLockedValue { $0.written += batch.count }
            }
            if stopping && state.withLockedValue({ $0.pending.isEmpty }) { return }
        }
    }

    // MARK: - Formatting (on the writer thread)

    func write(_ r: AccessRecord, into out: inout ByteBuffer) {
        let target = includeQuery ? r.target[...] : ProxyHandler.path(of: r.target)
        switch format {
        case .text:
            out.writeString(Self.timestamp(r.startedAtNanos))
            out.writeString(" \(r.method) \(Self.printable(target)) \(r.status) \(r.bytesIn) \(r.bytesOut) ")
            out.writeString(Self.milliseconds(r.durationNanos))
            out.writeString("ms \(r.route ?? "-") \(r.requestID)")
            if let error = r.error { out.writeString(" error=\(error)") }
            if let cache = r.cache { out.writeString(" cache=\(cache)") }
            if let outcome = r.outcome { out.writeString(" outcome=\"\(outcome)\"") }
            out.writeString("\n")
        case .json:
            out.writeString("{\"time\":\"\(Self.timestamp(r.startedAtNanos))\",\"request_id\":")
            out.writeString(JSONString.quote(r.requestID))
            out.writeString(",\"route\":" + (r.route.map(JSONString.quote) ?? "null"))
            out.writeString(",\"method\":" + JSONString.quote(r.method))
            out.writeString(",\"path\":" + JSONString.quote(String(target)))
            out.writeString(",\"status\":\(r.status),\"bytes_in\":\(r.bytesIn),\"bytes_out\":\(r.bytesOut)")
            out.writeString(",\"duration_ms\":" + Self.milliseconds(r.durationNanos))
            out.writeString(",\"upstream\":" + (r.upstream.map(JSONString.quote) ?? "null"))
            out.writeString(",\"upstream_connect_ms\":" + (r.connectNanos.map(Self.milliseconds) ?? "null"))
            out.writeString(",\"upstream_first_byte_ms\":" + (r.firstByteNanos.map(Self.milliseconds) ?? "null"))
            out.writeString(",\"credentials\":[" + r.credentials.map(JSONString.quote).joined(separator: ",") + "]")
            out.writeString(",\"cache\":" + (r.cache.map(JSONString.quote) ?? "null"))
            out.writeString(",\"error\":" + (r.error.map(JSONString.quote) ?? "null"))
            if let outcome = r.outcome { out.writeString(",\"outcome\":" + JSONString.quote(outcome)) }
            out.writeString("}\n")
        }
    }

    /// A path for a text line: control characters and spaces escaped, so a line stays one line.
    static func printable(_ s: Substring) -> String {
        guard s.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return String(s) }
        var out = ""
        for scalar in s.unicodeScalars {
            if scalar.value <= 0x20 || scalar.value == 0x7F {
                out += String(format: "%%%02X", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `1.234` (milliseconds, three decimals).
    static func milliseconds(_ nanos: Int64) -> String {
        let micros = max(0, nanos) / 1000
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-02T04:43:39.123Z`.
    static func timestamp(_ nanos: Int64) -> String {
        var seconds = time_t(nanos / 1_000_000_000)
        let millis = Int((nanos / 1_000_000) % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)Z"
    }

    /// Writes a batch to standard output with `write(2)`, whole, retrying on short writes.
    static let standardOutput: @Sendable (ByteBuffer) -> Void = { buffer in
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Foundation.write(1, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }
}

/// One event loop's share of the access log: records appended with no lock (the loop owns it) and handed to the
/// writer every 100 ms or every 256 records, whichever comes first.
final class AccessLogBuffer {
    private let log: AccessLog
    private let eventLoop: any EventLoop
    private var records: [AccessRecord] = []
    private var flushTask: RepeatedTask?
    /// Wall-clock nanoseconds at the event loop clock's zero: a start time becomes wall time with one addition,
    /// no clock read per request.
    private let wallBase: Int64

    init(log: AccessLog, eventLoop: any EventLoop) {
        self.log = log
        self.eventLoop = eventLoop
        self.wallBase = Int64(Date().timeIntervalSince1970 * 1e9) - Int64(NIODeadline.now().uptimeNanoseconds)
        records.reserveCapacity(256)
    }

    func wallNanos(_ deadline: NIODeadline) -> Int64 { wallBase + Int64(deadline.uptimeNanoseconds) }

    func start() {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        flushTask = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { _ in
            bound.value.flush()
        }
    }

    func append(_ record: AccessRecord) {
        records.append(record)
        if records.count >= 256 { flush() }
    }

    func flush() {
        guard !records.isEmpty else { return }
        let batch = records
        records.removeAll(keepingCapacity: true)
        log.submit(batch)
    }

    func stop() {
        flushTask?.cancel()
        flush()
    }
}
