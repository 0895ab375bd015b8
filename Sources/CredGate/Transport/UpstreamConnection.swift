import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The receiving side of an exchange with an upstream connection; the client connection's handler.
/// All calls arrive on the connection's event loop.
protocol UpstreamDelegate: AnyObject {
    /// An answer part, on a connection with NIO's HTTP codec (the full path's).
    func upstreamReceived(_ part: HTTPClientResponsePart)
    /// Bytes as read, on a raw connection (the fast path's).
    func upstreamReceivedBytes(_ bytes: ByteBuffer)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(_ writable: Bool)
    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?)
}

extension UpstreamDelegate {
    // Each delegate uses connections of one kind only.
    func upstreamReceived(_ part: HTTPClientResponsePart) {}
    func upstreamReceivedBytes(_ bytes: ByteBuffer) {}
}

/// What an upstream channel's last handler reads: answer parts (NIO's HTTP codec) or raw bytes.
protocol UpstreamPart {
    func deliver(to delegate: any UpstreamDelegate)
}

extension HTTPPart: UpstreamPart where HeadT == HTTPResponseHead, BodyT == ByteBuffer {
    func deliver(to delegate: any UpstreamDelegate) { delegate.upstreamReceived(self) }
}

extension ByteBuffer: UpstreamPart {
    func deliver(to delegate: any UpstreamDelegate) { delegate.upstreamReceivedBytes(self) }
}

/// One keep-alive connection to an upstream, owned by the pool of the event loop it lives on.
final class UpstreamConnection {
    let channel: any Channel
    let target: UpstreamTarget
    /// The exchange using this connection; `nil` while it sits idle in the pool. A strong reference, cleared
    /// whenever the exchange lets the connection go (``UpstreamPool/release(_:)``, ``UpstreamPool/discard(_:)``,
    /// ``close()``, a close from the upstream): a weak one would move the client handler's reference count to a
    /// side table for its lifetime, which makes every retain and release of it slower (2% of the fast path's CPU).
    var delegate: (any UpstreamDelegate)?
    /// Whether this connection served a request before (a stale one may be retried once).
    var served = 0
    var idleSince: NIODeadline = .now()
    private(set) var isClosed = false

    init(channel: any Channel, target: UpstreamTarget) {
        self.channel = channel
        self.target = target
    }

    var isUsable: Bool { !isClosed && channel.isActive }

    func write(_ part: HTTPClientRequestPart, promise: EventLoopPromise<Void>? = nil) {
        channel.write(NIOAny(part), promise: promise)
    }

    /// Writes bytes as they are (a raw connection's).
    func write(bytes: ByteBuffer) {
        channel.write(NIOAny(bytes), promise: nil)
    }

    func flush() { channel.flush() }

    /// What autoRead was last set to (channels start with it on).
    private var autoRead = true

    func setAutoRead(_ on: Bool) {
        guard on != autoRead else { return }
        autoRead = on
        try? channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
    }

    /// Closes the connection; the delegate (if any) is detached first so it gets no callback.
    func close() {
        delegate = nil
        guard !isClosed else { return }
        isClosed = true
        channel.close(promise: nil)
    }

    fileprivate func closed(error: (any Error)?, pool: UpstreamPool?) {
        let wasClosed = isClosed
        isClosed = true
        if let delegate {
            self.delegate = nil
            delegate.upstreamClosed(self, error: error)
        } else if !wasClosed {
            pool?.forget(self)
        }
    }
}

/// What the pool attaches a new connection to (the ``UpstreamHandler`` at the end of its pipeline).
protocol UpstreamAttachment: AnyObject {
    var connection: UpstreamConnection? { get set }
    var pool: UpstreamPool? { get set }
}

/// The last handler of an upstream channel: hands everything to the connection's current delegate.
final class UpstreamHandler<Part: UpstreamPart>: ChannelInboundHandler, UpstreamAttachment {
    typealias InboundIn = Part

    var connection: UpstreamConnection? // cleared on close, which breaks the channel <-> connection cycle
    /// Strong (the pool outlives its connections: its shutdown closes them all, and a closed channel lets go
    /// of its handlers). A weak reference would move the pool's reference count to a side table, and the data
    /// path retains the pool on every request.
    var pool: UpstreamPool?
    private var reportedClose = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let delegate = connection?.delegate {
            part.deliver(to: delegate)
        } else {
            // Bytes on an idle pooled connection: it is no longer in a known state.
            if let connection {
                connection.closed(error: nil, pool: pool)
            }
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection?.delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection?.delegate?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        reportClose(error: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reportClose(error: error)
        context.close(promise: nil)
    }

    private func reportClose(error: (any Error)?) {
        guard !reportedClose, let connection else { return }
        reportedClose = true
        connection.closed(error: error, pool: pool)
        self.connection = nil
    }
}

/// Keep-alive upstream connections of one event loop. Used only on that loop: no locks, no thread hops.
final class UpstreamPool {
    let eventLoop: any EventLoop
    private var idle: [[UpstreamConnection]]
    private var live: [ObjectIdentifier: UpstreamConnection] = [:]
    private var sweeper: RepeatedTask?

    fileprivate let connector: any UpstreamConnector
    /// Request IDs for the client connections of this loop.
    let requestIDs = RequestIDSource()
    /// This loop's share of the access log (nil when it is off).
    var accessLog: AccessLogBuffer?
    /// This loop's raw connections, for the fast path (``FastPathHandler``); set on the full path's pool.
    var raw: UpstreamPool?

    init(eventLoop: any EventLoop, targets: Int, connector: any UpstreamConnector = SocketConnector()) {
        self.eventLoop = eventLoop
        self.idle = Array(repeating: [], count: targets)
        self.connector = connector
    }

    /// Idle pooled connections to a target (for tests and status).
    func idleCount(_ target: UpstreamTarget) -> Int { idle[target.key].count }

    /// Starts the periodic sweep of idle connections past their timeout.
    func start() {
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            loopBound.value.sweep()
            loopBound.value.raw?.sweep()
        }
    }

    func shutdown() {
        raw?.shutdown()
        sweeper?.cancel()
        accessLog?.stop()
        for connections in idle { for c in connections { c.close() } }
        idle = idle.map { _ in [] }
        for c in live.values { c.close() }
        live = [:]
    }

    /// An idle pooled connection to `target` that is still open, if there is one (LIFO: the warmest first).
    func takeIdle(_ target: UpstreamTarget) -> UpstreamConnection? {
        eventLoop.preconditionInEventLoop()
        while let connection = idle[target.key].popLast() {
            if connection.isUsable { return connection }
            forget(connection)
            connection.close()
        }
        return nil
    }

    /// A fresh connection, never a pooled one (used to retry after a stale pooled connection).
    func connect(
        _ target: UpstreamTarget, _ done: @escaping (Result<(UpstreamConnection, reused: Bool), any Error>) -> Void
    ) {
        let loopBound = NIOLoopBound((self, done), eventLoop: eventLoop)
        connector.connect(target, on: eventLoop).whenComplete { result in
            let (pool, done) = loopBound.value
            switch result {
            case .success(let channel):
                do {
                    let handler = try pool.connector.attachment(of: channel)
                    let connection = UpstreamConnection(channel: channel, target: target)
                    handler.connection = connection
                    handler.pool = pool
                    pool.live[ObjectIdentifier(connection)] = connection
                    done(.success((connection, false)))
                } catch {
                    channel.close(promise: nil)
                    done(.failure(error))
                }
            case .failure(let error):
                target.metrics?.connectFailures.increment()
                done(.failure(error))
            }
        }
    }

    /// Takes a connection back after a complete exchange; closes it if the pool for its upstream is full.
    /// `now`, when the caller has read the clock in this same event-loop turn.
    func release(_ connection: UpstreamConnection, now: NIODeadline? = nil) {
        connection.delegate = nil
        guard connection.isUsable else {
            forget(connection)
            return
        }
        guard idle[connection.target.key].count < connection.target.config.maxIdleConnections else {
            discard(connection)
            return
        }
        connection.served += 1
        connection.idleSince = now ?? eventLoop.now
        connection.setAutoRead(true)
        idle[connection.target.key].append(connection)
    }

    /// Closes a connection that must not be reused.
    func discard(_ connection: UpstreamConnection) {
        forget(connection)
        connection.close()
    }

    fileprivate func forget(_ connection: UpstreamConnection) {
        live[ObjectIdentifier(connection)] = nil
        let key = connection.target.key
        if let i = idle[key].firstIndex(where: { $0 === connection }) { idle[key].remove(at: i) }
    }

    fileprivate func sweep() {
        let now = eventLoop.now
        for key in idle.indices where !idle[key].isEmpty {
            idle[key].removeAll { connection in
                let expired =
                    !connection.isUsable
                    || now - connection.idleSince >= connection.target.config.poolIdleTimeout
                if expired {
                    live[ObjectIdentifier(connection)] = nil
                    connection.close()
                }
                return expired
            }
        }
    }
}

/// Opens upstream channels whose pipeline ends in an ``UpstreamHandler``: TCP (and TLS) sockets in production,
/// embedded channels in the state-machine tests.
protocol UpstreamConnector: Sendable {
    func connect(_ target: UpstreamTarget, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel>
    /// The handler a connected channel's pipeline ends in.
    func attachment(of channel: any Channel) throws -> any UpstreamAttachment
}

extension UpstreamConnector {
    func attachment(of channel: any Channel) throws -> any UpstreamAttachment {
        try channel.pipeline.syncOperations.handler(type: UpstreamHandler<HTTPClientResponsePart>.self)
    }
}

/// The real connector: TCP with TCP_NODELAY, TLS (HTTP/1.1 only, hostname verified) for `https` upstreams; with
/// NIO's HTTP codec (the full path), or `raw` (the fast path reads and writes the bytes itself).
struct SocketConnector: UpstreamConnector {
    var raw = false

    func attachment(of channel: any Channel) throws -> any UpstreamAttachment {
        let sync = channel.pipeline.syncOperations
        if raw { return try sync.handler(type: UpstreamHandler<ByteBuffer>.self) }
        return try sync.handler(type: UpstreamHandler<HTTPClientResponsePart>.self)
    }

    func connect(_ target: UpstreamTarget, on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        let ssl = target.sslContext
        let hostname = target.tlsServerHostname
        let raw = self.raw
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(target.config.connectTimeout)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let ssl {
                        try sync.addHandler(NIOSSLClientHandler(context: ssl, serverHostname: hostname))
                    }
                    if raw {
                        try sync.addHandler(UpstreamHandler<ByteBuffer>())
                    } else {
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(UpstreamHandler<HTTPClientResponsePart>())
                    }
                }
            }
            .connect(host: target.config.url.host, port: target.config.url.port)
    }
}
