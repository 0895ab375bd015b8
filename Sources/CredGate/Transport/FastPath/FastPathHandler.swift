import NIOCore
import NIOHTTP1

/// The byte-level fast path of a client connection (issue 13): for the common request, a plain head without a
/// body on a route whose filters only add credentials (and rewrite links), it reads the head bytes once, sends the
/// upstream the client's header lines with the credential lines spliced in and the hop-by-hop ones cut out, and
/// relays the answer's bytes by their framing, with no `HTTPHeaders`, no NIO HTTP codec on either side and no
/// filter-chain run. It sits in front of NIO's codec and the ``ProxyHandler`` (the full path), which still take
/// every other request: anything the fast path does not positively recognise (``FastHead``) is handed to them
/// as the bytes arrived, and from then on the connection stays on the full path, so framing, smuggling and
/// header rules are never written twice.
///
/// What it keeps from the full path: the runtime read once per request (a reload applies to the next request),
/// the request ID, `X-Forwarded-*`/`Via`, the upstream's `Host`, the pooled keep-alive upstream connections (raw
/// ones: ``UpstreamPool/raw``), a stale pooled connection retried once, the response and idle timeouts,
/// `Location` and JSON-body link rewriting, `Retry-After` from `x-ratelimit-reset`, backpressure both ways,
/// the metrics and the access log, a drain, and a 401 on a session token (handed to the full path, which renews
/// the session and replays: the request has no body, so nothing is lost).
final class FastPathHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode: Equatable {
        /// Between requests: bytes are read here.
        case waiting
        /// A request of the fast path is in flight; bytes that arrive are held (pipelined requests).
        case exchange
        /// One request the fast path could frame exactly (``FastHead/framedRequest(_:maxHeaderBytes:)``) is the
        /// full path's: `remaining` more of its bytes go to it, later bytes are held until it says it waits for
        /// the next head (``RequestHeadGuard/AwaitingHead``, which passes here), and the fast path reads again.
        case fullPathFor(remaining: Int)
        /// Every byte goes to NIO's codec and the ``ProxyHandler``, for the rest of the connection.
        case fullPath
    }

    /// Client bytes held past this stop reading the client until the exchange ends.
    static let maxHeld = 64 * 1024

    private let runtimes: RuntimeHolder
    /// The runtime of the current (or last) request; nil once the connection is on the full path, so that a
    /// reload's old runtime is not kept alive by it.
    var runtime: GatewayRuntime?
    private var generation: Int
    /// The connection's full path, told of a newer runtime seen here (so it does not keep the old one alive).
    /// Strong references to handlers of the same pipeline (neither refers back): no cycle, and no weak reference,
    /// which would move their reference counts to side tables (slower retains and releases).
    private let proxy: ProxyHandler?
    /// The connection's head guard, in front: told directly when a head arrived and when the next is awaited (the
    /// full path sends it outbound events; a direct call saves two handler hops per request).
    var headGuard: RequestHeadGuard?
    /// Inside ``upstreamReceivedBytes(_:)``: ``upstreamReadComplete()`` flushes what is written meanwhile.
    var readingUpstream = false
    let listenerIndex: Int
    /// The full path's pool of this loop: request IDs, the access log, and the raw connections (``UpstreamPool/raw``).
    let pool: UpstreamPool
    var mode = Mode.waiting
    /// Client bytes not handled yet.
    var held: ByteBuffer?
    var exchange: FastExchange?
    /// The connection closes once the current answer is written (the client's `Connection: close`, a drain, an
    /// answer the client can only see the end of by the close).
    var closeWhenDone = false
    private var readingPaused = false
    /// The client shut its side down: what it sent is answered, then the connection closes.
    private var inputClosed = false
    /// The gateway is draining (``ClientConnections/FinishAndClose``).
    private var draining = false
    /// Reads that left the held head incomplete. A head that needs a third read goes to the full path, so that a
    /// client sending a head a few bytes at a time cannot make it be scanned over and over (the full path's
    /// decoder reads incrementally, and the head guard's clock applies there).
    private var incompleteReads = 0
    private var timer = ReArmingTimer()
    /// The last request's head buffers, kept for the next request's heads (``headBuffer(_:capacity:)``).
    var spareUpstreamHead: ByteBuffer?
    var spareClientHead: ByteBuffer?
    /// Set while the handler is in its pipeline, cleared when it is removed (``handlerRemoved(context:)``).
    var context: ChannelHandlerContext!
    var clientAddress: String?

    init(runtimes: RuntimeHolder, listener: Int, pool: UpstreamPool, proxy: ProxyHandler?) {
        self.runtimes = runtimes
        (runtime, generation) = runtimes.snapshot()
        self.listenerIndex = listener
        self.pool = pool
        self.proxy = proxy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientAddress = context.channel.remoteAddress?.ipAddress
    }

    /// The context holds this handler: a handler that kept its context after the connection closed would keep
    /// both, the pipeline, the full path's handler and the runtime alive for good (about 2 KiB leaked per
    /// connection). Nothing is in flight by now (``channelInactive(context:)`` came first); the callbacks that
    /// can still come (a connect that completes, a deferred read) check ``context`` first.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer.cancel()
        self.context = nil
    }

    // MARK: - Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch mode {
        case .fullPath:
            context.fireChannelRead(data)
        case .fullPathFor(let remaining):
            hold(unwrapInboundIn(data))
            if remaining > 0 {
                passHeld(upTo: remaining)
            } else if held!.readableBytes > Self.maxHeld {
                setReading(false)
            }
        case .exchange:
            hold(unwrapInboundIn(data))
            if held!.readableBytes > Self.maxHeld { setReading(false) }
        case .waiting:
            hold(unwrapInboundIn(data))
            serveHeld()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch mode {
        case .fullPath, .fullPathFor: context.fireChannelReadComplete()
        case .waiting, .exchange: break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure, answer direction: the upstream is read only while the client can take more.
        exchange?.connection?.setAutoRead(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange {
            dropConnection(exchange)
            self.exchange = nil
            log(exchange, outcome: "client closed")
        }
        timer.cancel()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch mode {
        case .fullPath:
            return context.fireUserInboundEventTriggered(event)
        case .fullPathFor:
            // The keep-alive timer is the full path's to judge while its request is in flight; anything else (the
            // client's half-close, a drain) makes the connection the full path's from here on.
            if !(event is IdleStateHandler.IdleStateEvent) { toFullPath() }
            return context.fireUserInboundEventTriggered(event)
        case .waiting, .exchange:
            break
        }
        if event is IdleStateHandler.IdleStateEvent {
            // The keep-alive timeout is for a connection with nothing in flight.
            if exchange != nil || (held?.readableBytes ?? 0) > 0 { return }
        } else if event is ClientConnections.FinishAndClose {
            draining = true
            if exchange != nil { closeWhenDone = true } else { closeAfterWrites() }
            return
        } else if case ChannelEvent.inputClosed = event {
            // The client sent all it will: answer what is in flight and held, then close.
            inputClosed = true
            if exchange == nil { closeAfterWrites() }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func hold(_ buffer: ByteBuffer) {
        if held == nil || held!.readableBytes == 0 {
            held = buffer
        } else {
            var buffer = buffer
            held!.writeBuffer(&buffer)
        }
    }

    private func setReading(_ on: Bool) {
        guard readingPaused == on else { return }
        readingPaused = !on
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
    }

    /// Serves the requests whose heads are held, one at a time, until one needs the full path or is not all in.
    private func serveHeld() {
        // A connection that closes once its answers are out serves nothing more.
        while mode == .waiting, !closeWhenDone, let buffer = held {
            guard buffer.readableBytes > 0 else {
                held = nil
                return
            }
            if let (newer, generation) = runtimes.newer(than: generation) {
                runtime = newer
                self.generation = generation
                proxy?.adopt(newer, generation: generation)
            }
            guard let runtime else { return toFullPath() }
            let listen = runtime.listeners[listenerIndex].listen
            guard listen.fastPath, !listen.trustForwardedHeaders else { return toFullPath() }
            let refused = runtime.fastPathRefusedHeaders
            let parse = buffer.withUnsafeReadableBytes {
                FastHead.parseRequest($0, maxHeaderBytes: listen.maxHeaderBytes, refused: refused)
            }
            switch parse {
            case .incomplete:
                incompleteReads += 1
                if incompleteReads > 2 { return toFullPath() }
                return
            case .fullPath:
                return handToFullPath(buffer, maxHeaderBytes: listen.maxHeaderBytes)
            case .fast(let request):
                incompleteReads = 0
                guard start(request, buffer) else {
                    return handToFullPath(buffer, maxHeaderBytes: listen.maxHeaderBytes)
                }
            }
        }
    }

    /// A request at the start of `buffer` the fast path does not serve: when its framing is plain
    /// (``FastHead/framedRequest(_:maxHeaderBytes:)``), just that request goes to the full path and the fast path
    /// reads again after it; otherwise the connection stays on the full path.
    private func handToFullPath(_ buffer: ByteBuffer, maxHeaderBytes: Int) {
        // A client that half-closed, or a drain: the full path answers what is left, then closes.
        guard !inputClosed, !draining,
            let length = buffer.withUnsafeReadableBytes({ FastHead.framedRequest($0, maxHeaderBytes: maxHeaderBytes) })
        else { return toFullPath() }
        incompleteReads = 0
        mode = .fullPathFor(remaining: length)
        passHeld(upTo: length)
        context.fireChannelReadComplete()
    }

    /// Passes up to `remaining` held bytes to the full path (the rest of its request); later bytes stay held.
    private func passHeld(upTo remaining: Int) {
        guard var bytes = held, bytes.readableBytes > 0 else { return }
        let n = min(remaining, bytes.readableBytes)
        let part = bytes.readSlice(length: n)!
        held = bytes.readableBytes > 0 ? bytes : nil
        mode = .fullPathFor(remaining: remaining - n)
        if held != nil, held!.readableBytes > Self.maxHeld { setReading(false) }
        context.fireChannelRead(wrapInboundOut(part))
    }

    /// The full path's ``RequestHeadGuard/AwaitingHead`` passes here: after a request handed to it, the fast path
    /// reads the next one.
    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        context.triggerUserOutboundEvent(event, promise: promise)
        guard event is RequestHeadGuard.AwaitingHead, case .fullPathFor(let remaining) = mode else { return }
        guard remaining == 0 else {
            // Idle before its request was all read (not expected): the full path keeps the connection.
            return toFullPath()
        }
        mode = .waiting
        // Bytes held while the full path answered are the next request's: its head clock starts now (the guard
        // saw them pass mid-request, and no later read may come to start it).
        if (held?.readableBytes ?? 0) > 0 { headGuard?.awaitingHead(begun: true) }
        setReading(true)
        // Not from inside the full path's own call: once it has returned.
        context.eventLoop.assumeIsolated().execute { [self] in
            if self.context != nil && self.mode == .waiting { self.serveHeld() }
        }
    }

    /// Hands the connection to the full path: the held bytes go to NIO's decoder, and so does everything after.
    private func toFullPath() {
        mode = .fullPath
        runtime = nil
        let bytes = held ?? ByteBuffer()
        held = nil
        setReading(true)
        if bytes.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        // What the full path has not been told yet.
        if inputClosed { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        if draining { context.fireUserInboundEventTriggered(ClientConnections.FinishAndClose()) }
    }

    // MARK: - Ending an exchange

    /// Ends the exchange: counted and logged, the next head awaited (or the connection closed).
    func finish(_ exchange: FastExchange, outcome: String?) {
        end(exchange, outcome: outcome)
        if closeWhenDone { return closeAfterWrites() }
        if !readingUpstream { context.flush() }
        setReading(true)
        serveHeld()
        // Nothing left that can still become a request.
        if inputClosed && self.exchange == nil && mode == .waiting { closeAfterWrites() }
    }

    /// Counts and logs the exchange, and awaits the next head.
    func end(_ exchange: FastExchange, outcome: String?) {
        log(exchange, outcome: outcome)
        keepSpare(exchange.upstreamHead, in: &spareUpstreamHead)
        self.exchange = nil
        mode = .waiting
        if let headGuard {
            // Held bytes are the next request's: its head clock starts now.
            headGuard.awaitingHead(begun: (held?.readableBytes ?? 0) > 0)
        } else {
            context.triggerUserOutboundEvent(RequestHeadGuard.AwaitingHead(), promise: nil)
        }
    }

    /// Buffers no larger than this are kept for the next request's heads: a kept-alive connection holds at most two
    /// (usual heads take 512 bytes to 1 KiB; nginx keeps a 1 KiB header buffer per connection).
    static let maxSpareHead = 2048

    /// A buffer for a head of at least `capacity` bytes: the connection's spare, cleared, when the last request's
    /// head is written out by now (only this handler holds it) and large enough; a new one otherwise. A buffer costs
    /// two allocations (its storage object and its bytes), and a request writes two heads.
    func headBuffer(_ spare: inout ByteBuffer?, capacity: Int) -> ByteBuffer {
        guard var buffer = spare.take() else { return context.channel.allocator.buffer(capacity: capacity) }
        // NIO's clear(minimumCapacity:) keeps the storage only when it is uniquely held and large enough: a head
        // still queued for a slow socket is left to it, never overwritten.
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    /// Keeps a written head's buffer for the next request's head.
    func keepSpare(_ buffer: ByteBuffer, in spare: inout ByteBuffer?) {
        if buffer.capacity > 0 && buffer.capacity <= Self.maxSpareHead { spare = buffer }
    }

    /// Closes the connection once everything written so far is out (a close alone would drop what is queued).
    func closeAfterWrites() {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)))
            .assumeIsolated().whenComplete { [context] _ in context!.close(promise: nil) }
    }

    /// Answers the request with a gateway error (nothing of the upstream's answer was written).
    func answerLocally(_ exchange: FastExchange, _ error: GatewayError, close: Bool = false) {
        let response = LocalResponse.problem(error, requestID: exchange.requestID.text)
        dropConnection(exchange)
        exchange.errorCode = response.headers.first(name: "x-credgate-error")
        if close { closeWhenDone = true }
        writeLocal(response, exchange)
        finish(exchange, outcome: nil)
    }

    /// Writes an answer credgate made itself as the full path's `writeLocal` does (its headers in order, then the
    /// request ID, the length and `Connection: close` when this is the last answer), and counts it.
    func writeLocal(_ response: LocalResponse, _ exchange: FastExchange) {
        exchange.status = response.status.code
        var out = context.channel.allocator.buffer(capacity: response.body.readableBytes + 256)
        out.writeStaticString("HTTP/1.1 ")
        out.writeString(String(response.status.code))
        out.writeStaticString(" ")
        out.writeString(response.status.reasonPhrase)
        out.writeStaticString("\r\n")
        for (name, value) in response.headers {
            let lower = name.lowercased()
            if lower == "x-request-id" || lower == "content-length" || lower == "connection" { continue }
            out.writeHeaderLine(name, value)
        }
        out.writeStaticString("x-request-id: ")
        exchange.requestID.write(into: &out)
        out.writeStaticString("\r\n")
        out.writeHeaderLine("content-length", String(response.body.readableBytes))
        if closeWhenDone { out.writeStaticString("connection: close\r\n") }
        out.writeStaticString("\r\n")
        var body = response.body
        out.writeBuffer(&body)
        exchange.bytesOut += Int64(response.body.readableBytes)
        exchange.wroteToClient = true
        context.write(wrapOutboundOut(out), promise: nil)
    }

    /// Part of the answer is out and the rest cannot come: the client learns of it by the connection closing.
    func failMidAnswer(_ exchange: FastExchange, outcome: String) {
        dropConnection(exchange)
        self.exchange = nil
        log(exchange, outcome: outcome)
        context.flush()
        context.close(promise: nil)
    }

    /// The platform rejected the session token this request carried (the session already dropped it): the request
    /// goes to the full path as the client sent it, which waits for a new token and sends it again.
    func handOver(_ exchange: FastExchange) {
        dropConnection(exchange)
        self.exchange = nil
        var bytes = exchange.head
        if var rest = held { bytes.writeBuffer(&rest) }
        held = bytes
        mode = .waiting
        handToFullPath(bytes, maxHeaderBytes: Int.max - 64)
    }

    private func dropConnection(_ exchange: FastExchange) {
        if let connection = exchange.connection {
            exchange.connection = nil
            pool.raw?.discard(connection)
        }
    }

    // MARK: - Timeouts

    func armTimer(_ exchange: FastExchange) {
        let deadline = deadline(exchange)
        guard deadline != .distantFuture, !timer.isDue(by: deadline) else { return }
        timer.arm(at: deadline, on: context.eventLoop) { [self] in
            self.timer.fired()
            self.timerFired()
        }
    }

    private func deadline(_ exchange: FastExchange) -> NIODeadline {
        ProxyHandler.deadline(
            awaitingHead: exchange.response == nil, sentAt: exchange.sentAt, lastActivity: exchange.lastActivity,
            responseTimeout: exchange.target.config.responseTimeout, idleTimeout: exchange.route.idleTimeout)
    }

    private func timerFired() {
        guard let exchange, exchange.connection != nil else { return }
        guard context.eventLoop.now >= deadline(exchange) else { return armTimer(exchange) }
        if exchange.wroteToClient {
            failMidAnswer(exchange, outcome: "upstream idle timeout mid-response")
        } else {
            let error = GatewayError.upstreamTimeout(upstream: exchange.target.name, phase: "response head")
            answerLocally(exchange, error)
        }
    }

    // MARK: - Counting and logging

    private func log(_ exchange: FastExchange, outcome: String?) {
        let route = exchange.route
        // Inside an upstream read, that read's time is now (one clock read fewer per request).
        let now = readingUpstream ? exchange.lastActivity : context.eventLoop.now
        route.count(
            method: exchange.request.method, status: exchange.status, bytesIn: exchange.bytesIn,
            bytesOut: exchange.bytesOut,
            nanoseconds: (now - exchange.started).nanoseconds, cutShort: outcome != nil, fastPath: true,
            retriedStale: exchange.retriedStale)
        guard let accessLog = pool.accessLog else { return }
        accessLog.append(
            AccessRecord(
                startedAtNanos: accessLog.wallNanos(exchange.started), requestID: .random(exchange.requestID),
                route: route.name, method: exchange.request.method.rawValue, target: exchange.clientTarget,
                status: exchange.status, bytesIn: exchange.bytesIn, bytesOut: exchange.bytesOut,
                durationNanos: (now - exchange.started).nanoseconds, upstream: exchange.target.name,
                connectNanos: exchange.connectedAt.map { ($0 - exchange.started).nanoseconds },
                firstByteNanos: exchange.firstByteAt.map { ($0 - exchange.started).nanoseconds },
                credentials: route.credentialNames, cache: exchange.cacheOutcome, error: exchange.errorCode,
                outcome: outcome))
    }
}
