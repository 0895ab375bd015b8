import NIOCore
import NIOHTTP1

/// Byte-level readers of HTTP/1.1 heads for the fast path (``FastPathHandler``), written by hand because
/// they must not build `HTTPHeaders` (NIO's decoder does, and that is most of what the fast path saves).
///
/// They accept a deliberately narrow, unambiguous subset: a request head the full path would treat in exactly the
/// same way with no check failing. Anything else, however legal, is `.fullPath`: the bytes go to NIO's decoder and
/// the full checks, so no smuggling, framing or header rule has to be written twice.
enum FastHead {
    /// A request head the fast path may forward.
    struct Request: Equatable {
        /// Bytes of the head, its final empty line included.
        var length: Int
        var method: HTTPMethod
        /// The request target (origin form), as bytes of the head.
        var target: Range<Int>
        /// Where the path ends in the target (the `?` or the target's end).
        var pathEnd: Int
        /// The one `Host` header's value (trimmed).
        var host: Range<Int>
        /// `Connection: close`.
        var close: Bool
        /// Where the first header line starts.
        var headersStart: Int
        /// The body's length: the one `Content-Length` of a `POST` (the only request with a body the fast path
        /// reads: a presign call answered from the cache), 0 for the other methods, which have none.
        var contentLength = 0
    }

    enum RequestParse: Equatable {
        /// The head is not all in yet (and still under the size limit).
        case incomplete
        /// Not for the fast path: NIO's decoder and the full checks take it.
        case fullPath
        case fast(Request)
    }

    /// Lower-case names of request headers that send the request to the full path: framing (a body), hop-by-hop
    /// headers other than `Connection: keep-alive|close`, forwarding headers, a client's own request ID or cookie
    /// (rules live in ``HeaderHygiene`` and ``RequestID``), `Expect`. Credentials are added per runtime.
    static let fullPathRequestHeaders: [String] =
        [
            "content-length", "transfer-encoding", "expect", "upgrade", "te", "trailer", "keep-alive",
            "proxy-connection",
            "proxy-authorization", "authorization", "cookie", "x-request-id",
        ] + HeaderHygiene.forwardingHeaders

    /// Reads a request head at the start of `bytes`. `refused` are lower-case header names that send a request to
    /// the full path (``fullPathRequestHeaders`` and the credentials' headers).
    static func parseRequest(_ bytes: UnsafeRawBufferPointer, maxHeaderBytes: Int, refused: [[UInt8]]) -> RequestParse {
        guard let end = headEnd(bytes, limit: maxHeaderBytes + 64) else {
            // A bare LF would end the head for NIO's decoder (which refuses it at once): never wait for more.
            if bytes.count >= maxHeaderBytes || hasBareLF(bytes) { return .fullPath }
            return .incomplete
        }
        // Request line: METHOD SP origin-form SP HTTP/1.1 CRLF.
        var i = 0
        while i < end, isTokenByte(bytes[i]) { i += 1 }
        guard i > 0, i < end, bytes[i] == 0x20, let method = fastMethod(bytes, 0..<i) else { return .fullPath }
        i += 1
        let targetStart = i
        guard bytes[i] == UInt8(ascii: "/") else { return .fullPath }
        var pathEnd = -1
        while i < end, bytes[i] != 0x20 {
            let c = bytes[i]
            if pathEnd < 0 {
                if c == UInt8(ascii: "?") {
                    pathEnd = i
                } else if !RequestPath.isPlainPathByte(c, after: i > targetStart ? bytes[i - 1] : 0) {
                    return .fullPath
                }
            } else if c < 0x21 || c > 0x7E || c == UInt8(ascii: "#") {
                return .fullPath
            }
            i += 1
        }
        let targetEnd = i
        if pathEnd < 0 { pathEnd = targetEnd }
        let version: StaticString = " HTTP/1.1\r\n"
        guard matches(bytes, at: targetEnd, version) else { return .fullPath }
        let headersStart = targetEnd + version.utf8CodeUnitCount
        var host: Range<Int>?
        var close = false
        var sawConnection = false
        var contentLength: Int?
        var count = 0
        var ok = true
        // The head's size as the full path's check counts it (``ProxyHandler/inspect``): the target, 16, and each
        // header's name and value plus 4.
        var size = targetEnd - targetStart + 16
        forEachHeader(bytes, from: headersStart, to: end) { name, value in
            count += 1
            size += name.count + value.count + 4
            if count > 100 {
                ok = false
            } else if equalsLowercased(bytes, name, "host") {
                if host != nil { ok = false }
                host = value
            } else if equalsLowercased(bytes, name, "connection") {
                if sawConnection { ok = false }
                sawConnection = true
                if equalsLowercased(bytes, value, "close") {
                    close = true
                } else if !equalsLowercased(bytes, value, "keep-alive") {
                    ok = false
                }
            } else if method == .POST && equalsLowercased(bytes, name, "content-length") {
                // One plain decimal, as NIO's decoder reads it; a list, a sign or a second one is the full path's.
                if contentLength != nil { ok = false }
                contentLength = decimal(bytes, value)
                if contentLength == nil { ok = false }
            } else if refused.contains(where: { equalsLowercased(bytes, name, $0) }) {
                ok = false
            }
            return ok
        } onMalformed: {
            ok = false
        }
        // A POST without a length (chunked is refused above) is the full path's.
        if method == .POST && contentLength == nil { return .fullPath }
        // A comma in Host is a list to the full path (several hosts: refused).
        guard ok, size <= maxHeaderBytes, let host, !host.isEmpty, !bytes[host].contains(UInt8(ascii: ",")) else {
            return .fullPath
        }
        guard ProxyHandler.isValidHost(UnsafeRawBufferPointer(rebasing: bytes[host])) else { return .fullPath }
        return .fast(
            Request(
                length: end, method: method, target: targetStart..<targetEnd, pathEnd: pathEnd, host: host,
                close: close, headersStart: headersStart, contentLength: contentLength ?? 0))
    }

    /// The length (head and body) of a request at the start of `bytes` whose framing is plain, for a request the
    /// fast path hands to the full path alone: a complete head with CRLF line ends, an `HTTP/1.0` or `HTTP/1.1`
    /// request line, well-formed header lines, at most one `Content-Length` and no `Transfer-Encoding` or
    /// `Upgrade`, not `CONNECT`. NIO's decoder reads such a request to exactly this length. nil for anything else:
    /// the connection then stays on the full path, whose decoder finds the framing (or refuses it).
    static func framedRequest(_ bytes: UnsafeRawBufferPointer, maxHeaderBytes: Int) -> Int? {
        guard let end = headEnd(bytes, limit: maxHeaderBytes + 64),
            !hasBareLF(UnsafeRawBufferPointer(rebasing: bytes[0..<end]))
        else { return nil }
        var i = 0
        while i < end, isTokenByte(bytes[i]) { i += 1 }
        guard i > 0, i < end, bytes[i] == 0x20, !matchesExactly(bytes, 0..<i, "CONNECT") else { return nil }
        var lineEnd = i
        while lineEnd < end, bytes[lineEnd] != 0x0D {
            if bytes[lineEnd] < 0x20 || bytes[lineEnd] == 0x7F { return nil }
            lineEnd += 1
        }
        guard lineEnd >= 9, matches(bytes, at: lineEnd - 9, " HTTP/1.1") || matches(bytes, at: lineEnd - 9, " HTTP/1.0")
        else { return nil }
        var length: Int?
        var ok = true
        forEachHeader(bytes, from: lineEnd + 2, to: end) { name, value in
            if equalsLowercased(bytes, name, "content-length") {
                if length != nil { ok = false }
                length = decimal(bytes, value)
                if length == nil { ok = false }
            } else if equalsLowercased(bytes, name, "transfer-encoding") || equalsLowercased(bytes, name, "upgrade") {
                ok = false
            }
            return ok
        } onMalformed: {
            ok = false
        }
        guard ok else { return nil }
        return end + (length ?? 0)
    }

    /// A response head the fast path relays.
    struct Response: Equatable {
        enum Framing: Equatable {
            /// No body (a 204 or 304, or the answer to a HEAD).
            case none
            case length(Int)
            case chunked
            /// Until the upstream closes (no length, not chunked).
            case untilClose
        }
        var length: Int
        var status: Int
        /// `SSS reason`: the status line after the version, without its line break.
        var statusText: Range<Int>
        var headersStart: Int
        var framing: Framing
        var keepAlive: Bool
        /// `Content-Type` is JSON (`rewrite_links` may hold the answer).
        var isJSON: Bool
        /// `Location`, `Content-Location`, `x-ratelimit-reset`, `Retry-After`: rare, read again when present.
        var hasLocation: Bool
        var rateLimitReset: Range<Int>?
        var hasRetryAfter: Bool
        /// `Connection` names headers other than close/keep-alive (they are dropped).
        var connectionNames: [Range<Int>]
    }

    enum ResponseParse: Equatable {
        case incomplete
        /// Not a well-formed HTTP/1.x answer head (or an ambiguous one): the exchange fails with 502.
        case malformed
        case head(Response)
    }

    /// Reads an upstream's answer head. `bodyless` when the request was a HEAD.
    static func parseResponse(_ bytes: UnsafeRawBufferPointer, requestWasHead: Bool, limit: Int = 64 * 1024)
        -> ResponseParse
    {
        guard let end = headEnd(bytes, limit: limit) else {
            return bytes.count >= limit ? .malformed : .incomplete
        }
        let http11 = matches(bytes, at: 0, "HTTP/1.1 ")
        guard http11 || matches(bytes, at: 0, "HTTP/1.0 ") else { return .malformed }
        let statusStart = 9
        guard end > statusStart + 3, (0..<3).allSatisfy({ isDigit(bytes[statusStart + $0]) }),
            bytes[statusStart + 3] == 0x20 || bytes[statusStart + 3] == 0x0D
        else { return .malformed }
        let status =
            Int(bytes[statusStart] - 48) * 100 + Int(bytes[statusStart + 1] - 48) * 10
            + Int(bytes[statusStart + 2] - 48)
        guard status >= 100 else { return .malformed }
        var lineEnd = statusStart + 3
        while lineEnd < end, bytes[lineEnd] != 0x0D {
            let c = bytes[lineEnd]
            if c < 0x20 && c != 0x09 || c == 0x7F { return .malformed }
            lineEnd += 1
        }
        guard lineEnd + 1 < end, bytes[lineEnd + 1] == 0x0A else { return .malformed }
        var contentLength: Int?
        var chunked = false
        var sawTransferEncoding = false
        var sawClose = false
        var sawKeepAlive = false
        var response = Response(
            length: end, status: status, statusText: statusStart..<lineEnd, headersStart: lineEnd + 2,
            framing: .untilClose, keepAlive: false, isJSON: false, hasLocation: false, rateLimitReset: nil,
            hasRetryAfter: false, connectionNames: [])
        var ok = true
        forEachHeader(bytes, from: lineEnd + 2, to: end) { name, value in
            switch name.count {
            case 14 where equalsLowercased(bytes, name, "content-length"):
                guard let n = decimal(bytes, value), contentLength == nil || contentLength == n else {
                    ok = false
                    return false
                }
                contentLength = n
            case 17 where equalsLowercased(bytes, name, "transfer-encoding"):
                if sawTransferEncoding || !equalsLowercased(bytes, value, "chunked") { ok = false }
                sawTransferEncoding = true
                chunked = true
            case 10 where equalsLowercased(bytes, name, "connection"):
                forEachToken(bytes, value) { token in
                    if equalsLowercased(bytes, token, "close") {
                        sawClose = true
                    } else if equalsLowercased(bytes, token, "keep-alive") {
                        sawKeepAlive = true
                    } else {
                        response.connectionNames.append(token)
                    }
                }
            case 12 where equalsLowercased(bytes, name, "content-type"):
                response.isJSON = LinkRewriteFilter.isJSON(bytes: bytes[value])
            case 8 where equalsLowercased(bytes, name, "location"):
                response.hasLocation = true
            case 16 where equalsLowercased(bytes, name, "content-location"):
                response.hasLocation = true
            case 17 where equalsLowercased(bytes, name, "x-ratelimit-reset"):
                response.rateLimitReset = value
            case 11 where equalsLowercased(bytes, name, "retry-after"):
                response.hasRetryAfter = true
            default:
                break
            }
            return ok
        } onMalformed: {
            ok = false
        }
        // Both a length and chunked framing is how responses are smuggled: refuse, as NIO's decoder does.
        guard ok, !(chunked && contentLength != nil) else { return .malformed }
        // `close` wins wherever it is; HTTP/1.0 keeps the connection only when asked to.
        response.keepAlive = !sawClose && (http11 || sawKeepAlive)
        if requestWasHead || status == 204 || status == 304 || status < 200 {
            response.framing = .none
        } else if chunked {
            response.framing = .chunked
        } else if let contentLength {
            response.framing = .length(contentLength)
        } else {
            response.framing = .untilClose
            response.keepAlive = false
        }
        return .head(response)
    }

    /// Response headers the client never gets from the upstream: hop-by-hop ones (framing excepted, which the
    /// fast path relays as it is) and the upstream's own request ID (the gateway's replaces it).
    static let droppedResponseHeaders: [[UInt8]] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "upgrade", "x-request-id",
    ].map { Array($0.utf8) }

    // MARK: - Reading bytes

    /// Whether a line feed comes without its carriage return.
    static func hasBareLF(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x0A && (i == 0 || bytes[i - 1] != 0x0D) { return true }
            i += 1
        }
        return false
    }

    /// The index just past the head's `\r\n\r\n`, if it is within the first `limit` bytes.
    static func headEnd(_ bytes: UnsafeRawBufferPointer, limit: Int) -> Int? {
        let n = min(bytes.count, limit)
        guard n >= 4 else { return nil }
        var i = 3
        while i < n {
            // Step on the last byte of the pattern: a byte other than \n cannot end it.
            if bytes[i] == 0x0A {
                if bytes[i - 1] == 0x0D && bytes[i - 2] == 0x0A && bytes[i - 3] == 0x0D { return i + 1 }
                i += 1
            } else {
                i += bytes[i] == 0x0D ? 1 : 2
            }
        }
        return nil
    }

    /// Calls `body` with the name and the trimmed value of each header line in `from..<to` (`to` is the head's
    /// end, its empty line included) until it returns false. A line that is not `token ":" OWS value OWS CRLF`
    /// with visible ASCII, spaces and tabs (an obs-fold, a bare CR or LF, a control byte, obs-text) calls
    /// `onMalformed` and stops.
    static func forEachHeader(
        _ bytes: UnsafeRawBufferPointer, from: Int, to end: Int, _ body: (Range<Int>, Range<Int>) -> Bool,
        onMalformed: () -> Void
    ) {
        var i = from
        while i < end - 2 {
            let nameStart = i
            while i < end, isTokenByte(bytes[i]) { i += 1 }
            guard i > nameStart, i < end, bytes[i] == UInt8(ascii: ":") else { return onMalformed() }
            let name = nameStart..<i
            i += 1
            while i < end, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 }
            let valueStart = i
            var valueEnd = i
            while i < end, bytes[i] != 0x0D {
                let c = bytes[i]
                guard c >= 0x20 && c < 0x7F || c == 0x09 else { return onMalformed() }
                i += 1
                if c != 0x20 && c != 0x09 { valueEnd = i }
            }
            guard i + 1 < end, bytes[i + 1] == 0x0A else { return onMalformed() }
            i += 2
            if !body(name, valueStart..<valueEnd) { return }
        }
    }

    /// The comma-separated tokens of a list value, trimmed, empty ones skipped.
    static func forEachToken(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = value.lowerBound
        var i = value.lowerBound
        func emit(_ end: Int) {
            var s = start
            var e = end
            while s < e, bytes[s] == 0x20 || bytes[s] == 0x09 { s += 1 }
            while e > s, bytes[e - 1] == 0x20 || bytes[e - 1] == 0x09 { e -= 1 }
            if s < e { body(s..<e) }
        }
        while i < value.upperBound {
            if bytes[i] == UInt8(ascii: ",") {
                emit(i)
                start = i + 1
            }
            i += 1
        }
        emit(value.upperBound)
    }

    /// ASCII case-insensitive comparison of `range` against a lower-case name.
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lower: StaticString) -> Bool {
        guard range.count == lower.utf8CodeUnitCount else { return false }
        let base = lower.utf8Start
        var j = 0
        for i in range {
            let c = bytes[i]
            if (c >= 0x41 && c <= 0x5A ? c | 0x20 : c) != base[j] { return false }
            j += 1
        }
        return true
    }

    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lower: [UInt8]) -> Bool {
        guard range.count == lower.count else { return false }
        var j = 0
        for i in range {
            let c = bytes[i]
            if (c >= 0x41 && c <= 0x5A ? c | 0x20 : c) != lower[j] { return false }
            j += 1
        }
        return true
    }

    static func matches(_ bytes: UnsafeRawBufferPointer, at offset: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard offset >= 0, offset + n <= bytes.count else { return false }
        let base = literal.utf8Start
        for j in 0..<n where bytes[offset + j] != base[j] { return false }
        return true
    }

    /// A non-negative decimal (at most 18 digits), or nil.
    static func decimal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var n = 0
        for i in range {
            guard isDigit(bytes[i]) else { return nil }
            n = n * 10 + Int(bytes[i] - 48)
        }
        return n
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// RFC 9110 `tchar` (the multipart reader's, one definition).
    @inline(__always)
    static func isTokenByte(_ c: UInt8) -> Bool { UploadFraming.isTokenByte(c) }

    /// The methods the fast path takes: those whose requests carry no body when they have no framing header, and
    /// `POST` with a `Content-Length` (only a presign call the cache answers stays on the fast path).
    private static func fastMethod(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod? {
        if matchesExactly(bytes, range, "GET") { return .GET }
        if matchesExactly(bytes, range, "POST") { return .POST }
        if matchesExactly(bytes, range, "HEAD") { return .HEAD }
        if matchesExactly(bytes, range, "DELETE") { return .DELETE }
        if matchesExactly(bytes, range, "OPTIONS") { return .OPTIONS }
        return nil
    }

    private static func matchesExactly(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ s: StaticString) -> Bool
    {
        range.count == s.utf8CodeUnitCount && matches(bytes, at: range.lowerBound, s)
    }
}
