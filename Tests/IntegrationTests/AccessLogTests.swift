import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import CredGate

/// Issue 12 item 1: one record per request, written off the event loop, JSON or text, never a query string or a
/// secret by default.
@Suite struct AccessLogTests {
    /// The shipped profile against the sandbox, its access log captured.
    static func withGateway(
        log: (inout LogConfig) -> Void = { _ in },
        _ body: (SessionTests.Fixture, @Sendable () -> [String]) async throws -> Void
    ) async throws {
        let lines = NIOLockedValueBox<[String]>([])
        let sink: @Sendable (ByteBuffer) -> Void = { buffer in
            lines.withLockedValue { $0 += String(buffer: buffer).split(separator: "\n").map(String.init) }
        }
        try await SessionTests.withGateway(configure: { log(&$0.log) }, accessLogSink: sink) { f in
            try await body(f, { lines.withLockedValue { $0 } })
        }
    }

    static func records(_ lines: [String]) throws -> [[String: Any]] {
        try lines.map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any], "\(line)")
        }
    }

    /// Waits for the writer (it flushes every 100 ms).
    static func eventually(_ lines: @Sendable () -> [String], count: Int) async throws -> [String] {
        for _ in 0..<50 where lines().count < count { try await Task.sleep(for: .milliseconds(100)) }
        return lines()
    }

    @Test func jsonRecordsCarryTheRequestAndNoQueryOrSecret() async throws {
        try await Self.withGateway(log: { $0.format = .json }) { f, lines in
            _ = try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1&token=sekrit-in-query")
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            _ = try await send(.GET, f.base + "/nowhere")
            let records = try Self.records(try await Self.eventually(lines, count: 3))
            let list = try #require(records.first { ($0["path"] as? String) == "/api/v1/users/providers-list/" })
            #expect(list["route"] as? String == "assured-api")
            #expect(list["method"] as? String == "GET")
            #expect(list["status"] as? Int == 200)
            #expect(list["upstream"] as? String == "assured")
            #expect(list["credentials"] as? [String] == ["assured_key"])
            #expect((list["bytes_out"] as? Int ?? 0) > 0)
            #expect(list["duration_ms"] is Double || list["duration_ms"] is Int)
            #expect(list["upstream_first_byte_ms"] != nil && !(list["upstream_first_byte_ms"] is NSNull))
            #expect((list["request_id"] as? String)?.count == 32)
            #expect((list["time"] as? String)?.hasSuffix("Z") == true)
            let documents = try #require(
                records.first { ($0["path"] as? String) == "/api/v1/users/provider-documents/" })
            #expect(documents["credentials"] as? [String] == ["assured_key", "assured_session"])
            let missing = try #require(records.first { ($0["path"] as? String) == "/nowhere" })
            #expect(missing["status"] as? Int == 404)
            #expect(missing["error"] as? String == "no-route")
            let all = lines().joined(separator: "\n")
            #expect(!all.contains("sekrit-in-query") && !all.contains("?"))
            #expect(!all.contains(SessionTests.key) && !all.contains(SessionTests.password))
        }
    }

    @Test func cacheOutcomesAreRecorded() async throws {
        try await Self.withGateway(log: { $0.format = .json }) { f, lines in
            for _ in 0..<2 {
                let r = try await FilesTests.presign(f, "s3://assured-sandbox-files/access-log.pdf")
                #expect(r.status == .ok, "\(r.text)")
            }
            let records = try Self.records(try await Self.eventually(lines, count: 2))
            #expect(records.compactMap { $0["cache"] as? String } == ["MISS", "HIT"], "\(records)")
        }
    }

    @Test func textLinesAndTheQueryWhenAllowed() async throws {
        try await Self.withGateway(log: {
            $0.format = .text
            $0.query = true
        }) { f, lines in
            _ = try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1")
            let text = try await Self.eventually(lines, count: 1)
            let line = try #require(text.first)
            #expect(line.contains(" GET /api/v1/users/providers-list/?limit=1 200 "), "\(line)")
            #expect(line.contains("ms assured-api "), "\(line)")
        }
    }

    @Test func offMeansOff() async throws {
        try await Self.withGateway(log: { $0.access = false }) { f, lines in
            _ = try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1")
            try await Task.sleep(for: .milliseconds(400))
            #expect(lines().isEmpty)
        }
    }
}
