import NIOHTTP1

/// Everything the gateway itself can answer with instead of the platform, mapped to HTTP in one place
/// (``status``, ``code``), so our 502 can always be told apart from the platform's.
public enum GatewayError: Error, Sendable, Equatable {
    case noRoute(method: String, path: String)
    case methodNotAllowed(method: String, allowed: [String])
    case notAProxy(String)
    case pathTraversal
    /// A path with no single safe reading (see ``RequestPath``).
    case unsafePath(String)
    /// A `Host` header missing, repeated or malformed.
    case badHost(String)
    /// A `Connection` header naming a header credgate must keep (a credential's, `Host`, `Content-Length`).
    case connectionNamesProtectedHeader(String)
    /// The platform answered `101 Switching Protocols`, which no route allows.
    case upgradeRefused(upstream: String)
    /// The client took longer than the header timeout to send a request head.
    case headerTimeout(seconds: Int64)
    case malformedRequest(String)
    case headersTooLarge(limit: Int)
    case bodyTooLarge(limit: Int64)
    /// A body without a declared length went over the limit after part of it had been forwarded.
    case bodyTooLargeAfterForwarding(limit: Int64, forwarded: Int64)
    case upstreamUnreachable(upstream: String, reason: String)
    case upstreamReset(upstream: String)
    case upstreamTimeout(upstream: String, phase: String)
    case tooManyConnections(limit: Int)
    case tooManyConnectionsFromPeer(limit: Int)
    case adminNotFound(path: String)
    /// An error a filter (policy stage) raised: it brings its own status, code and sentence.
    case filter(status: Int, code: String, title: String, detail: String)

    public var status: HTTPResponseStatus {
        switch self {
        case .noRoute, .notAProxy, .adminNotFound: return .notFound
        case .methodNotAllowed: return .methodNotAllowed
        case .pathTraversal, .malformedRequest, .unsafePath, .badHost, .connectionNamesProtectedHeader: return .badRequest
        case .upgradeRefused: return .badGateway
        case .headerTimeout: return .requestTimeout
        case .headersTooLarge: return .requestHeaderFieldsTooLarge
        case .bodyTooLarge, .bodyTooLargeAfterForwarding: return .payloadTooLarge
        case .upstreamUnreachable, .upstreamReset: return .badGateway
        case .upstreamTimeout: return .gatewayTimeout
        case .tooManyConnections, .tooManyConnectionsFromPeer: return .serviceUnavailable
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
        case .unsafePath: return "unsafe-path"
        case .badHost: return "bad-host"
        case .connectionNamesProtectedHeader: return "connection-names-protected-header"
        case .upgradeRefused: return "upgrade-refused"
        case .headerTimeout: return "header-timeout"
        case .malformedRequest: return "malformed-request"
        case .headersTooLarge: return "headers-too-large"
        case .bodyTooLarge, .bodyTooLargeAfterForwarding: return "body-too-large"
        case .upstreamUnreachable: return "upstream-unreachable"
        case .upstreamReset: return "upstream-reset"
        case .upstreamTimeout: return "upstream-timeout"
        case .tooManyConnections, .tooManyConnectionsFromPeer: return "too-many-connections"
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
        case .unsafePath: return "Path not allowed"
        case .badHost: return "Bad Host header"
        case .connectionNamesProtectedHeader: return "Connection header not allowed"
        case .upgradeRefused: return "Protocol upgrade refused"
        case .headerTimeout: return "Request head too slow"
        case .malformedRequest: return "Malformed request"
        case .headersTooLarge: return "Request headers too large"
        case .bodyTooLarge, .bodyTooLargeAfterForwarding: return "Request body too large"
        case .upstreamUnreachable: return "Upstream unreachable"
        case .upstreamReset: return "Upstream connection reset"
        case .upstreamTimeout: return "Upstream timeout"
        case .tooManyConnections, .tooManyConnectionsFromPeer: return "Too many connections"
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
        case .unsafePath(let why):
            return "The request path cannot be matched to a route safely: \(why). credgate refuses such paths rather than guess how the platform would read them; send the path in its plain form."
        case .badHost(let why):
            return "The request's Host header is not acceptable: \(why). HTTP/1.1 requests need exactly one Host header naming a host and an optional port."
        case .connectionNamesProtectedHeader(let name):
            return "The Connection header names '\(name)', which credgate sets itself and will not drop on a client's say. Remove it from the Connection header."
        case .upgradeRefused(let upstream):
            return "Upstream '\(upstream)' answered 101 Switching Protocols. credgate forwards HTTP requests only and does not relay protocol upgrades (WebSocket, h2c) on any route."
        case .headerTimeout(let seconds):
            return "The request head did not arrive within \(seconds) s (listen.header_timeout), so the connection was closed."
        case .malformedRequest(let why):
            return "The request is not valid HTTP/1.1: \(why)."
        case .headersTooLarge(let limit):
            return "The request line and headers exceed the limit of \(limit) bytes."
        case .bodyTooLarge(let limit):
            return "The request body exceeds this route's limit of \(limit) bytes (max_body_bytes); nothing was forwarded."
        case .bodyTooLargeAfterForwarding(let limit, let forwarded):
            return "The request body exceeds this route's limit of \(limit) bytes (max_body_bytes). It was sent without a length, so "
                + "credgate had already forwarded \(forwarded) bytes of it when the limit was passed; it then cut the platform's "
                + "connection, so the platform received an incomplete request and no complete one."
        case .upstreamUnreachable(let upstream, let reason):
            return "credgate could not connect to upstream '\(upstream)': \(reason)."
        case .upstreamReset(let upstream):
            return "Upstream '\(upstream)' closed the connection before it answered."
        case .upstreamTimeout(let upstream, let phase):
            return "Upstream '\(upstream)' did not answer in time (\(phase))."
        case .tooManyConnectionsFromPeer(let limit):
            return "credgate is serving its maximum of \(limit) client connections from your address (listen.max_connections_per_peer); close some or try again shortly."
        case .tooManyConnections(let limit):
            return "credgate is serving its maximum of \(limit) client connections; try again shortly."
        case .adminNotFound(let path):
            return "There is no admin endpoint \(path). Paths under /credgate/ are answered by the gateway itself and never forwarded."
        case .filter(_, _, _, let detail):
            return detail
        }
    }
}
