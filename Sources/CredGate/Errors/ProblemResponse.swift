import NIOCore
import NIOHTTP1

extension LocalResponse {
    /// The RFC 9457 problem for a gateway error, with `X-Credgate-Error`: the one builder of problem answers.
    static func problem(_ problem: some GatewayProblem, requestID: String) -> LocalResponse {
        build(problem, requestID: requestID)
    }

    /// The same, for a case of the catalogue written in place (`.problem(.noRoute(...), requestID: id)`).
    static func problem(_ error: GatewayError, requestID: String) -> LocalResponse {
        build(error, requestID: requestID)
    }

    private static func build(_ problem: some GatewayProblem, requestID: String) -> LocalResponse {
        var headers: HTTPHeaders = [
            "content-type": "application/problem+json",
            "x-credgate-error": problem.code,
            "cache-control": "no-store",
        ]
        headers.add(contentsOf: problem.extraHeaders)
        let status = problem.httpStatus
        var body =
            "{\"type\":\(JSONString.quote(problem.problemType)),"
            + "\"title\":\(JSONString.quote(problem.title)),"
            + "\"status\":\(status.code),"
            + "\"detail\":\(JSONString.quote(problem.detail)),"
            + "\"request_id\":\(JSONString.quote(requestID))"
        for member in problem.extraMembers {
            body += ",\(JSONString.quote(member.name)):\(member.json)"
        }
        body += "}"
        return LocalResponse(status: status, headers: headers, body: ByteBuffer(string: body))
    }
}
