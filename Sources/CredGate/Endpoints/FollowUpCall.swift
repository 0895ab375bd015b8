import NIOCore
import NIOHTTP1

/// A call credgate makes itself, after a forwarded request, through a configured route: the route's filters put
/// its credentials on (logging in first if need be) and may ask for one replay after a 401, as on the data path;
/// AsyncHTTPClient sends it (low volume: the one-call upload-and-attach's second step).
struct FollowUpCall: Sendable {
    let route: CompiledRoute
    let transport: any SessionTransport

    struct Answer: Sendable {
        var status: Int
        var body: [UInt8]
        /// The answer's `Content-Type`, when it had one.
        var contentType: String? = nil
    }

    /// The route's filters answered the call themselves; `reason` is a sentence safe for a problem body.
    struct Refused: Error, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    func send(method: HTTPMethod, path: String, json: String, requestID: String, on loop: any EventLoop) async throws
        -> Answer
    {
        let clientHead = HTTPRequestHead(
            version: .http1_1, method: method, uri: path,
            headers: [
                "content-type": "application/json", "accept": "application/json", "x-request-id": requestID,
            ])
        let scratch = RequestScratch()
        for attempt in 0...1 {
            let context = FilterContext(
                requestID: requestID, routeName: route.name, eventLoop: loop, clientHead: clientHead,
                attempt: attempt, scratch: scratch)
            let head = try await runHeadFilters(clientHead, context: context)
            let answer = try await transport.send(
                method: head.method.rawValue, path: head.uri,
                headers: head.headers.map { ($0.name, $0.value) }, body: json)
            if attempt == 0, route.chain.mayReplay {
                let verdict = try await loop.submit {
                    route.chain.upstreamResponded(
                        HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status)),
                        context: context)
                }.get()
                if case .replay = verdict { continue }
            }
            let contentType = answer.headers.first { $0.0.lowercased() == "content-type" }?.1
            return Answer(status: answer.status, body: answer.body, contentType: contentType)
        }
        preconditionFailure("unreachable: the second attempt always returns")
    }

    /// Why a call got no answer, as a sentence safe for a problem body: the transport's own short reason, the
    /// filters' refusal, or else only the error's type name (an unknown error's text could quote a header value
    /// or bytes of an answer).
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as SessionTransportError: return error.description
        case let error as Refused: return error.reason
        case let error as SessionUnavailable: return error.reason
        case is CancellationError: return "cancelled"
        default: return "\(type(of: error))"
        }
    }

    /// Runs the route's head filters on the connection's loop (filters share its scratch), waiting out any
    /// asynchronous step (a login) they ask for.
    private func runHeadFilters(_ clientHead: HTTPRequestHead, context: FilterContext) async throws -> HTTPRequestHead {
        var next = 0
        var head = clientHead
        while true {
            let step = try await context.eventLoop.submit {
                [head, next] () -> (FilterHeadResult, Int, HTTPRequestHead) in
                var h = head
                let (result, index) = route.chain.runHead(from: next, head: &h, context: context)
                return (result, index, h)
            }.get()
            head = step.2
            switch step.0 {
            case .proceed:
                return head
            case .retryAfter(let future):
                try await future.get()
                next = step.1
            case .stop(let response):
                let code = response.headers.first(name: "x-credgate-error").map { " (\($0))" } ?? ""
                throw Refused(
                    reason:
                        "credgate's filters answered the follow-up call locally with \(response.status.code)\(code).")
            }
        }
    }
}
