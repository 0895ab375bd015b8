import NIOHTTP1

/// An error the gateway answers itself, as an RFC 9457 problem: ``GatewayError`` (the catalogue) and
/// ``UploadRejection`` conform. ``LocalResponse/problem(_:requestID:)`` is the one place that turns
/// a problem into `application/problem+json` with `X-Credgate-Error`, so every gateway-made answer can be told
/// apart from the platform's.
protocol GatewayProblem: Error, Sendable {
    /// The answer's HTTP status.
    var httpStatus: HTTPResponseStatus { get }
    /// Stable machine-readable code: the `X-Credgate-Error` header and the last part of the problem `type`.
    var code: String { get }
    /// A short summary, the same for every occurrence of the code.
    var title: String { get }
    /// A sentence a person understands and can act on. Never a secret, never a library's error text.
    var detail: String { get }
    /// Members after the standard ones (`type`, `title`, `status`, `detail`, `request_id`), in order.
    var extraMembers: [ProblemMember] { get }
    /// Headers the answer carries besides `content-type`, `x-credgate-error` and `cache-control` (`Allow`,
    /// `Retry-After`).
    var extraHeaders: HTTPHeaders { get }
}

extension GatewayProblem {
    var extraMembers: [ProblemMember] { [] }
    var extraHeaders: HTTPHeaders { [:] }
    /// The problem `type`: `urn:credgate:error:` and the code.
    var problemType: String { "urn:credgate:error:" + code }
}

/// One member of a problem document beyond the standard ones: a name and a value that is already JSON.
struct ProblemMember: Sendable, Equatable {
    let name: String
    /// The value, encoded as JSON.
    let json: String

    init(_ name: String, json: String) {
        self.name = name
        self.json = json
    }

    static func string(_ name: String, _ value: String) -> ProblemMember {
        ProblemMember(name, json: JSONString.quote(value))
    }

    static func number(_ name: String, _ value: Int) -> ProblemMember {
        ProblemMember(name, json: String(value))
    }
}
