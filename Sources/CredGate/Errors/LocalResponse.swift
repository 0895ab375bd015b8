import NIOCore
import NIOHTTP1

/// A response the gateway makes itself (an error, an admin endpoint, or a filter's local answer).
struct LocalResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer

    init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON answer from a string that is already JSON.
    static func json(_ status: HTTPResponseStatus, _ json: String, headers: HTTPHeaders = [:]) -> LocalResponse {
        var h = headers
        h.replaceOrAdd(name: "content-type", value: "application/json")
        return LocalResponse(status: status, headers: h, body: ByteBuffer(string: json))
    }
}
