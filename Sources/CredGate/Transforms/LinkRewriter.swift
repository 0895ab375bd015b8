import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Keeps absolute links in the platform's answers behind the gateway: the upstream's own base URL
/// (`https://api.example.com/v1`) becomes the gateway's address as the client reached it
/// (`http://127.0.0.1:8080`), so a client that follows a `next` page link or a `Location` stays on credgate
/// (with its credentials) instead of going to the platform without a key. Other hosts are never touched:
/// presigned storage URLs must stay exactly as signed. This is nginx's `proxy_redirect default` for headers and
/// `sub_filter` for bodies, restricted to the upstream's own origin.
struct LinkRewriter: Sendable {
    /// Spellings of the upstream's base the platform may use: as configured, and with the scheme's default port
    /// written out.
    let upstreamBases: [String]

    /// The client-side path of the upstream's base (``UpstreamConfig/mount``): put after the gateway's address.
    let mount: String

    /// The bytes a body is searched for: each base as is and in JSON's escaped-slash form, made once here.
    private let searched: [[UInt8]]

    init(upstream: UpstreamURL, mount: String = "") {
        self.mount = mount
        let base = upstream.description
        let defaultPort = upstream.scheme == .https ? 443 : 80
        var bases = [base]
        if upstream.port == defaultPort {
            let host = upstream.host.utf8.contains(UInt8(ascii: ":")) ? "[\(upstream.host)]" : upstream.host
            bases.append("\(upstream.scheme.rawValue)://\(host):\(defaultPort)\(upstream.basePath)")
        }
        upstreamBases = bases
        searched = bases.flatMap { [Array($0.utf8), Array($0.replacingSlashes.utf8)] }
    }

    /// The gateway's base as the client addressed it (its checked `Host` header), or nil when it sent none.
    static func gatewayBase(clientHost: String?) -> String? {
        clientHost.map { "http://" + $0 }
    }

    /// A `Location`/`Content-Location` value with the upstream's base replaced, or nil when it names another host.
    func rewriteHeader(_ value: String, to gateway: String) -> String? {
        for base in upstreamBases where value.hasPrefix(base) {
            let rest = value.dropFirst(base.utf8.count)
            // A prefix match must end at a path boundary: `https://api.example.com.evil/` is another host.
            guard rest.isEmpty || rest.first == "/" || rest.first == "?" || rest.first == "#" else { continue }
            return gateway + mount + rest
        }
        return nil
    }

    /// A JSON body with every occurrence of the upstream's base replaced (also in JSON's escaped-slash form,
    /// `https:\/\/...`); nil when there was none.
    func rewriteBody(_ body: ByteBuffer, to gateway: String) -> ByteBuffer? {
        guard mentionsUpstream(body) else { return nil }
        var bytes = Array(body.readableBytesView)
        var changed = false
        for base in upstreamBases {
            let to = gateway + mount
            for (from, to) in [(base, to), (base.replacingSlashes, to.replacingSlashes)] {
                if let replaced = Self.replace(Array(from.utf8), with: Array(to.utf8), in: bytes) {
                    bytes = replaced
                    changed = true
                }
            }
        }
        return changed ? ByteBuffer(bytes: bytes) : nil
    }

    /// Whether the body holds the upstream's base in any spelling. Most answers hold no link to the upstream: this
    /// finds that out in place, before anything is copied or allocated.
    func mentionsUpstream(_ body: ByteBuffer) -> Bool {
        body.withUnsafeReadableBytes { raw in searched.contains { Self.contains($0, in: raw) } }
    }

    /// Whether `needle` occurs in `haystack` (anywhere: the boundary rule is ``replace(_:with:in:)``'s).
    static func contains(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Bool {
        guard let first = needle.first, haystack.count >= needle.count else { return false }
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return true }
            }
            i += 1
        }
        return false
    }

    /// Replaces `from` by `to` where it is followed by a path boundary (`/`, `?`, `#`, `"`, `\`) or the end.
    static func replace(_ from: [UInt8], with to: [UInt8], in bytes: [UInt8]) -> [UInt8]? {
        guard let first = from.first, bytes.count >= from.count else { return nil }
        var out: [UInt8] = []
        var i = 0
        var changed = false
        while i < bytes.count {
            if bytes[i] == first, i + from.count <= bytes.count, bytes[i..<(i + from.count)].elementsEqual(from) {
                let next = i + from.count < bytes.count ? bytes[i + from.count] : nil
                if next == nil
                    || [
                        UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "\""), UInt8(ascii: "\\"),
                    ].contains(next!)
                {
                    if !changed {
                        out.reserveCapacity(bytes.count + 64)
                        out.append(contentsOf: bytes[0..<i])
                        changed = true
                    }
                    out.append(contentsOf: to)
                    i += from.count
                    continue
                }
            }
            if changed { out.append(bytes[i]) }
            i += 1
        }
        return changed ? out : nil
    }
}

extension String {
    /// `/` written as `\/`, as some JSON encoders write URLs.
    fileprivate var replacingSlashes: String {
        var out = ""
        for c in self { if c == "/" { out += "\\/" } else { out.append(c) } }
        return out
    }
}

/// The `rewrite_links` transform: JSON answers (up to ``limit`` bytes) have the upstream's own absolute links
/// pointed at the gateway. Larger answers pass unchanged, counted in ``passedUnchanged``.
struct LinkRewriteFilter: ResponseFilter {
    static let limit = 1 << 20
    let rewriter: LinkRewriter
    let passedUnchanged: LinkRewriteCounter

    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        guard let type = head.headers.first(name: "content-type"), Self.isJSON(type) else { return nil }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > Self.limit {
            passedUnchanged.increment()
            return nil
        }
        return Self.limit
    }

    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext)
        -> ResponseFilterResult
    {
        // The gateway's base is only made for a body that has a link to rewrite.
        guard rewriter.mentionsUpstream(body),
            let gateway = LinkRewriter.gatewayBase(clientHost: context.clientHead.headers.first(name: "host")),
            let rewritten = rewriter.rewriteBody(body, to: gateway)
        else { return .proceed }
        body = rewritten
        return .proceed
    }
}

extension LinkRewriteFilter {
    /// `application/json` (any parameters) or a `+json` type, in any letter case, compared in place: the header
    /// is read for every answer, and lowercasing a value this long allocates.
    static func isJSON(_ type: String) -> Bool { isJSON(bytes: type.utf8) }

    /// ``isJSON(_:)`` on the value's bytes (the fast path reads them in place).
    static func isJSON<Bytes: Collection<UInt8>>(bytes value: Bytes) -> Bool {
        // A prefix compared by index (zip's iterators were 0.5% of a fast-path request's CPU).
        let json: StaticString = "application/json"
        if value.count >= json.utf8CodeUnitCount {
            var i = value.startIndex
            var k = 0
            while k < json.utf8CodeUnitCount {
                let c = value[i]
                if (c >= 65 && c <= 90 ? c + 32 : c) != json.utf8Start[k] { break }
                value.formIndex(after: &i)
                k += 1
            }
            if k == json.utf8CodeUnitCount { return true }
        }
        // The rarer types: a copy is fine here.
        return String(decoding: value, as: UTF8.self).lowercased().contains("+json")
    }
}

/// Answers too large to rewrite (a count for status and metrics).
final class LinkRewriteCounter: Sendable {
    private let value = NIOLockedValueBox(0)
    var count: Int { value.withLockedValue { $0 } }
    func increment() { value.withLockedValue { $0 += 1 } }
}
