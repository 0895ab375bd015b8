import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// One finished request, as the access log records it. Plain values taken on the event loop (no formatting
/// there); the writer thread turns them into a line. Never a header value, body or query string (queries carry
/// tokens) unless `log.query` allows the query: so no secret can reach the log by construction.
struct AccessRecord: Sendable {
    /// Wall-clock time the request started, in nanoseconds since 1970.
    var startedAtNanos: Int64
    var requestID: RequestIDText
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

/// A request ID as a record holds it: the client's or the full path's text, or the bits of one the fast path made
/// (their digits written by the writer thread: no `String` per request on the event loop).
enum RequestIDText: Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    case text(String)
    case random(RandomRequestID)

    init(stringLiteral value: String) { self = .text(value) }

    var description: String {
        switch self {
        case .text(let text): text
        case .random(let id): id.text
        }
    }

    var byteCount: Int {
        switch self {
        case .text(let text): text.utf8.count
        case .random: 32
        }
    }
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
                for record in batch {
                    write(record, into: &buffer, stamps: &stamps)
                    // Out every 60 KiB: the batch of a writer that fell behind (up to `maxPending` records) never
                    // grows the buffer to megabytes.
                    if buffer.readableBytes >= 60 * 1024 {
                        sink(buffer)
                        buffer.clear()
                    }
                }
                if buffer.readableBytes > 0 { sink(buffer) }
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
        let capacity = Self.maxLineBytes(r)
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { memory in
            var line = LineWriter(memory.baseAddress!, capacity: capacity)
            write(r, into: &line, stamps: &stamps)
            return line.count
        }
    }

    /// The most bytes `r`'s line can take: the fixed text and numbers in 640, and each string's bytes six times
    /// over (a control byte escaped as `\u00XX`; a text line's `%XX` is three).
    static func maxLineBytes(_ r: AccessRecord) -> Int {
        var strings = r.requestID.byteCount + r.method.utf8.count + r.target.utf8.count
        strings += (r.route?.utf8.count ?? 0) + (r.upstream?.utf8.count ?? 0) + (r.cache?.utf8.count ?? 0)
        strings += (r.error?.utf8.count ?? 0) + (r.outcome?.utf8.count ?? 0)
        for name in r.credentials { strings += name.utf8.count + 3 }
        return 640 + 6 * strings
    }

    private func write(_ r: AccessRecord, into out: inout LineWriter, stamps: inout AccessTimestamps) {
        let target = includeQuery ? r.target[...] : ProxyHandler.path(of: r.target)
        switch format {
        case .text:
            stamps.write(r.startedAtNanos, into: &out)
            out.byte(UInt8(ascii: " "))
            out.string(r.method)
            out.byte(UInt8(ascii: " "))
            out.printable(target)
            out.byte(UInt8(ascii: " "))
            out.decimal(Int64(r.status))
            out.byte(UInt8(ascii: " "))
            out.decimal(r.bytesIn)
            out.byte(UInt8(ascii: " "))
            out.decimal(r.bytesOut)
            out.byte(UInt8(ascii: " "))
            out.milliseconds(r.durationNanos)
            out.literal("ms ")
            out.string(r.route ?? "-")
            out.byte(UInt8(ascii: " "))
            out.requestID(r.requestID, quoted: false)
            if let error = r.error {
                out.literal(" error=")
                out.string(error)
            }
            if let cache = r.cache {
                out.literal(" cache=")
                out.string(cache)
            }
            if let outcome = r.outcome {
                out.literal(" outcome=\"")
                out.string(outcome)
                out.byte(UInt8(ascii: "\""))
            }
            out.byte(UInt8(ascii: "\n"))
        case .json:
            out.literal("{\"time\":\"")
            stamps.write(r.startedAtNanos, into: &out)
            out.literal("\",\"request_id\":")
            out.requestID(r.requestID, quoted: true)
            out.literal(",\"route\":")
            out.jsonString(r.route)
            out.literal(",\"method\":")
            out.jsonString(r.method)
            out.literal(",\"path\":")
            out.jsonString(target)
            out.literal(",\"status\":")
            out.decimal(Int64(r.status))
            out.literal(",\"bytes_in\":")
            out.decimal(r.bytesIn)
            out.literal(",\"bytes_out\":")
            out.decimal(r.bytesOut)
            out.literal(",\"duration_ms\":")
            out.milliseconds(r.durationNanos)
            out.literal(",\"upstream\":")
            out.jsonString(r.upstream)
            out.literal(",\"upstream_connect_ms\":")
            if let connect = r.connectNanos { out.milliseconds(connect) } else { out.literal("null") }
            out.literal(",\"upstream_first_byte_ms\":")
            if let first = r.firstByteNanos { out.milliseconds(first) } else { out.literal("null") }
            out.literal(",\"credentials\":[")
            for (i, name) in r.credentials.enumerated() {
                if i > 0 { out.byte(UInt8(ascii: ",")) }
                out.jsonString(name)
            }
            out.literal("],\"cache\":")
            out.jsonString(r.cache)
            out.literal(",\"error\":")
            out.jsonString(r.error)
            if let outcome = r.outcome {
                out.literal(",\"outcome\":")
                out.jsonString(outcome)
            }
            out.literal("}\n")
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
/// written for each. The same bytes as ``LineWriter/timestamp(_:)``.
struct AccessTimestamps {
    private var second = Int64.min
    /// `2026-12-02T04:43:39.` for ``second``.
    private var prefix: [UInt8] = []

    mutating func write(_ nanos: Int64, into out: inout LineWriter) {
        let second = nanos / 1_000_000_000 // as timestamp(_:) reads it
        if second != self.second {
            self.second = second
            prefix = [UInt8](unsafeUninitializedCapacity: LineWriter.timestampBytes) { memory, count in
                var line = LineWriter(memory.baseAddress!, capacity: memory.count)
                line.timestamp(second * 1_000_000_000)
                count = line.count - 4 // "000Z"
            }
        }
        prefix.withUnsafeBytes { out.bytes($0) }
        out.decimal(UInt64(max(0, (nanos / 1_000_000) % 1000)), minimumDigits: 3)
        out.byte(UInt8(ascii: "Z"))
    }

    /// ``write(_:into:)-(_,LineWriter)`` into a buffer.
    mutating func write(_ nanos: Int64, into out: inout ByteBuffer) {
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { memory in
            var line = LineWriter(memory.baseAddress!, capacity: 32)
            write(nanos, into: &line)
            return line.count
        }
    }
}

/// The access log writer's line: bytes stored at a cursor into memory reserved for the line's longest form
/// (``AccessLog/maxLineBytes(_:)``), each write checked against that capacity. A line is some forty pieces; as
/// `ByteBuffer` writes, each checked the buffer's uniqueness and capacity and moved its indices, a quarter of the
/// writer thread's CPU. Hand-written because no formatting library writes into reserved bytes without a `String`.
struct LineWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private(set) var count = 0

    init(_ base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    mutating func byte(_ byte: UInt8) {
        precondition(count < capacity, "access log line over its reserved bytes")
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    mutating func bytes(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(bytes.count <= capacity - count, "access log line over its reserved bytes")
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func literal(_ text: StaticString) {
        bytes(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func string(_ text: some StringProtocol) {
        if text.utf8.withContiguousStorageIfAvailable({ bytes(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = String(text)
            copy.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
        }
    }

    /// A request ID: text as it is (escaped when `quoted`: a JSON string), or the digits of the bits.
    mutating func requestID(_ id: RequestIDText, quoted: Bool) {
        switch id {
        case .text(let text):
            if quoted { jsonString(text) } else { string(text) }
        case .random(let bits):
            if quoted { byte(UInt8(ascii: "\"")) }
            precondition(32 <= capacity - count, "access log line over its reserved bytes")
            bits.write(into: base + count)
            count += 32
            if quoted { byte(UInt8(ascii: "\"")) }
        }
    }

    /// A non-negative or negative integer in decimal.
    mutating func decimal(_ value: Int64) {
        if value < 0 {
            byte(UInt8(ascii: "-"))
            decimal(value == .min ? UInt64(Int64.max) + 1 : UInt64(-value), minimumDigits: 1)
        } else {
            decimal(UInt64(value), minimumDigits: 1)
        }
    }

    /// `value` in decimal with at least `minimumDigits` digits (leading zeros).
    mutating func decimal(_ value: UInt64, minimumDigits: Int) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        let n = max(digits, minimumDigits)
        precondition(n <= capacity - count, "access log line over its reserved bytes")
        var v = value
        for i in stride(from: count + n - 1, through: count, by: -1) {
            base.storeBytes(of: UInt8(ascii: "0") + UInt8(v % 10), toByteOffset: i, as: UInt8.self)
            v /= 10
        }
        count += n
    }

    /// The bytes of a ``timestamp(_:)`` (years up to 9999).
    static let timestampBytes = 24

    /// RFC 3339 in UTC with milliseconds: `2026-12-02T04:43:39.123Z`.
    mutating func timestamp(_ nanos: Int64) {
        var seconds = time_t(nanos / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        decimal(UInt64(max(0, parts.tm_year + 1900)), minimumDigits: 4)
        byte(UInt8(ascii: "-"))
        decimal(UInt64(parts.tm_mon + 1), minimumDigits: 2)
        byte(UInt8(ascii: "-"))
        decimal(UInt64(parts.tm_mday), minimumDigits: 2)
        byte(UInt8(ascii: "T"))
        decimal(UInt64(parts.tm_hour), minimumDigits: 2)
        byte(UInt8(ascii: ":"))
        decimal(UInt64(parts.tm_min), minimumDigits: 2)
        byte(UInt8(ascii: ":"))
        decimal(UInt64(parts.tm_sec), minimumDigits: 2)
        byte(UInt8(ascii: "."))
        decimal(UInt64(max(0, (nanos / 1_000_000) % 1000)), minimumDigits: 3)
        byte(UInt8(ascii: "Z"))
    }

    /// Milliseconds with three decimals (`1.234`) from nanoseconds; negative durations are written as 0.
    mutating func milliseconds(_ nanos: Int64) {
        let micros = UInt64(max(0, nanos) / 1000)
        decimal(micros / 1000, minimumDigits: 1)
        byte(UInt8(ascii: "."))
        decimal(micros % 1000, minimumDigits: 3)
    }

    /// A JSON string (quoted and escaped as ``JSONString/escape(_:)`` does), or `null`. A Swift string's UTF-8 is
    /// valid, so escaping its bytes below 0x20, `"` and `\` is escaping its scalars.
    mutating func jsonString(_ text: (some StringProtocol)?) {
        guard let text else { return literal("null") }
        byte(UInt8(ascii: "\""))
        // A native string's or substring's bytes are read in place; anything else is copied once.
        if text.utf8.withContiguousStorageIfAvailable({ jsonEscaped($0) }) == nil {
            var copy = String(text)
            copy.withUTF8 { jsonEscaped($0) }
        }
        byte(UInt8(ascii: "\""))
    }

    /// `text` escaped for the inside of a JSON string: runs of bytes that need no escape are written whole (the
    /// usual field is one run).
    private mutating func jsonEscaped(_ text: UnsafeBufferPointer<UInt8>) {
        let raw = UnsafeRawBufferPointer(text)
        var runStart = 0
        for (i, byte) in text.enumerated()
        where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            bytes(UnsafeRawBufferPointer(rebasing: raw[runStart..<i]))
            runStart = i + 1
            switch byte {
            case UInt8(ascii: "\""): literal("\\\"")
            case UInt8(ascii: "\\"): literal("\\\\")
            case UInt8(ascii: "\n"): literal("\\n")
            case UInt8(ascii: "\r"): literal("\\r")
            case UInt8(ascii: "\t"): literal("\\t")
            default:
                literal("\\u00")
                self.byte(Self.hexDigits[Int(byte >> 4)])
                self.byte(Self.hexDigits[Int(byte & 0xF)])
            }
        }
        bytes(UnsafeRawBufferPointer(rebasing: raw[runStart...]))
    }

    /// A path for a text line: bytes up to the space and DEL written `%XX`, so a line stays one line.
    mutating func printable(_ text: Substring) {
        for byte in text.utf8 {
            if byte <= 0x20 || byte == 0x7F {
                self.byte(UInt8(ascii: "%"))
                self.byte(Self.upperHexDigits[Int(byte >> 4)])
                self.byte(Self.upperHexDigits[Int(byte & 0xF)])
            } else {
                self.byte(byte)
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
}
