import NIOCore
import NIOHTTP1

/// A response the gateway makes itself (an error, an admin endpoint, or a filter's local answer).
public struct LocalResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON answer from a string that is already JSON.
    public static func json(_ status: HTTPResponseStatus, _ json: String, headers: HTTPHeaders = [:]) -> LocalResponse {
        var h = headers
        h.replaceOrAdd(name: "content-type", value: "application/json")
        return LocalResponse(status: status, headers: h, body: ByteBuffer(string: json))
    }

    /// An RFC 9457 problem for a gateway error, with `X-Credgate-Error`.
    public static func problem(_ error: GatewayError, requestID: String) -> LocalResponse {
        var headers: HTTPHeaders = [
            "content-type": "application/problem+json",
            "x-credgate-error": error.code,
            "cache-control": "no-store",
        ]
        if case .methodNotAllowed(_, let allowed) = error {
            headers.add(name: "allow", value: allowed.joined(separator: ", "))
        }
        let body =
            "{\"type\":\(JSONString.quote("urn:credgate:error:" + error.code)),"
            + "\"title\":\(JSONString.quote(error.title)),"
            + "\"status\":\(error.status.code),"
            + "\"detail\":\(JSONString.quote(error.detail)),"
            + "\"request_id\":\(JSONString.quote(requestID))}"
        return LocalResponse(status: error.status, headers: headers, body: ByteBuffer(string: body))
    }
}

/// JSON string quoting for the few small bodies the gateway writes itself.
///
/// Written by hand rather than through `JSONEncoder` because it runs on the event loop for every gateway error
/// and needs no Foundation; it follows RFC 8259 section 7 exactly.
public enum JSONString {
    public static func quote(_ s: String) -> String {
        "\"" + escape(s) + "\""
    }

    /// `s` escaped for use between the quotes of a JSON string.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
