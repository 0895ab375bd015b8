import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// The pure rules the transport applies to every request and answer.
@Suite struct TransportRulesTests {
    func head(_ method: HTTPMethod, _ uri: String, _ headers: HTTPHeaders = ["host": "gw"]) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)
    }

    func head(_ uri: String, _ headers: HTTPHeaders = ["host": "gw"]) -> HTTPRequestHead {
        head(.GET, uri, headers)
    }

    @Test(arguments: [
        "/api/../admin", "/api/./x", "/api/%2e%2e/x", "/api/%2E%2e/x", "/api/.%2e/x", "/api/x%2f..%2fy", "/..",
        "/api/x/..", "/api/a%5c..%5cb", "/api/%00", "/api/a\\b",
    ])
    func climbingPathsAreCaught(path: String) {
        #expect(ProxyHandler.climbsOut(path[...]))
    }

    @Test(arguments: ["/api/v1/x/", "/api/v1/report..pdf", "/api/v1/.well-known/", "/api/v1/%25/", "/api/v1/...", "/"])
    func ordinaryPathsPass(path: String) {
        #expect(!ProxyHandler.climbsOut(path[...]))
    }

    @Test func headChecks() {
        #expect(ProxyHandler.check(head(.CONNECT, "example.com:443"), maxHeaderBytes: 1 << 16) == .notAProxy("CONNECT"))
        #expect(ProxyHandler.check(head("http://example.com/api/"), maxHeaderBytes: 1 << 16)?.code == "not-a-proxy")
        #expect(ProxyHandler.check(head("*"), maxHeaderBytes: 1 << 16)?.code == "not-a-proxy")
        #expect(
            ProxyHandler.check(
                head(.POST, "/api/", ["content-length": "3", "transfer-encoding": "chunked"]), maxHeaderBytes: 1 << 16)?
                .code == "malformed-request")
        #expect(
            ProxyHandler.check(
                head(.POST, "/api/", ["content-length": "3", "Content-Length": "4"]), maxHeaderBytes: 1 << 16)?.code
                == "malformed-request")
        #expect(
            ProxyHandler.check(head(.POST, "/api/", ["transfer-encoding": "gzip, chunked"]), maxHeaderBytes: 1 << 16)?
                .code == "malformed-request")
        #expect(
            ProxyHandler.check(head("/api/", ["x-big": String(repeating: "a", count: 200)]), maxHeaderBytes: 100)
                == .headersTooLarge(limit: 100))
        #expect(
            ProxyHandler.check(head("/api/v1/x/?q=..%2F.."), maxHeaderBytes: 1 << 16) == nil, "the query is not a path")
        #expect(ProxyHandler.check(head("/api/v1/x/"), maxHeaderBytes: 1 << 16) == nil)
    }

    @Test func pathStopsAtTheQuery() {
        #expect(ProxyHandler.path(of: "/a/b/?x=1?y") == "/a/b/")
        #expect(ProxyHandler.path(of: "/a/b/") == "/a/b/")
    }

    @Test func hopByHopRemovalIncludesHeadersNamedInConnection() {
        var headers: HTTPHeaders = [
            "Connection": "keep-alive, X-Private, close", "X-Private": "1", "Keep-Alive": "5", "TE": "trailers",
            "Transfer-Encoding": "chunked", "Upgrade": "h2c", "Proxy-Connection": "x", "Trailer": "X", "X-Stays": "yes",
        ]
        HeaderHygiene.removeHopByHop(&headers)
        #expect(headers.map(\.name) == ["X-Stays"])
    }

    /// The one-pass removal keeps exactly what the removal by name kept (NIO's `remove(name:)` for each hop-by-hop
    /// name and each name `Connection` lists), in the same order, framing kept or not.
    @Test func oneRemovalPassKeepsWhatRemovalByNameKept() {
        func byName(_ input: HTTPHeaders, keepingFraming: Bool) -> HTTPHeaders {
            var headers = input
            for token in headers[canonicalForm: "connection"] {
                let t = token.lowercased()
                if t != "close" && t != "keep-alive" && !(keepingFraming && t == "transfer-encoding") {
                    headers.remove(name: String(t))
                }
            }
            for name in HeaderHygiene.hopByHop where !(keepingFraming && name == "transfer-encoding") {
                headers.remove(name: name)
            }
            return headers
        }
        let cases: [[(String, String)]] = [
            [("Connection", "keep-alive"), ("Content-Type", "application/json"), ("Content-Length", "3")],
            [("connection", " X-A ,, x-b\t"), ("X-A", "1"), ("x-b", "2"), ("X-C", "3"), ("Keep-Alive", "timeout=5")],
            [("Transfer-Encoding", "chunked"), ("Connection", "transfer-encoding, Upgrade"), ("Upgrade", "h2c")],
            [("Connection", "close"), ("Connection", "x-late"), ("X-Late", "a"), ("x-late", "b"), ("Via", "1.1 x")],
            [("TE", "trailers"), ("Trailer", "X"), ("Proxy-Authorization", "Basic x"), ("Host", "h")],
            [("Connection", ""), ("Proxy-Connection", "keep-alive"), ("Set-Cookie", "a=b, c=d")],
        ]
        for pairs in cases {
            for keepingFraming in [false, true] {
                var headers = HTTPHeaders(pairs)
                HeaderHygiene.removeHopByHop(&headers, keepingFraming: keepingFraming)
                let expected = byName(HTTPHeaders(pairs), keepingFraming: keepingFraming)
                #expect(
                    headers.map { "\($0.name): \($0.value)" } == expected.map { "\($0.name): \($0.value)" },
                    "\(pairs) keepingFraming \(keepingFraming)")
            }
        }
    }

    @Test func upstreamHeadSetsHostForwardingHeadersAndBasePath() throws {
        var upstream = UpstreamConfig(
            name: "u", url: UpstreamURL(scheme: .https, host: "api.example.com", port: 443, basePath: "/v1"))
        upstream.connectTimeout = .seconds(1)
        let target = try UpstreamTarget(key: 0, config: upstream)
        let client = head(
            .POST, "/models?x=1",
            [
                "host": "localhost:8080", "transfer-encoding": "chunked", "expect": "100-continue",
                "x-forwarded-proto": "https", "x-forwarded-host": "evil",
            ])
        let out = HeaderHygiene.upstreamHead(
            from: client, target: target, requestID: "rid", clientAddress: "127.0.0.1", hasBody: true)
        #expect(out.uri == "/v1/models?x=1")
        #expect(out.version == .http1_1)
        #expect(out.headers["host"] == ["api.example.com"])
        #expect(out.headers["x-forwarded-host"] == ["localhost:8080"])
        #expect(out.headers["x-forwarded-proto"] == ["http"])
        #expect(out.headers["x-forwarded-for"] == ["127.0.0.1"])
        #expect(out.headers["x-request-id"] == ["rid"])
        #expect(out.headers["expect"].isEmpty)
        #expect(out.headers["transfer-encoding"] == ["chunked"])
    }

    @Test func clientHeadForHTTP10AndClose() {
        let upstream = HTTPResponseHead(
            version: .http1_1, status: .ok, headers: ["connection": "keep-alive", "content-length": "2"])
        let closing = HeaderHygiene.clientHead(
            from: upstream, clientVersion: .http1_1, requestID: "r", closeAfter: true)
        #expect(closing.headers["connection"] == ["close"])
        let old = HeaderHygiene.clientHead(from: upstream, clientVersion: .http1_0, requestID: "r", closeAfter: false)
        #expect(old.version == .http1_0)
        #expect(old.headers["connection"] == ["keep-alive"])
        #expect(old.headers["x-request-id"] == ["r"])
    }

    @Test func problemBodiesAreValidJSONWithEveryField() throws {
        let errors: [GatewayError] = [
            .noRoute(method: "GET", path: "/x\"y"), .methodNotAllowed(method: "PUT", allowed: ["GET", "POST"]),
            .notAProxy("CONNECT"),
            .pathTraversal, .malformedRequest("bad\nline"), .headersTooLarge(limit: 10), .bodyTooLarge(limit: 5),
            .upstreamUnreachable(upstream: "u", reason: "refused"), .upstreamReset(upstream: "u"),
            .upstreamTimeout(upstream: "u", phase: "connect"), .tooManyConnections(limit: 3),
            .adminNotFound(path: "/credgate/x"),
        ]
        var codes = Set<String>()
        for error in errors {
            let response = LocalResponse.problem(error, requestID: "req-1")
            #expect(response.headers["content-type"] == ["application/problem+json"])
            #expect(response.headers["x-credgate-error"] == [error.code])
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any])
            #expect(json["type"] as? String == "urn:credgate:error:\(error.code)")
            #expect(json["status"] as? Int == Int(error.status.code))
            #expect((json["title"] as? String)?.isEmpty == false)
            #expect((json["detail"] as? String)?.hasSuffix(".") == true)
            #expect(json["request_id"] as? String == "req-1")
            codes.insert(error.code)
        }
        #expect(codes.count == errors.count, "codes are distinct")
        #expect(
            LocalResponse.problem(.methodNotAllowed(method: "PUT", allowed: ["GET", "POST"]), requestID: "r").headers[
                "allow"] == ["GET, POST"])
    }

    @Test func jsonQuotingEscapesControlCharacters() {
        #expect(JSONString.quote("a\"b\\c\n\u{01}é") == "\"a\\\"b\\\\c\\n\\u0001é\"")
    }

    @Test func requestIDs() {
        #expect(RequestID.from(["x-request-id": "abc-123"]) == "abc-123")
        #expect(RequestID.from(["x-request-id": "has space"]) == nil)
        #expect(RequestID.from(["x-request-id": String(repeating: "a", count: 129)]) == nil)
        let a = RequestID.generate()
        let b = RequestID.generate()
        #expect(a.count == 32 && b.count == 32 && a != b)
    }

    @Test func secretsNeverPrint() {
        let secret = Secret("s3cr3t-value")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        var dumped = ""
        dump(secret, to: &dumped)
        #expect(!dumped.contains("s3cr3t"))
        let credential = CredentialConfig(name: "k", kind: .apiKey(header: "x-api-key", value: secret))
        #expect(!"\(credential)".contains("s3cr3t"))
        #expect(!String(reflecting: credential).contains("s3cr3t"))
        #expect(secret.reveal() == "s3cr3t-value")
    }
}

/// Issue 8.5: the path a route is matched on.
@Suite struct RequestPathTests {
    @Test(arguments: [
        "/", "/api/v1/users/", "/api/v1/x", "/api/v1/.well-known/", "/api/v1/report..pdf", "/api/v1/a%20b/",
        "/api/v1/%C3%A9/",
        "/api/v1/%25/", "/api/v1/...", "/api/v1/a,b=c:d@e!f$g&h'i(j)k*l+m/",
    ])
    func pathsWithNothingToNormaliseAreUsedAsSent(path: String) {
        #expect(RequestPath.normalize(path[...]) == .unchanged)
    }

    @Test func encodedUnreservedCharactersAreDecoded() {
        #expect(RequestPath.normalize("/api/v1/files/%68andle/") == .normalized("/api/v1/files/handle/"))
        #expect(RequestPath.normalize("/%41%7a%30%2D%2e%5F%7E/x%20y") == .normalized("/Az0-._~/x%20y"))
    }

    @Test(arguments: [
        "/a/..", "/a/../b", "/./a", "/a/%2e%2E/b", "/a/.%2e/", "/a/%252e%252e/", "/a/%25252e/",
        "/a/%ef%bc%8e%ef%bc%8e/",
        "/a/\u{FF0E}/",
    ])
    func dotSegmentsInAnyEncodingClimbOut(path: String) {
        // Refused either way: as a dot segment, or (a raw full-width dot, triple encoding) as unsafe.
        switch RequestPath.normalize(path[...]) {
        case .climbsOut, .refused: break
        case let outcome: Issue.record("\(path): \(outcome)")
        }
        #expect(ProxyHandler.climbsOut(path[...]))
    }

    @Test(arguments: [
        "/a%2Fb", "/a%2fb", "/a%5cb", "/a\\b", "/a;b", "/a/..;/b", "/a%3Bb", "/a%00", "//a", "/a//b", "/a/%zz", "/a/%2",
        "/a b",
        "/a/%c0%ae%c0%ae/", "/a/%ff/", "/a/%25%32%66/", "/a/%252F/",
    ])
    func pathsWithNoSafeReadingAreRefused(path: String) {
        guard case .refused(let why) = RequestPath.normalize(path[...]) else {
            Issue.record("\(path) was not refused: \(RequestPath.normalize(path[...]))")
            return
        }
        #expect(!why.isEmpty)
    }

    /// The in-place reading of `Host` gives what NIO's `headers[canonicalForm:]` gives, whatever the lines.
    @Test func hostValuesReadInPlaceMatchTheCanonicalForm() {
        let cases: [[String]] = [
            [], ["a"], [""], [" "], ["\t a \t"], ["a, b"], ["a,"], [",a"], ["a", "b"], ["a", ""], ["[::1]:80"],
            [" a b "], ["é"],
        ]
        for lines in cases {
            var headers = HTTPHeaders()
            for line in lines { headers.add(name: "Host", value: line) }
            #expect(ProxyHandler.hostValues(headers) == headers[canonicalForm: "host"], "\(lines)")
        }
    }

    @Test func hostHeaders() {
        func check(_ host: [String], _ version: HTTPVersion = .http1_1) -> String? {
            var headers = HTTPHeaders()
            for h in host { headers.add(name: "host", value: h) }
            return ProxyHandler.hostProblem(HTTPRequestHead(version: version, method: .GET, uri: "/", headers: headers))
        }
        for good in ["localhost", "127.0.0.1:8080", "[::1]:8080", "api.example.com", "a-b_c.example"] {
            #expect(check([good]) == nil, "\(good)")
        }
        for bad in ["", "a b", "a%0d%0ab", "a:99999x", "a:123456", "[::1", "a/b", "a\u{7F}"] {
            #expect(check([bad]) != nil, "\(bad)")
        }
        #expect(check([]) != nil)
        #expect(check([], .http1_0) == nil)
        #expect(check(["a", "b"]) != nil)
    }

    @Test func connectionMayNotNameWhatCredgateWrites() {
        let protected = ["authorization", "x-api-key"]
        #expect(ProxyHandler.connectionNamesProtected(["connection": "close, X-API-Key"], protected) == "x-api-key")
        #expect(ProxyHandler.connectionNamesProtected(["connection": "host"], protected) == "host")
        #expect(ProxyHandler.connectionNamesProtected(["connection": "content-length"], protected) == "content-length")
        #expect(ProxyHandler.connectionNamesProtected(["connection": "keep-alive, x-other"], protected) == nil)
    }
}
