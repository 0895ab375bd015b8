import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

@testable import CredGate

/// The data path through real sockets: gateway and sandbox on ephemeral loopback ports.
@Suite struct ForwardingTests {
    @Test func injectsTheKeyAndStripsClientCredentials() async throws {
        try await GatewayFixture.withSandbox { f in
            let response = try await send(
                .GET, f.base + "/api/v1/users/providers-list/",
                headers: [
                    "x-api-key": "client-supplied-key", "X-API-KEY": "another", "Authorization": "Bearer client-token",
                    "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                ])
            #expect(response.status == .ok)
            let recorded = try #require(await f.sandbox!.recorder.last())
            #expect(recorded.headerValues("x-api-key") == [TestConfig.apiKey])
            #expect(recorded.headerValues("authorization").isEmpty)
            #expect(recorded.headerValues("proxy-authorization").isEmpty)

            // Every /api/ route gets the key, whatever its method.
            for (method, path) in [
                (HTTPMethod.POST, "/api/v1/users/create-providers/"),
                (.PATCH, "/api/v1/users/provider-personal-info/42/"),
                (.PUT, "/api/v1/anything/"), (.DELETE, "/api/v1/users/practice-location-provider/7/"),
            ] {
                let r = try await send(
                    method, f.base + path, headers: ["x-api-key": "wrong"], body: method == .DELETE ? nil : "{}")
                #expect(r.status.code < 300, "\(method) \(path)")
                let rec = try #require(await f.sandbox!.recorder.last())
                #expect(rec.uri == path)
                #expect(rec.headerValues("x-api-key") == [TestConfig.apiKey])
            }
        }
    }

    @Test func upstreamErrorsPassThroughUnchanged() async throws {
        try await GatewayFixture.withSandbox(key: "the-wrong-key", sandboxKey: "the-right-key") { f in
            let response = try await send(.GET, f.base + "/api/v1/users/providers-list/")
            #expect(response.status == .unauthorized)
            #expect(response.headers["x-credgate-error"].isEmpty)
            #expect(try response.json()["detail"] as? String == "Invalid API key")
        }
    }

    @Test func pathAndQueryAreForwardedByteExact() async throws {
        try await GatewayFixture.withSandbox { f in
            let targets = [
                "/api/v1/users/providers-list/",
                "/api/v1/users/providers-list",
                "/api/v1/files/a%20b%C3%A9/?x=1&x=2&x=3",
                "/api/v1/search/?q=a+b%20c&q=&empty&%E2%9C%93=%e2%9c%93",
                "/api/v1/Mixed/Case/",
                // `%2F` and `//` have no safe reading and are refused (AttacksTests); a path with encoded
                // unreserved characters is forwarded normalised (ibid.).
            ]
            for target in targets {
                let raw = try await RawClient.exchange(
                    port: f.port, "GET \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                #expect(raw.firstStatus == 200, "\(target): \(raw.prefix(200))")
                let recorded = try #require(await f.sandbox!.recorder.last())
                #expect(recorded.uri == target)
            }
        }
    }

    @Test func hopByHopHeadersAreDroppedAndForwardingHeadersAdded() async throws {
        try await GatewayFixture.withSandbox { f in
            let raw = try await RawClient.exchange(
                port: f.port,
                """
                GET /api/v1/echo/ HTTP/1.1\r
                Host: gateway.local:8080\r
                Connection: keep-alive, X-Hop\r
                X-Hop: secret-hop\r
                Keep-Alive: timeout=5\r
                TE: trailers\r
                Upgrade: websocket\r
                Proxy-Connection: keep-alive\r
                Trailer: X-Checksum\r
                X-Forwarded-For: 10.9.8.7\r
                X-Request-ID: client-chosen-id-123\r
                X-Custom: kept\r
                \r

                """, until: "}")
            #expect(raw.firstStatus == 200)
            #expect(raw.lowercased().contains("x-request-id: client-chosen-id-123"))
            let recorded = try #require(await f.sandbox!.recorder.last())
            for name in [
                "connection", "x-hop", "keep-alive", "te", "upgrade", "proxy-connection", "trailer",
                "transfer-encoding",
            ] {
                #expect(recorded.headerValues(name).isEmpty, "\(name) was forwarded")
            }
            #expect(recorded.header("host") == "127.0.0.1:\(URLComponents(string: f.sandbox!.baseURL)!.port!)")
            #expect(recorded.header("x-custom") == "kept")
            // credgate is the first hop: the client's claim is replaced by the peer address (issue 8.6).
            #expect(recorded.header("x-forwarded-for") == "127.0.0.1")
            #expect(recorded.header("via") == "1.1 credgate")
            #expect(recorded.header("x-forwarded-proto") == "http")
            #expect(recorded.header("x-forwarded-host") == "gateway.local:8080")
            #expect(recorded.header("x-request-id") == "client-chosen-id-123")
        }
    }

    @Test func requestIDIsGeneratedWhenAbsent() async throws {
        try await GatewayFixture.withSandbox { f in
            let response = try await send(.GET, f.base + "/api/v1/users/providers-list/")
            let id = try #require(response.headers.first(name: "x-request-id"))
            #expect(id.count == 32)
            let recorded = try #require(await f.sandbox!.recorder.last())
            #expect(recorded.header("x-request-id") == id)
        }
    }

    @Test func hopByHopHeadersInAnswersAreDropped() async throws {
        let upstream = try await TestUpstream.start { _ in
            .respond(
                .ok,
                headers: [
                    "Connection": "X-Bar", "X-Bar": "1", "Keep-Alive": "timeout=5", "Upgrade": "h2c",
                    "Proxy-Authenticate": "Basic", "Trailer": "X-Sum", "X-Kept": "yes",
                ], body: "{}")
        }
        defer { Task { try? await upstream.shutdown() } }
        try await GatewayFixture.with(config: TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")) { f in
            let response = try await send(.GET, f.base + "/api/v1/x/")
            #expect(response.status == .ok)
            for name in ["x-bar", "keep-alive", "upgrade", "proxy-authenticate", "trailer"] {
                #expect(response.headers[name].isEmpty, "\(name) reached the client")
            }
            #expect(response.headers.first(name: "x-kept") == "yes")
        }
    }

    @Test func hundredMebibytesStreamUpAndDown() async throws {
        let size = 100 * 1024 * 1024
        try await GatewayFixture.withSandbox { f in
            // Up: generated on the fly, hashed on both ends.
            var request = HTTPClientRequest(url: f.base + "/api/v1/files/bulk/")
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/octet-stream")
            request.body = .stream(PayloadSequence(total: size), length: .known(Int64(size)))
            let response = try await httpClient.execute(request, timeout: .seconds(120))
            #expect(response.status == .ok)
            let echo =
                try JSONSerialization.jsonObject(with: Data(buffer: try await response.body.collect(upTo: 1 << 20)))
                as? [String: Any]
            #expect(echo?["body_bytes"] as? Int == size)
            #expect(echo?["body_sha256"] as? String == SandboxPayload.sha256Hex(count: size))

            // Down: streamed from the sandbox, hashed as it arrives.
            let down = try await httpClient.execute(
                HTTPClientRequest(url: f.base + "/api/v1/sandbox/download/?bytes=\(size)"), timeout: .seconds(120))
            #expect(down.status == .ok)
            var hasher = SHA256()
            var received = 0
            for try await chunk in down.body {
                received += chunk.readableBytes
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
            #expect(received == size)
            #expect(
                hasher.finalize().map { String(format: "%02x", $0) }.joined() == SandboxPayload.sha256Hex(count: size))
        }
    }

    @Test func redirectsAreReturnedNotFollowed() async throws {
        let upstream = try await TestUpstream.start { request in
            request.head.uri.hasPrefix("/api/v1/moved")
                ? .respond(.found, headers: ["Location": "/api/v1/elsewhere/"]) : .respond(.ok, body: "followed")
        }
        defer { Task { try? await upstream.shutdown() } }
        try await GatewayFixture.with(config: TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")) { f in
            let response = try await send(.GET, f.base + "/api/v1/moved/")
            #expect(response.status == .found)
            #expect(response.headers.first(name: "location") == "/api/v1/elsewhere/")
            #expect(upstream.requests == 1)
        }
    }

    @Test func headAnd204AnswersAreFramedCorrectly() async throws {
        try await GatewayFixture.withSandbox { f in
            // Pipelined on one connection: if a body were wrongly framed, the next answer would be garbled.
            let raw = try await RawClient.exchange(
                port: f.port,
                """
                HEAD /api/v1/users/providers-list/ HTTP/1.1\r
                Host: x\r
                \r
                DELETE /api/v1/users/practice-location-provider/9/ HTTP/1.1\r
                Host: x\r
                \r
                GET /api/v1/users/providers-list/?limit=1 HTTP/1.1\r
                Host: x\r
                Connection: close\r
                \r

                """)
            #expect(raw.statuses == [200, 204, 200])
            let parts = raw.components(separatedBy: "HTTP/1.1 ")
            try #require(parts.count == 4, "\(raw)")
            // The HEAD answer has no body: the DELETE's status line follows its blank line directly.
            #expect(parts[1].hasSuffix("\r\n\r\n"))
            #expect(parts[2].hasSuffix("\r\n\r\n"))
            #expect(parts[3].contains("\"count\":57"))
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await GatewayFixture.withSandbox { f in
            var request = ""
            for i in 0..<10 {
                request += "GET /api/v1/order/\(i)/ HTTP/1.1\r\nHost: x\r\nX-Request-ID: req-\(i)\r\n\r\n"
            }
            request += "GET /api/v1/order/last/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            // The last request closes the connection, so the exchange ends there; the idle limit only covers a
            // first upstream connection made on a loaded machine.
            let raw = try await RawClient.exchange(port: f.port, request, idle: .seconds(5))
            #expect(raw.statuses.count == 11, "\(raw)")
            var position = raw.startIndex
            for i in 0..<10 {
                let range = try #require(
                    raw.range(of: "\"path\":\"/api/v1/order/\(i)/\"", range: position..<raw.endIndex),
                    "answer \(i) out of order")
                position = range.upperBound
            }
        }
    }

    @Test func expectContinueIsAnswered() async throws {
        try await GatewayFixture.withSandbox { f in
            let raw = try await RawClient.exchange(
                port: f.port,
                """
                POST /api/v1/upload-ish/ HTTP/1.1\r
                Host: x\r
                Content-Length: 5\r
                Expect: 100-continue\r
                \r

                """, idle: .milliseconds(500), until: "100 Continue\r\n\r\n")
            #expect(raw.hasPrefix("HTTP/1.1 100 Continue"))
            let recorded = await f.sandbox!.recorder.count(path: "/api/v1/upload-ish/")
            #expect(recorded <= 1)
        }
        // And the whole exchange, with the body sent after the 100.
        try await GatewayFixture.withSandbox { f in
            let raw = try await RawClient.exchange(
                port: f.port,
                """
                POST /api/v1/upload-ish/ HTTP/1.1\r
                Host: x\r
                Content-Length: 5\r
                Expect: 100-continue\r
                Connection: close\r
                \r
                hello
                """)
            #expect(raw.statuses == [100, 200])
            #expect(raw.contains("\"body_bytes\":5"))
            let recorded = try #require(await f.sandbox!.recorder.last())
            #expect(recorded.headerValues("expect").isEmpty)
        }
    }
}

/// The sandbox payload as an async sequence of 256 KiB buffers, for streaming uploads without holding them.
struct PayloadSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let total: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let total: Int
        var offset = 0
        mutating func next() async -> ByteBuffer? {
            guard offset < total else { return nil }
            let n = Swift.min(256 * 1024, total - offset)
            var buffer = ByteBuffer()
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { raw in
                SandboxPayload.fill(UnsafeMutableRawBufferPointer(rebasing: raw[0..<n]), offset: offset)
                return n
            }
            offset += n
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(total: total) }
}

/// Issue 10 item 6: absolute links in the platform's answers stay behind the gateway.
@Suite struct LinkRewritingTests {
    /// A paginated list followed by its `next` links stays on credgate and returns every item.
    @Test func paginationLinksPointAtTheGateway() async throws {
        try await SessionTests.withGateway { f in
            var url: String? = f.base + "/api/v1/users/providers-list/?limit=10"
            var ids = Set<String>()
            var pages = 0
            while let next = url, pages < 20 {
                #expect(next.hasPrefix(f.base + "/"), "a link leaves the gateway: \(next)")
                let r = try await send(.GET, next)
                #expect(r.status == .ok, "\(r.text)")
                let json = try r.json()
                for item in json["results"] as? [[String: Any]] ?? [] {
                    if let id = item["id"] as? String { ids.insert(id) }
                }
                if let previous = json["previous"] as? String {
                    #expect(previous.hasPrefix(f.base + "/"), "\(previous)")
                }
                url = json["next"] as? String
                pages += 1
            }
            #expect(pages == 6)
            #expect(ids.count == 57)
        }
    }

    /// `Location` on a redirect or a 201 from the upstream's own origin points at the gateway; other hosts and
    /// look-alike hosts are left alone.
    @Test func locationHeadersOfTheUpstreamsOwnOriginPointAtTheGateway() async throws {
        let port = NIOLockedValueBox(0)
        let upstream = try await TestUpstream.start { request in
            let me = "http://127.0.0.1:\(port.withLockedValue { $0 })"
            switch request.head.uri {
            case "/api/v1/moved/": return .respond(.found, headers: ["location": me + "/api/v1/new/?a=1"])
            case "/api/v1/created/":
                return .respond(
                    .created, headers: ["location": me + "/api/v1/things/7/", "content-type": "application/json"],
                    body: "{}")
            case "/api/v1/elsewhere/":
                return .respond(
                    .found, headers: ["location": "https://bucket.s3.amazonaws.com/key?X-Amz-Signature=abc"])
            default: return .respond(.found, headers: ["location": me + "0/lookalike/"])
            }
        }
        port.withLockedValue { $0 = upstream.port }
        defer { Task { try? await upstream.shutdown() } }
        try await GatewayFixture.with(config: TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")) { f in
            let host = "127.0.0.1:\(f.port)"
            let moved = try await send(.GET, f.base + "/api/v1/moved/")
            #expect(moved.headers.first(name: "location") == "http://\(host)/api/v1/new/?a=1")
            let created = try await send(.POST, f.base + "/api/v1/created/", body: "{}")
            #expect(created.headers.first(name: "location") == "http://\(host)/api/v1/things/7/")
            let elsewhere = try await send(.GET, f.base + "/api/v1/elsewhere/")
            #expect(
                elsewhere.headers.first(name: "location") == "https://bucket.s3.amazonaws.com/key?X-Amz-Signature=abc")
            let lookalike = try await send(.GET, f.base + "/api/v1/lookalike/")
            #expect(lookalike.headers.first(name: "location") == "http://127.0.0.1:\(upstream.port)0/lookalike/")
        }
    }
}
