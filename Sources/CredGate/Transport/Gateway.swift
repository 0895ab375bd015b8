import AsyncHTTPClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The running gateway: a listening socket whose connections each get a ``ProxyHandler`` and share, per event
/// loop, one pool of upstream connections.
public final class Gateway: Sendable {
    /// The runtime new requests use; ``reload(to:)`` swaps it.
    public var runtime: GatewayRuntime { runtimes.runtime }
    let runtimes: RuntimeHolder
    /// Pool keys of the upstream targets (a reload gives a changed upstream a fresh one).
    let upstreamKeys: UpstreamKeys
    /// How a session logs in: through ``sessionClient`` (a reload makes new sessions with it).
    let sessionTransport: @Sendable (UpstreamConfig) -> any SessionTransport
    /// One reload at a time (SIGHUP, `credgate reload`, the secret-file watcher may ask at once).
    let reloading = NIOLock()
    /// Sessions replaced by reloads, still to be stopped at shutdown if their old runtime has not stopped them.
    let retiredSessions = NIOLockedValueBox<[WeakSession]>([])
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    /// One listening socket per listener, in the configuration's order.
    private let serverChannels: [any Channel]
    private let pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>]
    /// The client sessions log in with (low volume, so AsyncHTTPClient rather than the data path's pool).
    private let sessionClient: HTTPClient
    /// The access log (nil when `log.access` is off or the log level is above `info`).
    let accessLog: AccessLog?
    /// The open client connections (admitted ones), told to finish and close by ``drain(delay:grace:)``.
    private let connections: ClientConnections

    /// Whether `/credgate/readiness` would answer 200 now (every required credential has what it needs).
    public var isReady: Bool { runtime.admin.readiness().isReady }

    /// The port actually bound by the first listener (useful with port 0).
    var port: Int { serverChannels[0].localAddress?.port ?? 0 }
    var localAddress: SocketAddress? { serverChannels[0].localAddress }
    /// Every listener's bound port, in the configuration's order.
    public var ports: [Int] { serverChannels.map { $0.localAddress?.port ?? 0 } }

    private init(
        runtimes: RuntimeHolder, upstreamKeys: UpstreamKeys,
        sessionTransport: @escaping @Sendable (UpstreamConfig) -> any SessionTransport,
        group: any EventLoopGroup, ownsGroup: Bool, serverChannels: [any Channel],
        pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>], sessionClient: HTTPClient, accessLog: AccessLog?,
        connections: ClientConnections
    ) {
        self.runtimes = runtimes
        self.upstreamKeys = upstreamKeys
        self.sessionTransport = sessionTransport
        self.connections = connections
        self.accessLog = accessLog
        self.sessionClient = sessionClient
        self.group = group
        self.ownsGroup = ownsGroup
        self.serverChannels = serverChannels
        self.pools = pools
    }

    /// Binds and starts serving. `group` defaults to a new group with `listen.threads` loops (one per core if 0).
    /// The access log goes to standard output unless `accessLogSink` takes its batches (tests).
    public static func start(
        config: GatewayConfig, logger: Logger, group: (any EventLoopGroup)? = nil,
        accessLogSink: (@Sendable (ByteBuffer) -> Void)? = nil
    ) async throws -> Gateway {
        let ownsGroup = group == nil
        let threads = config.listen.threads > 0 ? config.listen.threads : System.coreCount
        let group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.redirectConfiguration = .disallow
        clientConfiguration.httpVersion = .http1Only
        let sessionClient = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: clientConfiguration)
        let runtime: GatewayRuntime
        let sessionTransport: @Sendable (UpstreamConfig) -> any SessionTransport = { upstream in
            AsyncHTTPSessionTransport(upstream: upstream, client: sessionClient, logger: logger)
        }
        let upstreamKeys = UpstreamKeys(upstreams: config.upstreams.count)
        do {
            runtime = try GatewayRuntime(
                config: config, logger: logger, sessionTransport: sessionTransport, extraFilters: nil,
                metrics: nil, previous: nil, keys: upstreamKeys)
        } catch {
            try? await sessionClient.shutdown()
            if ownsGroup { try? await group.shutdownGracefully() }
            throw error
        }
        if config.log.access && logger.logLevel > .info {
            // The access log is written at the info level: say why it is silent rather than leave it unexplained.
            logger.notice(
                "access log off: the log level is \(logger.logLevel), above info (set the level to info or lower, or log.access: false to silence this)"
            )
        }
        let accessLog =
            config.log.access && logger.logLevel <= .info
            ? AccessLog(
                format: config.log.format, includeQuery: config.log.query,
                sink: accessLogSink ?? AccessLog.standardOutput)
            : nil
        var pools: [ObjectIdentifier: NIOLoopBound<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            let pool = try await loop.submit {
                // Room for the upstreams a reload may add or change (``UpstreamKeys``).
                let pool = UpstreamPool(eventLoop: loop, targets: upstreamKeys.capacity)
                pool.raw = UpstreamPool(
                    eventLoop: loop, targets: upstreamKeys.capacity, connector: SocketConnector(raw: true))
                if let log = accessLog {
                    pool.accessLog = AccessLogBuffer(log: log, eventLoop: loop)
                    pool.accessLog?.start()
                }
                pool.start()
                return NIOLoopBound(pool, eventLoop: loop)
            }.get()
            pools[ObjectIdentifier(loop)] = pool
        }
        let poolsByLoop = pools
        let admissions = config.listeners.map {
            ConnectionAdmission(limit: $0.listen.maxConnections, perPeer: $0.listen.maxConnectionsPerPeer)
        }
        let dropped: (@Sendable () -> Int)? = accessLog.map { log in { @Sendable in log.dropped } }
        runtime.metrics.attach(openConnections: { admissions.reduce(0) { $0 + $1.open } }, accessLogDropped: dropped)
        let connections = ClientConnections()
        let runtimes = RuntimeHolder(runtime)
        var channels: [any Channel] = []
        for (index, listener) in config.listeners.enumerated() {
            let bootstrap = makeBootstrap(
                group: group, listen: listener.listen, admission: admissions[index], connections: connections
            ) {
                channel in
                guard let pool = poolsByLoop[ObjectIdentifier(channel.eventLoop)]?.value else {
                    throw ChannelError.ioOnClosedChannel
                }
                let proxy = ProxyHandler(runtimes: runtimes, listener: index, pool: pool)
                return (FastPathHandler(runtimes: runtimes, listener: index, pool: pool, proxy: proxy), proxy)
            }
            do {
                channels.append(try await bootstrap.bind(host: listener.listen.host, port: listener.listen.port).get())
            } catch {
                for channel in channels { try? await channel.close() }
                try? await sessionClient.shutdown()
                accessLog?.shutdown()
                if ownsGroup { try? await group.shutdownGracefully() }
                throw ListenError(
                    listener: listener.name, host: listener.listen.host, port: listener.listen.port, underlying: error)
            }
        }
        for session in runtime.sessions.values { session.start() }
        return Gateway(
            runtimes: runtimes, upstreamKeys: upstreamKeys, sessionTransport: sessionTransport, group: group,
            ownsGroup: ownsGroup, serverChannels: channels, pools: poolsByLoop,
            sessionClient: sessionClient, accessLog: accessLog, connections: connections)
    }

    /// Graceful drain (SIGTERM): readiness answers 503 at once; new connections are still accepted for `delay`
    /// (while load balancers and Kubernetes endpoints stop sending here); then the listener closes, every
    /// client connection finishes its current exchange (its answer says `Connection: close`) and closes, idle
    /// ones at once; once all are closed, or `grace` has passed (the rest are cut), the gateway shuts down as
    /// ``shutdown()`` does. Returns how many connections were still open when the grace period ran out.
    @discardableResult
    public func drain(delay: TimeAmount, grace: TimeAmount) async throws -> Int {
        runtime.admin.drain.startDraining()
        if delay > .zero { try? await Task.sleep(nanoseconds: UInt64(delay.nanoseconds)) }
        for channel in serverChannels { try? await channel.close() }
        connections.drain()
        let deadline = NIODeadline.now() + grace
        while connections.count > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        let cut = connections.count
        if cut > 0 {
            runtime.logger.warning(
                "shutdown grace period over: closing connections still in flight", metadata: ["connections": "\(cut)"])
            connections.closeAll()
        }
        try await shutdown()
        return cut
    }

    /// Stops listening, closes the pools and, if the gateway made its own threads, stops them.
    public func shutdown() async throws {
        for channel in serverChannels { try? await channel.close() }
        for session in runtime.sessions.values { await session.shutdown() }
        for session in retiredSessions.withLockedValue({ $0.compactMap(\.session) }) { await session.shutdown() }
        try? await sessionClient.shutdown()
        for (_, pool) in pools {
            try? await pool.eventLoop.submit { pool.value.shutdown() }.get()
        }
        accessLog?.shutdown()
        if ownsGroup { try await group.shutdownGracefully() }
    }

    /// Waits until the listening sockets close.
    func waitUntilClosed() async throws {
        for channel in serverChannels { try await channel.closeFuture.get() }
    }

    /// A listening socket's bootstrap: admission at accept, the head guard, the idle timer, the fast path, NIO's
    /// HTTP codec and the ``ProxyHandler`` (the last two `makeHandlers` makes).
    private static func makeBootstrap(
        group: any EventLoopGroup, listen: ListenConfig, admission: ConnectionAdmission,
        connections: ClientConnections,
        makeHandlers: @escaping @Sendable (any Channel) throws -> (FastPathHandler, ProxyHandler)
    ) -> ServerBootstrap {
        ServerBootstrap(group: group)
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
                        try sync.addHandler(
                            RefuseHandler(
                                verdict: verdict,
                                limit: verdict == .overPeerLimit ? listen.maxConnectionsPerPeer : listen.maxConnections)
                        )
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                    channel.closeFuture.whenComplete { _ in admission.release(peer: peer, listener: channel.parent) }
                    let (fast, proxy) = try makeHandlers(channel)
                    let headGuard = RequestHeadGuard(timeout: listen.headerTimeout)
                    fast.headGuard = headGuard
                    try sync.addHandler(headGuard)
                    // Before the fast path, which reads the bytes of the requests it serves itself.
                    try sync.addHandler(IdleStateHandler(readTimeout: listen.idleTimeout))
                    try sync.addHandler(fast)
                    // No pipelining assistance: NIO's HTTPServerPipelineHandler stops and restarts reading around every
                    // request (two epoll_ctl calls each); ProxyHandler queues pipelined requests itself.
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    try sync.addHandler(proxy)
                    connections.register(channel)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
    }
}

/// A listener's socket could not be bound: says which listener, so a user with several files knows which port.
struct ListenError: Error, CustomStringConvertible {
    let listener: String
    let host: String
    let port: Int
    let underlying: any Error

    var description: String { "cannot listen on \(host):\(port) (listener '\(listener)'): \(underlying)" }
}
