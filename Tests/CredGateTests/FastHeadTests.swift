import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

// The fast path's byte-level head readers (FastHead) and its chunked-body follower (ChunkedFraming): what they
// take, what they hand to the full path, and where they say a head or a body ends.

/// The bytes of `text`, one byte per character (U+0000 to U+00FF), so that a test can write any byte: "\u{80}" is
/// the byte 0x80, not its UTF-8 encoding.
private func latin1(_ text: String) -> [UInt8] {
    text.unicodeScalars.map { scalar in
        precondition(scalar.value < 256, "not a byte: \(scalar)")
        return UInt8(scalar.value)
    }
}

/// What a runtime refuses on the fast path: the fixed list and one credential's header.
private let refused = (FastHead.fullPathRequestHeaders + ["x-api-key"]).map { Array($0.utf8) }

private func parseRequest(_ text: String, maxHeaderBytes: Int = 32 * 1024) -> FastHead.RequestParse {
    parseRequest(latin1(text), maxHeaderBytes: maxHeaderBytes)
}

private func parseRequest(_ bytes: [UInt8], maxHeaderBytes: Int = 32 * 1024) -> FastHead.RequestParse {
    bytes.withUnsafeBytes { FastHead.parseRequest($0, maxHeaderBytes: maxHeaderBytes, refused: refused) }
}

private func parseResponse(_ text: String, requestWasHead: Bool = false, limit: Int = 64 * 1024)
    -> FastHead.ResponseParse
{
    latin1(text).withUnsafeBytes { FastHead.parseResponse($0, requestWasHead: requestWasHead, limit: limit) }
}

private func headEnd(_ bytes: [UInt8], limit: Int = .max) -> Int? {
    bytes.withUnsafeBytes { FastHead.headEnd($0, limit: limit) }
}

/// Where `needle` first occurs in `text` (as bytes).
private func range(of needle: String, in text: String, after offset: Int = 0) -> Range<Int> {
    let haystack = latin1(text)
    let pattern = latin1(needle)
    for start in offset...(haystack.count - pattern.count)
    where Array(haystack[start..<start + pattern.count]) == pattern {
        return start..<start + pattern.count
    }
    preconditionFailure("\(needle) is not in \(text)")
}

/// The bytes of `text` in `range`, as a string.
private func text(_ text: String, _ range: Range<Int>) -> String {
    String(decoding: latin1(text)[range], as: UTF8.self)
}

private func get(_ target: String = "/api/x", _ headers: String...) -> String {
    get(target, headers: headers)
}

private func get(_ target: String, headers: [String]) -> String {
    "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n"
}

@Suite struct FastHeadRequestTests {
    @Test func aPlainGetIsFast() {
        let head = "GET /api/x?a=b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n"
        let expected = FastHead.Request(
            length: 62, method: .GET, target: 4..<14, pathEnd: 10, host: 31..<45, close: false, headersStart: 25)
        #expect(parseRequest(head) == .fast(expected))
        #expect(latin1(head).count == 62)
        #expect(text(head, expected.target) == "/api/x?a=b")
        #expect(text(head, expected.target.lowerBound..<expected.pathEnd) == "/api/x")
        #expect(text(head, expected.host) == "127.0.0.1:8080")
        #expect(text(head, expected.headersStart..<expected.headersStart + 5) == "Host:")
    }

    @Test func bytesAfterTheHeadAreNotPartOfIt() {
        let head = get()
        let next = "GET /api/y HTTP/1.1\r\nHost: a\r\n\r\n"
        guard case .fast(let request) = parseRequest(head + next) else {
            Issue.record("not fast")
            return
        }
        #expect(request.length == latin1(head).count)
        guard case .fast(let request) = parseRequest(head + "POST") else {
            Issue.record("not fast")
            return
        }
        #expect(request.length == latin1(head).count)
    }

    @Test func aPathWithoutQueryEndsAtTheTargetsEnd() {
        let head = get("/api/v1/users/providers-list/")
        guard case .fast(let request) = parseRequest(head) else {
            Issue.record("not fast")
            return
        }
        #expect(request.pathEnd == request.target.upperBound)
        #expect(text(head, request.target) == "/api/v1/users/providers-list/")
    }

    @Test func theHostValueIsTrimmed() {
        let head = "GET / HTTP/1.1\r\nhOST: \t example.com:80 \t \r\n\r\n"
        guard case .fast(let request) = parseRequest(head) else {
            Issue.record("not fast")
            return
        }
        #expect(text(head, request.host) == "example.com:80")
        #expect(request.target == 4..<5)
        #expect(request.pathEnd == 5)
    }

    @Test(arguments: [
        ("Connection: close", true),
        ("connection: CLOSE", true),
        ("Connection:  close \t", true),
        ("Connection: keep-alive", false),
        ("Connection: Keep-Alive", false),
    ])
    func connection(_ header: String, _ close: Bool) {
        guard case .fast(let request) = parseRequest(get("/api/x", header)) else {
            Issue.record("not fast")
            return
        }
        #expect(request.close == close)
    }

    @Test(arguments: [("HEAD", HTTPMethod.HEAD), ("DELETE", .DELETE), ("OPTIONS", .OPTIONS), ("GET", .GET)])
    func bodylessMethodsAreFast(_ name: String, _ method: HTTPMethod) {
        let head = "\(name) /api/x HTTP/1.1\r\nHost: a\r\n\r\n"
        guard case .fast(let request) = parseRequest(head) else {
            Issue.record("\(name) not fast")
            return
        }
        #expect(request.method == method)
        #expect(text(head, request.target) == "/api/x")
        #expect(text(head, request.host) == "a")
    }

    @Test(arguments: ["PUT", "PATCH", "CONNECT", "TRACE", "get", "Get", "GETS", "PROPFIND"])
    func otherMethodsTakeTheFullPath(_ method: String) {
        #expect(parseRequest("\(method) /api/x HTTP/1.1\r\nHost: a\r\n\r\n") == .fullPath)
    }

    /// A POST is read only with one plain `Content-Length` (the fast path answers presign calls from the cache);
    /// the body's length is the request's.
    @Test(arguments: [("Content-Length: 58", 58), ("content-length:0", 0), ("CONTENT-LENGTH:  007 ", 7)])
    func aPostWithOneLengthIsRead(_ header: String, _ length: Int) {
        guard case .fast(let request) = parseRequest("POST /api/x HTTP/1.1\r\nHost: a\r\n\(header)\r\n\r\n{}") else {
            Issue.record("\(header): not fast")
            return
        }
        #expect(request.method == .POST)
        #expect(request.contentLength == length)
        #expect(request.length == latin1("POST /api/x HTTP/1.1\r\nHost: a\r\n\(header)\r\n\r\n").count)
    }

    @Test(arguments: [
        "POST /a HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "DELETE /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        "Post /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    ])
    func aBodyFramedAnyOtherWayTakesTheFullPath(_ head: String) {
        #expect(parseRequest(head + "12345") == .fullPath, "\(head.debugDescription)")
    }

    @Test func anIncompleteHeadWaits() {
        let head = latin1(get("/api/x", "Accept: */*"))
        for n in 0..<head.count {
            let parse = head[..<n].withUnsafeBytes {
                FastHead.parseRequest($0, maxHeaderBytes: 32 * 1024, refused: refused)
            }
            #expect(parse == .incomplete, "prefix of \(n) bytes")
        }
    }

    /// The limit is the full path's: a fast head is one whose size the full path's check passes. It also bounds
    /// the wait: that many bytes with no end in them go to the full path.
    @Test func theHeaderSizeLimit() throws {
        let text = get("/api/x", "Accept: */*")
        let head = latin1(text)
        let n = head.count
        let nio = try #require(try decodeWithNIO(text).first)
        var fast = 0
        var full = 0
        for limit in (n / 2)...(n + 1) {
            switch parseRequest(head, maxHeaderBytes: limit) {
            case .fast(let request):
                fast += 1
                #expect(request.length == n)
                #expect(ProxyHandler.check(nio, maxHeaderBytes: limit) == nil, "fast at a limit of \(limit)")
            case .fullPath:
                full += 1
            case .incomplete:
                Issue.record("a whole head is incomplete at a limit of \(limit)")
            }
        }
        #expect(fast > 0 && full > 0)
        #expect(parseRequest(head, maxHeaderBytes: n) == parseRequest(head), "a head of the limit in bytes is in")
        let start = Array(head[..<(n - 4)])
        #expect(parseRequest(start, maxHeaderBytes: n - 4) == .fullPath)
        #expect(parseRequest(start, maxHeaderBytes: n - 3) == .incomplete)
        #expect(parseRequest(start + latin1("\r\n\r"), maxHeaderBytes: n - 1) == .fullPath)
        #expect(parseRequest(start + latin1("\r\n\r"), maxHeaderBytes: n) == .incomplete)
        #expect(parseRequest(Array(repeating: UInt8(ascii: "a"), count: 40_000)) == .fullPath)
    }

    @Test func aHundredHeadersAreFastAndOneMoreIsNot() {
        let others = (1..<100).map { "X-H\($0): v" }
        guard case .fast = parseRequest(get("/api/x", headers: others)) else {
            Issue.record("100 headers (Host and 99) are not fast")
            return
        }
        #expect(parseRequest(get("/api/x", headers: others + ["X-H100: v"])) == .fullPath)
    }

    /// Heads the fast path must hand to the full path, however legal some are.
    static let fullPathHeads: [(String, String)] = [
        ("HTTP/1.0", "GET /api/x HTTP/1.0\r\nHost: a\r\n\r\n"),
        ("HTTP/2.0", "GET /api/x HTTP/2.0\r\nHost: a\r\n\r\n"),
        ("HTTP/1.10", "GET /api/x HTTP/1.10\r\nHost: a\r\n\r\n"),
        ("lower-case version", "GET /api/x http/1.1\r\nHost: a\r\n\r\n"),
        ("no version", "GET /api/x\r\nHost: a\r\n\r\n"),
        ("two spaces before the target", "GET  /api/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("two spaces before the version", "GET /api/x  HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a tab for a space", "GET\t/api/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("a space at the start", " GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("an empty line first", "\r\nGET /api/x HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("absolute form", get("http://x/")),
        ("asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("authority form", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("%2F", get("/api/a%2Fb")),
        ("%41", get("/api/%41")),
        ("% in the path", get("/api/%")),
        ("/./", get("/api/./x")),
        ("/../", get("/api/../x")),
        ("a final /..", get("/api/..")),
        ("a final /.", get("/api/.")),
        ("..", get("/api/x..y")),
        ("//", get("/api//x")),
        ("// at the start", get("//api/x")),
        ("\\", get("/api\\x")),
        ("a semicolon in the path", get("/api/x;y")),
        ("a colon in the path", get("/api/x:y")),
        ("non-ASCII in the path", get("/api/\u{C3}\u{A9}")),
        ("0x80 in the path", get("/api/\u{80}")),
        ("non-ASCII in the query", get("/api/x?a=\u{C3}\u{A9}")),
        ("a # in the path", get("/api/x#f")),
        ("a # in the query", get("/api/x?a#b")),
        ("DEL in the query", get("/api/x?a\u{7F}")),
        ("a NUL in the target", get("/api/x\u{0}")),
        ("a header without a colon", get("/api/x", "Accept */*")),
        ("a header with an empty name", get("/api/x", ": x")),
        ("a space before the colon", "GET /api/x HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("a space before a later colon", get("/api/x", "Accept : */*")),
        ("a separator in a name", get("/api/x", "X(y): z")),
        ("non-ASCII in a name", get("/api/x", "X-\u{E9}: z")),
        ("obs-fold (space)", get("/api/x", "Accept: a", " b")),
        ("obs-fold (tab)", get("/api/x", "Accept: a", "\tb")),
        ("obs-fold of Host", "GET /api/x HTTP/1.1\r\nHost:\r\n a\r\n\r\n"),
        ("bare LF after the request line", "GET /api/x HTTP/1.1\nHost: a\r\n\r\n"),
        ("bare LF after a header", "GET /api/x HTTP/1.1\r\nHost: a\nAccept: b\r\n\r\n"),
        ("bare LF as an empty line", "GET /api/x HTTP/1.1\r\nHost: a\r\n\n\r\n\r\n"),
        ("bare LF after the target", "GET /api/x\nHTTP/1.1\r\nHost: a\r\n\r\n"),
        ("bare LF, the head not all in", "GET /api/x HTTP/1.1\nHost: a"),
        ("bare LF, the rest not in", "GET /api/x HTTP/1.1\r\nHost: a\r\nAccept: b\n"),
        ("bare CR in a value", get("/api/x", "Accept: a\rb")),
        ("bare CR after the request line", "GET /api/x HTTP/1.1\rHost: a\r\n\r\n"),
        ("bare CR in the target", get("/api/x\ry")),
        ("NUL in a value", get("/api/x", "Accept: a\u{0}b")),
        ("a control byte in a value", get("/api/x", "Accept: a\u{1}b")),
        ("ESC in a value", get("/api/x", "Accept: \u{1B}[31m")),
        ("DEL in a value", get("/api/x", "Accept: a\u{7F}")),
        ("obs-text in a value", get("/api/x", "Accept: caf\u{E9}")),
        ("0xFF in a value", get("/api/x", "Accept: \u{FF}")),
        ("no Host", "GET /api/x HTTP/1.1\r\nAccept: */*\r\n\r\n"),
        ("no headers", "GET /api/x HTTP/1.1\r\n\r\n"),
        ("two Host headers", get("/api/x", "Host: 127.0.0.1:8080")),
        ("two Host headers, different", get("/api/x", "host: evil")),
        ("an empty Host", "GET /api/x HTTP/1.1\r\nHost:   \r\n\r\n"),
        ("Host with a space", "GET /api/x HTTP/1.1\r\nHost: a b\r\n\r\n"),
        ("Host with a slash", "GET /api/x HTTP/1.1\r\nHost: x/y\r\n\r\n"),
        ("Host with an open bracket", "GET /api/x HTTP/1.1\r\nHost: [::1\r\n\r\n"),
        ("Host with a bad port", "GET /api/x HTTP/1.1\r\nHost: a:8o\r\n\r\n"),
        ("Host with a long port", "GET /api/x HTTP/1.1\r\nHost: a:123456\r\n\r\n"),
        ("Host with user info", "GET /api/x HTTP/1.1\r\nHost: u@a\r\n\r\n"),
        ("Host with a percent", "GET /api/x HTTP/1.1\r\nHost: a%0d\r\n\r\n"),
        ("Content-Length: 0", get("/api/x", "Content-Length: 0")),
        ("Content-Length: 5", get("/api/x", "Content-Length: 5")),
        ("Transfer-Encoding", get("/api/x", "Transfer-Encoding: chunked")),
        ("Expect", get("/api/x", "Expect: 100-continue")),
        ("Upgrade", get("/api/x", "Upgrade: websocket")),
        ("TE", get("/api/x", "TE: trailers")),
        ("Trailer", get("/api/x", "Trailer: x")),
        ("Keep-Alive", get("/api/x", "Keep-Alive: timeout=5")),
        ("Proxy-Connection", get("/api/x", "Proxy-Connection: keep-alive")),
        ("Authorization", get("/api/x", "Authorization: Bearer t")),
        ("Proxy-Authorization", get("/api/x", "Proxy-Authorization: Basic eA==")),
        ("Cookie", get("/api/x", "Cookie: a=b")),
        ("X-Request-ID", get("/api/x", "X-Request-ID: abc")),
        ("Forwarded", get("/api/x", "Forwarded: for=1.2.3.4")),
        ("X-Forwarded-For", get("/api/x", "X-Forwarded-For: 1.2.3.4")),
        ("X-Forwarded-Host", get("/api/x", "X-Forwarded-Host: evil")),
        ("X-Forwarded-Proto", get("/api/x", "X-Forwarded-Proto: https")),
        ("X-Real-IP", get("/api/x", "X-Real-IP: 1.2.3.4")),
        ("Via", get("/api/x", "Via: 1.1 other")),
        ("a refused credential header", get("/api/x", "x-api-key: k")),
        ("a refused credential header, upper case", get("/api/x", "X-API-KEY: k")),
        ("a refused credential header, mixed case", get("/api/x", "X-Api-Key: k")),
        ("an empty refused header", get("/api/x", "Cookie:")),
        ("a refused header after many others", get("/api/x", "A: 1", "B: 2", "C: 3", "content-LENGTH: 0")),
        ("Connection: upgrade", get("/api/x", "Connection: upgrade")),
        ("Connection: close, te", get("/api/x", "Connection: close, te")),
        ("Connection: keep-alive, x-api-key", get("/api/x", "Connection: keep-alive, x-api-key")),
        ("an empty Connection", get("/api/x", "Connection:")),
        ("two Connection headers", get("/api/x", "Connection: keep-alive", "Connection: keep-alive")),
        ("Connection: close twice", get("/api/x", "Connection: close", "connection: close")),
    ]

    @Test(arguments: fullPathHeads)
    func takesTheFullPath(_ name: String, _ head: String) {
        #expect(parseRequest(head) == .fullPath, "\(name): \(String(reflecting: head))")
    }

    /// Heads the fast path takes, each read by NIO's decoder and the full path's checks too: they must agree on
    /// where the head ends, the method, the target and the Host, and the checks must pass.
    static let fastHeads: [String] = [
        "GET /api/x?a=b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "DELETE /api/v1/files/42/ HTTP/1.1\r\nhost: [::1]:8080\r\nConnection: close\r\n\r\n",
        "OPTIONS /api HTTP/1.1\r\nHOST: example.com\r\nConnection: keep-alive\r\n\r\n",
        "GET /a-b_c.d~e/F/0 HTTP/1.1\r\nHost:x\r\nA:\r\nB:\t v\t \r\n\r\n",
        "GET /api/x?q=/../%2F%ZZ//\\\"<>{}|^`?&= HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /api/x? HTTP/1.1\r\nHost: a\r\nUser-Agent: python-httpx/0.28.1\r\nAccept-Encoding: gzip, deflate\r\n\r\n",
        "GET /api/x HTTP/1.1\r\nX-Custom: a, b; c=\"d\" !#$%&'*+-.^_`|~\r\nHost: 10.0.0.1\r\n\r\n",
    ]

    @Test(arguments: fastHeads)
    func nioAndTheFullPathReadAFastHeadTheSameWay(_ head: String) throws {
        guard case .fast(let request) = parseRequest(head) else {
            Issue.record("not fast: \(String(reflecting: head))")
            return
        }
        #expect(request.length == latin1(head).count)
        // A next request right behind (NIO refuses bytes after `Connection: close`): NIO ends the head where
        // the fast path does.
        let next = request.close ? "" : "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
        let heads = try decodeWithNIO(head + next)
        #expect(heads.count == (request.close ? 1 : 2))
        #expect(heads.dropFirst().first?.uri ?? "/next" == "/next")
        let nio = try #require(heads.first)
        #expect(nio.method == request.method)
        #expect(nio.uri == text(head, request.target))
        #expect(nio.headers[canonicalForm: "host"].map(String.init) == [text(head, request.host)])
        #expect(nio.isKeepAlive == !request.close)
        #expect(ProxyHandler.check(nio, maxHeaderBytes: 32 * 1024, protectedHeaders: ["x-api-key"]) == nil)
        #expect(RequestPath.normalize(ProxyHandler.path(of: nio.uri)) == .unchanged)
        #expect(!ProxyHandler.hasBody(nio))
    }

    /// The full path splits `Host` on commas (`hostValues`) and refuses a head with two names (400); `isValidHost`
    /// alone allows commas (a sub-delim), and the fast path once forwarded `X-Forwarded-Host: a,b`, which an
    /// upstream reads as two hosts.
    @Test func aHostWithACommaTakesTheFullPath() throws {
        let head = "GET /api/x HTTP/1.1\r\nHost: a,b\r\n\r\n"
        let nio = try #require(try decodeWithNIO(head).first)
        #expect(ProxyHandler.check(nio, maxHeaderBytes: 32 * 1024) != nil)
        #expect(parseRequest(head) == .fullPath)
    }

    /// NIO's decoder refuses a head whose lines end in a bare LF (the full path answers 400 at once); such a head
    /// never holds "\r\n\r\n", and the fast path once waited for more bytes (until the head's timeout, or until
    /// `maxHeaderBytes` had come) instead of handing it over.
    @Test(arguments: [
        "GET / HTTP/1.1\nHost: a\n\n", "GET / HTTP/1.1\r\nHost: a\n\n", "GET / HTTP/1.1\r\nHost: a\r\n\n",
    ])
    func aHeadEndedByBareLFsTakesTheFullPath(_ head: String) throws {
        #expect(throws: HTTPParserError.self, "NIO refuses it") { try decodeWithNIO(head) }
        #expect(parseRequest(head) == .fullPath)
    }

    /// The full path sizes a head as `uri + 16 + sum(name + value + 4)` (`ProxyHandler.inspect`). A head of short
    /// `name:value` lines is smaller in bytes than by that sum: the fast path, which once counted bytes, took
    /// heads the full path refuses with 431.
    @Test func aHeadTheFullPathFindsTooLargeIsNotFast() throws {
        let head = get("/", headers: (1..<10).map { _ in "b:c" })
        let n = latin1(head).count
        let nio = try #require(try decodeWithNIO(head).first)
        #expect(ProxyHandler.check(nio, maxHeaderBytes: n) == .headersTooLarge(limit: n))
        #expect(parseRequest(head, maxHeaderBytes: n) == .fullPath)
    }

    /// The heads of the requests NIO's decoder reads in `text`, each with its end (nil when it reads none).
    private func decodeWithNIO(_ text: String) throws -> [HTTPRequestHead] {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: latin1(text)))
        var heads: [HTTPRequestHead] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head): heads.append(head)
            case .body: Issue.record("NIO read a body")
            case .end: break
            }
        }
        return heads
    }
}

@Suite struct FastHeadResponseTests {
    private func head(_ text: String, requestWasHead: Bool = false) -> FastHead.Response? {
        guard case .head(let response) = parseResponse(text, requestWasHead: requestWasHead) else {
            Issue.record("not a head: \(String(reflecting: text))")
            return nil
        }
        #expect(response.length == latin1(text).count)
        return response
    }

    @Test func aLengthFramed200() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        let expected = FastHead.Response(
            length: 64, status: 200, statusText: 9..<15, headersStart: 17, framing: .length(5), keepAlive: true,
            isJSON: false, hasLocation: false, rateLimitReset: nil, hasRetryAfter: false, connectionNames: [])
        #expect(parseResponse(text) == .head(expected))
        #expect(latin1(text).count == 64)
        #expect(parseResponse(text + "hello") == .head(expected), "the body is not part of the head")
    }

    @Test func aStatusLineWithoutReason() {
        #expect(head("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")?.statusText == 9..<12)
        #expect(head("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")?.statusText == 9..<13)
        #expect(head("HTTP/1.1 404 Not \u{E9} Found\r\n\r\n")?.status == 404)
    }

    @Test func keepAlive() {
        #expect(head("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n")?.keepAlive == false)
        #expect(head("HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n")?.keepAlive == true)
        #expect(head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")?.keepAlive == false)
        #expect(head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: CLOSE\r\n\r\n")?.keepAlive == false)
        #expect(head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n")?.keepAlive == true)
        #expect(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, close\r\n\r\n")?.keepAlive == false)
        #expect(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close, keep-alive\r\n\r\n")?.keepAlive == false)
        #expect(
            head("HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, close\r\n\r\n")?.keepAlive == false)
    }

    /// An HTTP/1.0 answer that says both `close` and `keep-alive`, `close` first: the upstream closes, so the
    /// connection must not go back to the pool (the later token once won).
    @Test func closeWinsOverKeepAliveOnHTTP10() {
        let text = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"
        #expect(head(text)?.keepAlive == false)
        #expect(
            head("HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: close, keep-alive\r\n\r\n")?.keepAlive
                == false)
    }

    @Test func framing() {
        let chunked = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(chunked?.framing == .chunked)
        #expect(chunked?.keepAlive == true)
        #expect(head("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n")?.framing == .chunked)
        let neither = head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        #expect(neither?.framing == .untilClose)
        #expect(neither?.keepAlive == false)
        #expect(head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?.framing == .length(0))
        #expect(head("HTTP/1.1 200 OK\r\nContent-Length:  007 \r\n\r\n")?.framing == .length(7))
        #expect(head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")?.framing == .length(5))
        #expect(
            head("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n")?.framing
                == .length(999_999_999_999_999_999))
    }

    @Test(arguments: [
        ("HTTP/1.1 204 No Content\r\n\r\n", false),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", false),
        ("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false),
        ("HTTP/1.1 100 Continue\r\n\r\n", false),
        ("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", false),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true),
        ("HTTP/1.1 200 OK\r\n\r\n", true),
    ])
    func noBody(_ text: String, _ requestWasHead: Bool) {
        let response = head(text, requestWasHead: requestWasHead)
        #expect(response?.framing == FastHead.Response.Framing.none)
        #expect(response?.keepAlive == true)
    }

    @Test(arguments: [
        ("Content-Length with Transfer-Encoding", "Content-Length: 5\r\nTransfer-Encoding: chunked"),
        ("Transfer-Encoding with Content-Length", "Transfer-Encoding: chunked\r\nContent-Length: 5"),
        ("two different lengths", "Content-Length: 5\r\nContent-Length: 6"),
        ("a list of lengths", "Content-Length: 5, 5"),
        ("gzip, chunked", "Transfer-Encoding: gzip, chunked"),
        ("chunked, chunked", "Transfer-Encoding: chunked, chunked"),
        ("identity", "Transfer-Encoding: identity"),
        ("two Transfer-Encodings", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
        ("a non-digit length", "Content-Length: 5a"),
        ("a hex length", "Content-Length: 0x5"),
        ("a negative length", "Content-Length: -1"),
        ("a signed length", "Content-Length: +5"),
        ("an empty length", "Content-Length:"),
        ("a spaced length", "Content-Length: 5 5"),
        ("a 19-digit length", "Content-Length: 1000000000000000000"),
        ("obs-fold", "X-A: a\r\n b"),
        ("obs-fold with a tab", "X-A: a\r\n\tb"),
        ("a header without a colon", "X-A a"),
        ("a space before the colon", "Content-Length : 5"),
        ("a bare CR", "X-A: a\rb"),
        ("a bare LF", "X-A: a\nContent-Length: 5"),
        ("a NUL in a value", "X-A: a\u{0}"),
        ("obs-text in a value", "X-A: \u{E9}"),
    ])
    func malformedHeaders(_ name: String, _ headers: String) {
        #expect(parseResponse("HTTP/1.1 200 OK\r\n\(headers)\r\n\r\n") == .malformed, "\(name)")
    }

    @Test(arguments: [
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200\tOK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 O\u{1}K\r\n\r\n",
        "HTTP/1.1 200 O\u{7F}K\r\n\r\n",
        "HTTP/1.1 200 OK\rX\r\n\r\n",
        "HTTP/1.1 200 OK\n\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "HTTP/1.1 \r\n\r\n",
        " HTTP/1.1 200 OK\r\n\r\n",
        "\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    ])
    func badStatusLines(_ text: String) {
        #expect(parseResponse(text) == .malformed, "\(String(reflecting: text))")
    }

    /// RFC 9110 section 15: a status code is 100 to 599 (a client may read 6xx to 9xx as its class, but no class
    /// holds 0xx). The fast path once took `0xx` as an interim answer (`status < 200`: framing `.none`) and skipped
    /// it, reading what follows as the next head.
    @Test func statusBelow100IsMalformed() {
        #expect(parseResponse("HTTP/1.1 099 X\r\n\r\n") == .malformed)
        #expect(parseResponse("HTTP/1.1 000 X\r\n\r\n") == .malformed)
        #expect(head("HTTP/1.1 100 Continue\r\n\r\n")?.status == 100)
        #expect(head("HTTP/1.1 999 X\r\n\r\n")?.status == 999)
    }

    @Test(arguments: [
        ("application/json", true),
        ("application/json; charset=utf-8", true),
        ("Application/JSON", true),
        ("APPLICATION/JSON;charset=UTF-8", true),
        ("application/problem+json", true),
        ("application/vnd.api+JSON; charset=utf-8", true),
        ("text/plain", false),
        ("text/html; charset=utf-8", false),
        ("application/jso", false),
        ("", false),
    ])
    func isJSON(_ type: String, _ json: Bool) {
        let response = head("HTTP/1.1 200 OK\r\nContent-Type: \(type)\r\nContent-Length: 2\r\n\r\n")
        #expect(response?.isJSON == json)
        #expect(LinkRewriteFilter.isJSON(type) == json, "the byte reading agrees with the String one")
    }

    @Test func connectionNames() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close, x-foo\r\n\r\n"
        let response = head(text)
        #expect(response?.keepAlive == false)
        #expect(response?.connectionNames == [range(of: "x-foo", in: text)])
        let many = "HTTP/1.1 200 OK\r\nConnection: ,a ,\t, keep-alive,b\t\r\nConnection: c\r\nContent-Length: 0\r\n\r\n"
        let names = head(many)?.connectionNames.map { FastHeadTests.bytes(many, $0) }
        #expect(names == ["a", "b", "c"])
        #expect(head("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")?.connectionNames == [])
    }

    @Test func rareHeaders() {
        let plain = head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        #expect(plain?.rateLimitReset == nil)
        #expect(plain?.hasRetryAfter == false)
        #expect(plain?.hasLocation == false)
        let text =
            "HTTP/1.1 429 Too Many\r\nX-RateLimit-Reset:  1700000000 \r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n"
        let limited = head(text)
        #expect(limited?.rateLimitReset == range(of: "1700000000", in: text))
        #expect(limited?.hasRetryAfter == true)
        #expect(limited?.hasLocation == false)
        #expect(head("HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")?.hasLocation == true)
        #expect(head("HTTP/1.1 201 Created\r\ncontent-location: /x\r\nContent-Length: 0\r\n\r\n")?.hasLocation == true)
        #expect(head("HTTP/1.1 200 OK\r\nX-Location: /x\r\nContent-Length: 0\r\n\r\n")?.hasLocation == false)
    }

    @Test func incomplete() {
        let text = latin1("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        for n in 0..<text.count {
            let parse = text[..<n].withUnsafeBytes { FastHead.parseResponse($0, requestWasHead: false) }
            #expect(parse == .incomplete, "prefix of \(n) bytes")
        }
        #expect(parseResponse("HTTP/1.1 200 OK\r\nX-A: aaaa", limit: 26) == .malformed)
        #expect(parseResponse("HTTP/1.1 200 OK\r\nX-A: aaaa", limit: 27) == .incomplete)
        #expect(parseResponse("HTTP/1.1 200 OK\r\n\r\n", limit: 19) != .malformed)
        #expect(parseResponse("HTTP/1.1 200 OK\r\n\r\n", limit: 18) == .malformed)
    }
}

@Suite struct FastHeadTests {
    static func bytes(_ text: String, _ range: Range<Int>) -> String {
        String(decoding: latin1(text)[range], as: UTF8.self)
    }

    /// The plain search `headEnd` must agree with.
    private static func naiveHeadEnd(_ bytes: [UInt8], limit: Int) -> Int? {
        let n = min(bytes.count, limit)
        guard n >= 4 else { return nil }
        for end in 4...n where bytes[end - 4..<end].elementsEqual([13, 10, 13, 10]) { return end }
        return nil
    }

    @Test func headEndOnEveryPrefix() {
        // Heads of every length modulo 8, so the final "\r\n\r\n" falls at every alignment of the search's steps.
        for pad in 0..<8 {
            let head = latin1(get("/api/x", "X-Pad: " + String(repeating: "p", count: pad)))
            for n in 0..<head.count {
                #expect(headEnd(Array(head[..<n])) == nil, "pad \(pad), prefix \(n)")
            }
            #expect(headEnd(head) == head.count)
            #expect(headEnd(head + latin1("GET / HTTP/1.1\r\n\r\n")) == head.count)
            #expect(headEnd(head, limit: head.count) == head.count)
            #expect(headEnd(head, limit: head.count - 1) == nil)
        }
    }

    @Test(
        arguments: [
            ("\r\n\r\n", 4), ("\n\r\n\r\n", 5), ("\r\r\n\r\n", 5), ("\r\n\r\r\n\r\n", 7), ("\r\n\n\r\n\r\n", 7),
            ("a\r\n\r\n", 5), ("\r\n\r", nil), ("\n\n\n\n", nil), ("\r\r\r\r", nil), ("\r\n\r\na\r\n\r\n", 4),
            ("ab\r\n\r\n", 6), ("abc\r\n\r\n", 7), ("\r\n\ra\r\n\r\n", 8),
        ] as [(String, Int?)])
    func headEndOnTrickyBytes(_ text: String, _ end: Int?) {
        #expect(headEnd(latin1(text)) == end)
    }

    /// Every string of up to 9 bytes over {a, CR, LF}, every limit: `headEnd`'s skipping search agrees with the
    /// plain one.
    @Test func headEndAgreesWithAPlainSearch() {
        let alphabet: [UInt8] = [0x61, 0x0D, 0x0A]
        var checked = 0
        for length in 0...9 {
            var count = 1
            for _ in 0..<length { count *= alphabet.count }
            for code in 0..<count {
                var c = code
                var bytes: [UInt8] = []
                for _ in 0..<length {
                    bytes.append(alphabet[c % alphabet.count])
                    c /= alphabet.count
                }
                for limit in 0...length + 1 {
                    let expected = Self.naiveHeadEnd(bytes, limit: limit)
                    let got = headEnd(bytes, limit: limit)
                    if got != expected {
                        Issue.record(
                            "headEnd(\(bytes), limit: \(limit)) = \(String(describing: got)), not \(String(describing: expected))"
                        )
                        return
                    }
                    checked += 1
                }
            }
        }
        #expect(checked > 100_000)
    }
}

@Suite struct ChunkedFramingTests {
    static let body = "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n"

    /// Feeds `pieces` one after another until one ends the body or is malformed: the outcome (`.ended` with an
    /// offset into the whole input) and the data bytes.
    private func feed(_ pieces: [[UInt8]]) -> (outcome: ChunkedFraming.Outcome, data: [UInt8]) {
        var framing = ChunkedFraming()
        var data: [UInt8] = []
        var offset = 0
        for piece in pieces {
            let outcome = piece.withUnsafeBytes { bytes in
                framing.feed(bytes) { range in
                    #expect(range.lowerBound >= 0 && range.upperBound <= bytes.count && !range.isEmpty)
                    data += bytes[range]
                }
            }
            switch outcome {
            case .more: offset += piece.count
            case .ended(let n):
                #expect(n >= 0 && n <= piece.count)
                return (.ended(offset + n), data)
            case .malformed: return (.malformed, data)
            }
        }
        return (.more, data)
    }

    @Test func endsExactlyAtTheBodysEnd() {
        let input = latin1(Self.body + "GET")
        let n = latin1(Self.body).count
        let (outcome, data) = feed([input])
        #expect(outcome == .ended(n))
        #expect(String(decoding: data, as: UTF8.self) == "Wikipedia")
        // Nothing after: it still ends, at the input's end.
        #expect(feed([latin1(Self.body)]).outcome == .ended(n))
        #expect(feed([Array(input[..<(n - 1)])]).outcome == .more)
    }

    @Test func splitInTwoAtEveryPosition() {
        let input = latin1(Self.body + "GET")
        let n = latin1(Self.body).count
        for split in 0...input.count {
            let (outcome, data) = feed([Array(input[..<split]), Array(input[split...])])
            #expect(outcome == .ended(n), "split at \(split)")
            #expect(String(decoding: data, as: UTF8.self) == "Wikipedia", "split at \(split)")
        }
    }

    @Test func byteByByte() {
        let input = latin1(Self.body + "GET")
        let n = latin1(Self.body).count
        let (outcome, data) = feed(input.map { [$0] })
        #expect(outcome == .ended(n))
        #expect(String(decoding: data, as: UTF8.self) == "Wikipedia")
    }

    @Test func theOffsetIsIntoThePieceFed() {
        var framing = ChunkedFraming()
        let first = latin1("4\r\nWiki\r\n0\r\n")
        #expect(first.withUnsafeBytes { framing.feed($0) } == .more)
        #expect(latin1("\r\nGET").withUnsafeBytes { framing.feed($0) } == .ended(2))
        #expect(framing.state == .done)
        // Once done, no byte more belongs to the body.
        #expect(latin1("GET").withUnsafeBytes { framing.feed($0) } == .ended(0))
    }

    @Test(arguments: [
        ("0\r\n\r\n", 5),
        ("A\r\n0123456789\r\n0\r\n\r\n", 20),
        ("a;x=\"y z\"\r\n0123456789\r\n0\r\n\r\n", 28),
        ("00000000000001\r\nx\r\n0\r\n\r\n", 24),
        ("1\r\nx\r\n0;last\r\nA: 1\r\nB:\t2\r\n\r\n", 28),
        ("0\r\n\r\n0\r\n\r\n", 5),
    ])
    func wellFormed(_ text: String, _ end: Int) {
        #expect(feed([latin1(text)]).outcome == .ended(end))
    }

    @Test(arguments: [
        ("missing CRLF after the data", "4\r\nWikiX\r\n0\r\n\r\n"),
        ("CR without LF after the data", "4\r\nWiki\rX0\r\n\r\n"),
        ("LF without CR after the data", "4\r\nWiki\n0\r\n\r\n"),
        ("a non-hex size", "4g\r\nWiki\r\n0\r\n\r\n"),
        ("a size of 0x", "0x4\r\nWiki\r\n0\r\n\r\n"),
        ("an empty size line", "\r\nWiki\r\n0\r\n\r\n"),
        ("an extension without a size", ";a\r\nWiki\r\n0\r\n\r\n"),
        ("-1", "-1\r\nWiki\r\n0\r\n\r\n"),
        ("+4", "+4\r\nWiki\r\n0\r\n\r\n"),
        ("a space after the size", "4 \r\nWiki\r\n0\r\n\r\n"),
        ("a space before the size", " 4\r\nWiki\r\n0\r\n\r\n"),
        ("15 hex digits", "000000000000004\r\nWiki\r\n0\r\n\r\n"),
        ("a size over 2^56", "100000000000000\r\n"),
        ("a control byte in an extension", "4;a\u{1}b\r\nWiki\r\n0\r\n\r\n"),
        ("DEL in an extension", "4;a\u{7F}\r\nWiki\r\n0\r\n\r\n"),
        ("LF in an extension", "4;a\nWiki\r\n0\r\n\r\n"),
        ("LF without CR after the size", "4\nWiki\r\n0\r\n\r\n"),
        ("CR without LF after the size", "4\rWiki\r\n0\r\n\r\n"),
        ("LF without CR after the last size", "0\n\r\n"),
        ("LF without CR at the end", "0\r\n\n"),
        ("CR without LF at the end", "0\r\n\rX"),
        ("LF without CR after a trailer", "0\r\nA: 1\n\r\n"),
        ("a control byte in a trailer", "0\r\nA: \u{0}\r\n\r\n"),
        ("a control byte starting a trailer", "0\r\n\u{1}A: 1\r\n\r\n"),
    ])
    func malformed(_ name: String, _ text: String) {
        let input = latin1(text)
        #expect(feed([input]).outcome == .malformed, "\(name)")
        #expect(feed(input.map { [$0] }).outcome == .malformed, "\(name), byte by byte")
    }
}

/// ``FastHead/framedRequest(_:maxHeaderBytes:)``: the exact length of a request the fast path hands to the full path
/// alone (after which it reads the next request itself), or nil when only NIO's decoder may judge the framing.
@Suite struct FastHeadFramedRequestTests {
    private func framed(_ text: String) -> Int? {
        latin1(text).withUnsafeBytes { FastHead.framedRequest($0, maxHeaderBytes: 32 * 1024) }
    }

    @Test(arguments: [
        ("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 5),
        ("POST /api/x HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n", 0),
        ("GET /api/x?%41 HTTP/1.1\r\nHost: a\r\nCookie: c=1\r\nX-Request-ID: r\r\n\r\n", 0),
        ("PUT /a HTTP/1.0\r\nContent-Length: 007\r\n\r\n", 7),
        ("GET /credgate/healthz HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 0),
    ])
    func aPlainlyFramedRequestHasItsExactLength(_ head: String, _ body: Int) {
        #expect(framed(head + String(repeating: "b", count: body) + "GET / HTTP/1.1\r\n") == latin1(head).count + body)
    }

    @Test(arguments: [
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET /a\r\nHost: a\r\n\r\n",
        "GET /a HTTP/1.1\nHost: a\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET /a\u{1} HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\nX: caf\u{E9}\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\n",
    ])
    func anythingElseIsLeftToTheDecoder(_ head: String) {
        #expect(framed(head) == nil)
    }
}

/// ``HeaderLineCopier``: runs of lines copied whole give the same bytes as each line written alone, whichever
/// lines are left out and whatever their white space.
@Suite struct HeaderLineCopierTests {
    @Test(arguments: [
        "A: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        "A: 1\r\nSkip: x\r\nB: 2\r\nC:3\r\nD:  4 \r\nE: \r\nF:\t6\r\nG: 7\r\n\r\n",
        "Skip: 1\r\nA: x y  z\r\nSkip: 2\r\n\r\n",
        "A:\r\nB: 2\t\r\nSkip: 3\r\n\r\n",
        "\r\n",
    ])
    func runsAreTheLinesOneByOne(_ lines: String) {
        let bytes = latin1(lines)
        func written(_ whole: Bool) -> [UInt8] {
            var out = ByteBuffer()
            bytes.withUnsafeBytes { b in
                var copier = HeaderLineCopier()
                FastHead.forEachHeader(b, from: 0, to: b.count) { name, value in
                    if FastHead.equalsLowercased(b, name, "skip") { return true }
                    if whole { copier.copy(b, name, value, into: &out) } else { out.writeHeaderLine(b, name, value) }
                    return true
                } onMalformed: {
                    Issue.record("malformed")
                }
                copier.flush(b, into: &out)
            }
            return Array(out.readableBytesView)
        }
        #expect(written(true) == written(false), "\(lines.debugDescription)")
    }
}
