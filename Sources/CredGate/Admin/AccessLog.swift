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
        /// Set by the writer thread as it ends, after its last batch reached the sink.
        var finished = false
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
        // Wait (bounded, so a sink stuck on a full pipe cannot hold the exit) until the writer has handed its last
        // batch to the sink. An empty `pending` is not enough: the writer empties it before it writes the batch, and
        // the process could end between the two with those lines unwritten.
        for _ in 0..<200 where !state.withLockedValue({ $0.finished }) { usleep(5_000) }
    }

    private func run() {
        var buffer = ByteBufferAllocator().buffer(capacity: 64 * 1024)
        var stamps = AccessTimestamps()
        while true {
            condition.lock(whenValue: 1)
            condition.unlock(withValue: 0)
            let (batch, stopping) = state.withLockedValue { s -> ([AccessRecord], Bool) in
                defer { s.pending.removeAll(keepingCapacity: true) }
                return (s.pending, s.stopping)
            }
            if !batch.isEmpty {
                buffer.clear()
                for record in batch { write(record, into: &buffer, stamps: &stamps) }
                sink(buffer)
                state.withLockedValue { $0.written += batch.count }
            }
            if stopping {
                let done = state.withLockedValue { s -> Bool in
                    if s.pending.isEmpty { s.finished = true }
                    return s.finished
                }
                if done { return }
            }
        }
    }

    // MARK: - Formatting (on the writer thread)

    /// One line for `r`, written straight into `out`: literal pieces, digits and escaped strings as bytes, so a line
    /// costs no intermediate `String` (the writer formats every request's line; a `String` per field was most of
    /// its allocations).
    func write(_ r: AccessRecord, into out: inout ByteBuffer) {
        var stamps = AccessTimestamps()
        write(r, into: &out, stamps: &stamps)
    }

    /// ``write(_:into:)`` with the writer's timestamps, whose date and time of day are formatted once a second.
    func write(_ r: AccessRecord, into out: inout ByteBuffer, stamps: inout AccessTimestamps) {
        let target = includeQuery ? r.target[...] : ProxyHandler.path(of: r.target)
        switch format {
        case .text:
            stamps.write(r.startedAtNanos, into: &out)
            out.writeInteger(UInt8(ascii: " "))
            out.writeString(r.method)
            out.writeInteger(UInt8(ascii: " "))
            out.writePrintable(target)
            out.writeInteger(UInt8(ascii: " "))
            out.writeDecimal(Int64(r.status))
            out.writeInteger(UInt8(ascii: " "))
            out.writeDecimal(r.bytesIn)
            out.writeInteger(UInt8(ascii: " "))
            out.writeDecimal(r.bytesOut)
            out.writeInteger(UInt8(ascii: " "))
            out.writeMilliseconds(r.durationNanos)
            out.writeStaticString("ms ")
            out.writeString(r.route ?? "-")
            out.writeInteger(UInt8(ascii: " "))
            out.writeString(r.requestID)
            if let error = r.error {
                out.writeStaticString(" error=")
                out.writeString(error)
            }
            if let cache = r.cache {
                out.writeStaticString(" cache=")
                out.writeString(cache)
            }
            if let outcome = r.outcome {
                out.writeStaticString(" outcome=\"")
                out.writeString(outcome)
                out.writeInteger(UInt8(ascii: "\""))
            }
            out.writeInteger(UInt8(ascii: "\n"))
        case .json:
            out.writeStaticString("{\"time\":\"")
            stamps.write(r.startedAtNanos, into: &out)
            out.writeStaticString("\",\"request_id\":")
            out.writeJSONString(r.requestID)
            out.writeStaticString(",\"route\":")
            out.writeJSONString(r.route)
            out.writeStaticString(",\"method\":")
            out.writeJSONString(r.method)
            out.writeStaticString(",\"path\":")
            out.writeJSONString(target)
            out.writeStaticString(",\"status\":")
            out.writeDecimal(Int64(r.status))
            out.writeStaticString(",\"bytes_in\":")
            out.writeDecimal(r.bytesIn)
            out.writeStaticString(",\"bytes_out\":")
            out.writeDecimal(r.bytesOut)
            out.writeStaticString(",\"duration_ms\":")
            out.writeMilliseconds(r.durationNanos)
            out.writeStaticString(",\"upstream\":")
            out.writeJSONString(r.upstream)
            out.writeStaticString(",\"upstream_connect_ms\":")
            if let connect = r.connectNanos { out.writeMilliseconds(connect) } else { out.writeStaticString("null") }
            out.writeStaticString(",\"upstream_first_byte_ms\":")
            if let first = r.firstByteNanos { out.writeMilliseconds(first) } else { out.writeStaticString("null") }
            out.writeStaticString(",\"credentials\":[")
            for (i, name) in r.credentials.enumerated() {
                if i > 0 { out.writeInteger(UInt8(ascii: ",")) }
                out.writeJSONString(name)
            }
            out.writeStaticString("],\"cache\":")
            out.writeJSONString(r.cache)
            out.writeStaticString(",\"error\":")
            out.writeJSONString(r.error)
            if let outcome = r.outcome {
                out.writeStaticString(",\"outcome\":")
                out.writeJSONString(outcome)
            }
            out.writeStaticString("}\n")
        }
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

    /// Consumed: the record moves into the batch (a copy would retain and release each of its strings).
    func append(_ record: consuming AccessRecord) {
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

/// The access log writer's timestamps: records of the same second share their date and time of day, formatted
/// once (`gmtime_r` and a dozen small writes per record were a fifth of the writer's CPU); the milliseconds are
/// written for each. The same bytes as ``ByteBuffer/writeTimestamp(_:)``.
struct AccessTimestamps {
    private var second = Int64.min
    /// `2026-12-02T04:43:39.` for ``second``.
    private var prefix = ByteBuffer()

    mutating func write(_ nanos: Int64, into out: inout ByteBuffer) {
        let second = nanos / 1_000_000_000 // as writeTimestamp reads it
        if second != self.second {
            self.second = second
            prefix.clear()
            prefix.writeTimestamp(second * 1_000_000_000)
            prefix.moveWriterIndex(to: prefix.writerIndex - 4) // "000Z"
        }
        out.writeImmutableBuffer(prefix)
        out.writeDecimal(UInt64(max(0, (nanos / 1_000_000) % 1000)), minimumDigits: 3)
        out.writeInteger(UInt8(ascii: "Z"))
    }
}

// The access log's byte writers (formatting on the writer thread without intermediate strings).
extension ByteBuffer {
    /// A non-negative or negative integer in decimal, digits written from a stack buffer.
    fileprivate mutating func writeDecimal(_ value: Int64) {
        if value < 0 {
            writeInteger(UInt8(ascii: "-"))
            writeDecimal(value == .min ? UInt64(Int64.max) + 1 : UInt64(-value), minimumDigits: 1)
        } else {
            writeDecimal(UInt64(value), minimumDigits: 1)
        }
    }

    /// `value` in decimal with at least `minimumDigits` digits (leading zeros).
    fileprivate mutating func writeDecimal(_ value: UInt64, minimumDigits: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var v = value
            var n = 0
            repeat {
                digits[19 - n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0 || n < minimumDigits
            writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(digits)[(20 - n)...]))
        }
    }

    /// Milliseconds with three decimals (`1.234`) from nanoseconds; negative durations are written as 0.
    mutating func writeMilliseconds(_ nanos: Int64) {
        let micros = UInt64(max(0, nanos) / 1000)
        writeDecimal(micros / 1000, minimumDigits: 1)
        writeInteger(UInt8(ascii: "."))
        writeDecimal(micros % 1000, minimumDigits: 3)
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-02T04:43:39.123Z`.
    mutating func writeTimestamp(_ nanos: Int64) {
        var seconds = time_t(nanos / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        writeDecimal(UInt64(max(0, parts.tm_year + 1900)), minimumDigits: 4)
        writeInteger(UInt8(ascii: "-"))
        writeDecimal(UInt64(parts.tm_mon + 1), minimumDigits: 2)
        writeInteger(UInt8(ascii: "-"))
        writeDecimal(UInt64(parts.tm_mday), minimumDigits: 2)
        writeInteger(UInt8(ascii: "T"))
        writeDecimal(UInt64(parts.tm_hour), minimumDigits: 2)
        writeInteger(UInt8(ascii: ":"))
        writeDecimal(UInt64(parts.tm_min), minimumDigits: 2)
        writeInteger(UInt8(ascii: ":"))
        writeDecimal(UInt64(parts.tm_sec), minimumDigits: 2)
        writeInteger(UInt8(ascii: "."))
        writeDecimal(UInt64(max(0, (nanos / 1_000_000) % 1000)), minimumDigits: 3)
        writeInteger(UInt8(ascii: "Z"))
    }

    /// A JSON string (quoted and escaped as ``JSONString/escape(_:)`` does), or `null`. A Swift string's UTF-8 is
    /// valid, so escaping its bytes below 0x20, `"` and `\` is escaping its scalars.
    fileprivate mutating func writeJSONString(_ s: (some StringProtocol)?) {
        guard let s else {
            writeStaticString("null")
            return
        }
        writeInteger(UInt8(ascii: "\""))
        // A native string's or substring's bytes are read in place; anything else is copied once.
        if s.utf8.withContiguousStorageIfAvailable({ writeJSONEscaped($0) }) == nil {
            var copy = String(s)
            copy.withUTF8 { writeJSONEscaped($0) }
        }
        writeInteger(UInt8(ascii: "\""))
    }

    /// `bytes` escaped for the inside of a JSON string: runs of bytes that need no escape are written whole (the
    /// usual field is one run).
    private mutating func writeJSONEscaped(_ bytes: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        for (i, byte) in bytes.enumerated()
        where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[runStart..<i]))
            runStart = i + 1
            switch byte {
            case UInt8(ascii: "\""): writeStaticString("\\\"")
            case UInt8(ascii: "\\"): writeStaticString("\\\\")
            case UInt8(ascii: "\n"): writeStaticString("\\n")
            case UInt8(ascii: "\r"): writeStaticString("\\r")
            case UInt8(ascii: "\t"): writeStaticString("\\t")
            default:
                writeStaticString("\\u00")
                writeInteger(Self.hexDigits[Int(byte >> 4)])
                writeInteger(Self.hexDigits[Int(byte & 0xF)])
            }
        }
        writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[runStart...]))
    }

    /// A path for a text line: bytes up to the space and DEL written `%XX`, so a line stays one line.
    fileprivate mutating func writePrintable(_ s: Substring) {
        for byte in s.utf8 {
            if byte <= 0x20 || byte == 0x7F {
                writeInteger(UInt8(ascii: "%"))
                writeInteger(Self.upperHexDigits[Int(byte >> 4)])
                writeInteger(Self.upperHexDigits[Int(byte & 0xF)])
            } else {
                writeInteger(byte)
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
}
