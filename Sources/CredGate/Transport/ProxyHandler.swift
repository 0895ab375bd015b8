import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The per-client-connection state machine of the data path. It knows nothing of routes' policies: it asks the
/// route table which route a request takes, runs that route's filter chain, and moves bytes.
final class ProxyHandler: ChannelInboundHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        /// Between requests.
        case idle
        case active(Exchange)
        /// The gateway answered the current request itself; the rest of its body is dropped.
        case discarding(close: Bool)
        case closed
    }

    private let runtime: GatewayRuntime
    /// The listener this connection came in on: its route table and limits.
    private let listener: ListenerRuntime
    private let pool: UpstreamPool
    private var state: State = .idle
    private var context: ChannelHandlerContext!
    private var clientAddress: String?
    private var upstreamWritable = true
    private var waitingForUpstream = false
    private var readPaused = false
    private var lingerTimer: Scheduled<Void>?
    /// Parts of pipelined requests that arrived while an earlier request was still being answered, in order
    /// (reading is paused while any wait).
    private var queued = CircularBuffer<HTTPServerRequestPart>()
    private var draining = false
    /// The client half-closed (sent its last request and shut down its side): answer what it sent, then close.
    private var inputClosed = false
    /// The gateway is draining (``ClientConnections/FinishAndClose``): the current answer says
    /// `Connection: close` and is the last on this connection.
    private var finishing = false

    init(runtime: GatewayRuntime, listener: Int = 0, pool: UpstreamPool) {
        self.runtime = runtime
        self.listener = runtime.listeners[listener]
        self.pool = pool
    }

    // MARK: - Client side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.clientAddress = context.channel.remoteAddress?.ipAddress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // A pipelined request waits until the one before it is answered; so does everything after it.
        if !queued.isEmpty {
            queued.append(part)
            return
        }
        if case .head = part {
            switch state {
            case .active, .discarding:
                queued.append(part)
                updateReading()
                return
            case .idle, .closed:
                break
            }
        }
        dispatch(part)
    }

    private func dispatch(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            receivedHead(head)
        case .body(let buffer):
            receivedBody(buffer)
        case .end(let trailers):
            receivedEnd(trailers)
        }
    }

    /// The connection went back to idle: run the queued pipelined requests, in order, as far as they go.
    private func drainQueued() {
        guard !draining, !queued.isEmpty else { return }
        draining = true
        defer { draining = false }
        while let part = queued.first {
            switch state {
            case .closed:
                queued.removeAll()
                return
            case .active, .discarding:
                if case .head = part {
                    updateReading()
                    return
                }
            case .idle:
                break
            }
            queued.removeFirst()
            dispatch(part)
        }
        updateReading()
    }

    /// The current request is answered and the connection is idle: the next head is timed again, pipelined
    /// requests run, and a client that already half-closed is closed once nothing is left to answer.
    private func nowIdle() {
        context.triggerUserOutboundEvent(RequestHeadGuard.AwaitingHead(), promise: nil)
        drainQueued()
        if inputClosed || finishing, case .idle = state, queued.isEmpty {
            state = .closed
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .active(let exchange) = state, exchange.wroteToUpstream, let connection = exchange.connection {
            exchange.wroteToUpstream = false
            connection.flush()
        }
        context.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure, response direction: stop reading the upstream while the client cannot take more.
        if case .active(let exchange) = state, let connection = exchange.connection {
            connection.setAutoRead(context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .active(let exchange) = state {
            exchange.timer?.cancel()
            if let connection = exchange.connection {
                // The request was cut short: its upstream connection is in an unknown state.
                pool.discard(connection)
            }
            exchange.upstream = .detached
            exchange.dropSpool()
            log(exchange, outcome: "client closed")
        }
        lingerTimer?.cancel()
        queued.removeAll()
        state = .closed
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
        var requestID = RequestID.generate()
        var version = HTTPVersion.http1_1
        switch state {
        case .idle, .discarding:
            break
        case .active(let exchange) where exchange.response == .awaitingHead || exchange.response == .buffering:
            abandonUpstream(exchange)
            exchange.dropSpool()
            exchange.status = 400
            exchange.response = .complete
            log(exchange, outcome: "malformed body")
            requestID = exchange.requestID
            version = exchange.clientHead.version
        case .active, .closed:
            state = .closed
            context.close(promise: nil)
            return
        }
        state = .closed
        lingerTimer?.cancel()
        queued.removeAll()
        writeLocal(.problem(.malformedRequest(String(describing: error)), requestID: requestID), version: version, close: true,
                   requestID: requestID)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Keep-alive timeout: close only a connection with nothing in flight.
            if case .idle = state, queued.isEmpty { context.close(promise: nil) }
            return
        }
        if let timedOut = event as? RequestHeadGuard.HeaderTimedOut {
            // A head is being sent too slowly (or a pipelined one never completes): 408 if nothing is being
            // answered, then close.
            if case .idle = state {
                state = .closed
                queued.removeAll()
                let requestID = RequestID.generate()
                writeLocal(.problem(.headerTimeout(seconds: timedOut.timeout.nanoseconds / 1_000_000_000), requestID: requestID),
                           version: .http1_1, close: true, requestID: requestID)
            } else if case .discarding = state {
                state = .closed
                context.close(promise: nil)
            }
            return
        }
        if event is ClientConnections.FinishAndClose {
            finishing = true
            switch state {
            case .idle where queued.isEmpty:
                state = .closed
                context.close(promise: nil)
            case .active(let exchange):
                exchange.closeClientAfter = true
            case .discarding:
                state = .discarding(close: true)
            case .idle, .closed:
                break  // a queued request runs next and closes after its answer; or already closed
            }
            return
        }
        if case ChannelEvent.inputClosed = event {
            inputClosed = true
            switch state {
            case .idle where queued.isEmpty:
                state = .closed
                context.close(promise: nil)
            case .discarding:
                // The rest of the body will never come: nothing more to read, so the answer already sent is all.
                lingerTimer?.cancel()
                state = .closed
                context.close(promise: nil)
            case .idle, .active, .closed:
                break  // answered (and closed) once the current and queued requests are done
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func receivedHead(_ head: HTTPRequestHead) {
        context.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        guard case .idle = state else {
            // Unreachable: channelRead queues a head that arrives while a request is in flight.
            context.close(promise: nil)
            return
        }
        let requestID = RequestID.from(head.headers) ?? pool.requestIDs.next()
        let hasBody = Self.hasBody(head)
        let checked: CheckedHead
        switch Self.inspect(head, maxHeaderBytes: listener.listen.maxHeaderBytes, protectedHeaders: runtime.protectedHeaders) {
        case .success(let c): checked = c
        case .failure(let error):
            respondLocally(.problem(error, requestID: requestID), head: head, hasBody: hasBody, requestID: requestID)
            return
        }
        let path = checked.normalizedPath.map { $0[...] } ?? Self.path(of: head.uri)
        let lookup = listener.routes.lookup(method: head.method.rawValue, path: path)
        if let unsafe = checked.unsafePath {
            // Only a route that opted into raw matching takes a path with no safe reading.
            guard case .matched(let r) = lookup, r.rawPath else {
                respondLocally(.problem(unsafe, requestID: requestID), head: head, hasBody: hasBody, requestID: requestID)
                return
            }
        }
        let route: CompiledRoute
        switch lookup {
        case .matched(let r):
            route = r
        case .methodNotAllowed(let allowed):
            respondLocally(.problem(.methodNotAllowed(method: head.method.rawValue, allowed: allowed), requestID: requestID), head: head, hasBody: hasBody, requestID: requestID)
            return
        case .notFound:
            respondLocally(.problem(.noRoute(method: head.method.rawValue, path: String(path)), requestID: requestID), head: head, hasBody: hasBody, requestID: requestID)
            return
        }
        if let length = head.headers.first(name: "content-length").flatMap({ Int64($0) }), length > route.maxBodyBytes {
            respondLocally(.problem(.bodyTooLarge(limit: route.maxBodyBytes), requestID: requestID), head: head, hasBody: hasBody, requestID: requestID)
            return
        }
        let exchange = Exchange(clientHead: head, route: route, requestID: requestID, now: context.eventLoop.now)
        exchange.closeClientAfter = finishing
        if let normalized = checked.normalizedPath {
            let query = head.uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { head.uri[$0...] } ?? ""
            exchange.forwardHead.uri = normalized + query
        }
        // Hop-by-hop headers go before any filter runs, so that nothing a filter writes (a credential, a body's
        // new Content-Length) can be dropped afterwards because the client's Connection header named it.
        HeaderHygiene.removeHopByHop(&exchange.forwardHead.headers, keepingFraming: true)
        state = .active(exchange)
        runFilters(exchange)
    }

    private func runFilters(_ exchange: Exchange) {
        guard case .filtering(let next) = exchange.upstream else { return }
        let (result, index) = exchange.route.chain.runHead(from: next, head: &exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
        switch result {
        case .proceed:
            afterHeadFilters(exchange)
        case .retryAfter(let future):
            exchange.upstream = .filtering(next: index)
            suspend(exchange, until: future) { [self] in self.runFilters(exchange) }
        case .stop(let response):
            answerForFilter(exchange, response)
        }
    }

    /// Parks the exchange (client reads paused) until `future` completes, then resumes on this loop if the
    /// exchange is still the current one.
    private func suspend(_ exchange: Exchange, until future: EventLoopFuture<Void>, then resume: @escaping () -> Void) {
        setWaitingForUpstream(true)
        future.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] _ in
            guard case .active(let current) = self.state, current === exchange else { return }
            self.setWaitingForUpstream(false)
            resume()
        }
    }

    private func answerForFilter(_ exchange: Exchange, _ response: LocalResponse) {
        exchange.upstream = .detached
        exchange.pending.removeAll()
        finishWithLocal(exchange, response, close: false)
    }

    private func answerForFilter(_ exchange: Exchange, _ error: GatewayError) {
        answerForFilter(exchange, .problem(error, requestID: exchange.requestID))
    }

    /// Head filters passed: check the body in a body stage, or collect it if a filter wants it whole, else
    /// forward at once.
    private func afterHeadFilters(_ exchange: Exchange) {
        let chain = exchange.route.chain
        if chain.hasBodyStage, let stage = chain.bodyStage(for: exchange.forwardHead, context: exchange.filterContext(context.eventLoop)) {
            startStaging(exchange, stage)
            return
        }
        // A filter that supplies a body the client did not send declares its length in the head it rewrote.
        guard exchange.hasBody || Self.hasBody(exchange.forwardHead),
              let limit = chain.bodyBufferLimit(for: exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
        else {
            startForwarding(exchange)
            return
        }
        exchange.upstream = .collecting(limit: limit)
        exchange.collected = context.channel.allocator.buffer(capacity: 0)
        let parts = exchange.pending
        exchange.pending.removeAll()
        for part in parts {
            switch part {
            case .body(.byteBuffer(var buffer)):
                guard collect(exchange, &buffer, limit: limit) else { return }
            case .end:
                runBodyFilters(exchange)
                return
            default:
                break
            }
        }
        if exchange.requestComplete { runBodyFilters(exchange) }
    }

    /// Adds a chunk to the collected body; answers 413 and returns false past the limit.
    private func collect(_ exchange: Exchange, _ buffer: inout ByteBuffer, limit: Int) -> Bool {
        if exchange.collected.readableBytes + buffer.readableBytes > limit {
            abandonUpstream(exchange)
            finishWithLocal(exchange, .problem(.bodyTooLarge(limit: Int64(limit)), requestID: exchange.requestID), close: true)
            return false
        }
        exchange.collected.writeBuffer(&buffer)
        return true
    }

    private func runBodyFilters(_ exchange: Exchange, from next: Int = 0) {
        exchange.upstream = .bodyFiltering(next: next)
        let (result, index) = exchange.route.chain.runBody(
            from: next, body: &exchange.collected, head: &exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
        switch result {
        case .proceed:
            if exchange.hasBody || exchange.collected.readableBytes > 0 {
                HeaderHygiene.setContentLength(&exchange.forwardHead.headers, exchange.collected.readableBytes)
                exchange.pending = [.body(.byteBuffer(exchange.collected)), .end(nil)]
            } else {
                exchange.pending = [.end(nil)]
            }
            startForwarding(exchange)
        case .retryAfter(let future):
            exchange.upstream = .bodyFiltering(next: index)
            suspend(exchange, until: future) { [self] in self.runBodyFilters(exchange, from: index) }
        case .stop(let response):
            answerForFilter(exchange, response)
        }
    }

    // MARK: - Staged bodies (checked whole before anything is forwarded)

    private func startStaging(_ exchange: Exchange, _ stage: any RequestBodyStage) {
        exchange.stage = stage
        exchange.spool = BodySpool(
            directory: runtime.spool.directory, memoryLimit: runtime.spool.memoryLimit, fileIO: runtime.fileIO,
            allocator: context.channel.allocator, eventLoop: context.eventLoop)
        exchange.upstream = .staging
        // The body must come for the stage to check it.
        sendContinueIfExpected(exchange)
        let parts = exchange.pending
        exchange.pending.removeAll()
        for part in parts {
            switch part {
            case .body(.byteBuffer(let buffer)):
                guard stageFeed(exchange, buffer) else { return }
            case .end:
                stageEnd(exchange)
                return
            default:
                break
            }
        }
    }

    /// Feeds a chunk to the stage and spools what it passes; answers and returns false on a refusal.
    private func stageFeed(_ exchange: Exchange, _ buffer: ByteBuffer) -> Bool {
        guard let stage = exchange.stage else { return false }
        switch stage.feed(buffer) {
        case .pass(let parts):
            for part in parts { spoolAppend(exchange, part) }
            return true
        case .respond(let error):
            exchange.dropSpool()
            answerForFilter(exchange, error)
            return false
        }
    }

    private func stageEnd(_ exchange: Exchange) {
        guard let stage = exchange.stage else { return }
        var head = exchange.forwardHead
        switch stage.finish(head: &head) {
        case .pass(let parts):
            exchange.forwardHead = head
            // The stage stays set until every part is handed over: an append that completes at once (in memory)
            // must not seal the spool before the next one is in.
            for part in parts { spoolAppend(exchange, part) }
            exchange.stage = nil
            if exchange.spoolWrites == 0 { spoolComplete(exchange) }
        case .respond(let error):
            exchange.dropSpool()
            answerForFilter(exchange, error)
        }
    }

    private func spoolAppend(_ exchange: Exchange, _ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, let spool = exchange.spool else { return }
        exchange.spoolWrites += 1
        updateReading()
        spool.append(buffer).hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            exchange.spoolWrites -= 1
            guard case .active(let current) = self.state, current === exchange, case .staging = exchange.upstream,
                  exchange.spool === spool
            else { return }
            if case .failure(let error) = result {
                self.spoolFailed(exchange, error)
                return
            }
            self.updateReading()
            if exchange.stage == nil && exchange.spoolWrites == 0 { self.spoolComplete(exchange) }
        }
    }

    /// The stage accepted the body and every byte is in the spool: forward the request, body from the spool.
    private func spoolComplete(_ exchange: Exchange) {
        guard let spool = exchange.spool else { return }
        spool.finish().hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard case .active(let current) = self.state, current === exchange, exchange.spool === spool else { return }
            if case .failure(let error) = result {
                self.spoolFailed(exchange, error)
                return
            }
            exchange.spoolReady = true
            HeaderHygiene.setContentLength(&exchange.forwardHead.headers, Int(spool.byteCount))
            exchange.pending = []
            self.startForwarding(exchange)
        }
    }

    private func spoolFailed(_ exchange: Exchange, _ error: any Error) {
        exchange.dropSpool()
        let reason = Self.describe(spoolError: error)
        runtime.logger.error("request body spool failed", metadata: ["request_id": "\(exchange.requestID)", "error": "\(reason)"])
        answerForFilter(exchange, .spoolFailed(reason: reason))
    }

    private static func describe(spoolError error: any Error) -> String {
        if let e = error as? IOError { return e.description }
        return "an I/O error"
    }

    /// Streams the spooled body to the upstream, one chunk in flight at a time (the write's completion is the
    /// backpressure), then ends the request.
    private func pumpSpool(_ exchange: Exchange, _ connection: UpstreamConnection, _ spool: BodySpool) {
        struct Stopped: Error {}
        let loop = context.eventLoop
        spool.read { [self] chunk in
            guard case .active(let current) = self.state, current === exchange, exchange.connection === connection else {
                return loop.makeFailedFuture(Stopped())
            }
            let promise = loop.makePromise(of: Void.self)
            exchange.bodyBytesSent += Int64(chunk.readableBytes)
            exchange.lastActivity = loop.now
            connection.write(.body(.byteBuffer(chunk)), promise: promise)
            connection.flush()
            return promise.futureResult
        }.hop(to: loop).assumeIsolated().whenComplete { [self] result in
            guard case .active(let current) = self.state, current === exchange, exchange.connection === connection else { return }
            switch result {
            case .success:
                self.writeUpstream(exchange, connection, .end(nil))
                connection.flush()
                exchange.wroteToUpstream = false
                self.armTimer(exchange)
            case .failure(let error):
                // The platform has an incomplete request: close it so it is never taken for a whole one.
                self.abandonUpstream(exchange)
                self.spoolFailed(exchange, error)
            }
        }
    }

    private func sendContinueIfExpected(_ exchange: Exchange) {
        if exchange.expectsContinue && !exchange.requestComplete && !exchange.sentContinue {
            exchange.sentContinue = true
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: exchange.clientHead.version, status: .continue))), promise: nil)
        }
    }

    // MARK: - Forwarding

    private func startForwarding(_ exchange: Exchange) {
        guard exchange.route.target != nil else {
            // A route with no upstream whose filters did not answer: nothing to forward to.
            finishWithLocal(exchange, .problem(.adminNotFound(path: String(Self.path(of: exchange.clientHead.uri))), requestID: exchange.requestID),
                            close: false)
            return
        }
        sendContinueIfExpected(exchange)
        exchange.forwardHead = HeaderHygiene.upstreamHead(
            from: exchange.forwardHead,
            target: exchange.target,
            requestID: exchange.requestID,
            clientAddress: clientAddress,
            hasBody: Self.hasBody(exchange.forwardHead),
            trustForwarded: listener.listen.trustForwardedHeaders,
            forwardCookies: exchange.route.forwardCookies
        )
        exchange.upstream = .connecting
        if exchange.forwardStartedAt == nil { exchange.forwardStartedAt = context.eventLoop.now }
        acquire(exchange, fresh: false)
    }

    private func acquire(_ exchange: Exchange, fresh: Bool) {
        // The common path: an idle pooled connection, taken synchronously with no closure or future.
        if !fresh, let connection = pool.takeIdle(exchange.target) {
            connected(exchange, .success((connection, true)))
            return
        }
        setWaitingForUpstream(true)
        pool.connect(exchange.target) { [self] result in
            self.setWaitingForUpstream(false)
            self.connected(exchange, result)
        }
    }

    private func connected(_ exchange: Exchange, _ result: Result<(UpstreamConnection, reused: Bool), any Error>) {
        guard case .active(let current) = state, current === exchange, case .connecting = exchange.upstream else {
            // The client went away (or the request ended otherwise) while connecting.
            if case .success(let (connection, _)) = result { pool.release(connection) }
            return
        }
        switch result {
        case .failure(let error):
            exchange.upstream = .detached
            let reason = Self.describe(connectError: error)
            let problem: GatewayError =
                Self.isTimeout(error)
                ? .upstreamTimeout(upstream: exchange.target.name, phase: "connect")
                : .upstreamUnreachable(upstream: exchange.target.name, reason: reason)
            finishWithLocal(exchange, .problem(problem, requestID: exchange.requestID), close: false)
        case .success(let (connection, reused)):
            exchange.usedReusedConnection = reused
            if exchange.connectedAt == nil { exchange.connectedAt = context.eventLoop.now }
            exchange.upstream = .attached(connection)
            connection.delegate = self
            upstreamWritable = connection.channel.isWritable
            connection.setAutoRead(context.channel.isWritable)
            connection.write(.head(exchange.forwardHead))
            for part in exchange.pending {
                writeUpstream(exchange, connection, part)
            }
            exchange.pending.removeAll()
            connection.flush()
            exchange.wroteToUpstream = false
            if exchange.requestSent || exchange.hasBody { armTimer(exchange) }
            if exchange.spoolReady, let spool = exchange.spool { pumpSpool(exchange, connection, spool) }
            updateReading()
        }
    }

    private func writeUpstream(_ exchange: Exchange, _ connection: UpstreamConnection, _ part: HTTPClientRequestPart) {
        switch part {
        case .body(.byteBuffer(let buffer)):
            exchange.bodyBytesSent += Int64(buffer.readableBytes)
        case .end:
            exchange.requestSent = true
            exchange.sentAt = context.eventLoop.now
        default:
            break
        }
        connection.write(part)
        exchange.wroteToUpstream = true
    }

    private func receivedBody(_ buffer: ByteBuffer) {
        switch state {
        case .active(let exchange):
            exchange.bodyBytesIn += Int64(buffer.readableBytes)
            exchange.lastActivity = context.eventLoop.now
            if exchange.abandonedUpload { return }
            if exchange.bodyBytesIn > exchange.route.maxBodyBytes {
                bodyTooLarge(exchange)
                return
            }
            exchange.retainForReplay(buffer)
            switch exchange.upstream {
            case .attached(let connection):
                writeUpstream(exchange, connection, .body(.byteBuffer(buffer)))
            case .collecting(let limit):
                var buffer = buffer
                _ = collect(exchange, &buffer, limit: limit)
            case .staging:
                _ = stageFeed(exchange, buffer)
            case .filtering, .bodyFiltering, .connecting:
                if exchange.spoolReady { break }  // cannot happen: a staged body ended before connecting
                exchange.pending.append(.body(.byteBuffer(buffer)))
            case .detached:
                break
            }
        case .discarding, .idle, .closed:
            break
        }
    }

    private func receivedEnd(_ trailers: HTTPHeaders?) {
        switch state {
        case .active(let exchange):
            exchange.requestComplete = true
            if exchange.abandonedUpload {
                if exchange.response == .complete { finishExchange(exchange) }
                return
            }
            switch exchange.upstream {
            case .attached(let connection):
                writeUpstream(exchange, connection, .end(nil))
                connection.flush()
                exchange.wroteToUpstream = false
                armTimer(exchange)
            case .collecting:
                runBodyFilters(exchange)
            case .staging:
                stageEnd(exchange)
            case .filtering, .bodyFiltering, .connecting:
                if exchange.spoolReady { break }
                exchange.pending.append(.end(nil))
            case .detached:
                break
            }
        case .discarding(let close):
            lingerTimer?.cancel()
            if close {
                state = .closed
                context.close(promise: nil)
            } else {
                state = .idle
                nowIdle()
            }
        case .idle, .closed:
            break
        }
    }

    private func bodyTooLarge(_ exchange: Exchange) {
        if exchange.response == .awaitingHead || exchange.response == .buffering {
            // Say what happened: a body with no declared length may already be partly at the platform (its
            // connection is cut now, so the platform never sees a complete request).
            let forwarded = exchange.bodyBytesSent
            abandonUpstream(exchange)
            let error: GatewayError = forwarded > 0
                ? .bodyTooLargeAfterForwarding(limit: exchange.route.maxBodyBytes, forwarded: forwarded)
                : .bodyTooLarge(limit: exchange.route.maxBodyBytes)
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: true)
        } else {
            // An answer is already streaming: the only honest move left is to close.
            abandonUpstream(exchange)
            log(exchange, outcome: "body over limit")
            state = .closed
            context.close(promise: nil)
        }
    }

    // MARK: - Upstream side

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard case .active(let exchange) = state else { return }
        exchange.lastActivity = context.eventLoop.now
        switch part {
        case .head(let head):
            if exchange.firstByteAt == nil { exchange.firstByteAt = context.eventLoop.now }
            if head.status == .switchingProtocols {
                // credgate strips Upgrade from every request, so a 101 is the platform's mistake, and relaying it
                // would leave the client waiting on a protocol nobody speaks. No route allows upgrades.
                if exchange.response == .awaitingHead {
                    abandonUpstream(exchange)
                    finishWithLocal(exchange, .problem(.upgradeRefused(upstream: exchange.target.name), requestID: exchange.requestID),
                                    close: true)
                }
                return
            }
            if head.status.code >= 100 && head.status.code < 200 {
                return  // informational answers (100, 103) stay on the upstream hop
            }
            if exchange.keepsReplayCopy && exchange.attempt == 0,
               case .replay = exchange.route.chain.upstreamResponded(head, context: exchange.filterContext(context.eventLoop))
            {
                replay(exchange, rejectedWith: head)
                return
            }
            exchange.response = .streaming
            exchange.status = head.status.code
            if !exchange.requestComplete {
                // The upstream answered before the upload was over (an early 401 or 413): stop sending, drop
                // the rest of the client's body, and close both connections once the answer is through.
                exchange.abandonedUpload = true
                exchange.closeClientAfter = true
                exchange.pending.removeAll()
            }
            let bodyless = exchange.clientHead.method == .HEAD || head.status == .noContent || head.status == .notModified
            if !exchange.clientKeepAlive
                || (exchange.clientHead.version == .http1_0 && !bodyless && !head.headers.contains(name: "content-length"))
            {
                exchange.closeClientAfter = true
            }
            exchange.upstreamKeepAlive = head.isKeepAlive
            if !bodyless, exchange.route.chain.inspectsResponses,
               let limit = exchange.route.chain.responseBufferLimit(for: head, context: exchange.filterContext(context.eventLoop)) {
                exchange.response = .buffering
                exchange.heldResponse = (head, context.channel.allocator.buffer(capacity: 0), limit)
                return
            }
            let clientHead = HeaderHygiene.clientHead(
                from: head, clientVersion: exchange.clientHead.version,
                requestID: exchange.requestID, closeAfter: exchange.closeClientAfter,
                links: exchange.target.links, gatewayBase: LinkRewriter.gatewayBase(clientHost: exchange.clientHead.headers.first(name: "host")))
            context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
        case .body(var buffer):
            if exchange.response == .buffering, var held = exchange.heldResponse {
                exchange.heldResponse = nil
                if held.body.readableBytes + buffer.readableBytes <= held.limit {
                    held.body.writeBuffer(&buffer)
                    exchange.heldResponse = held
                    return
                }
                // Larger than the filters asked to see: it goes to the client unchanged, unseen by them.
                exchange.response = .streaming
                let clientHead = HeaderHygiene.clientHead(
                    from: held.head, clientVersion: exchange.clientHead.version,
                    requestID: exchange.requestID, closeAfter: exchange.closeClientAfter,
                links: exchange.target.links, gatewayBase: LinkRewriter.gatewayBase(clientHost: exchange.clientHead.headers.first(name: "host")))
                context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
                exchange.bodyBytesOut += Int64(held.body.readableBytes)
                context.write(wrapOutboundOut(.body(.byteBuffer(held.body))), promise: nil)
            }
            exchange.bodyBytesOut += Int64(buffer.readableBytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            let held = exchange.response == .buffering ? exchange.heldResponse : nil
            exchange.heldResponse = nil
            exchange.response = .complete
            if let connection = exchange.connection {
                exchange.upstream = .detached
                if exchange.requestSent && !exchange.abandonedUpload && exchange.upstreamKeepAlive {
                    pool.release(connection)
                } else {
                    pool.discard(connection)
                }
            }
            if let held {
                deliverHeld(exchange, held.head, held.body)
                return
            }
            completeResponse(exchange)
        }
    }

    /// The whole answer a filter asked for is in: let the filters see it, then send what they say.
    private func deliverHeld(_ exchange: Exchange, _ upstreamHead: HTTPResponseHead, _ upstreamBody: ByteBuffer) {
        var head = upstreamHead
        var body = upstreamBody
        switch exchange.route.chain.encodeResponse(&head, body: &body, context: exchange.filterContext(context.eventLoop)) {
        case .proceed:
            writeWholeAnswer(exchange, head, body, fromUpstream: true)
        case .respondWith(let local):
            writeWholeAnswer(exchange, HTTPResponseHead(version: .http1_1, status: local.status, headers: local.headers), local.body)
        case .respondLater(let future):
            setWaitingForUpstream(true)
            future.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
                guard case .active(let current) = self.state, current === exchange else { return }
                self.setWaitingForUpstream(false)
                let local: LocalResponse
                switch result {
                case .success(let answer): local = answer
                case .failure(let error):
                    local = .problem(.followUpFailed(reason: FollowUpCall.describe(error)), requestID: exchange.requestID)
                }
                self.writeWholeAnswer(exchange, HTTPResponseHead(version: .http1_1, status: local.status, headers: local.headers), local.body)
            }
        }
    }

    /// Writes an answer known whole: the upstream's (its own links pointed at the gateway) or one a filter made
    /// (left exactly as made: a presigned URL in a redirect must stay as signed).
    private func writeWholeAnswer(_ exchange: Exchange, _ head: HTTPResponseHead, _ body: ByteBuffer, fromUpstream: Bool = false) {
        var head = head
        HeaderHygiene.setContentLength(&head.headers, body.readableBytes)
        exchange.status = head.status.code
        if pool.accessLog != nil { exchange.cacheOutcome = head.headers.first(name: "x-cache") }
        let clientHead = HeaderHygiene.clientHead(
            from: head, clientVersion: exchange.clientHead.version,
            requestID: exchange.requestID, closeAfter: exchange.closeClientAfter,
            links: fromUpstream ? exchange.target.links : nil,
            gatewayBase: LinkRewriter.gatewayBase(clientHost: exchange.clientHead.headers.first(name: "host")))
        context.write(wrapOutboundOut(.head(clientHead)), promise: nil)
        if body.readableBytes > 0 {
            exchange.bodyBytesOut += Int64(body.readableBytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        completeResponse(exchange)
    }

    /// The answer's last byte went to the client (all but the end): finish the exchange, or, when the client is
    /// still uploading after an early answer, end the answer and drop the rest of its body.
    private func completeResponse(_ exchange: Exchange) {
        exchange.dropSpool()
        if exchange.requestComplete {
            finishExchange(exchange)
        } else {
            // Early answer: the client is still uploading. Send the end and drop the rest of its body.
            exchange.timer?.cancel()
            log(exchange, outcome: nil)
            state = .discarding(close: true)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            startLinger()
        }
    }

    /// A filter asked to run the request again (a session token was rejected and replaced): drop this answer
    /// and its connection, and send the request once more from the kept copy of its body. Never loops: the
    /// second answer goes to the client whatever it is.
    private func replay(_ exchange: Exchange, rejectedWith head: HTTPResponseHead) {
        if let connection = exchange.connection { pool.discard(connection) }
        exchange.timer?.cancel()
        exchange.timer = nil
        exchange.attempt = 1
        guard !exchange.replayOverflow else {
            exchange.upstream = .detached
            let error = GatewayError.sessionRejectedNotReplayed(
                upstreamStatus: Int(head.status.code), replayCap: exchange.route.replayMaxBodyBytes)
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: false)
            return
        }
        exchange.dropSpool()
        exchange.upstream = .filtering(next: 0)
        exchange.response = .awaitingHead
        exchange.forwardHead = exchange.clientHead
        exchange.requestSent = false
        exchange.sentAt = nil
        exchange.bodyBytesSent = 0
        exchange.usedReusedConnection = false
        exchange.pending = exchange.replayParts.map { .body(.byteBuffer($0)) }
        if exchange.requestComplete { exchange.pending.append(.end(nil)) }
        runFilters(exchange)
    }

    func upstreamReadComplete() {
        context.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        // Backpressure, request direction: stop reading the client while the upstream cannot take more.
        upstreamWritable = writable
        updateReading()
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard case .active(let exchange) = state, exchange.connection === connection else { return }
        pool.discard(connection)
        exchange.upstream = .detached
        switch exchange.response {
        case .awaitingHead, .buffering:
            // A stale pooled connection: retry once on a fresh one if no body byte went out.
            if exchange.response == .awaitingHead && exchange.usedReusedConnection && !exchange.retriedStale
                && exchange.bodyBytesSent == 0
            {
                exchange.retriedStale = true
                exchange.requestSent = false
                exchange.timer?.cancel()
                // A spooled body is read again from the spool once connected.
                if exchange.requestComplete && !exchange.spoolReady { exchange.pending = [.end(nil)] }
                exchange.upstream = .connecting
                acquire(exchange, fresh: true)
                return
            }
            finishWithLocal(exchange, .problem(.upstreamReset(upstream: exchange.target.name), requestID: exchange.requestID),
                            close: false)
        case .streaming:
            // Mid-answer: the client can only learn of it by the connection closing.
            log(exchange, outcome: "upstream closed mid-response")
            exchange.timer?.cancel()
            state = .closed
            context.close(promise: nil)
        case .complete:
            break
        }
    }

    // MARK: - Finishing

    /// The request is fully read and the answer fully received: settle all state, then write the end (which may
    /// synchronously deliver the next pipelined request).
    private func finishExchange(_ exchange: Exchange) {
        exchange.timer?.cancel()
        exchange.dropSpool()
        log(exchange, outcome: nil)
        let close = exchange.closeClientAfter
        state = close ? .closed : .idle
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

    /// Answers an exchange that has a route with a local response (a gateway error or a filter's answer).
    private func finishWithLocal(_ exchange: Exchange, _ response: LocalResponse, close: Bool) {
        exchange.timer?.cancel()
        exchange.dropSpool()
        exchange.status = response.status.code
        exchange.response = .complete
        if pool.accessLog != nil {
            exchange.errorCode = response.headers.first(name: "x-credgate-error")
            exchange.cacheOutcome = response.headers.first(name: "x-cache")
        }
        log(exchange, outcome: nil)
        // A body still on its way is dropped, and the connection closed after it: the client may not expect an
        // answer before it has sent everything.
        let bodyStillComing = !exchange.requestComplete && exchange.hasBody
        let mustClose = close || !exchange.clientKeepAlive || bodyStillComing || exchange.closeClientAfter
        if exchange.requestComplete {
            state = mustClose ? .closed : .idle
        } else {
            state = .discarding(close: mustClose)
        }
        updateReading()
        writeLocal(response, version: exchange.clientHead.version, close: mustClose, requestID: exchange.requestID)
        if bodyStillComing { startLinger() }
        if case .idle = state { nowIdle() }
    }

    /// Answers a request that never got an exchange (no route, bad head, admin).
    private func respondLocally(_ response: LocalResponse, head: HTTPRequestHead, hasBody: Bool, requestID: String) {
        let close = hasBody || !head.isKeepAlive
        // The request's `.end` is still to come: drop whatever body precedes it.
        state = .discarding(close: close)
        runtime.metrics.unrouted.record(method: head.method, status: response.status.code, bytesIn: 0,
                                        bytesOut: Int64(response.body.readableBytes), nanoseconds: 0)
        if let accessLog = pool.accessLog {
            let now = context.eventLoop.now
            accessLog.append(AccessRecord(
                startedAtNanos: accessLog.wallNanos(now), requestID: requestID, route: nil, method: head.method.rawValue,
                target: head.uri, status: response.status.code, bytesIn: 0, bytesOut: Int64(response.body.readableBytes),
                durationNanos: 0, upstream: nil, connectNanos: nil, firstByteNanos: nil, credentials: [],
                cache: nil, error: response.headers.first(name: "x-credgate-error"), outcome: nil))
        }
        writeLocal(response, version: head.version, close: close, requestID: requestID)
        if hasBody { startLinger() }
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
                // Close now unless we are still draining the request body (then linger, or the body's end,
                // closes it).
                if case .discarding = self.state { return }
                self.context.close(promise: nil)
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
            if case .discarding = self.state {
                self.state = .closed
                self.context.close(promise: nil)
            }
        }
        setWaitingForUpstream(false)
        updateReading()
    }

    private func abandonUpstream(_ exchange: Exchange) {
        exchange.timer?.cancel()
        if let connection = exchange.connection { pool.discard(connection) }
        exchange.upstream = .detached
        exchange.pending.removeAll()
    }

    // MARK: - Timers

    /// One timer per exchange covers the response-head timeout (from the end of the request) and the idle
    /// timeout (no byte either way). It is armed for the nearest deadline and, when it fires early, re-arms itself
    /// for the one then in force instead of being rescheduled on every chunk.
    private func armTimer(_ exchange: Exchange) {
        let deadline = currentDeadline(exchange)
        if let timer = exchange.timer {
            if exchange.timerDeadline <= deadline { return }
            timer.cancel()
        }
        exchange.timerDeadline = deadline
        exchange.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            exchange.timer = nil
            self.timerFired(exchange)
        }
    }

    private func currentDeadline(_ exchange: Exchange) -> NIODeadline {
        let config = exchange.target.config
        if exchange.response == .awaitingHead, let sentAt = exchange.sentAt {
            return sentAt + config.responseTimeout
        }
        return exchange.lastActivity + config.idleTimeout
    }

    private func timerFired(_ exchange: Exchange) {
        guard case .active(let current) = state, current === exchange, exchange.connection != nil else { return }
        guard context.eventLoop.now >= currentDeadline(exchange) else {
            armTimer(exchange)
            return
        }
        if exchange.response == .awaitingHead || exchange.response == .buffering {
            abandonUpstream(exchange)
            let phase = exchange.sentAt == nil ? "idle while sending the request" : "response head"
            finishWithLocal(exchange, .problem(.upstreamTimeout(upstream: exchange.target.name, phase: phase), requestID: exchange.requestID),
                            close: false)
        } else {
            abandonUpstream(exchange)
            log(exchange, outcome: "upstream idle timeout mid-response")
            state = .closed
            context.close(promise: nil)
        }
    }

    // MARK: - Reading

    private func setWaitingForUpstream(_ waiting: Bool) {
        waitingForUpstream = waiting
        updateReading()
    }

    private func updateReading() {
        let pause: Bool
        switch state {
        case .active(let exchange):
            pause = waitingForUpstream || exchange.spoolWrites > 0
                || (exchange.connection != nil && !upstreamWritable && !exchange.abandonedUpload)
        default:
            pause = false
        }
        let paused = pause || !queued.isEmpty
        if paused != readPaused {
            readPaused = paused
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: !paused)
        }
    }

    // MARK: - Logging

    private func log(_ exchange: Exchange, outcome: String?) {
        exchange.route.counters.record(status: exchange.status, cutShort: outcome != nil)
        if let metrics = exchange.route.metrics {
            metrics.record(method: exchange.clientHead.method, status: exchange.status, bytesIn: exchange.bodyBytesIn,
                           bytesOut: exchange.bodyBytesOut, nanoseconds: (context.eventLoop.now - exchange.started).nanoseconds)
            if exchange.retriedStale { exchange.route.target?.metrics?.staleRetries.increment() }
        }
        // Plain values only: the access log formats them on its own thread.
        guard let accessLog = pool.accessLog else { return }
        let now = context.eventLoop.now
        let forwardStarted = exchange.forwardStartedAt
        accessLog.append(AccessRecord(
            startedAtNanos: accessLog.wallNanos(exchange.started), requestID: exchange.requestID, route: exchange.route.name,
            method: exchange.clientHead.method.rawValue, target: exchange.clientHead.uri, status: exchange.status,
            bytesIn: exchange.bodyBytesIn, bytesOut: exchange.bodyBytesOut, durationNanos: (now - exchange.started).nanoseconds,
            upstream: exchange.route.target?.name,
            connectNanos: forwardStarted.flatMap { start in exchange.connectedAt.map { ($0 - start).nanoseconds } },
            firstByteNanos: forwardStarted.flatMap { start in exchange.firstByteAt.map { ($0 - start).nanoseconds } },
            credentials: exchange.route.credentialNames, cache: exchange.cacheOutcome, error: exchange.errorCode, outcome: outcome))
    }
}
