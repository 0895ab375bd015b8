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

    private enum Mode: Equatable {
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
    private var runtime: GatewayRuntime?
    private var generation: Int
    /// The connection's full path, told of a newer runtime seen here (so it does not keep the old one alive).
    private weak var proxy: ProxyHandler?
    /// The connection's head guard, in front: told directly when a head arrived and when the next is awaited (the
    /// full path sends it outbound events; a direct call saves two handler hops per request).
    weak var headGuard: RequestHeadGuard?
    /// Inside ``upstreamReceivedBytes(_:)``: ``upstreamReadComplete()`` flushes what is written meanwhile.
    private var readingUpstream = false
    private let listenerIndex: Int
    /// The full path's pool of this loop: request IDs, the access log, and the raw connections (``UpstreamPool/raw``).
    private let pool: UpstreamPool
    private var mode = Mode.waiting
    /// Client bytes not handled yet.
    private var held: ByteBuffer?
    private var exchange: FastExchange?
    /// The connection closes once the current answer is written (the client's `Connection: close`, a drain, an
    /// answer the client can only see the end of by the close).
    private var closeWhenDone = false
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
    private var context: ChannelHandlerContext!
    private var clientAddress: String?

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
        while mode == .waiting, let buffer = held {
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
        setReading(true)
        // Not from inside the full path's own call: once it has returned.
        context.eventLoop.assumeIsolated().execute { [self] in
            if self.mode == .waiting { self.serveHeld() }
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

    // MARK: - A request

    /// Starts a fast exchange for a parsed head at the start of `buffer`; false when the request needs the full
    /// path (its route has filters beyond credentials, or a credential cannot be written now).
    private func start(_ request: FastHead.Request, _ buffer: ByteBuffer) -> Bool {
        guard let listener = runtime?.listeners[listenerIndex] else { return false }
        let path = buffer.withUnsafeReadableBytes {
            String(
                decoding: UnsafeRawBufferPointer(rebasing: $0[request.target.lowerBound..<request.pathEnd]),
                as: UTF8.self)
        }
        guard case .matched(let route) = listener.routes.lookup(method: request.method.rawValue, path: path[...]),
            let plan = route.fastPlan, let target = route.target
        else { return false }
        let requestID = pool.requestIDs.next()
        var upstreamHead = context.channel.allocator.buffer(capacity: request.length + 320)
        buffer.withUnsafeReadableBytes { bytes in
            Self.writeUpstreamHead(
                &upstreamHead, request, bytes, target: target, requestID: requestID, clientAddress: clientAddress)
        }
        var token: SessionToken?
        for splicer in plan.splicers {
            switch splicer.splice(into: &upstreamHead) {
            case .fullPath: return false
            case .spliced: break
            case .splicedSession(let t): token = t
            }
        }
        upstreamHead.writeStaticString("\r\n")
        var rest = buffer
        let head = rest.readSlice(length: request.length)!
        held = rest.readableBytes > 0 ? rest : nil
        let exchange = FastExchange(
            route: route, plan: plan, target: target, head: head, request: request, requestID: requestID,
            upstreamHead: upstreamHead, sessionToken: token, now: context.eventLoop.now)
        self.exchange = exchange
        mode = .exchange
        if request.close { closeWhenDone = true }
        if let headGuard {
            headGuard.headArrived()
        } else {
            context.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        }
        acquire(exchange, fresh: false)
        return true
    }

    /// The head the upstream gets: the request line with the upstream's path, its `Host`, the client's header
    /// lines but `Host` and `Connection`, and the gateway's `X-Forwarded-*`, `Via` and `X-Request-ID`, as
    /// ``HeaderHygiene/upstreamHead(from:target:requestID:clientAddress:hasBody:trustForwarded:forwardCookies:)``
    /// makes them (the credentials and the final empty line follow).
    static func writeUpstreamHead(
        _ out: inout ByteBuffer, _ request: FastHead.Request, _ bytes: UnsafeRawBufferPointer, target: UpstreamTarget,
        requestID: String, clientAddress: String?
    ) {
        out.writeString(request.method.rawValue)
        out.writeStaticString(" ")
        let clientTarget = UnsafeRawBufferPointer(rebasing: bytes[request.target])
        if target.mount.isEmpty && target.basePath.isEmpty {
            out.writeBytes(clientTarget)
        } else {
            out.writeString(target.upstreamURI(String(decoding: clientTarget, as: UTF8.self)))
        }
        out.writeStaticString(" HTTP/1.1\r\nhost: ")
        out.writeString(target.hostHeader)
        out.writeStaticString("\r\n")
        FastHead.forEachHeader(bytes, from: request.headersStart, to: request.length) { name, value in
            if !FastHead.equalsLowercased(bytes, name, "host") && !FastHead.equalsLowercased(bytes, name, "connection")
            {
                out.writeHeaderLine(bytes, name, value)
            }
            return true
        } onMalformed: {
        }
        if let clientAddress {
            out.writeStaticString("x-forwarded-for: ")
            out.writeString(clientAddress)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("via: 1.1 credgate\r\nx-forwarded-proto: http\r\nx-forwarded-host: ")
        out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[request.host]))
        out.writeStaticString("\r\nx-request-id: ")
        out.writeString(requestID)
        out.writeStaticString("\r\n")
    }

    private func acquire(_ exchange: FastExchange, fresh: Bool) {
        guard let raw = pool.raw else {
            return answerLocally(exchange, .upstreamReset(upstream: exchange.target.name))
        }
        if !fresh, let connection = raw.takeIdle(exchange.target) {
            return attach(exchange, connection, reused: true)
        }
        raw.connect(exchange.target) { [self] result in
            guard self.exchange === exchange else {
                if case .success(let (connection, _)) = result { raw.release(connection) }
                return
            }
            switch result {
            case .success(let (connection, _)):
                self.attach(exchange, connection, reused: false)
            case .failure(let error):
                self.answerLocally(exchange, ProxyHandler.connectProblem(error, upstream: exchange.target.name))
            }
        }
    }

    private func attach(_ exchange: FastExchange, _ connection: UpstreamConnection, reused: Bool) {
        let now = context.eventLoop.now
        exchange.connection = connection
        exchange.reused = reused
        if exchange.connectedAt == nil { exchange.connectedAt = now }
        connection.delegate = self
        connection.setAutoRead(context.channel.isWritable)
        connection.write(bytes: exchange.upstreamHead)
        connection.flush()
        exchange.sentAt = now
        exchange.lastActivity = now
        armTimer(exchange)
    }

    // MARK: - The answer

    func upstreamReceivedBytes(_ bytes: ByteBuffer) {
        guard let exchange, exchange.connection != nil else { return }
        readingUpstream = true
        receive(exchange, bytes)
        readingUpstream = false
        // The exchange ended in this read: its connection went back without a delegate, so no read-complete comes
        // here to flush what was written.
        if self.exchange !== exchange || exchange.connection == nil { context.flush() }
    }

    private func receive(_ exchange: FastExchange, _ bytes: ByteBuffer) {
        exchange.lastActivity = context.eventLoop.now
        var buffer = bytes
        if exchange.response == nil {
            if var pending = exchange.pendingHead {
                pending.writeBuffer(&buffer)
                buffer = pending
                exchange.pendingHead = nil
            }
            if exchange.firstByteAt == nil { exchange.firstByteAt = exchange.lastActivity }
            while exchange.response == nil {
                let parse = buffer.withUnsafeReadableBytes {
                    FastHead.parseResponse($0, requestWasHead: exchange.request.method == .HEAD)
                }
                switch parse {
                case .incomplete:
                    exchange.pendingHead = buffer
                    return
                case .malformed:
                    return answerLocally(exchange, .upstreamReset(upstream: exchange.target.name))
                case .head(let response):
                    if response.status == 101 {
                        // credgate never forwards Upgrade, so a 101 is the platform's mistake (as on the full path).
                        return answerLocally(
                            exchange, .upgradeRefused(upstream: exchange.target.name),
                            close: true)
                    }
                    if response.status < 200 {
                        buffer.moveReaderIndex(forwardBy: response.length) // 100, 103: they stay on the upstream hop
                        if buffer.readableBytes == 0 { return }
                        continue
                    }
                    if response.status == 401, let session = exchange.plan.session, let token = exchange.sessionToken {
                        session.splicedTokenRejected(token)
                        return handOver(exchange)
                    }
                    receivedHead(exchange, response, &buffer)
                    if self.exchange !== exchange { return }
                }
            }
        }
        relayBody(exchange, &buffer)
    }

    func upstreamReadComplete() {
        context.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {}

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard let exchange, exchange.connection === connection else { return }
        pool.raw?.discard(connection)
        exchange.connection = nil
        if exchange.response == nil {
            // A stale pooled connection: once more on a fresh one (the request has no body, nothing was sent).
            if exchange.reused && !exchange.retriedStale && exchange.pendingHead == nil {
                exchange.retriedStale = true
                return acquire(exchange, fresh: true)
            }
            return answerLocally(exchange, .upstreamReset(upstream: exchange.target.name))
        }
        if case .untilClose = exchange.body {
            closeWhenDone = true
            return finishResponse(exchange)
        }
        if !exchange.wroteToClient {
            return answerLocally(exchange, .upstreamReset(upstream: exchange.target.name))
        }
        failMidAnswer(exchange, outcome: "upstream closed mid-response")
    }

    private func receivedHead(_ exchange: FastExchange, _ response: FastHead.Response, _ buffer: inout ByteBuffer) {
        exchange.response = response
        exchange.status = UInt(response.status)
        exchange.upstreamReusable = response.keepAlive
        switch response.framing {
        case .none: exchange.body = .none
        case .length(let n): exchange.body = .length(n)
        case .chunked: exchange.body = .chunked(ChunkedFraming())
        case .untilClose:
            exchange.body = .untilClose
            closeWhenDone = true // the client can only see the end of this answer by the close
        }
        let headBytes = buffer.readSlice(length: response.length)!
        armTimer(exchange) // the idle deadline replaces the head's
        if let links = exchange.plan.links, response.isJSON, response.framing != .none {
            // `rewrite_links` sees the whole JSON answer before the client gets any of it.
            var hold = true
            if case .length(let n) = response.framing {
                if n > LinkRewriteFilter.limit {
                    links.passedUnchanged.increment()
                    hold = false
                } else if buffer.readableBytes >= n,
                    !links.rewriter.mentionsUpstream(buffer.getSlice(at: buffer.readerIndex, length: n)!)
                {
                    hold = false // all of it is here, with no link: it goes on as it came, not copied
                }
            }
            if hold {
                let capacity: Int
                if case .length(let n) = response.framing { capacity = n } else { capacity = 4096 }
                exchange.heldAnswer = FastExchange.HeldAnswer(
                    response: response, head: headBytes, data: context.channel.allocator.buffer(capacity: capacity))
                return
            }
        }
        if case .length(let n) = response.framing, n <= 16 * 1024, buffer.readableBytes >= n {
            // The whole (small) body is here: it goes out in the same write as the head.
            let body = buffer.readSlice(length: n)!
            writeClientHead(exchange, response, headBytes, contentLength: nil, body: body)
            exchange.body = .length(0)
            if buffer.readableBytes > 0 { exchange.upstreamReusable = false }
            return finishResponse(exchange)
        }
        writeClientHead(exchange, response, headBytes, contentLength: nil)
        if case .none = exchange.body {
            if buffer.readableBytes > 0 { exchange.upstreamReusable = false }
            finishResponse(exchange)
        }
    }

    private func relayBody(_ exchange: FastExchange, _ buffer: inout ByteBuffer) {
        switch exchange.body {
        case .none:
            if buffer.readableBytes > 0 { exchange.upstreamReusable = false }
        case .length(let remaining):
            let take = min(remaining, buffer.readableBytes)
            if take > 0 { deliver(exchange, buffer.readSlice(length: take)!) }
            exchange.body = .length(remaining - take)
            if remaining == take {
                if buffer.readableBytes > 0 { exchange.upstreamReusable = false }
                finishResponse(exchange)
            }
        case .chunked(var framing):
            let holding = exchange.heldAnswer != nil
            let outcome = buffer.withUnsafeReadableBytes { bytes in
                framing.feed(bytes) { range in
                    if holding { exchange.heldAnswer!.data.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[range])) }
                }
            }
            exchange.body = .chunked(framing)
            switch outcome {
            case .more:
                if !holding { deliver(exchange, buffer) }
                if holding && exchange.heldAnswer!.data.readableBytes > LinkRewriteFilter.limit {
                    releaseHeldAsChunked(exchange)
                }
            case .ended(let n):
                // Bytes after the body's end: the connection is in no known state.
                if buffer.readableBytes > n { exchange.upstreamReusable = false }
                if !holding { deliver(exchange, buffer.readSlice(length: n)!) }
                finishResponse(exchange)
            case .malformed:
                if exchange.wroteToClient {
                    failMidAnswer(exchange, outcome: "malformed chunked answer")
                } else {
                    answerLocally(exchange, .upstreamReset(upstream: exchange.target.name))
                }
            }
        case .untilClose:
            if buffer.readableBytes > 0 { deliver(exchange, buffer) }
            if let held = exchange.heldAnswer, held.data.readableBytes > LinkRewriteFilter.limit {
                // Larger than `rewrite_links` looks at: it goes on unchanged.
                exchange.heldAnswer = nil
                exchange.plan.links?.passedUnchanged.increment()
                writeClientHead(exchange, held.response, held.head, contentLength: nil)
                deliver(exchange, held.data)
            }
        }
    }

    /// Body bytes for the client (or for the held answer).
    private func deliver(_ exchange: FastExchange, _ bytes: ByteBuffer) {
        if exchange.heldAnswer != nil {
            var bytes = bytes
            exchange.heldAnswer!.data.writeBuffer(&bytes)
            return
        }
        exchange.bytesOut += Int64(bytes.readableBytes)
        exchange.wroteToClient = true
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// A chunked JSON answer grew past what `rewrite_links` looks at: what was held goes out as one chunk, the rest
    /// as the upstream frames it (re-chunked, since its framing was read to get at the data).
    private func releaseHeldAsChunked(_ exchange: FastExchange) {
        guard let held = exchange.heldAnswer else { return }
        exchange.heldAnswer = nil
        exchange.plan.links?.passedUnchanged.increment()
        exchange.rechunk = true
        writeClientHead(exchange, held.response, held.head, contentLength: nil)
        writeChunk(exchange, held.data)
    }

    private func writeChunk(_ exchange: FastExchange, _ data: ByteBuffer) {
        guard data.readableBytes > 0 else { return }
        var out = context.channel.allocator.buffer(capacity: data.readableBytes + 24)
        out.writeString(String(data.readableBytes, radix: 16))
        out.writeStaticString("\r\n")
        var data = data
        out.writeBuffer(&data)
        out.writeStaticString("\r\n")
        deliver(exchange, out)
    }

    /// The answer is all in: a held one is rewritten and written whole, the upstream connection goes back to the
    /// pool (or is closed), and the exchange ends.
    private func finishResponse(_ exchange: FastExchange) {
        if let held = exchange.heldAnswer {
            exchange.heldAnswer = nil
            var body = held.data
            if let links = exchange.plan.links, links.rewriter.mentionsUpstream(body),
                let gateway = LinkRewriter.gatewayBase(clientHost: exchange.clientHost),
                let rewritten = links.rewriter.rewriteBody(body, to: gateway)
            {
                body = rewritten
            }
            writeClientHead(exchange, held.response, held.head, contentLength: body.readableBytes, body: body)
        } else if exchange.rechunk {
            var end = context.channel.allocator.buffer(capacity: 5)
            end.writeStaticString("0\r\n\r\n")
            deliver(exchange, end)
        }
        if let connection = exchange.connection {
            exchange.connection = nil
            if exchange.upstreamReusable { pool.raw?.release(connection) } else { pool.raw?.discard(connection) }
        }
        finish(exchange, outcome: nil)
    }

    /// The head the client gets: the upstream's status line and header lines without the hop-by-hop ones (framing
    /// relayed as it is, unless `contentLength` replaces it), `Location` pointed at the gateway, `Retry-After`
    /// from `x-ratelimit-reset`, the request ID, and `Connection: close` when this is the last answer: what
    /// ``HeaderHygiene/clientHead(from:clientVersion:requestID:closeAfter:links:gatewayBase:)`` makes.
    private func writeClientHead(
        _ exchange: FastExchange, _ response: FastHead.Response, _ head: ByteBuffer, contentLength: Int?,
        body: ByteBuffer? = nil
    ) {
        var out = context.channel.allocator.buffer(capacity: head.readableBytes + 128 + (body?.readableBytes ?? 0))
        let rewriteLocations = response.hasLocation && (response.status == 201 || (300..<400).contains(response.status))
        head.withUnsafeReadableBytes { bytes in
            out.writeStaticString("HTTP/1.1 ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[response.statusText]))
            out.writeStaticString("\r\n")
            FastHead.forEachHeader(bytes, from: response.headersStart, to: response.length) { name, value in
                if Self.dropped(bytes, name, response, replacingFraming: contentLength != nil) { return true }
                if rewriteLocations,
                    FastHead.equalsLowercased(bytes, name, "location")
                        || FastHead.equalsLowercased(bytes, name, "content-location"),
                    let gateway = LinkRewriter.gatewayBase(clientHost: exchange.clientHost),
                    let rewritten = exchange.target.links.rewriteHeader(
                        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[value]), as: UTF8.self), to: gateway)
                {
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[name]))
                    out.writeStaticString(": ")
                    out.writeString(rewritten)
                    out.writeStaticString("\r\n")
                    return true
                }
                out.writeHeaderLine(bytes, name, value)
                return true
            } onMalformed: {
            }
            if response.status == 429 || response.status == 503, !response.hasRetryAfter,
                let reset = response.rateLimitReset,
                let seconds = RateLimitHeaders.retryAfterSeconds(
                    reset: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[reset]), as: UTF8.self),
                    now: RateLimitHeaders.epochNow())
            {
                out.writeHeaderLine("retry-after", String(seconds))
            }
        }
        if let contentLength { out.writeHeaderLine("content-length", String(contentLength)) }
        out.writeStaticString("x-request-id: ")
        out.writeString(exchange.requestID)
        out.writeStaticString(closeWhenDone ? "\r\nconnection: close\r\n\r\n" : "\r\n\r\n")
        if var body, body.readableBytes > 0 {
            exchange.bytesOut += Int64(body.readableBytes)
            out.writeBuffer(&body)
        }
        exchange.wroteToClient = true
        context.write(wrapOutboundOut(out), promise: nil)
    }

    private static func dropped(
        _ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, _ response: FastHead.Response, replacingFraming: Bool
    ) -> Bool {
        switch name.count {
        case 2, 7, 10, 12, 16, 18, 19:
            if FastHead.droppedResponseHeaders.contains(where: { FastHead.equalsLowercased(bytes, name, $0) }) {
                return true
            }
        default:
            break
        }
        if replacingFraming,
            FastHead.equalsLowercased(bytes, name, "content-length")
                || FastHead.equalsLowercased(bytes, name, "transfer-encoding")
        {
            return true
        }
        for named in response.connectionNames {
            if named.count == name.count,
                bytes[named].elementsEqual(bytes[name], by: { ($0 | 0x20) == ($1 | 0x20) })
            {
                return true
            }
        }
        return false
    }

    // MARK: - Ending an exchange

    /// Ends the exchange: counted and logged, the next head awaited (or the connection closed).
    private func finish(_ exchange: FastExchange, outcome: String?) {
        log(exchange, outcome: outcome)
        self.exchange = nil
        mode = .waiting
        if let headGuard {
            headGuard.awaitingHead()
        } else {
            context.triggerUserOutboundEvent(RequestHeadGuard.AwaitingHead(), promise: nil)
        }
        if closeWhenDone { return closeAfterWrites() }
        if !readingUpstream { context.flush() }
        setReading(true)
        serveHeld()
        // Nothing left that can still become a request.
        if inputClosed && exchange == nil && mode == .waiting { closeAfterWrites() }
    }

    /// Closes the connection once everything written so far is out (a close alone would drop what is queued).
    private func closeAfterWrites() {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)))
            .assumeIsolated().whenComplete { [context] _ in context!.close(promise: nil) }
    }

    /// Answers the request with a gateway error (nothing of the upstream's answer was written).
    private func answerLocally(_ exchange: FastExchange, _ error: GatewayError, close: Bool = false) {
        let response = LocalResponse.problem(error, requestID: exchange.requestID)
        dropConnection(exchange)
        exchange.status = response.status.code
        exchange.errorCode = response.headers.first(name: "x-credgate-error")
        if close { closeWhenDone = true }
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
        out.writeHeaderLine("x-request-id", exchange.requestID)
        out.writeHeaderLine("content-length", String(response.body.readableBytes))
        if closeWhenDone { out.writeStaticString("connection: close\r\n") }
        out.writeStaticString("\r\n")
        var body = response.body
        out.writeBuffer(&body)
        exchange.bytesOut += Int64(response.body.readableBytes)
        exchange.wroteToClient = true
        context.write(wrapOutboundOut(out), promise: nil)
        finish(exchange, outcome: nil)
    }

    /// Part of the answer is out and the rest cannot come: the client learns of it by the connection closing.
    private func failMidAnswer(_ exchange: FastExchange, outcome: String) {
        dropConnection(exchange)
        self.exchange = nil
        log(exchange, outcome: outcome)
        context.flush()
        context.close(promise: nil)
    }

    /// The platform rejected the session token this request carried (the session already dropped it): the request
    /// goes to the full path as the client sent it, which waits for a new token and sends it again.
    private func handOver(_ exchange: FastExchange) {
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

    private func armTimer(_ exchange: FastExchange) {
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
        let now = context.eventLoop.now
        route.count(
            method: exchange.request.method, status: exchange.status, bytesIn: 0, bytesOut: exchange.bytesOut,
            nanoseconds: (now - exchange.started).nanoseconds, cutShort: outcome != nil, fastPath: true,
            retriedStale: exchange.retriedStale)
        guard let accessLog = pool.accessLog else { return }
        accessLog.append(
            AccessRecord(
                startedAtNanos: accessLog.wallNanos(exchange.started), requestID: exchange.requestID,
                route: route.name, method: exchange.request.method.rawValue, target: exchange.clientTarget,
                status: exchange.status, bytesIn: 0, bytesOut: exchange.bytesOut,
                durationNanos: (now - exchange.started).nanoseconds, upstream: exchange.target.name,
                connectNanos: exchange.connectedAt.map { ($0 - exchange.started).nanoseconds },
                firstByteNanos: exchange.firstByteAt.map { ($0 - exchange.started).nanoseconds },
                credentials: route.credentialNames, cache: nil, error: exchange.errorCode, outcome: outcome))
    }
}

/// One request on the fast path, from its head to the end of its answer. Used on its connection's loop only.
final class FastExchange {
    enum Body {
        case none
        case length(Int)
        case chunked(ChunkedFraming)
        case untilClose
    }

    /// A JSON answer held whole for `rewrite_links`.
    struct HeldAnswer {
        var response: FastHead.Response
        var head: ByteBuffer
        var data: ByteBuffer
    }

    let route: CompiledRoute
    let plan: FastRoutePlan
    let target: UpstreamTarget
    /// The client's head, as it came (handed to the full path after a 401 on a session token).
    let head: ByteBuffer
    let request: FastHead.Request
    let requestID: String
    let started: NIODeadline
    let upstreamHead: ByteBuffer
    let sessionToken: SessionToken?
    var connection: UpstreamConnection?
    var reused = false
    var retriedStale = false
    var connectedAt: NIODeadline?
    var sentAt: NIODeadline?
    var firstByteAt: NIODeadline?
    var lastActivity: NIODeadline
    /// An answer head not all in yet.
    var pendingHead: ByteBuffer?
    var response: FastHead.Response?
    var body = Body.none
    var heldAnswer: HeldAnswer?
    /// A held chunked answer that grew too large goes on re-chunked.
    var rechunk = false
    var upstreamReusable = false
    var wroteToClient = false
    var status: UInt = 0
    var bytesOut: Int64 = 0
    var errorCode: String?

    init(
        route: CompiledRoute, plan: FastRoutePlan, target: UpstreamTarget, head: ByteBuffer, request: FastHead.Request,
        requestID: String, upstreamHead: ByteBuffer, sessionToken: SessionToken?, now: NIODeadline
    ) {
        self.route = route
        self.plan = plan
        self.target = target
        self.head = head
        self.request = request
        self.requestID = requestID
        self.upstreamHead = upstreamHead
        self.sessionToken = sessionToken
        self.started = now
        self.lastActivity = now
    }

    /// The client's checked `Host` value (for the gateway's address in rewritten links).
    var clientHost: String? {
        head.getString(at: head.readerIndex + request.host.lowerBound, length: request.host.count)
    }

    /// The request target as the client sent it (for the access log).
    var clientTarget: String {
        head.getString(at: head.readerIndex + request.target.lowerBound, length: request.target.count) ?? ""
    }
}

extension ByteBuffer {
    /// A header line copied from a head's bytes: `name: value\r\n`.
    mutating func writeHeaderLine(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, _ value: Range<Int>) {
        writeBytes(UnsafeRawBufferPointer(rebasing: bytes[name]))
        writeStaticString(": ")
        writeBytes(UnsafeRawBufferPointer(rebasing: bytes[value]))
        writeStaticString("\r\n")
    }
}
