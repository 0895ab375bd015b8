import NIOHTTP1

/// Everything the gateway itself can answer with instead of the platform, mapped to HTTP in one place
/// (``status``, ``code``), so our 502 can always be told apart from the platform's.
public enum GatewayError: Error, Sendable, Equatable {
    case noRoute(method: String, path: String)
    case methodNotAllowed(method: String, allowed: [String])
    case notAProxy(String)
    case pathTraversal
    case malformedRequest(String)
    case headersTooLarge(limit: Int)
    case bodyTooLarge(limit: Int64)
    case upstreamUnreachable(upstream: String, reason: String)
    case upstreamReset(upstream: String)
    case upstreamTimeout(upstream: String, phase: String)
    case tooManyConnections(limit: Int)
    case adminNotFound(path: String)
    /// An error a filter (policy stage) raised: it brings its own status, code and sentence.
    case filter(status: Int, code: String, title: String, detail: String)

    public var status: HTTPResponseStatus {
        switch self {
        case .noRoute, .notAProxy, .adminNotFound: return .notFound
        case .methodNotAllowed: return .methodNotAllowed
        case .pathTraversal, .malformedRequest: return .badRequest
        case .headersTooLarge: return .requestHeaderFieldsTooLarge
        case .bodyTooLarge: return .payloadTooLarge
        case .upstreamUnreachable, .upstreamReset: return .badGateway
        case .upstreamTimeout: return .gatewayTimeout
        case .tooManyConnections: return .serviceUnavailable
        case .filter(let status, _, _, _): return HTTPResponseStatus(statusCode: status)
        }
    }

    /// Stable machine-readable code: the `X-Credgate-Error` header and the last part of the problem `type`.
    public var code: String {
        switch self {
        case .noRoute: return "no-route"
        case .methodNotAllowed: return "method-not-allowed"
        case .notAProxy: return "not-a-proxy"
        case .pathTraversal: return "path-traversal"
        case .malformedRequest: return "malformed-request"
        case .headersTooLarge: return "headers-too-large"
        case .bodyTooLarge: return "body-too-large"
        case .upstreamUnreachable: return "upstream-unreachable"
        case .upstreamReset: return "upstream-reset"
        case .upstreamTimeout: return "upstream-timeout"
        case .tooManyConnections: return "too-many-connections"
        case .adminNotFound: return "admin-not-found"
        case .filter(_, let code, _, _): return code
        }
    }

    public var title: String {
        switch self {
        case .noRoute: return "No route"
        case .methodNotAllowed: return "Method not allowed"
        case .notAProxy: return "Not a forward proxy"
        case .pathTraversal: return "Path not allowed"
        case .malformedRequest: return "Malformed request"
        case .headersTooLarge: return "Request headers too large"
        case .bodyTooLarge: return "Request body too large"
        case .upstreamUnreachable: return "Upstream unreachable"
        case .upstreamReset: return "Upstream connection reset"
        case .upstreamTimeout: return "Upstream timeout"
        case .tooManyConnections: return "Too many connections"
        case .adminNotFound: return "No such admin endpoint"
        case .filter(_, _, let title, _): return title
        }
    }

    /// A sentence a person understands. Never contains a secret: only names, limits and paths.
    public var detail: String {
        switch self {
        case .noRoute(let method, let path):
            return "credgate has no route for \(method) \(path), so the request was not forwarded. Check the routes in the configuration."
        case .methodNotAllowed(let method, let allowed):
            return "The route for this path does not take \(method); it takes \(allowed.joined(separator: ", "))."
        case .notAProxy(let what):
            return "credgate is a gateway to its configured platforms, not a forward proxy: \(what) is refused. Send origin-form requests such as 'GET /api/v1/... HTTP/1.1'."
        case .pathTraversal:
            return "The request path contains '.' or '..' segments (possibly percent-encoded); credgate does not forward paths that climb out of a route."
        case .malformedRequest(let why):
            return "The request is not valid HTTP/1.1: \(why)."
        case .headersTooLarge(let limit):
            return "The request line and headers exceed the limit of \(limit) bytes."
        case .bodyTooLarge(let limit):
            return "The request body exceeds this route's limit of \(limit) bytes (max_body_bytes); nothing was forwarded."
        case .upstreamUnreachable(let upstream, let reason):
            return "credgate could not connect to upstream '\(upstream)': \(reason)."
        case .upstreamReset(let upstream):
            return "Upstream '\(upstream)' closed the connection before it answered."
        case .upstreamTimeout(let upstream, let phase):
            return "Upstream '\(upstream)' did not answer in time (\(phase))."
        case .tooManyConnections(let limit):
            return "credgate is serving its maximum of \(limit) client connections; try again shortly."
        case .adminNotFound(let path):
            return "There is no admin endpoint \(path). Paths under /credgate/ are answered by the gateway itself and never forwarded."
        case .filter(_, _, _, let detail):
            return detail
        }
    }
}
