import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The running gateway: a listening socket whose connections each get a ``ProxyHandler`` and share, per event
/// loop, one pool of upstream connections.
public final class Gateway: Sendable {
    public let runtime: GatewayRuntime
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let serverChannel: any Channel
    private let pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>]
    /// The client sessions log in with (low volume, so AsyncHTTPClient rather than the data path's pool).
    private let sessionClient: HTTPClient

    /// The port actually bound (useful with port 0).
    public var port: Int { serverChannel.localAddress?.port ?? 0 }
    public var localAddress: SocketAddress? { serverChannel.localAddress }

    private init(runtime: GatewayRuntime, group: any EventLoopGroup, ownsGroup: Bool, serverChannel: any Channel,
                 pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>], sessionClient: HTTPClient) {
        self.runtime = runtime
        self.sessionClient = sessionClient
        self.group = group
        self.ownsGroup = ownsGroup
        self.serverChannel = serverChannel
        self.pools = pools
    }

    /// Binds and starts serving. `group` defaults to a new group with `listen.threads` loops (one per core if 0).
    public static func start(config: GatewayConfig, logger: Logger, group: (any EventLoopGroup)? = nil) async throws -> Gateway {
        let ownsGroup = group == nil
        let threads = config.listen.threads > 0 ? config.listen.threads : System.coreCount
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.httpVersion = .http1Only
        let sessionClient = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: clientConfiguration)
        let runtime: GatewayRuntime
        do {
            runtime = try GatewayRuntime(config: config, logger: logger, sessionTransport: { upstream in
                AsyncHTTPSessionTransport(upstream: upstream, client: sessionClient, logger: logger)
            })
        } catch {
            try? await sessionClient.shutdown()
            if ownsGroup { try? await group.shutdownGracefully() }
            throw error
        }
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            let pool = try await loop.submit {
                let pool = UpstreamPool(eventLoop: loop, targets: runtime.targets.count)
                pool.start()
                return NIOLoopBound(pool, eventLoop: loop)
            }.get()
            pools[ObjectIdentifier(loop)] = pool
        }
        let poolsByLoop = pools
        let admission = ConnectionAdmission(limit: config.listen.maxConnections, perPeer: config.listen.maxConnectionsPerPeer)
        let listen = config.listen
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            // A client that sends its request and shuts down its side (`nc -N`, `curl` with `--http0.9`-era
            // habits) still gets its answer.
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                let peer = channel.remoteAddress?.ipAddress ?? ""
                let verdict = admission.admit(peer: peer, listener: channel.parent)
                do {
                    let sync = channel.pipeline.syncOperations
                    if verdict != .admitted {
                        // Over a cap: answer 503 at once, without waiting for a request, and close.
                        try sync.addHandler(RefuseHandler(verdict: verdict, limit: verdict == .overPeerLimit ? listen.maxConnectionsPerPeer : listen.maxConnections))
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                    channel.closeFuture.whenComplete { _ in admission.release(peer: peer, listener: channel.parent) }
                    try sync.addHandler(RequestHeadGuard(timeout: listen.headerTimeout))
                    // No pipelining assistance: NIO's HTTPServerPipelineHandler stops and restarts reading around every
                    // request (two epoll_ctl calls each); ProxyHandler queues pipelined requests itself.
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    try sync.addHandler(IdleStateHandler(readTimeout: listen.idleTimeout))
                    guard let pool = poolsByLoop[ObjectIdentifier(channel.eventLoop)]?.value else {
                        return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                    }
                    try sync.addHandler(ProxyHandler(runtime: runtime, pool: pool))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: config.listen.host, port: config.listen.port).get()
        } catch {
            try? await sessionClient.shutdown()
            if ownsGroup { try? await group.shutdownGracefully() }
            throw error
        }
        for session in runtime.sessions.values { session.start() }
        return Gateway(runtime: runtime, group: group, ownsGroup: ownsGroup, serverChannel: channel, pools: poolsByLoop,
                       sessionClient: sessionClient)
    }

    /// Stops listening, closes the pools and, if the gateway made its own threads, stops them.
    public func shutdown() async throws {
        try? await serverChannel.close()
        for session in runtime.sessions.values { await session.shutdown() }
        try? await sessionClient.shutdown()
        for (_, pool) in pools {
            try? await pool.eventLoop.submit { pool.value.shutdown() }.get()
        }
        if ownsGroup { try await group.shutdownGracefully() }
    }

    /// Waits until the listening socket closes.
    public func waitUntilClosed() async throws {
        try await serverChannel.closeFuture.get()
    }
}

/// Counts client connections, in all and per peer address, and pauses the listener at the cap.
///
/// At `limit` the listening socket stops accepting (`autoRead` off): further connections wait in the kernel's
/// backlog instead of each taking a descriptor and memory here, and accepting resumes as soon as one closes.
/// Connections accepted over a cap all the same (the listener accepts in batches) get a 503 at once.
final class ConnectionAdmission: Sendable {
    enum Verdict: Equatable { case admitted, overLimit, overPeerLimit }

    private struct Counts {
        var total = 0
        var byPeer: [String: Int] = [:]
        var paused = false
    }

    private let limit: Int
    private let perPeer: Int
    private let counts = NIOLockedValueBox(Counts())

    init(limit: Int, perPeer: Int) {
        self.limit = limit
        self.perPeer = perPeer
    }

    func admit(peer: String, listener: (any Channel)?) -> Verdict {
        let (verdict, pause) = counts.withLockedValue { c -> (Verdict, Bool) in
            guard c.total < limit else { return (.overLimit, false) }
            let mine = c.byPeer[peer, default: 0]
            if perPeer > 0 && mine >= perPeer { return (.overPeerLimit, false) }
            c.total += 1
            c.byPeer[peer] = mine + 1
            let pause = c.total >= limit && !c.paused
            if pause { c.paused = true }
            return (.admitted, pause)
        }
        if pause { _ = listener?.setOption(ChannelOptions.autoRead, value: false) }
        return verdict
    }

    func release(peer: String, listener: (any Channel)?) {
        let resume = counts.withLockedValue { c -> Bool in
            c.total -= 1
            let mine = c.byPeer[peer, default: 1] - 1
            c.byPeer[peer] = mine > 0 ? mine : nil
            let resume = c.paused && c.total < limit
            if resume { c.paused = false }
            return resume
        }
        if resume { _ = listener?.setOption(ChannelOptions.autoRead, value: true) }
    }
}

/// A connection over a cap: a 503 written at once (the client may not have sent anything yet), then the write
/// side shut and the connection closed shortly after, so a request already on its way is not met with a reset
/// before the 503 can be read.
final class RefuseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let verdict: ConnectionAdmission.Verdict
    let limit: Int

    init(verdict: ConnectionAdmission.Verdict, limit: Int) {
        self.verdict = verdict
        self.limit = limit
    }

    func channelActive(context: ChannelHandlerContext) {
        let requestID = RequestID.generate()
        let error: GatewayError = verdict == .overPeerLimit ? .tooManyConnectionsFromPeer(limit: limit) : .tooManyConnections(limit: limit)
        let response = LocalResponse.problem(error, requestID: requestID)
        var head = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "x-request-id: \(requestID)\r\ncontent-length: \(response.body.readableBytes)\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
        var bytes = context.channel.allocator.buffer(string: head)
        var body = response.body
        bytes.writeBuffer(&body)
        let channel = context.channel
        let loop = context.eventLoop
        context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            loop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever the client sends is dropped.
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
    }
}
