import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// Drives one filter the way the transport does, with no channel and no socket (as Envoy tests a filter with
/// mocked callbacks): a ``FilterContext`` on an `EmbeddedEventLoop` for filters that answer at once, or on a
/// `NIOAsyncTestingEventLoop` for the few whose answer comes from a `Task` (a login, a follow-up call), since an
/// `EmbeddedEventLoop` may only be touched from the thread that made it.
enum FilterTest {
    static let requestID = "req-filter-test-0001"

    static func head(_ method: HTTPMethod = .GET, _ uri: String, _ headers: HTTPHeaders = [:]) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
    }

    static func responseHead(_ status: HTTPResponseStatus, _ headers: HTTPHeaders = [:]) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    }

    /// The context the transport would give a filter for `clientHead` (the head as the client sent it).
    static func context(
        _ clientHead: HTTPRequestHead, on loop: any EventLoop, attempt: Int = 0,
        scratch: RequestScratch = RequestScratch(),
        requestID: String = FilterTest.requestID, route: String = "test-route"
    ) -> FilterContext {
        FilterContext(
            requestID: requestID, routeName: route, eventLoop: loop, clientHead: clientHead, attempt: attempt,
            scratch: scratch)
    }

    /// A response body as text.
    static func text(_ response: LocalResponse) -> String {
        String(decoding: response.body.readableBytesView, as: UTF8.self)
    }

    static func text(_ buffer: ByteBuffer) -> String {
        String(decoding: buffer.readableBytesView, as: UTF8.self)
    }

    static func bytes(_ buffers: [ByteBuffer]) -> [UInt8] {
        buffers.flatMap { Array($0.readableBytesView) }
    }

    /// A JSON object body, or nil.
    static func json(_ response: LocalResponse) -> [String: Any]? {
        json(response.body)
    }

    static func json(_ buffer: ByteBuffer) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
    }

    /// Checks that `response` is the catalogue's problem `code` with `status`, made as every gateway error is
    /// (problem+json, `X-Credgate-Error`, `no-store`, the request's ID), and returns its members.
    @discardableResult
    static func expectProblem(
        _ response: LocalResponse?, status: Int, code: String, requestID: String = FilterTest.requestID,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> [String: Any] {
        guard let response else {
            Issue.record("expected a \(status) \(code) problem, got no local answer", sourceLocation: sourceLocation)
            return [:]
        }
        #expect(Int(response.status.code) == status, sourceLocation: sourceLocation)
        #expect(response.headers["content-type"] == ["application/problem+json"], sourceLocation: sourceLocation)
        #expect(response.headers["x-credgate-error"] == [code], sourceLocation: sourceLocation)
        #expect(response.headers["cache-control"] == ["no-store"], sourceLocation: sourceLocation)
        let members = json(response) ?? [:]
        #expect(members["type"] as? String == "urn:credgate:error:\(code)", sourceLocation: sourceLocation)
        #expect(members["status"] as? Int == status, sourceLocation: sourceLocation)
        #expect(members["request_id"] as? String == requestID, sourceLocation: sourceLocation)
        #expect((members["detail"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
        return members
    }

    /// The value of `future`, whose promise is completed from a `Task` (hence on another thread): runs the testing
    /// loop's queued work (the completion, and any `submit` the task makes on the loop) until it is fulfilled. The
    /// real clock only bounds a test that fails; a passing one returns within a few scheduler turns. The bound is
    /// generous because in a full parallel run the two cooperative threads of a 2-core machine can be busy with
    /// other suites for seconds before the completing task gets to run.
    static func settle<Value: Sendable>(
        _ future: EventLoopFuture<Value>, on loop: NIOAsyncTestingEventLoop, within limit: Duration = .seconds(60),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> Value {
        let outcome = NIOLockedValueBox<Result<Value, any Error>?>(nil)
        future.whenComplete { result in outcome.withLockedValue { $0 = result } }
        let deadline = ContinuousClock.now + limit
        var round = 0
        while true {
            await loop.run()
            if let result = outcome.withLockedValue({ $0 }) { return try result.get() }
            guard ContinuousClock.now < deadline else {
                Issue.record("the future was not fulfilled", sourceLocation: sourceLocation)
                throw NotSettled()
            }
            round += 1
            if round < 200 { await Task.yield() } else { try? await Task.sleep(for: .milliseconds(1)) }
        }
    }

    struct NotSettled: Error {}
}

// MARK: - Uploads

/// Files whose first bytes are what their extension says (or not).
enum FilterSamples {
    static let pdf: [UInt8] = Array(
        "%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n".utf8)
    static let png: [UInt8] = [
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    ]
    static let writer = MultipartWriter(boundary: "filterTestBoundary4Kq9zT")

    /// A multipart form: text fields in order, then the file part, then the closing line.
    static func form(
        fields: [(String, String)] = [("name", "license.pdf")], filename: String = "license.pdf",
        contentType: String? = "application/pdf", file: [UInt8] = pdf
    ) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in fields { out += Array(writer.field(name, value).readableBytesView) }
        out += Array(writer.filePart(filename: filename, contentType: contentType, data: file).readableBytesView)
        out += Array(writer.closing.readableBytesView)
        return out
    }
}

// MARK: - Reading filter results

extension FilterHeadResult {
    var isProceed: Bool {
        if case .proceed = self { return true }
        return false
    }

    /// The local answer of `.stop`.
    var stopResponse: LocalResponse? {
        if case .stop(let response) = self { return response }
        return nil
    }

    /// The future of `.retryAfter`.
    var retryFuture: EventLoopFuture<Void>? {
        if case .retryAfter(let future) = self { return future }
        return nil
    }
}

extension ResponseFilterResult {
    var isProceed: Bool {
        if case .proceed = self { return true }
        return false
    }

    /// The answer of `.respondWith`.
    var replacement: LocalResponse? {
        if case .respondWith(let response) = self { return response }
        return nil
    }

    /// The future of `.respondLater`.
    var later: EventLoopFuture<LocalResponse>? {
        if case .respondLater(let future) = self { return future }
        return nil
    }
}

extension UpstreamVerdict {
    var isReplay: Bool {
        if case .replay = self { return true }
        return false
    }
}

extension BodyStageResult {
    /// The bytes of `.pass`.
    var passed: [ByteBuffer]? {
        if case .pass(let buffers) = self { return buffers }
        return nil
    }

    /// The error of `.respond`.
    var refusal: GatewayError? {
        if case .respond(let error) = self { return error }
        return nil
    }
}
