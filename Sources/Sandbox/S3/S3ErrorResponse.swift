import Hummingbird

/// S3's XML error answers, as a client fetching a presigned URL would get them from AWS.
enum S3ErrorResponse {
    static func response(_ status: HTTPResponse.Status, code: String, message: String, extra: [(String, String)] = [])
        -> Response
    {
        var xml =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(escape(code))</Code><Message>\(escape(message))</Message>"
        for (name, value) in extra {
            xml += "<\(name)>\(escape(value))</\(name)>"
        }
        // S3 adds request ids; random ones make the body look the part (and carry nothing of the request).
        xml += "<RequestId>\(randomHex(8).uppercased())</RequestId><HostId>\(randomHex(32))</HostId></Error>"
        return Response(
            status: status, headers: [.contentType: "application/xml"], body: .init(byteBuffer: ByteBuffer(string: xml))
        )
    }

    static var signatureDoesNotMatch: Response {
        response(
            .forbidden, code: "SignatureDoesNotMatch",
            message:
                "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        )
    }

    static var accessDenied: Response {
        response(.forbidden, code: "AccessDenied", message: "Access Denied")
    }

    static var invalidAccessKeyID: Response {
        response(
            .forbidden, code: "InvalidAccessKeyId",
            message: "The AWS Access Key Id you provided does not exist in our records.")
    }

    static func expired(lifetime: Int?, expiredAt: Int, now: Int) -> Response {
        var extra: [(String, String)] = []
        if let lifetime { extra.append(("X-Amz-Expires", String(lifetime))) }
        extra.append(("Expires", S3Encoding.iso8601(epochSeconds: expiredAt)))
        extra.append(("ServerTime", S3Encoding.iso8601(epochSeconds: now)))
        return response(.forbidden, code: "AccessDenied", message: "Request has expired", extra: extra)
    }

    static func malformed(_ message: String) -> Response {
        response(.badRequest, code: "AuthorizationQueryParametersError", message: message)
    }

    static func noSuchKey(_ key: String) -> Response {
        response(.notFound, code: "NoSuchKey", message: "The specified key does not exist.", extra: [("Key", key)])
    }

    static func methodNotAllowed(_ method: HTTPRequest.Method) -> Response {
        var response = response(
            .methodNotAllowed, code: "MethodNotAllowed",
            message: "The specified method is not allowed against this resource.",
            extra: [("Method", method.rawValue), ("ResourceType", "OBJECT")])
        response.headers[.allow] = "GET, HEAD"
        return response
    }

    /// XML text escaping for element content.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }

    private static func randomHex(_ count: Int) -> String {
        (0..<count).map { _ in UInt8.random(in: 0...255) }.hexString
    }
}
