import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import CredGate

/// The access log's writer: formats, the query rule, and dropping (never blocking) when it falls behind.
@Suite struct AccessLogFormatTests {
    static func record(target: String = "/api/v1/x/?token=abc", error: String? = nil) -> AccessRecord {
        AccessRecord(
            startedAtNanos: 1_764_650_619_123_456_789, requestID: "0123456789abcdef0123456789abcdef",
            route: "assured-api",
            method: "GET", target: target, status: 200, bytesIn: 0, bytesOut: 42, durationNanos: 1_234_567,
            upstream: "assured", connectNanos: 0, firstByteNanos: 1_000_000, credentials: ["assured_key"],
            cache: nil, error: error, outcome: nil)
    }

    @Test func jsonLinesAreValidJSONWithoutTheQuery() throws {
        let log = AccessLog(format: .json, includeQuery: false, sink: { _ in })
        defer { log.shutdown() }
        var buffer = ByteBuffer()
        log.write(Self.record(target: "/api/v1/\"quoted\"/?token=abc", error: "no-route"), into: &buffer)
        let line = String(buffer: buffer)
        #expect(line.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["path"] as? String == "/api/v1/\"quoted\"/")
        #expect(object["time"] as? String == "2025-12-02T04:43:39.123Z")
        #expect(object["duration_ms"] as? Double == 1.234)
        #expect(object["upstream_first_byte_ms"] as? Double == 1.0)
        #expect(object["error"] as? String == "no-route")
        #expect(object["cache"] is NSNull)
        #expect(!line.contains("token"))
    }

    /// The writer puts bytes straight into the buffer: its strings must be escaped exactly as `JSONString` escapes
    /// them, and its numbers written as the old string formatting wrote them.
    @Test func jsonFieldsAreEscapedAndNumbersWrittenExactly() throws {
        let log = AccessLog(format: .json, includeQuery: true, sink: { _ in })
        defer { log.shutdown() }
        let awkward = "/é\u{1}\u{1F}\t\r\n\"\\ü/✓?q=\u{7F}"
        var r = Self.record(target: awkward, error: "x\"y")
        r.requestID = "id\u{0}\u{1B}"
        r.credentials = ["a", "b\"c", ""]
        r.durationNanos = -5
        r.bytesOut = Int64.max
        r.connectNanos = nil
        r.firstByteNanos = 999
        r.outcome = "client closed"
        var buffer = ByteBuffer()
        log.write(r, into: &buffer)
        let line = String(buffer: buffer)
        #expect(line.contains("\"path\":" + JSONString.quote(awkward) + ","))
        #expect(line.contains("\"request_id\":" + JSONString.quote(r.requestID.description) + ","))
        #expect(line.contains("\"credentials\":[\"a\"," + JSONString.quote("b\"c") + ",\"\"],"))
        #expect(line.contains("\"duration_ms\":0.000,"))
        #expect(line.contains("\"bytes_out\":\(Int64.max),"))
        #expect(line.contains("\"upstream_connect_ms\":null,\"upstream_first_byte_ms\":0.000,"))
        #expect(line.hasSuffix(",\"outcome\":\"client closed\"}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["path"] as? String == awkward)
        #expect(object["error"] as? String == "x\"y")
        func written(_ write: (inout ByteBuffer) -> Void) -> String {
            var buffer = ByteBuffer()
            write(&buffer)
            return String(buffer: buffer)
        }
        func lineWriter(_ write: (inout LineWriter) -> Void) -> String {
            var buffer = ByteBuffer()
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 64) { memory in
                var line = LineWriter(memory.baseAddress!, capacity: 64)
                write(&line)
                return line.count
            }
            return String(buffer: buffer)
        }
        #expect(lineWriter { $0.milliseconds(61_234_567_890) } == "61234.567")
        #expect(lineWriter { $0.decimal(Int64.min) } == "\(Int64.min)")
        #expect(lineWriter { $0.decimal(7, minimumDigits: 3) } == "007")
        #expect(lineWriter { $0.decimal(UInt64.max, minimumDigits: 1) } == "\(UInt64.max)")
        #expect(lineWriter { $0.timestamp(0) } == "1970-01-01T00:00:00.000Z")
        #expect(lineWriter { $0.timestamp(4_102_444_799_999_000_000) } == "2099-12-31T23:59:59.999Z")
        // The writer's timestamps (the time of day formatted once a second) are the same bytes, within a second,
        // across seconds, days and years, and back in time.
        var stamps = AccessTimestamps()
        for nanos: Int64 in [
            1_764_650_619_000_000_000, 1_764_650_619_123_000_000, 1_764_650_619_999_999_999, 1_764_650_620_000_000_001,
            1_764_719_999_999_000_000, 1_764_720_000_000_000_000, 4_102_444_799_999_000_000, 4_102_444_800_001_000_000,
            1_764_650_619_500_000_000, 0, 999_000_000,
        ] {
            #expect(written { stamps.write(nanos, into: &$0) } == lineWriter { $0.timestamp(nanos) }, "\(nanos)")
        }
    }

    /// The bytes reserved for a line (``AccessLog/maxLineBytes(_:)``) hold its longest form: every string all
    /// control bytes (six bytes each escaped), the widest numbers, many credentials, in both formats.
    @Test(arguments: AccessLog.Format.allCases)
    func theLongestLineFitsItsReservedBytes(format: AccessLog.Format) {
        let log = AccessLog(format: format, includeQuery: true, sink: { _ in })
        defer { log.shutdown() }
        let control = String(repeating: "\u{1}", count: 300)
        let r = AccessRecord(
            startedAtNanos: Int64.max, requestID: .text(control), route: control, method: control, target: control,
            status: 999, bytesIn: Int64.min, bytesOut: Int64.min, durationNanos: Int64.max, upstream: control,
            connectNanos: Int64.max, firstByteNanos: Int64.max, credentials: Array(repeating: control, count: 40),
            cache: control, error: control, outcome: control)
        var buffer = ByteBuffer()
        log.write(r, into: &buffer)
        #expect(buffer.readableBytes > (format == .json ? 6 * 300 * 40 : 3 * 300))
        #expect(buffer.readableBytes <= AccessLog.maxLineBytes(r))
        let empty = AccessRecord(
            startedAtNanos: Int64.min, requestID: "", route: nil, method: "", target: "", status: 999,
            bytesIn: Int64.min, bytesOut: Int64.min, durationNanos: Int64.min, upstream: nil, connectNanos: Int64.min,
            firstByteNanos: Int64.min, credentials: [], cache: nil, error: nil, outcome: nil)
        buffer.clear()
        log.write(empty, into: &buffer)
        #expect(buffer.readableBytes <= AccessLog.maxLineBytes(empty))
    }

    /// The fast path's request IDs (bits, their digits written by the writer) read as their text does.
    @Test(arguments: AccessLog.Format.allCases)
    func aRandomRequestIDIsWrittenAsItsText(format: AccessLog.Format) {
        let log = AccessLog(format: format, includeQuery: false, sink: { _ in })
        defer { log.shutdown() }
        let id = RandomRequestID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210)
        #expect(id.text == "0123456789abcdeffedcba9876543210")
        var random = Self.record()
        random.requestID = .random(id)
        var text = Self.record()
        text.requestID = .text(id.text)
        var a = ByteBuffer()
        log.write(random, into: &a)
        var b = ByteBuffer()
        log.write(text, into: &b)
        #expect(String(buffer: a) == String(buffer: b))
        var header = ByteBuffer()
        id.write(into: &header)
        #expect(String(buffer: header) == id.text)
    }

    @Test func textLinesStayOneLine() {
        let log = AccessLog(format: .text, includeQuery: true, sink: { _ in })
        defer { log.shutdown() }
        var buffer = ByteBuffer()
        log.write(Self.record(target: "/a b\r\nX: y"), into: &buffer)
        let line = String(buffer: buffer)
        #expect(
            line
                == "2025-12-02T04:43:39.123Z GET /a%20b%0D%0AX:%20y 200 0 42 1.234ms assured-api 0123456789abcdef0123456789abcdef\n"
        )
    }

    @Test func aWriterThatFallsBehindDropsAndCountsInsteadOfBlocking() throws {
        let gate = DispatchSemaphore(value: 0)
        let entered = NIOLockedValueBox(0)
        let written = NIOLockedValueBox(0)
        let log = AccessLog(
            format: .json, includeQuery: false, maxPending: 4,
            sink: { buffer in
                entered.withLockedValue { $0 += 1 }
                gate.wait()
                // A slow sink: shutdown() must wait for the batch the writer is still writing, not only for the
                // queue to be empty (it once returned there, and the last lines of a run could be lost at exit).
                usleep(50_000)
                written.withLockedValue { $0 += String(buffer: buffer).split(separator: "\n").count }
            })
        log.submit([Self.record()])
        // The writer takes the first record and blocks in the sink.
        for _ in 0..<200 where entered.withLockedValue({ $0 }) == 0 { usleep(5_000) }
        let started = Date()
        for _ in 0..<10 { log.submit([Self.record()]) }
        #expect(Date().timeIntervalSince(started) < 1, "submitting never waits for the writer")
        #expect(log.dropped == 6)
        gate.signal()
        gate.signal()
        log.shutdown()
        #expect(written.withLockedValue { $0 } == 5)
    }
}
