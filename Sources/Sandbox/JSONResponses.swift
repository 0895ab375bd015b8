#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Hummingbird

/// Small helpers for answers in Django REST Framework's style.
enum JSONResponses {
    static let contentType = "application/json"

    /// Encodes `value` with slashes left alone, as Django's JSON renderer does.
    static func encode<T: Encodable>(_ value: T) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return ByteBuffer(bytes: try encoder.encode(value))
    }

    static func json<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) throws -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: try encode(value)))
    }

    /// `{"detail": "..."}`.
    static func detail(_ status: HTTPResponse.Status, _ message: String) -> Response {
        // A `[String: String]` always encodes.
        try! json(status, ["detail": message])
    }

    /// `{"field": ["..."]}`, DRF's shape for a validation error.
    static func fieldError(_ status: HTTPResponse.Status, field: String, _ message: String) -> Response {
        try! json(status, [field: [message]])
    }

    /// 204 with neither body nor `Content-Length` (RFC 9110 forbids it on 204).
    static func noContent() -> Response {
        var response = Response(status: .noContent)
        response.headers[.contentLength] = nil
        return response
    }
}
