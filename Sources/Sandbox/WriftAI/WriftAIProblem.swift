import Hummingbird

/// WriftAI's error answers: RFC 9457 problem details (`application/problem+json`), which the SDK surfaces through
/// `httpx.HTTPStatusError` whatever their body.
enum WriftAIProblem {
    static let contentType = "application/problem+json"

    /// `{"type": "about:blank", "title": <reason phrase>, "status": N, "detail": "..."}`.
    static func response(_ status: HTTPResponse.Status, _ detail: String) -> Response {
        let body = JSONValue.object([
            ("type", "about:blank"),
            ("title", .string(status.reasonPhrase)),
            ("status", .int(status.code)),
            ("detail", .string(detail)),
        ])
        return Response(
            status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(bytes: body.bytes))
        )
    }

    /// 401 with `WWW-Authenticate: Bearer`, for a missing or wrong token.
    static func unauthorized(_ detail: String) -> Response {
        var answer = response(.unauthorized, detail)
        answer.headers[.wwwAuthenticate] = "Bearer realm=\"wriftai\""
        return answer
    }

    /// 429 with `x-ratelimit-reset` (epoch seconds, when to try again), as the platform throttles.
    static func rateLimited(reset: Int) -> Response {
        var answer = response(.tooManyRequests, "Request was throttled. Try again after the time in x-ratelimit-reset.")
        answer.headers[.init("x-ratelimit-reset")!] = String(reset)
        return answer
    }

    static func notFound(_ what: String = "Not found.") -> Response {
        response(.notFound, what)
    }

    static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [String]) -> Response {
        var answer = response(.methodNotAllowed, "Method \(method.rawValue) is not allowed here.")
        answer.headers[.allow] = allowed.joined(separator: ", ")
        return answer
    }

    /// 422 naming the field at fault, the platform's answer to a body that does not validate.
    static func invalid(_ field: String, _ message: String) -> Response {
        response(.unprocessableContent, "\(field): \(message)")
    }
}
