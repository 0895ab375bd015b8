import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// Hands out embedded channels as upstream connections so every transition of ``ProxyHandler`` can be driven
/// by hand, without sockets.
final class EmbeddedConnector: UpstreamConnector, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    var opened: [EmbeddedChannel] = []
    /// When set, connections complete only when the test fulfils the promise.
    var deferred: EventLoopPromise<any Channel>?
    var holdNext = false
    var failNext: (any Error)?

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func connect(_ target: UpstreamTarget, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        if let error = failNext {
            failNext = nil
            return loop.makeFailedFuture(error)
        }
        let channel = EmbeddedChannel(handler: UpstreamHandler<HTTPClientResponsePart>(), loop: loop)
        _ = try? channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        opened.append(channel)
        if holdNext {
            holdNext = false
            let promise = loop.makePromise(of: (any Channel).self)
            deferred = promise
            return promise.futureResult.map { _ in channel }
        }
        return loop.makeSucceededFuture(channel)
    }
}

/// A client connection with the proxy handler and its pool on one embedded loop.
struct Rig {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let connector: EmbeddedConnector
    let pool: UpstreamPool
    let runtime: GatewayRuntime

    init(maxBody: Int64 = 1 << 20, extraFilter: (any RequestFilter)? = nil) throws {
        var upstream = UpstreamConfig(name: "up", url: UpstreamURL(scheme: .http, host: "upstream.test", port: 8000))
        upstream.responseTimeout = .seconds(10)
        var route = RouteConfig(
            name: "api", methods: nil, path: try PathPattern("/api/**"), upstream: "up", credentials: ["key"])
        route.maxBodyBytes = maxBody
        let config = GatewayConfig(
            upstreams: ["up": upstream],
            credentials: [
                "key": CredentialConfig(name: "key", kind: .apiKey(header: "x-api-key", value: Secret("k-123")))
            ],
            routes: [route])
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let runtime = try GatewayRuntime(
            config: config, logger: logger, extraFilters: extraFilter.map { f in { _ in [f] } })
        self.runtime = runtime
        connector = EmbeddedConnector(loop: loop)
        pool = UpstreamPool(eventLoop: loop, targets: 1, connector: connector)
        client = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandler(ProxyHandler(runtime: runtime, pool: pool))
        _ = try client.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    }

    func request(
        _ method: HTTPMethod = .GET, _ uri: String, headers: HTTPHeaders = ["host": "gw"], body: [String] = [],
        end: Bool = true
    ) throws {
        try client.writeInbound(
            HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)))
        for chunk in body { try client.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: chunk))) }
        if end { try client.writeInbound(HTTPServerRequestPart.end(nil)) }
    }

    /// Everything the proxy wrote to an upstream channel so far.
    func upstreamParts(_ index: Int = 0) throws -> [HTTPClientRequestPart] {
        var parts: [HTTPClientRequestPart] = []
        while let part = try connector.opened[index].readOutbound(as: HTTPClientRequestPart.self) { parts.append(part) }
        return parts
    }

    func answer(
        _ index: Int = 0, status: HTTPResponseStatus = .ok, headers: HTTPHeaders = ["content-length": "2"],
        body: String? = "{}", end: Bool = true
    ) throws {
        let upstream = connector.opened[index]
        try upstream.writeInbound(
            HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
        if let body { try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: body))) }
        if end { try upstream.writeInbound(HTTPClientResponsePart.end(nil)) }
        upstream.pipeline.fireChannelReadComplete()
    }

    /// Everything the proxy wrote to the client so far.
    func clientParts() throws -> [HTTPServerResponsePart] {
        var parts: [HTTPServerResponsePart] = []
        while let part = try client.readOutbound(as: HTTPServerResponsePart.self) { parts.append(part) }
        return parts
    }
}

extension HTTPServerResponsePart {
    var head: HTTPResponseHead? { if case .head(let h) = self { return h } else { return nil } }
    var bodyText: String? { if case .body(.byteBuffer(let b)) = self { return String(buffer: b) } else { return nil } }
    var isEnd: Bool { if case .end = self { return true } else { return false } }
}

extension HTTPClientRequestPart {
    var head: HTTPRequestHead? { if case .head(let h) = self { return h } else { return nil } }
    var bodyText: String? { if case .body(.byteBuffer(let b)) = self { return String(buffer: b) } else { return nil } }
    var isEnd: Bool { if case .end = self { return true } else { return false } }
}

@Suite struct ProxyStateMachineTests {
    @Test func forwardsThenPoolsTheConnectionAndReusesIt() throws {
        let rig = try Rig()
        try rig.request(
            .GET, "/api/v1/x/?a=1", headers: ["host": "gw", "x-api-key": "client", "authorization": "Bearer t"])
        let sent = try rig.upstreamParts()
        let head = try #require(sent.first?.head)
        #expect(head.uri == "/api/v1/x/?a=1")
        #expect(head.headers["x-api-key"] == ["k-123"])
        #expect(head.headers["authorization"].isEmpty)
        #expect(head.headers.first(name: "host") == "upstream.test:8000")
        #expect(sent.last?.isEnd == true)

        try rig.answer()
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .ok)
        #expect(out.first?.head?.headers.first(name: "x-request-id") != nil)
        #expect(out.compactMap(\.bodyText) == ["{}"])
        #expect(out.last?.isEnd == true)
        #expect(rig.pool.idleCount(rig.runtime.targets[0]) == 1)

        // Same upstream channel for the next request.
        try rig.request(.GET, "/api/v1/y/")
        #expect(rig.connector.opened.count == 1)
        #expect(try rig.upstreamParts().first?.head?.uri == "/api/v1/y/")
        #expect(rig.pool.idleCount(rig.runtime.targets[0]) == 0)
    }

    @Test func bodyArrivingWhileConnectingIsKeptInOrder() throws {
        let rig = try Rig()
        rig.connector.holdNext = true
        try rig.request(
            .POST, "/api/v1/upload/", headers: ["host": "gw", "content-length": "6"], body: ["abc", "def"])
        #expect(try rig.upstreamParts().isEmpty)
        rig.connector.deferred!.succeed(rig.connector.opened[0])
        let sent = try rig.upstreamParts()
        #expect(sent.first?.head?.method == .POST)
        #expect(sent.compactMap(\.bodyText) == ["abc", "def"])
        #expect(sent.last?.isEnd == true)
    }

    @Test func earlyAnswerAbandonsTheUploadAndClosesBothSides() throws {
        let rig = try Rig()
        try rig.request(
            .POST, "/api/v1/files/handle/", headers: ["host": "gw", "content-length": "100"], body: ["part1"],
            end: false)
        _ = try rig.upstreamParts()
        try rig.answer(status: .unauthorized, headers: ["content-length": "2"], body: "no")
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .unauthorized)
        #expect(out.first?.head?.headers.first(name: "connection") == "close")
        #expect(out.last?.isEnd == true)
        // The upstream connection did not get the whole request: never reused.
        #expect(rig.pool.idleCount(rig.runtime.targets[0]) == 0)
        #expect(!rig.connector.opened[0].isActive)
        // The rest of the body is dropped, then the client connection closes.
        try rig.client.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "more")))
        try rig.client.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(!rig.client.isActive)
    }

    @Test func upstreamConnectionCloseIsNotPooled() throws {
        let rig = try Rig()
        try rig.request(.GET, "/api/v1/x/")
        try rig.answer(headers: ["content-length": "2", "connection": "close"])
        _ = try rig.clientParts()
        #expect(rig.pool.idleCount(rig.runtime.targets[0]) == 0)
        #expect(rig.client.isActive)
    }

    @Test func stalePooledConnectionIsRetriedOnAFreshOne() throws {
        let rig = try Rig()
        try rig.request(.GET, "/api/v1/x/")
        try rig.answer()
        _ = try rig.clientParts()
        try rig.request(.GET, "/api/v1/again/")
        _ = try rig.upstreamParts()
        // The pooled connection turns out closed before answering.
        rig.connector.opened[0].pipeline.fireChannelInactive()
        #expect(rig.connector.opened.count == 2)
        #expect(try rig.upstreamParts(1).first?.head?.uri == "/api/v1/again/")
        try rig.answer(1)
        #expect(try rig.clientParts().first?.head?.status == .ok)
    }

    @Test func closeBeforeAnswerOnAFreshConnectionIs502() throws {
        let rig = try Rig()
        try rig.request(.GET, "/api/v1/x/")
        rig.connector.opened[0].pipeline.fireChannelInactive()
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .badGateway)
        #expect(out.first?.head?.headers.first(name: "x-credgate-error") == "upstream-reset")
        #expect(rig.connector.opened.count == 1)
    }

    @Test func connectFailureIs502AndConnectionStaysUsable() throws {
        let rig = try Rig()
        rig.connector.failNext = ChannelError.connectTimeout(.seconds(1))
        try rig.request(.GET, "/api/v1/x/")
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .gatewayTimeout)
        #expect(rig.client.isActive)
        try rig.request(.GET, "/api/v1/y/")
        try rig.answer()
        #expect(try rig.clientParts().first?.head?.status == .ok)
    }

    @Test func localAnswersKeepTheConnectionForTheNextRequest() throws {
        let rig = try Rig()
        try rig.request(.GET, "/nope")
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .notFound)
        #expect(out.first?.head?.headers.first(name: "content-type") == "application/problem+json")
        #expect(rig.client.isActive)
        try rig.request(.GET, "/api/v1/x/")
        try rig.answer()
        #expect(try rig.clientParts().first?.head?.status == .ok)
    }

    @Test func responseHeadTimeoutIs504() throws {
        let rig = try Rig()
        try rig.request(.GET, "/api/v1/slow/")
        rig.loop.advanceTime(by: .seconds(11))
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .gatewayTimeout)
        #expect(!rig.connector.opened[0].isActive)
    }

    /// The connection's one timer outlives the exchange it was armed for: a later exchange on the same connection
    /// is timed from its own request, neither early (by the first one's deadline) nor never.
    @Test func aLaterExchangeIsTimedFromItsOwnRequest() throws {
        let rig = try Rig()
        try rig.request(.GET, "/api/v1/x/")
        try rig.answer()
        #expect(try rig.clientParts().first?.head?.status == .ok)
        rig.loop.advanceTime(by: .seconds(8))
        try rig.request(.GET, "/api/v1/slow/")
        rig.loop.advanceTime(by: .seconds(3)) // the first exchange's deadline (10 s) has passed: not this one's
        #expect(try rig.clientParts().isEmpty)
        rig.loop.advanceTime(by: .seconds(6)) // 9 s after the second request
        #expect(try rig.clientParts().isEmpty)
        rig.loop.advanceTime(by: .seconds(2))
        #expect(try rig.clientParts().first?.head?.status == .gatewayTimeout)
    }

    @Test func chunkedBodyOverTheLimitIs413AndNothingMoreIsForwarded() throws {
        let rig = try Rig(maxBody: 8)
        try rig.request(
            .POST, "/api/v1/x/", headers: ["host": "gw", "transfer-encoding": "chunked"], body: ["12345", "67890"],
            end: false)
        let out = try rig.clientParts()
        #expect(out.first?.head?.status == .payloadTooLarge)
        #expect(!rig.connector.opened[0].isActive)
    }

    @Test func filterCanSuspendUntilAsyncWorkIsDone() throws {
        let gate = GateFilter()
        let rig = try Rig(extraFilter: gate)
        gate.promise = rig.loop.makePromise()
        try rig.request(.POST, "/api/v1/x/", headers: ["host": "gw", "content-length": "3"], body: ["abc"])
        #expect(rig.connector.opened.isEmpty)
        gate.open = true
        gate.promise!.succeed()
        let sent = try rig.upstreamParts()
        #expect(sent.first?.head?.headers.first(name: "x-gate") == "passed")
        #expect(sent.compactMap(\.bodyText) == ["abc"])
        #expect(sent.last?.isEnd == true)
    }
}

/// A filter that waits for a promise before it lets the request through.
final class GateFilter: HeadFilter, @unchecked Sendable {
    var promise: EventLoopPromise<Void>?
    var open = false

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        guard open else { return .retryAfter(promise!.futureResult) }
        head.headers.add(name: "x-gate", value: "passed")
        return .proceed
    }
}
