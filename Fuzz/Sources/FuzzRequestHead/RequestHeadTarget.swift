import Foundation
import FuzzSupport
import NIOCore
import NIOHTTP1

@testable import CredGate

/// Fuzz target: the checks every request head meets before any route is consulted: `ProxyHandler.check` and
/// `inspect` (target form, header size, Content-Length / Transfer-Encoding smuggling, Host, Connection naming a
/// protected header, and the path rules of `RequestPath.normalize`), `ProxyHandler.climbsOut` and `path(of:)`,
/// `RequestID.from`, the hop-by-hop header removal, and the problem+json answer made for a refused head.
///
/// Input layout:
/// ```
/// byte 0     the method: an index into `methods` (past its end: a made-up method from the next line)
/// byte 1     bit 7: HTTP/1.0 (else 1.1); bits 0-6: maxHeaderBytes = 128 * (bits + 1)
/// line       the request target (URI) as sent
/// lines      headers, `name: value` (split at the first colon, spaces after it dropped, as NIO does)
/// ```
/// The head is built without SwiftNIO's parser, so it may hold bytes that parser would refuse (CR, NUL, bytes
/// over 0x7F in values and in the target, separators in names): the checks must not trap on them either, since
/// a change of parser, or a filter that writes headers, could let them through. Names stay ASCII (the top bit
/// of each byte is dropped), as `HTTPHeaders.add` requires.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestHead(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let methodIndex = Int(input.byte())
    let options = input.byte()
    let version: HTTPVersion = options & 0x80 == 0 ? .http1_1 : .http1_0
    let maxHeaderBytes = 128 * (Int(options & 0x7F) + 1)
    let uri = String(fuzzBytes: input.line())
    var headers = HTTPHeaders()
    while !input.isEmpty {
        let line = input.line()
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let value = line[colon...].dropFirst().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        // HTTPHeaders traps on a name that is not ASCII (a precondition of `add`); NIO's parser never makes one.
        headers.add(name: String(fuzzBytes: line[..<colon].map { $0 & 0x7F }), value: String(fuzzBytes: value))
    }
    let method = methodIndex < methods.count ? methods[methodIndex] : HTTPMethod.RAW(value: "X\(methodIndex)")
    let head = HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)

    let path = ProxyHandler.path(of: uri)
    fuzzExpect(
        uri.utf8.starts(with: path.utf8) && !path.utf8.contains(UInt8(ascii: "?")),
        "path(of:) is not the part before '?'")
    // climbsOut, like the path rules under it, reads origin-form paths only (`check` refuses the other forms).
    if path.utf8.first == UInt8(ascii: "/"), let decoded = String(path).removingPercentEncoding {
        let dotSegment = decoded.split(separator: "/", omittingEmptySubsequences: false).contains {
            $0 == "." || $0 == ".."
        }
        fuzzExpect(
            !dotSegment || ProxyHandler.climbsOut(path),
            "climbsOut missed a dot segment in \(String(reflecting: String(path)))")
    }

    // The path a route is matched on must itself be one that needs no more normalising: otherwise what is
    // matched and what the platform reads could differ after all.
    if case .success(let checked) = ProxyHandler.inspect(
        head, maxHeaderBytes: maxHeaderBytes, protectedHeaders: protected),
        let normalized = checked.normalizedPath
    {
        fuzzExpect(
            normalized.utf8.first == UInt8(ascii: "/"), "normalised \(String(reflecting: uri)) to a relative path")
        fuzzExpect(
            RequestPath.normalize(normalized[...]) == .unchanged,
            "normalising \(String(reflecting: String(path))) twice differs from once (\(normalized))")
        fuzzExpect(checked.unsafePath == nil, "a path both normalised and unsafe")
    }

    let verdict = ProxyHandler.check(head, maxHeaderBytes: maxHeaderBytes, protectedHeaders: protected)
    if verdict == nil {
        fuzzExpect(uri.utf8.first == UInt8(ascii: "/"), "accepted a target that is not origin-form")
        fuzzExpect(method != .CONNECT, "accepted CONNECT")
        fuzzExpect(head.headers[canonicalForm: "content-length"].count <= 1, "accepted two Content-Lengths")
    }
    if let verdict {
        // The answer to a refused head quotes parts of it: it must still be JSON.
        let response = LocalResponse.problem(verdict, requestID: "fuzz")
        let body = Data(response.body.readableBytesView)
        fuzzExpect(
            (try? JSONSerialization.jsonObject(with: body)) is [String: Any],
            "the problem+json answer for \(verdict) is not a JSON object")
    }
    _ = ProxyHandler.hasBody(head)

    if let id = RequestID.from(head.headers) {
        fuzzExpect(
            !id.isEmpty && id.utf8.count <= 128 && id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F },
            "RequestID.from kept an unsafe id")
    }

    var hygienic = head.headers
    HeaderHygiene.removeHopByHop(&hygienic)
    fuzzExpect(!hygienic.contains { HeaderHygiene.isHopByHop($0.name) }, "a hop-by-hop header survived")
    return 0
}

/// What the Assured profile's credentials write: a client's `Connection` header may not name them.
let protected = ["x-api-key", "authorization"]

/// Every method NIO names, CONNECT first: the one `check` refuses outright.
let methods: [HTTPMethod] = [
    .CONNECT, .GET, .PUT, .ACL, .HEAD, .POST, .COPY, .LOCK, .MOVE, .BIND, .LINK, .PATCH, .TRACE, .MKCOL, .MERGE,
    .PURGE, .NOTIFY, .SEARCH, .UNLOCK, .REBIND, .UNBIND, .REPORT, .DELETE, .UNLINK, .OPTIONS, .MSEARCH,
    .PROPFIND, .CHECKOUT, .PROPPATCH, .SUBSCRIBE, .MKCALENDAR, .MKACTIVITY, .UNSUBSCRIBE, .SOURCE,
]
