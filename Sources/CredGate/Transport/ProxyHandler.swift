import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// One client connection of the data path. It feeds what happens on the connection to its
/// ``ProxyStateMachine`` and runs the actions that come back; what a request's exchange does on its way
/// upstream and back is in the `ProxyHandler+*.swift` files beside this one. It knows no route's policy: it asks
/// the route table which route a request takes, runs that route's filter chain, and moves bytes.
final class ProxyHandler: ChannelInboundHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Machine = ProxyStateMachine<Exchange>

    /// Where the current runtime is read, once per request (a reload swaps it).
    let runtimes: RuntimeHolder
    /// The runtime of the current (or last) request: an exchange keeps the one it started with.
    private(set) var runtime: GatewayRuntime
    /// ``runtime``'s generation in ``runtimes``.
    private var generation: Int
    /// Which listener this connection came in on (its index in every runtime).
    let listenerIndex: Int
    /// The listener this connection came in on: its route table and limits, from ``runtime``.
    private(set) var listener: ListenerRuntime
    let pool: UpstreamPool
    var machine = Machine()
    /// Set while the handler is in its pipeline, cleared when it is removed (``handlerRemoved(context:)``).
    var context: ChannelHandlerContext!
    var clientAddress: String?
    /// After an early answer: how long the rest of the request body is still read and dropped.
    var lingerTimer: Scheduled<Void>?
    /// The exchanges' response and idle timer (ExchangeTimer.swift): one per connection, kept across exchanges.
    var exchangeTimer = ReArmingTimer()

    convenience init(runtime: GatewayRuntime, listener: Int = 0, pool: UpstreamPool) {
        self.init(runtimes: RuntimeHolder(runtime), listener: listener, pool: pool)
    }

    init(runtimes: RuntimeHolder, listener: Int = 0, pool: UpstreamPool) {
        self.runtimes = runtimes
        (runtime, generation) = runtimes.snapshot()
        self.listenerIndex = listener
        self.listener = runtime.listeners[listener]
        self.pool = pool
    }

    /// A newer runtime the fast path in front saw: taken now, so that a connection serving only fast-path
    /// requests does not keep a reload's old runtime (and its sessions) alive.
    func adopt(_ newer: GatewayRuntime, generation: Int) {
        guard machine.current == nil, generation > self.generation else { return }
        self.runtime = newer
        self.generation = generation
        self.listener = newer.listeners[listenerIndex]
    }

    // MARK: - Client side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.clientAddress = context.channel.remoteAddress?.ipAddress
    }

    /// The context holds this handler: a handler that kept its context after the connection closed would keep
    /// both, the pipeline and the runtime alive for good (a leak per connection). The machine is closed by now
    /// (``channelInactive(context:)`` came first), so the continuations that can still complete (a filter's, a
    /// spool's, a write's) find no current exchange, and ``run(_:)`` does nothing without a context.
    func handlerRemoved(context: ChannelHandlerContext) {
        lingerTimer?.cancel()
        lingerTimer = nil
        exchangeTimer.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(machine.clientRead(unwrapInboundIn(data)))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let exchange = machine.current, exchange.wroteToUpstream, let connection = exchange.connection {
            exchange.wroteToUpstream = false
            connection.flush()
        }
        context.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure, response direction: stop reading the upstream while the client cannot take more.
        if let exchange = machine.current, let connection = exchange.connection {
            connection.setAutoRead(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .clientGone(let exchange?) = machine.clientInactive() {
            exchange.timerArmed = false
            if let connection = exchange.connection {
                // The request was cut short: its upstream connection is in an unknown state.
                pool.discard(connection)
            }
            detach(exchange)
            exchange.discardStagedBody()
            log(exchange, outcome: "client closed")
        }
        lingerTimer?.cancel()
        // Nothing may keep a closed connection's handler alive until a deadline far ahead.
        exchangeTimer.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.close(promise: nil)
            return
        }
        // Malformed HTTP (this includes Content-Length together with Transfer-Encoding, and a bad chunk found
        // after the head): answer 400 if no answer has started, then close once it is written: the stream can no
        // longer be framed, so nothing more will be read from it.
        guard case .answerMalformed(let exchange) = machine.parseError() else {
            context.close(promise: nil)
            return
        }
        var requestID = RequestID.generate()
        var version = HTTPVersion.http1_1
        if let exchange {
            abandonUpstream(exchange)
            exchange.discardStagedBody()
            exchange.status = 400
            log(exchange, outcome: "malformed body")
            requestID = exchange.requestID
            version = exchange.clientHead.version
        }
        lingerTimer?.cancel()
        let response = LocalResponse.problem(.malformedRequest(String(describing: error)), requestID: requestID)
        writeLocal(response, version: version, close: true, requestID: requestID)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            run(machine.keepAliveTimedOut())
        } else if let timedOut = event as? RequestHeadGuard.HeaderTimedOut {
            let action = machine.headerTimedOut()
            guard case .answerHeaderTimeout = action else { return run(action) }
            let requestID = RequestID.generate()
            let seconds = timedOut.timeout.nanoseconds / 1_000_000_000
            writeLocal(
                .problem(.headerTimeout(seconds: seconds), requestID: requestID), version: .http1_1,
                close: true, requestID: requestID)
        } else if event is ClientConnections.FinishAndClose {
            run(machine.finishAndClose())
        } else if case ChannelEvent.inputClosed = event {
            run(machine.inputClosed())
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: - Running the machine's actions

    /// Runs an action that needs nothing but what it carries. Actions that need the call site's data (a local
    /// answer to write) are run where they are asked for.
    func run(_ action: Machine.Action) {
        guard context != nil else { return } // removed from its pipeline: nothing left to do
        switch action {
        case .none, .writeLocal, .answerMalformed, .answerHeaderTimeout, .clientGone, .stopSendingBody,
            .releaseUpstream:
            break
        case .pauseReading:
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
        case .resumeReading:
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        case .startRequest(let head):
            receivedHead(head)
        case .requestBody(let exchange, let buffer, let forward):
            receivedBody(exchange, buffer, forward: forward)
        case .requestEnd(let exchange):
            receivedEnd(exchange)
        case .finishExchange(let exchange, let close):
            finishExchange(exchange, close: close)
        case .endEarlyAnswer(let exchange):
            // Early answer: the client is still sending. Send the end and drop the rest of its body.
            exchange.timerArmed = false
            log(exchange, outcome: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            startLinger()
        case .stopDiscarding(let close):
            lingerTimer?.cancel()
            if close { context.close(promise: nil) } else { nowIdle() }
        case .cancelLingerAndClose:
            lingerTimer?.cancel()
            context.close(promise: nil)
        case .close:
            context.close(promise: nil)
        }
    }

    /// Brings client reads in line with the machine's state.
    func updateReading() {
        run(machine.updateReading())
    }

    /// The exchange's upstream is done with (answered, failed or abandoned).
    func detach(_ exchange: Exchange) {
        exchange.upstream = .detached
        if machine.current === exchange { run(machine.upstreamDetached()) }
    }

    /// Parks the exchange (client reads paused) until `future` completes, then resumes on this loop if the
    /// exchange is still the current one.
    func suspend<Value>(
        _ exchange: Exchange, until future: EventLoopFuture<Value>,
        then resume: @escaping (Result<Value, any Error>) -> Void
    ) {
        run(machine.parked(true))
        future.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard self.machine.current === exchange else { return }
            self.run(self.machine.parked(false))
            resume(result)
        }
    }

    // MARK: - A request's head

    private func receivedHead(_ head: HTTPRequestHead) {
        // A reload since the last request: this one, and the rest on this connection, take the new routes.
        if let (newer, generation) = runtimes.newer(than: generation) {
            self.runtime = newer
            self.generation = generation
            self.listener = newer.listeners[listenerIndex]
        }
        context.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        let requestID = RequestID.from(head.headers) ?? pool.requestIDs.next()
        let routed: RoutedHead
        switch Self.route(head, on: listener, protectedHeaders: runtime.protectedHeaders) {
        case .success(let r):
            routed = r
        case .failure(let error):
            respondLocally(.problem(error, requestID: requestID), head: head, requestID: requestID)
            return
        }
        let exchange = Exchange(clientHead: head, route: routed.route, requestID: requestID, now: context.eventLoop.now)
        if let uri = routed.forwardURI { exchange.forwardHead.uri = uri }
        // Hop-by-hop headers go before any filter runs, so that nothing a filter writes (a credential, a body's
        // new Content-Length) can be dropped afterwards because the client's Connection header named it.
        HeaderHygiene.removeHopByHop(&exchange.forwardHead.headers, keepingFraming: true)
        run(machine.requestStarted(exchange, keepAlive: exchange.clientKeepAlive, hasBody: exchange.hasBody))
        runFilters(exchange)
    }

    // MARK: - Finishing

    /// The request is fully read and the answer fully received: settle all state, then write the end (which may
    /// synchronously deliver the next pipelined request).
    private func finishExchange(_ exchange: Exchange, close: Bool) {
        exchange.timerArmed = false
        exchange.discardStagedBody()
        log(exchange, outcome: nil)
        updateReading()
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [context] _ in
                context!.close(promise: nil)
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            nowIdle()
        }
    }

    /// The current request is answered and the connection is idle: the next head is timed again, pipelined
    /// requests run, and a client that already half-closed is closed once nothing is left to answer.
    private func nowIdle() {
        context.triggerUserOutboundEvent(RequestHeadGuard.AwaitingHead(), promise: nil)
        if machine.beginDrain() {
            while let action = machine.nextQueued() { run(action) }
            run(machine.endDrain())
        }
        run(machine.settledIdle())
    }

    /// The answer's last byte went to the client (all but the end): finish the exchange, or, when the client is
    /// still sending after an early answer, end the answer and drop the rest of its body.
    func completeResponse(_ exchange: Exchange) {
        exchange.discardStagedBody()
        run(machine.responseWritten())
    }

    /// Answers an exchange that has a route with a local response (a gateway error or a filter's answer).
    func finishWithLocal(_ exchange: Exchange, _ response: LocalResponse, close: Bool) {
        exchange.timerArmed = false
        exchange.discardStagedBody()
        exchange.status = response.status.code
        if pool.accessLog != nil {
            exchange.errorCode = response.headers.first(name: "x-credgate-error")
            exchange.cacheOutcome = response.headers.first(name: "x-cache")
        }
        let action = machine.answeredLocally(close: close)
        // Its body is what the client gets (a cached presign answer, a problem), as the fast path counts it.
        if case .writeLocal = action { exchange.bodyBytesOut += Int64(response.body.readableBytes) }
        log(exchange, outcome: nil)
        guard case .writeLocal(let mustClose, let linger, let idle) = action else {
            return
        }
        updateReading()
        writeLocal(response, version: exchange.clientHead.version, close: mustClose, requestID: exchange.requestID)
        if linger { startLinger() }
        if idle { nowIdle() }
    }

    /// Answers a request that never got an exchange (a bad head, no route).
    private func respondLocally(_ response: LocalResponse, head: HTTPRequestHead, requestID: String) {
        let action = machine.answeredBeforeRouting(keepAlive: head.isKeepAlive, hasBody: Self.hasBody(head))
        guard case .writeLocal(let close, let linger, _) = action else { return run(action) }
        logUnrouted(response, head: head, requestID: requestID)
        writeLocal(response, version: head.version, close: close, requestID: requestID)
        if linger { startLinger() }
    }

    private func writeLocal(_ response: LocalResponse, version: HTTPVersion, close: Bool, requestID: String) {
        var headers = response.headers
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
        headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        if close { headers.replaceOrAdd(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [self] _ in
                self.run(self.machine.localAnswerFlushed())
            }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// After an early answer the client may still be sending; keep reading (and dropping) for a while so its
    /// TCP stack does not reset the connection before it has read our answer (nginx's lingering close).
    private func startLinger() {
        lingerTimer?.cancel()
        lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(5)) { [self] in
            self.run(self.machine.lingerExpired())
        }
        updateReading()
    }

    /// Cuts the exchange off its upstream: the connection (if any) is closed, nothing more is sent.
    func abandonUpstream(_ exchange: Exchange) {
        exchange.timerArmed = false
        if let connection = exchange.connection { pool.discard(connection) }
        detach(exchange)
        exchange.pending.removeAll()
    }
}
