import NIOCore
import NIOHTTP1

/// Header rules of a proxy (RFC 9110 section 7.6.1): hop-by-hop headers stay on their hop, the upstream gets its
/// own `Host`, and the `X-Forwarded-*` headers say where the request came from.
enum HeaderHygiene {
    /// Always hop-by-hop, whatever `Connection` says. Lower-case.
    static let hopByHop: [String] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// Removes hop-by-hop headers and the ones the `Connection` header names. `keepingFraming` keeps
    /// `Transfer-Encoding` (the request's framing, still needed until the upstream head is built).
    static func removeHopByHop(_ headers: inout HTTPHeaders, keepingFraming: Bool = false) {
        // Fast path (most messages): one pass finds none, so no removal scans at all.
        guard headers.contains(where: { isHopByHop($0.name) }) else { return }
        // The names the Connection header adds (most messages name nothing beyond keep-alive/close).
        var named: [String] = []
        for (name, value) in headers where equalsLowercased(name, "connection") {
            for token in value.split(separator: ",") {
                let t = token.trimmingASCIISpaces().lowercased()
                if !t.isEmpty && t != "close" && t != "keep-alive" && !(keepingFraming && t == "transfer-encoding") {
                    named.append(t)
                }
            }
        }
        // One pass that copies what stays, instead of a scanning `remove(name:)` per hop-by-hop name (a message
        // from a keep-alive peer always has `Connection`, so this is the path of most answers).
        var kept = HTTPHeaders()
        kept.reserveCapacity(headers.count)
        for (name, value) in headers {
            let framing = keepingFraming && equalsLowercased(name, "transfer-encoding")
            if (isHopByHop(name) && !framing) || named.contains(where: { equalsLowercased(name, $0) }) { continue }
            kept.add(name: name, value: value)
        }
        headers = kept
    }

    /// Frames a message whose body is now known whole: `Content-Length` set to `length`, `Transfer-Encoding`
    /// removed (never both: request smuggling). The one place a length is rewritten.
    static func setContentLength(_ headers: inout HTTPHeaders, _ length: Int) {
        headers.remove(name: "transfer-encoding")
        headers.replaceOrAdd(name: "content-length", value: String(length))
    }

    /// Headers about the client's path to the gateway that a client could forge. credgate is the first hop
    /// unless `listen.trust_forwarded_headers` says otherwise, so the client's own are dropped.
    static let forwardingHeaders = [
        "forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "via",
    ]

    /// Whether a header name is always hop-by-hop (ASCII case-insensitive, no allocation).
    static func isHopByHop(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard let first = utf8.first else { return false }
        switch first | 0x20 {
        case UInt8(ascii: "c"), UInt8(ascii: "k"), UInt8(ascii: "p"), UInt8(ascii: "t"), UInt8(ascii: "u"):
            return hopByHop.contains { $0.utf8.count == utf8.count && equalsLowercased(name, $0) }
        default:
            return false
        }
    }

    /// ASCII case-insensitive comparison against an already lower-case name.
    static func equalsLowercased(_ name: String, _ lower: String) -> Bool {
        name.utf8.elementsEqual(lower.utf8) { a, b in
            (a >= 0x41 && a <= 0x5A ? a | 0x20 : a) == b
        }
    }

    /// The head sent upstream for a client's request head (already through the route's filters).
    static func upstreamHead(
        from client: HTTPRequestHead,
        target: UpstreamTarget,
        requestID: String,
        clientAddress: String?,
        hasBody: Bool,
        trustForwarded: Bool = false,
        forwardCookies: Bool = false
    ) -> HTTPRequestHead {
        var headers = client.headers
        // Validated by the head checks (exactly one, RFC 9110 syntax), so safe to pass on.
        let originalHost = headers.first(name: "host")
        let wasChunked = headers.contains(name: "transfer-encoding")
        removeHopByHop(&headers)
        headers.remove(name: "expect") // the gateway answered 100-continue itself
        if !forwardCookies { headers.remove(name: "cookie") }
        headers.replaceOrAdd(name: "host", value: target.hostHeader)
        if trustForwarded {
            if let clientAddress {
                let existing = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
                headers.replaceOrAdd(
                    name: "x-forwarded-for", value: existing.isEmpty ? clientAddress : existing + ", " + clientAddress)
            }
            let via = headers[canonicalForm: "via"].joined(separator: ", ")
            headers.replaceOrAdd(name: "via", value: via.isEmpty ? "1.1 credgate" : via + ", 1.1 credgate")
        } else {
            if headers.contains(where: { h in forwardingHeaders.contains { equalsLowercased(h.name, $0) } }) {
                for name in forwardingHeaders { headers.remove(name: name) }
            }
            if let clientAddress { headers.add(name: "x-forwarded-for", value: clientAddress) }
            headers.add(name: "via", value: "1.1 credgate")
        }
        headers.replaceOrAdd(name: "x-forwarded-proto", value: "http")
        if let originalHost {
            headers.replaceOrAdd(name: "x-forwarded-host", value: originalHost)
        } else {
            headers.remove(name: "x-forwarded-host")
        }
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
        if hasBody && wasChunked {
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        let uri = target.upstreamURI(client.uri)
        return HTTPRequestHead(version: .http1_1, method: client.method, uri: uri, headers: headers)
    }

    /// The head sent to the client for the upstream's response head.
    static func clientHead(
        from upstream: HTTPResponseHead,
        clientVersion: HTTPVersion,
        requestID: String,
        closeAfter: Bool,
        links: LinkRewriter? = nil,
        gatewayBase: @autoclosure () -> String? = nil
    ) -> HTTPResponseHead {
        var headers = upstream.headers
        removeHopByHop(&headers)
        // nginx's `proxy_redirect default`: a redirect or a created resource on the upstream's own origin points
        // at the gateway instead, so the client follows it with its credentials.
        let code = upstream.status.code
        if let links, code == 201 || (300..<400).contains(code), let gatewayBase = gatewayBase() {
            for name in ["location", "content-location"] {
                if let value = headers.first(name: name), let rewritten = links.rewriteHeader(value, to: gatewayBase) {
                    headers.replaceOrAdd(name: name, value: rewritten)
                }
            }
        }
        RateLimitHeaders.addRetryAfter(status: upstream.status, headers: &headers)
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
        if closeAfter {
            headers.add(name: "connection", value: "close")
        } else if clientVersion == .http1_0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: clientVersion, status: upstream.status, headers: headers)
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (optional whitespace around a list element, RFC 9110 5.6.1).
    func trimmingASCIISpaces() -> Substring {
        guard let first = firstIndex(where: { $0 != " " && $0 != "\t" }) else { return self[endIndex...] }
        let last = lastIndex(where: { $0 != " " && $0 != "\t" })!
        return self[first...last]
    }
}
