import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A JSON value whose objects keep their key order, so answers read like the platform's
/// (Django REST Framework writes fields in declaration order, compact, non-ASCII unescaped).
enum JSONValue: Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case string(String)
    case int(Int)
    /// A number with a fraction (or too large for ``int``), written as Swift's shortest round-trip form.
    case double(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }

    /// A string, or null when nil.
    static func optional(_ value: String?) -> JSONValue {
        value.map(JSONValue.string) ?? .null
    }

    /// Compact UTF-8 serialisation.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    private func write(into out: inout [UInt8]) {
        switch self {
        case .string(let s):
            Self.writeString(s, into: &out)
        case .int(let n):
            out.append(contentsOf: String(n).utf8)
        case .double(let n):
            out.append(contentsOf: (n.isFinite ? String(n) : "null").utf8)
        case .bool(let b):
            out.append(contentsOf: (b ? "true" : "false").utf8)
        case .null:
            out.append(contentsOf: "null".utf8)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                value.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\n"): out.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: "\\t".utf8)
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Small helpers for answers in Django REST Framework's style.
enum JSONResponses {
    static let contentType = "application/json"

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(
            status: status, headers: [.contentType: contentType],
            body: .init(byteBuffer: ByteBuffer(bytes: value.bytes)))
    }

    /// A `Codable` value through Foundation's encoder (keys sorted, slashes unescaped); for the control endpoints.
    static func encoded<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// `{"detail": "..."}`.
    static func detail(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(status, .object([("detail", .string(message))]))
    }

    /// `{"field": ["..."]}`, DRF's shape for a validation error.
    static func fieldError(_ status: HTTPResponse.Status, field: String, _ message: String) -> Response {
        json(status, .object([(field, .array([.string(message)]))]))
    }

    /// 204 with neither body nor `Content-Length` (RFC 9110 forbids it on 204).
    static func noContent() -> Response {
        var response = Response(status: .noContent)
        response.headers[.contentLength] = nil
        return response
    }
}

extension JSONResponses {
    /// DRF's 405: `{"detail": "Method \"PUT\" not allowed."}` with `Allow`.
    static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [String]) -> Response {
        var response = detail(.methodNotAllowed, "Method \"\(method.rawValue)\" not allowed.")
        response.headers[.allow] = allowed.joined(separator: ", ")
        return response
    }
}
