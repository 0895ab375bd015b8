import NIOCore
import NIOHTTP1
import NIOPosix

/// The checks every request head passes before any route is consulted, and the facts the data path reads off a
/// head. Pure functions, unit-tested without a channel.
extension ProxyHandler {
    /// What a head that passed the checks is matched on.
    struct CheckedHead: Equatable {
        /// The path to match and forward when it differs from the client's (percent-encoded unreserved characters
        /// decoded); nil when the client's path is used as sent.
        var normalizedPath: String?
        /// Why the path has no safe reading, when it has none: only a `raw_path` route may then take it.
        var unsafePath: GatewayError?
    }

    /// A head that passed every check, with the route it takes.
    struct RoutedHead {
        let route: CompiledRoute
        /// The request target to forward when the path was normalised (the query kept as sent); nil to forward
        /// the client's.
        let forwardURI: String?
    }

    /// Checks a head and looks up its route on `listener`: one lookup, whose answer is a route, or the error a
    /// client gets instead (a bad head, a path with no safe reading, no route, a wrong method, a declared body
    /// over the route's limit).
    static func route(
        _ head: HTTPRequestHead, on listener: ListenerRuntime,
        protectedHeaders: [String]
    ) -> Result<RoutedHead, GatewayError> {
        let checked: CheckedHead
        switch inspect(head, maxHeaderBytes: listener.listen.maxHeaderBytes, protectedHeaders: protectedHeaders) {
        case .success(let c): checked = c
        case .failure(let error): return .failure(error)
        }
        let path = checked.normalizedPath.map { $0[...] } ?? Self.path(of: head.uri)
        let lookup = listener.routes.lookup(method: head.method.rawValue, path: path)
        if let unsafe = checked.unsafePath {
            // Only a route that opted into raw matching takes a path with no safe reading.
            guard case .matched(let r) = lookup, r.rawPath else { return .failure(unsafe) }
        }
        let route: CompiledRoute
        switch lookup {
        case .matched(let r):
            route = r
        case .methodNotAllowed(let allowed):
            return .failure(.methodNotAllowed(method: head.method.rawValue, allowed: allowed))
        case .notFound:
            return .failure(.noRoute(method: head.method.rawValue, path: String(path)))
        }
        if let length = head.headers.first(name: "content-length").flatMap({ Int64($0) }), length > route.maxBodyBytes {
            return .failure(.bodyTooLarge(limit: route.maxBodyBytes))
        }
        let forwardURI = checked.normalizedPath.map { normalized in
            normalized + (head.uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { head.uri[$0...] } ?? "")
        }
        return .success(RoutedHead(route: route, forwardURI: forwardURI))
    }

    /// The path part of an origin-form request target.
    static func path(of uri: String) -> Substring {
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            return uri[..<q]
        }
        return uri[...]
    }

    static func hasBody(_ head: HTTPRequestHead) -> Bool {
        if head.headers.contains(name: "transfer-encoding") { return true }
        if let length = head.headers.first(name: "content-length"), length != "0" { return true }
        return false
    }

    /// Checks a request head before any route is consulted; `nil` when it may go on. `protectedHeaders` (lower
    /// case) are headers credgate writes itself, which a client's `Connection` header may not name.
    static func check(_ head: HTTPRequestHead, maxHeaderBytes: Int, protectedHeaders: [String] = []) -> GatewayError? {
        switch inspect(head, maxHeaderBytes: maxHeaderBytes, protectedHeaders: protectedHeaders) {
        case .success(let checked): return checked.unsafePath
        case .failure(let error): return error
        }
    }

    /// ``check(_:maxHeaderBytes:protectedHeaders:)``, also saying which path to match.
    static func inspect(_ head: HTTPRequestHead, maxHeaderBytes: Int, protectedHeaders: [String] = []) -> Result<
        CheckedHead, GatewayError
    > {
        if head.method == .CONNECT { return .failure(.notAProxy("CONNECT")) }
        guard head.uri.utf8.first == UInt8(ascii: "/") else {
            return .failure(
                .notAProxy(head.uri == "*" ? "the asterisk-form target '*'" : "an absolute-form request target"))
        }
        var size = head.uri.utf8.count + 16
        for (name, value) in head.headers { size += name.utf8.count + value.utf8.count + 4 }
        if size > maxHeaderBytes { return .failure(.headersTooLarge(limit: maxHeaderBytes)) }
        if head.headers.contains(name: "transfer-encoding") && head.headers.contains(name: "content-length") {
            return .failure(
                .malformedRequest("Content-Length together with Transfer-Encoding is ambiguous (request smuggling)"))
        }
        if head.headers.contains(name: "content-length") {
            let lengths = head.headers[canonicalForm: "content-length"]
            if lengths.count > 1 || lengths.contains(where: { Int64($0) == nil || Int64($0)! < 0 }) {
                return .failure(.malformedRequest("invalid Content-Length"))
            }
        }
        if head.headers.contains(name: "transfer-encoding") {
            let codings = head.headers[canonicalForm: "transfer-encoding"].map { $0.lowercased() }
            if codings != ["chunked"] { return .failure(.malformedRequest("unsupported Transfer-Encoding")) }
        }
        if let problem = hostProblem(head) { return .failure(.badHost(problem)) }
        if let named = connectionNamesProtected(head.headers, protectedHeaders) {
            return .failure(.connectionNamesProtectedHeader(named))
        }
        switch RequestPath.normalize(path(of: head.uri)) {
        case .unchanged: return .success(CheckedHead())
        case .normalized(let path): return .success(CheckedHead(normalizedPath: path))
        case .climbsOut: return .success(CheckedHead(unsafePath: .pathTraversal))
        case .refused(let why): return .success(CheckedHead(unsafePath: .unsafePath(why)))
        }
    }

    /// Whether a path has a `.` or `..` segment in any encoding (or is otherwise unsafe to match).
    static func climbsOut(_ path: Substring) -> Bool {
        switch RequestPath.normalize(path) {
        case .unchanged, .normalized: return false
        case .climbsOut, .refused: return true
        }
    }

    /// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`; its value is `uri-host [ ":" port ]`
    /// (RFC 9110 section 7.2). credgate forwards it as `X-Forwarded-Host`, so a bad one must not pass.
    static func hostProblem(_ head: HTTPRequestHead) -> String? {
        let hosts = hostValues(head.headers)
        if hosts.count > 1 { return "the request has \(hosts.count) Host headers" }
        guard let host = hosts.first else {
            return head.version == .http1_0 ? nil : "an HTTP/1.1 request has no Host header"
        }
        return isValidHost(host.utf8) ? nil : "it is not a host name or address with an optional port"
    }

    /// The `Host` values as `headers[canonicalForm: "host"]` gives them (split on commas, trimmed), read in place
    /// for the usual single line without a comma: the subscript allocates several arrays and strings per request.
    static func hostValues(_ headers: HTTPHeaders) -> [Substring] {
        var count = 0
        var only: String?
        for (name, value) in headers where name.utf8.count == 4 && name.lowercased() == "host" {
            count += 1
            only = value
        }
        guard count == 1, let only, !only.utf8.contains(UInt8(ascii: ",")) else {
            return count == 0 ? [] : headers[canonicalForm: "host"]
        }
        if only.isEmpty { return [] } // split(separator:) drops an empty value, as the subscript does
        return [only[...].trimmingASCIISpaces()]
    }

    /// `uri-host [ ":" port ]`: a reg-name (unreserved and sub-delims; percent-encoding, which RFC 3986 allows
    /// but no real host name uses, is refused so that no decoder down the line can turn it into a line break),
    /// an IPv4 address, or an IP literal in brackets; the port digits only.
    static func isValidHost<Bytes: Collection<UInt8>>(_ value: Bytes) -> Bool {
        guard !value.isEmpty, value.count <= 255 + 8 else { return false }
        var rest = value[...]
        if rest.first == UInt8(ascii: "[") {
            guard let close = rest.firstIndex(of: UInt8(ascii: "]")) else { return false }
            let literal = rest[rest.index(after: rest.startIndex)..<close]
            guard !literal.isEmpty, literal.allSatisfy({ hexValueOrColonOrDot($0) }) else { return false }
            rest = rest[rest.index(after: close)...]
        } else {
            let end = rest.firstIndex(of: UInt8(ascii: ":")) ?? rest.endIndex
            let name = rest[..<end]
            guard !name.isEmpty, name.allSatisfy({ RequestPath.isUnreserved($0) || isSubDelim($0) }) else {
                return false
            }
            rest = rest[end...]
        }
        if rest.isEmpty { return true }
        guard rest.first == UInt8(ascii: ":") else { return false }
        let port = rest.dropFirst()
        return port.count <= 5 && port.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    private static func hexValueOrColonOrDot(_ c: UInt8) -> Bool {
        RequestPath.hexValue(c) != nil || c == UInt8(ascii: ":") || c == UInt8(ascii: ".")
    }

    private static func isSubDelim(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
            return true
        default:
            return false
        }
    }

    /// The first header the `Connection` header names that must survive the hop: `Host`, `Content-Length`, or
    /// one of `protected` (the credentials' headers). Hop-by-hop removal would otherwise drop it after credgate
    /// set it, on the client's say.
    static func connectionNamesProtected(_ headers: HTTPHeaders, _ protected: [String]) -> String? {
        // Most requests have no Connection header: skip the subscript's arrays.
        guard headers.contains(name: "connection") else { return nil }
        for value in headers[canonicalForm: "connection"] {
            let token = value.lowercased()
            if token == "close" || token == "keep-alive" { continue }
            if token == "host" || token == "content-length" || protected.contains(String(token)) {
                return String(token)
            }
        }
        return nil
    }

    /// The problem a client gets when no connection to `upstream` could be made (both paths).
    static func connectProblem(_ error: any Error, upstream: String) -> GatewayError {
        isTimeout(error)
            ? .upstreamTimeout(upstream: upstream, phase: "connect")
            : .upstreamUnreachable(upstream: upstream, reason: describe(connectError: error))
    }

    static func isTimeout(_ error: any Error) -> Bool {
        if let e = error as? ChannelError, case .connectTimeout = e { return true }
        return false
    }

    static func describe(connectError error: any Error) -> String {
        if let e = error as? ChannelError, case .connectTimeout = e { return "connect timed out" }
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return "\(first.target): \(first.error)" }
            return "could not resolve \(e.host)"
        }
        return String(describing: error)
    }
}
