import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// The byte-level fast path (issue 13) against the full path, through real sockets: the same requests go to two
/// gateways in front of one upstream, one with `listen.fast_path` on (the default) and one with it off, and the
/// upstream must receive the same request and the client the same answer from both (framing aside: the full path
/// re-frames what NIO's codec decoded). `/credgate/status` shows which path served them.
@Suite struct FastPathTests {
    /// What the upstream answers, by path. `@BASE@` is the upstream's own base URL (a link `rewrite_links` and
    /// the `Location` rewriting must point at the gateway).
    static let answers: [String: String] = [
        "/api/plain": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"ok\":1}\n",
        "/api/text":
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Extra: a\r\nX-Extra: b\r\n\r\nhello",
        "/api/links":
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: @LEN@\r\n\r\n@JSONLINKS@",
        "/api/redirect": "HTTP/1.1 302 Found\r\nLocation: @BASE@/api/elsewhere?a=1\r\nContent-Length: 0\r\n\r\n",
        "/api/created":
            "HTTP/1.1 201 Created\r\nContent-Location: @BASE@/api/thing/7\r\nLocation: https://other.example/x\r\nContent-Length: 2\r\n\r\n{}",
        "/api/chunked":
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        "/api/chunked-json":
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n@CHUNKEDLINKS@0\r\n\r\n",
        "/api/hop":
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-id\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nok",
        "/api/ratelimited":
            "HTTP/1.1 429 Too Many Requests\r\nx-ratelimit-reset: 30\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        "/api/nocontent": "HTTP/1.1 204 No Content\r\nX-Thing: 1\r\n\r\n",
        "/api/early":
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
        "/api/untilclose": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
        "/api/upstreamclose": "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbye.",
    ]

    /// Requests sent to both gateways: method, target, extra header lines.
    static let requests: [(String, String, String)] = [
        ("GET", "/api/plain", ""), ("HEAD", "/api/plain", ""), ("DELETE", "/api/plain", ""),
        ("OPTIONS", "/api/plain", ""), ("GET", "/api/plain?x=1&y=%20z", ""),
        ("GET", "/api/text", "Accept: */*\r\nUser-Agent: t/1\r\nX-Custom:  spaced value \r\n"),
        ("GET", "/api/links", ""), ("GET", "/api/redirect", ""), ("GET", "/api/created", ""),
        ("GET", "/api/chunked", ""), ("GET", "/api/chunked-json", ""), ("GET", "/api/hop", ""),
        ("GET", "/api/ratelimited", ""), ("GET", "/api/nocontent", ""), ("GET", "/api/early", ""),
        ("GET", "/api/untilclose", ""), ("GET", "/api/upstreamclose", ""),
        ("GET", "/api/plain", "Connection: close\r\n"),
        // These take the full path on both gateways (the client's own key; a client request ID).
        ("GET", "/api/plain", "X-Api-Key: client-key\r\n"), ("GET", "/api/plain", "X-Request-ID: abc-123\r\n"),
    ]

    static func upstreamAnswers(port: Int) -> [String: String] {
        let base = "http://127.0.0.1:\(port)"
        let links = "{\"next\":\"\(base)/api/links?page=2\",\"other\":\"https://other.example/p\"}"
        let json = String(repeating: "{\"u\":\"\(base)/api/x\"},", count: 3)
        var out: [String: String] = [:]
        for (path, answer) in answers {
            out[path] =
                answer.replacingOccurrences(of: "@BASE@", with: base)
                .replacingOccurrences(of: "@LEN@", with: String(links.utf8.count))
                .replacingOccurrences(of: "@JSONLINKS@", with: links)
                .replacingOccurrences(
                    of: "@CHUNKEDLINKS@",
                    with: "1\r\n[\r\n\(String(json.utf8.count, radix: 16))\r\n\(json)\r\n3\r\n{}]\r\n")
        }
        return out
    }

    @Test func bothPathsSendTheSameRequestAndGiveTheSameAnswer() async throws {
        let seen = NIOLockedValueBox<[String: [HTTPRequestHead]]>([:])
        let port = NIOLockedValueBox(0)
        let upstream = try await TestUpstream.start { request in
            let path = String(request.head.uri.split(separator: "?", maxSplits: 1)[0])
            let answers = Self.upstreamAnswers(port: port.withLockedValue { $0 })
            let tag = request.head.headers.first(name: "x-test-gateway") ?? "?"
            seen.withLockedValue { $0[tag, default: []].append(request.head) }
            var answer = answers[path] ?? answers["/api/plain"]!
            if request.head.method == .HEAD, let end = answer.range(of: "\r\n\r\n") {
                answer = String(answer[..<end.upperBound])
            }
            return path == "/api/untilclose" || path == "/api/upstreamclose" ? .rawThenClose(answer) : .raw(answer)
        }
        defer { Task { try? await upstream.shutdown() } }
        port.withLockedValue { $0 = upstream.port }
        func config(fast: Bool) -> GatewayConfig {
            TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)") {
                $0.listen.fastPath = fast
                $0.routes[0].transforms = [.rewriteLinks]
            }
        }
        try await GatewayFixture.with(config: config(fast: true)) { fast in
            try await GatewayFixture.with(config: config(fast: false)) { full in
                for (method, target, extra) in Self.requests {
                    func ask(_ f: GatewayFixture, _ tag: String) async throws -> RawAnswer {
                        let raw = try await RawClient.exchange(
                            port: f.port,
                            "\(method) \(target) HTTP/1.1\r\nHost: gw.test:8080\r\nX-Test-Gateway: \(tag)\r\n\(extra)\r\n",
                            idle: .milliseconds(200))
                        return try #require(RawAnswer(raw, head: method == "HEAD"), "\(method) \(target): \(raw)")
                    }
                    let a = try await ask(fast, "fast")
                    let b = try await ask(full, "full")
                    let what = "\(method) \(target) \(extra.debugDescription)"
                    #expect(a.status == b.status, "\(what)")
                    #expect(a.comparableHeaders == b.comparableHeaders, "\(what)")
                    #expect(a.body == b.body, "\(what): \(a.body.prefix(200)) vs \(b.body.prefix(200))")
                    #expect(a.headers.contains { $0.0 == "x-request-id" }, "\(what)")
                    if let length = a.headers.first(where: { $0.0 == "content-length" }), method != "HEAD" {
                        #expect(Int(length.1) == a.body.utf8.count, "\(what)")
                    }
                    let (upFast, upFull) = seen.withLockedValue { ($0["fast"]?.last, $0["full"]?.last) }
                    if target != "/api/plain" || !extra.isEmpty || method != "GET" {
                        #expect(upFast?.uri == upFull?.uri, "\(what)")
                    }
                    #expect(
                        upFast.map(Self.comparable) == upFull.map(Self.comparable),
                        "\(what): \(upFast.map { "\($0.headers)" } ?? "-") vs \(upFull.map { "\($0.headers)" } ?? "-")")
                }
                // Rewritten links point at the gateway as the client addressed it.
                let links = try await RawClient.exchange(
                    port: fast.port, "GET /api/links HTTP/1.1\r\nHost: gw.test:8080\r\nConnection: close\r\n\r\n")
                #expect(links.contains("http://gw.test:8080/api/links?page=2"), "\(links)")
                #expect(links.contains("https://other.example/p"))
                // Which path served what: the fast gateway's plain requests took the fast path, none on the other.
                let fastCount = try await Self.fastPathCount(fast)
                let fullCount = try await Self.fastPathCount(full)
                #expect(fastCount >= Self.requests.count - 2, "fast path requests: \(fastCount)")
                #expect(fullCount == 0)
            }
        }
    }

    /// Several requests in one write, fast and full path mixed: all answered in order on one connection.
    @Test func pipelinedRequestsAreAnsweredInOrderAcrossBothPaths() async throws {
        let upstream = try await TestUpstream.start { request in
            .respond(.ok, headers: ["content-type": "text/plain"], body: "\(request.head.method) \(request.head.uri)")
        }
        defer { Task { try? await upstream.shutdown() } }
        try await GatewayFixture.with(config: TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")) { f in
            let get = { (n: Int) in "GET /api/p\(n) HTTP/1.1\r\nHost: x\r\n\r\n" }
            let post = "POST /api/full HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            let raw = try await RawClient.exchange(
                port: f.port,
                get(1) + get(2) + get(3) + post + get(4)
                    + "GET /api/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(raw.statuses == [200, 200, 200, 200, 200, 200], "\(raw)")
            let order = ["GET /api/p1", "GET /api/p2", "GET /api/p3", "POST /api/full", "GET /api/p4", "GET /api/last"]
            var at = raw.startIndex
            for body in order {
                let found = raw.range(of: body, range: at..<raw.endIndex)
                #expect(found != nil, "\(body) not in order: \(raw)")
                if let found { at = found.upperBound }
            }
            // The POST went to the full path alone: the GETs after it took the fast path again.
            #expect(try await Self.fastPathCount(f) == 5)
        }
    }

    /// A request the fast path does not serve, with a body that arrives in pieces, goes to the full path alone; the
    /// request after it takes the fast path. After a chunked body the connection stays on the full path, and is
    /// still served.
    @Test func afterAFramedFullPathRequestTheFastPathReadsAgain() async throws {
        let upstream = try await TestUpstream.start { request in .respond(.ok, body: request.head.uri) }
        defer { Task { try? await upstream.shutdown() } }
        try await GatewayFixture.with(config: TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")) { f in
            let socket = try RawSocket(port: f.port)
            socket.send("POST /api/posted HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
            try await Task.sleep(for: .milliseconds(50))
            socket.send("67890GET /api/after HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(for: .milliseconds(200))
            socket.send(
                "POST /api/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    + "GET /api/sticky HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (text, closed) = await socket.readAll(seconds: 5)
            #expect(text.statuses == [200, 200, 200, 200], "\(text)")
            for uri in ["/api/posted", "/api/after", "/api/chunked", "/api/sticky"] {
                #expect(text.contains(uri), "\(uri): \(text)")
            }
            #expect(closed)
            #expect(try await Self.fastPathCount(f) == 1, "only /api/after")
        }
    }

    /// Requests the full path answers itself (no route, a wrong method, the admin endpoints, a malformed query)
    /// hand the connection back: each next request, sent only after the answer came, is answered too.
    @Test func afterTheFullPathsOwnAnswersTheNextRequestIsServed() async throws {
        let upstream = try await TestUpstream.start { request in .respond(.ok, body: request.head.uri) }
        defer { Task { try? await upstream.shutdown() } }
        let config = TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)") { $0.routes[0].methods = ["GET"] }
        try await GatewayFixture.with(config: config) { f in
            let socket = try RawSocket(port: f.port)
            var statuses: [Int] = []
            for (request, status) in [
                ("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404), ("GET /api/a HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                ("DELETE /api/a HTTP/1.1\r\nHost: x\r\n\r\n", 405), ("GET /api/b HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                ("GET /credgate/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                ("GET /api/c HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                ("GET /api/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
                ("GET /api/d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
            ] {
                socket.send(request)
                let deadline = ContinuousClock.now + .seconds(5)
                var text = ""
                while ContinuousClock.now < deadline {
                    let (more, _) = await socket.readAll(seconds: 0.2)
                    text += more
                    if text.statuses.count == 1, text.contains("\r\n\r\n") { break }
                }
                statuses += text.statuses
                #expect(text.statuses == [status], "\(request): \(text)")
            }
            #expect(statuses.count == 8)
            #expect(try await Self.fastPathCount(f) == 4, "/api/a, b, c and d")
        }
    }

    /// A head that arrives a few bytes at a time is answered (after two incomplete reads it goes to the full path,
    /// whose decoder reads incrementally), and so is the next request on that connection.
    @Test func aHeadInPiecesIsAnswered() async throws {
        let upstream = try await TestUpstream.start { request in .respond(.ok, body: request.head.uri) }
        defer { Task { try? await upstream.shutdown() } }
        try await GatewayFixture.with(config: TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")) { f in
            let socket = try RawSocket(port: f.port)
            for piece in ["GET /api/pie", "ces HTTP/1.1\r\nHo", "st: x\r\nAccept: */*\r", "\n\r\n"] {
                socket.send(piece)
                try await Task.sleep(for: .milliseconds(30))
            }
            socket.send("GET /api/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let (text, closed) = await socket.readAll(seconds: 5)
            #expect(text.statuses == [200, 200], "\(text)")
            #expect(text.contains("/api/pieces") && text.contains("/api/after"))
            #expect(closed)
        }
    }

    /// A 401 to a session token sent on the fast path: the session renews and the request goes again through the
    /// full path, so the client gets the platform's answer to the new token, never the 401.
    @Test func aRejectedSessionTokenIsRenewedAndTheRequestReplayed() async throws {
        try await SessionTests.withGateway { f in
            #expect(try await send(.GET, f.base + "/api/v1/users/provider-documents/").status == .ok)
            #expect(await f.sandbox.counters().logins == 1)
            let port = f.gateway.port
            #expect(await f.sandbox.revokeTokens() >= 1)
            let again = try await RawClient.exchange(
                port: port, "GET /api/v1/users/provider-documents/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(again.firstStatus == 200, "\(again.prefix(300))")
            let counters = await f.sandbox.counters()
            #expect(counters.logins + counters.refreshes >= 2, "a new token was obtained")
        }
    }

    /// The upstream that stops answering: the route's response timeout gives 504 on the fast path too, and the
    /// connection serves the next request.
    @Test func anUpstreamThatNeverAnswersTimesOut() async throws {
        let upstream = try await TestUpstream.start { request in
            request.head.uri.hasPrefix("/api/slow") ? .silent : .respond(.ok, body: "fine")
        }
        defer { Task { try? await upstream.shutdown() } }
        let config = TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)") {
            // Not shorter: under the whole suite's load the second request's answer once took over 300 ms.
            $0.upstreams["assured"]?.responseTimeout = .seconds(1)
        }
        try await GatewayFixture.with(config: config) { f in
            let raw = try await RawClient.exchange(
                port: f.port,
                "GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\nGET /api/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(raw.statuses == [504, 200], "\(raw)")
            #expect(raw.lowercased().contains("x-credgate-error: upstream-timeout"))
        }
    }

    // MARK: - Presign cache hits

    /// A presign call the cache can answer, in the plain form the SDK sends, is answered on the fast path exactly
    /// as the full path answers a hit (the same head, in the same order, and body; `Age` and the request ID aside),
    /// with the same access-log record and counters; a miss, and a body in any other form, take the full path.
    /// Pipelined hits are answered in order, and `Connection: close` closes after the hit.
    @Test func aPresignHitIsAnsweredOnTheFastPathAsOnTheFullPath() async throws {
        try await AccessLogTests.withGateway(log: { $0.format = .json }) { f, lines in
            let path = FilesTests.presignPath
            let port = f.gateway.port
            func post(_ body: String, close: Bool = false) -> String {
                "POST \(path) HTTP/1.1\r\nHost: gw.test\r\nContent-Type: application/json\r\nContent-Length: "
                    + "\(body.utf8.count)\r\n\(close ? "Connection: close\r\n" : "")\r\n\(body)"
            }
            let plain = #"{"s3_url": "s3://assured-sandbox-files/fast/a.pdf", "presigned_url": ""}"#
            // The full path reads this one with its JSON reader: the same object.
            let other = #"{"s3_url": "s3://assured-sandbox-files/fast/a.pdf", "presigned_url": null}"#

            let miss = try #require(
                RawAnswer(try await RawClient.exchange(port: port, post(plain, close: true)), head: false))
            #expect(miss.status == 200 && miss.headers.contains { $0 == ("x-cache", "MISS") }, "\(miss.headers)")
            #expect(try await Self.fastPathCount(base: f.base) == 0)

            let fastRaw = try await RawClient.exchange(port: port, post(plain, close: true))
            let fullRaw = try await RawClient.exchange(port: port, post(other, close: true))
            #expect(try await Self.fastPathCount(base: f.base) == 1, "only the plain body's hit")
            let fast = try #require(RawAnswer(fastRaw, head: false), "\(fastRaw)")
            let full = try #require(RawAnswer(fullRaw, head: false), "\(fullRaw)")
            #expect(fast.status == 200 && full.status == 200)
            // Age and max-age may have ticked between the two.
            func same(_ a: RawAnswer) -> [String] {
                a.headers.map { name, value in
                    ["x-request-id", "age", "cache-control"].contains(name) ? name : "\(name): \(value)"
                }
            }
            func maxAge(_ a: RawAnswer) -> Int {
                a.headers.first { $0.0 == "cache-control" }.flatMap { Int($0.1.split(separator: "=").last ?? "") } ?? -9
            }
            #expect(abs(maxAge(fast) - maxAge(full)) <= 1 && maxAge(fast) > 3000, "\(fast.headers)")
            #expect(fast.headers.first { $0.0 == "cache-control" }?.1.hasPrefix("private, max-age=") == true)
            #expect(same(fast) == same(full), "\(fastRaw)\n---\n\(fullRaw)")
            #expect(
                fast.headers.map(\.0) == [
                    "x-cache", "age", "cache-control", "content-type", "x-request-id", "content-length", "connection",
                ])
            #expect(fast.body == full.body && fast.body == miss.body)
            #expect(fast.headers.first { $0.0 == "x-cache" }?.1 == "HIT")

            // The access log: the same record but for the request's own ID, length and timing.
            var records: [[String: Any]] = []
            for _ in 0..<50 {
                records = try AccessLogTests.records(lines()).filter { ($0["route"] as? String) == "assured-presign" }
                if records.count >= 3 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(records.count == 3)
            // Each loop writes its own records: find the two hits by their request's length.
            let hits = records.filter { $0["cache"] as? String == "HIT" }
            let fastRecord = hits.first { $0["bytes_in"] as? Int == plain.utf8.count }
            let fullRecord = hits.first { $0["bytes_in"] as? Int == other.utf8.count }
            #expect(hits.count == 2 && fastRecord != nil && fullRecord != nil, "\(records)")
            if let fastRecord, let fullRecord {
                func comparable(_ r: [String: Any]) -> [String] {
                    r.filter { !["request_id", "duration_ms", "time", "bytes_in"].contains($0.key) }
                        .map { "\($0.key)=\($0.value)" }.sorted()
                }
                #expect(comparable(fastRecord) == comparable(fullRecord), "\(fastRecord)\n\(fullRecord)")
                #expect(fastRecord["bytes_out"] as? Int == fast.body.utf8.count)
            }

            // Pipelined: two hits, a miss (another file) and a hit, then a GET, all in one write and in order.
            let next = #"{"s3_url": "s3://assured-sandbox-files/fast/b.pdf", "presigned_url": ""}"#
            let pipelined = try await RawClient.exchange(
                port: port,
                post(plain) + post(plain) + post(next) + post(plain)
                    + "GET /api/v1/users/providers-list/?limit=1 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"
            )
            #expect(pipelined.statuses == [200, 200, 200, 200, 200], "\(pipelined)")
            let caches = pipelined.matches(of: #/x-cache: (\w+)/#).map { String($0.output.1) }
            #expect(caches == ["HIT", "HIT", "MISS", "HIT"], "\(pipelined)")
            #expect(try await Self.fastPathCount(base: f.base) == 5, "three more hits and the GET")
            let status = try await send(.GET, f.base + "/credgate/status").json()
            let cache = status["presign_cache"] as? [String: Any]
            #expect(cache?["hits"] as? Int == 5, "\(cache ?? [:])")
        }
    }

    static func fastPathCount(base: String) async throws -> Int {
        let json = try await send(.GET, base + "/credgate/status").json()
        let routes = json["routes"] as? [[String: Any]] ?? []
        return routes.reduce(0) { $0 + ($1["fast_path"] as? Int ?? 0) }
    }

    // MARK: - Reading answers

    static func comparable(_ head: HTTPRequestHead) -> [String] {
        head.headers.filter { name, _ in
            !["x-request-id", "x-test-gateway"].contains(name.lowercased())
        }.map {
            // NIO's decoder keeps a value's trailing spaces, which RFC 9110 (5.5) says are not part of it; the fast
            // path trims them.
            "\($0.name.lowercased()): \($0.value.trimmingCharacters(in: .whitespaces))"
        }.sorted() + ["\(head.method) \(head.uri) \(head.version)"]
    }

    static func fastPathCount(_ f: GatewayFixture) async throws -> Int {
        try await fastPathCount(base: f.base)
    }
}

/// One HTTP/1.1 answer read from raw bytes: status, headers in order, the body with chunked framing undone.
struct RawAnswer {
    var status: Int
    var headers: [(String, String)]
    var body: String

    init?(_ raw: String, head: Bool) {
        guard let end = raw.range(of: "\r\n\r\n") else { return nil }
        let lines = raw[..<end.lowerBound].components(separatedBy: "\r\n")
        guard let status = lines.first.flatMap({ $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } })
        else { return nil }
        self.status = status
        headers = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (
                line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        // Bytes, not Characters: "\r\n" is one Character in a Swift string.
        var rest = Array(raw[end.upperBound...].utf8)
        if head || status == 204 || status == 304 {
            body = ""
        } else if headers.contains(where: { $0.0 == "transfer-encoding" && $0.1.lowercased() == "chunked" }) {
            var out: [UInt8] = []
            while let lineEnd = rest.indices.first(where: {
                rest[$0] == 0x0D && $0 + 1 < rest.count && rest[$0 + 1] == 0x0A
            }) {
                let line = String(decoding: rest[..<lineEnd], as: UTF8.self)
                let size = Int(line.split(separator: ";").first ?? "", radix: 16) ?? 0
                rest = Array(rest[(lineEnd + 2)...])
                if size == 0 { break }
                out += rest.prefix(size)
                rest = Array(rest.dropFirst(size + 2))
            }
            body = String(decoding: out, as: UTF8.self)
        } else if let length = headers.first(where: { $0.0 == "content-length" }).flatMap({ Int($0.1) }) {
            body = String(decoding: rest.prefix(length), as: UTF8.self)
        } else {
            body = String(decoding: rest, as: UTF8.self)
        }
    }

    /// The headers that must agree between the two paths: framing, the request ID and `Connection` aside.
    var comparableHeaders: [String] {
        headers.filter {
            !["x-request-id", "content-length", "transfer-encoding", "connection", "date"].contains($0.0)
        }
        .map { "\($0.0): \($0.1)" }.sorted()
    }
}
