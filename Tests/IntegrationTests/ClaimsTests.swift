import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Sandbox
import Testing

@testable import CredGate

/// Claims of the README that no other test held to, each through real sockets.
@Suite struct ClaimsTests {
    // MARK: - Presigned URLs are cached per user

    static let key = "sk-test-CLAIMSKEY-41d7"
    static let userA = "provider-admin@example.com"
    static let passwordA = "pw-A-CLAIMS-0c1e"
    static let userB = "second-admin@example.com"
    static let passwordB = "pw-B-CLAIMS-9f3a"
    static let presignPath = "/api/v1/files/presign-s3-url/presign_s3_url/"

    /// "Cached presigned URLs are per user": one gateway (so one cache) with three presign routes on the same
    /// upstream URL. `/api/...` and `/c/api/...` use user A's session, `/b/api/...` user B's; a proxy in front of
    /// the sandbox drops the `/b` and `/c` prefixes, so all three reach the platform's presign route. The same
    /// file asked for on all three makes two platform calls, one per user: B never gets A's URL, while the second
    /// route of A shares A's entry (so the path is not what keeps B apart).
    @Test func presignAnswersAreNeverSharedBetweenUsers() async throws {
        var options = SandboxOptions(apiKey: Self.key, user: Self.userA, password: Self.passwordA)
        options.users[Self.userB] = Self.passwordB
        let sandbox = try await SandboxServer.start(options)
        let proxy: PrefixStrippingProxy
        do {
            proxy = try await PrefixStrippingProxy.start(target: sandbox.baseURL, prefixes: ["/b", "/c"])
        } catch {
            try? await sandbox.shutdown()
            throw error
        }
        defer {
            Task {
                try? await proxy.shutdown()
                try? await sandbox.shutdown()
            }
        }

        let profile = CLITests.packageRoot.appendingPathComponent("Config/credgate.yaml").path
        var config = try ConfigLoader.load(
            path: profile,
            environment: [
                "ASSURED_BASE_URL": "http://127.0.0.1:\(proxy.port)", "ASSURED_API_KEY": Self.key,
                "ASSURED_USER": Self.userA, "ASSURED_PASS": Self.passwordA,
            ])
        config.listen.port = 0
        config.listen.threads = 2
        guard case .jwtSession(var sessionB) = config.credentials["assured_session"]?.kind else {
            Issue.record("the profile has no assured_session")
            return
        }
        sessionB.login.body = Secret(
            #"{"email": "\#(Self.userB)", "password": "\#(Self.passwordB)", "remember": true}"#)
        sessionB.placeholderLogin = false
        config.credentials["session_b"] = CredentialConfig(name: "session_b", kind: .jwtSession(sessionB))
        for (name, prefix, credentials) in [
            ("presign-as-b", "/b", ["assured_key", "session_b"]),
            ("presign-as-a-again", "/c", ["assured_key", "assured_session"]),
        ] {
            var route = RouteConfig(
                name: name, methods: ["POST"], path: try PathPattern(prefix + Self.presignPath),
                upstream: "assured", credentials: credentials)
            route.transforms = [.presignCache]
            config.routes.insert(route, at: 0)
        }

        try await GatewayFixture.with(config: config) { f in
            let s3URL = "s3://assured-sandbox-files/per-user/license.pdf"
            func presign(_ prefix: String) async throws -> (cache: String?, url: String?) {
                let r = try await send(
                    .POST, f.base + prefix + Self.presignPath, headers: ["content-type": "application/json"],
                    body: #"{"s3_url": "\#(s3URL)", "presigned_url": ""}"#)
                #expect(r.status == .ok, "\(prefix): \(r.text)")
                return (r.headers.first(name: "x-cache"), try r.json()["presigned_url"] as? String)
            }
            func platformCalls() async -> [RecordedRequest] {
                await sandbox.recorder.all().filter { $0.method == "POST" && $0.path == Self.presignPath }
            }

            let a = try await presign("")
            #expect(a.cache == "MISS")
            let b = try await presign("/b")
            #expect(b.cache == "MISS", "user B must not be served user A's cached URL")
            #expect(await platformCalls().count == 2)
            let aAgain = try await presign("/c")
            #expect(aAgain.cache == "HIT", "another route with user A's credentials shares A's entry")
            #expect(aAgain.url == a.url)
            let bAgain = try await presign("/b")
            #expect(bAgain.cache == "HIT")
            #expect(bAgain.url == b.url)
            #expect(try await presign("").cache == "HIT")

            // Two platform calls, each with its own user's session token.
            let calls = await platformCalls()
            #expect(calls.count == 2)
            let bearers = calls.compactMap { $0.header("authorization") }
            #expect(bearers.count == 2 && Set(bearers).count == 2, "\(bearers.map { $0.prefix(20) })")
            #expect(await sandbox.counters().logins == 2, "one login per user")
        }
    }

    // MARK: - A stale-connection retry never re-sends a body that had started

    /// "A stale-connection retry never re-sends a body that had started": the upstream answers the first request
    /// on each connection, and closes a reused connection, without answering, once part of the next request's body
    /// has arrived. A GET on such a connection is retried on a fresh one (nothing of it is lost); a POST whose body
    /// had started is not: the client gets 502 and the upstream never sees that POST again.
    @Test func aStaleRetryNeverResendsABodyThatHadStarted() async throws {
        let seen = NIOLockedValueBox<[(method: HTTPMethod, connection: Int, index: Int)]>([])
        let upstream = try await TestUpstream.start { request in
            seen.withLockedValue { $0.append((request.head.method, request.connection, request.indexOnConnection)) }
            if request.indexOnConnection == 0 { return .respond(.ok, body: "{\"connection\":\(request.connection)}") }
            return request.head.method == .GET ? .closeNow : .closeAfterBodyBytes(1)
        }
        defer { Task { try? await upstream.shutdown() } }
        let config = TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)") { $0.listen.threads = 1 }
        try await GatewayFixture.with(config: config) { f in
            // A connection is pooled; a POST with a body takes it. (A POST pools it: a GET without a body takes the
            // fast path, whose raw upstream connections are pooled apart from the full path's.)
            #expect(try await send(.POST, f.base + "/api/v1/warm/", body: "{}").status == .ok)
            let body = String(repeating: "x", count: 4000)
            let raw = try await RawClient.exchange(
                port: f.port,
                "POST /api/v1/upload/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    + "Content-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            #expect(raw.firstStatus == 502, "\(raw.prefix(300))")
            #expect(raw.lowercased().contains("x-credgate-error: upstream-reset"))

            let posts = seen.withLockedValue { $0.filter { $0.method == .POST }.dropFirst() } // after the warm-up
            #expect(posts.count == 1, "the POST reached the upstream once: \(posts)")
            #expect(posts.first?.index == 1, "it went out on a reused connection, the case a stale retry is for")

            // The control: a GET (no body to have started) on a reused connection that closes is sent again.
            #expect(try await send(.GET, f.base + "/api/v1/pooled/").status == .ok)
            #expect(try await send(.GET, f.base + "/api/v1/retried/").status == .ok)
            let retried = seen.withLockedValue { $0.filter { $0.method == .GET }.suffix(2).map(\.index) }
            #expect(retried == [1, 0], "dropped on the reused connection, then answered on a fresh one")
            #expect(seen.withLockedValue { $0.filter { $0.method == .POST }.count } == 2, "the warm-up and the one")
        }
    }

    // MARK: - 405 with Allow

    /// "405 method not allowed on a route": a route that takes GET only answers a POST itself, with
    /// `Allow: GET`, as problem+json, and sends nothing to the platform.
    @Test func aMethodTheRouteDoesNotTakeGets405WithAllowAndIsNotForwarded() async throws {
        try await GatewayFixture.withSandbox(configure: { $0.routes[0].methods = ["GET"] }) { f in
            let sandbox = try #require(f.sandbox)
            #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)
            let before = await sandbox.counters().bytesReceived
            let recorded = await sandbox.recorder.all().count

            let r = try await send(
                .POST, f.base + "/api/v1/users/providers/", headers: ["content-type": "application/json"],
                body: #"{"first_name": "Ada"}"#)
            #expect(r.status == .methodNotAllowed)
            #expect(r.headers.first(name: "allow") == "GET")
            #expect(r.headers.first(name: "content-type") == "application/problem+json")
            #expect(r.headers.first(name: "x-credgate-error") == "method-not-allowed")
            let problem = try r.json()
            #expect(problem["status"] as? Int == 405)
            #expect((problem["type"] as? String)?.hasSuffix("method-not-allowed") == true)

            // Anything on its way would have arrived by now.
            try await Task.sleep(for: .milliseconds(100))
            #expect(await sandbox.counters().bytesReceived == before, "the platform received nothing")
            #expect(await sandbox.recorder.all().count == recorded)
            // The connection is still good for a method the route takes.
            #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)
        }
    }
}

/// A plain forwarder in front of a server, for one test: removes a leading path prefix from the list (`/b/x`
/// becomes `/x`) and sends the request on with AsyncHTTPClient, then answers what it got, whole.
final class PrefixStrippingProxy: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    private init(channel: any Channel) { self.channel = channel }

    static func start(target: String, prefixes: [String]) async throws -> PrefixStrippingProxy {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try sync.addHandler(Forwarder(target: target, prefixes: prefixes))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return PrefixStrippingProxy(channel: channel)
    }

    func shutdown() async throws { try await channel.close() }

    final class Forwarder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let target: String
        let prefixes: [String]
        var head: HTTPRequestHead?
        var body = ByteBuffer()

        init(target: String, prefixes: [String]) {
            self.target = target
            self.prefixes = prefixes
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body.clear()
            case .body(var buffer):
                body.writeBuffer(&buffer)
            case .end:
                guard let head else { return }
                self.head = nil
                var uri = head.uri
                if let prefix = prefixes.first(where: { uri.hasPrefix($0 + "/") }) {
                    uri = String(uri.dropFirst(prefix.count))
                }
                var request = HTTPClientRequest(url: target + uri)
                request.method = head.method
                var headers = head.headers
                for name in ["host", "connection", "content-length", "transfer-encoding"] { headers.remove(name: name) }
                request.headers = headers
                if body.readableBytes > 0 { request.body = .bytes(body) }
                let keepAlive = head.isKeepAlive
                let answer = context.eventLoop.makePromise(of: (HTTPResponseStatus, HTTPHeaders, ByteBuffer).self)
                answer.completeWithTask {
                    let response = try await httpClient.execute(request, timeout: .seconds(30))
                    return (response.status, response.headers, try await response.body.collect(upTo: 16 << 20))
                }
                answer.futureResult.assumeIsolated().whenComplete { [self] result in
                    let (status, received, bytes) =
                        (try? result.get()) ?? (.badGateway, [:], ByteBuffer(string: "proxy: no answer"))
                    var headers = received
                    for name in ["connection", "content-length", "transfer-encoding", "keep-alive"] {
                        headers.remove(name: name)
                    }
                    headers.add(name: "content-length", value: String(bytes.readableBytes))
                    if !keepAlive { headers.add(name: "connection", value: "close") }
                    context.write(
                        wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                        promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
                    let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
                    if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
                }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
