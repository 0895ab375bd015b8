import NIOCore
import NIOHTTP1

/// The request on its way upstream: an upstream connection from the pool, the head and the body as they come,
/// the body's size limit.
extension ProxyHandler {
    func sendContinueIfExpected(_ exchange: Exchange) {
        if exchange.expectsContinue && !machine.requestComplete && !exchange.sentContinue {
            exchange.sentContinue = true
            let head = HTTPResponseHead(version: exchange.clientHead.version, status: .continue)
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        }
    }

    func startForwarding(_ exchange: Exchange) {
        guard exchange.route.target != nil else {
            // A route with no upstream whose filters did not answer: nothing to forward to.
            let error = GatewayError.adminNotFound(path: String(Self.path(of: exchange.clientHead.uri)))
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: false)
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

    func acquire(_ exchange: Exchange, fresh: Bool) {
        // The common path: an idle pooled connection, taken synchronously with no closure or future.
        if !fresh, let connection = pool.takeIdle(exchange.target) {
            connected(exchange, .success((connection, true)))
            return
        }
        run(machine.parked(true))
        pool.connect(exchange.target) { [self] result in
            if self.machine.current === exchange { self.run(self.machine.parked(false)) }
            self.connected(exchange, result)
        }
    }

    private func connected(_ exchange: Exchange, _ result: Result<(UpstreamConnection, reused: Bool), any Error>) {
        guard machine.current === exchange, case .connecting = exchange.upstream else {
            // The client went away (or the request ended otherwise) while connecting.
            if case .success(let (connection, _)) = result { pool.release(connection) }
            return
        }
        switch result {
        case .failure(let error):
            detach(exchange)
            let problem = Self.connectProblem(error, upstream: exchange.target.name)
            finishWithLocal(exchange, .problem(problem, requestID: exchange.requestID), close: false)
        case .success(let (connection, reused)):
            exchange.usedReusedConnection = reused
            if exchange.connectedAt == nil { exchange.connectedAt = context.eventLoop.now }
            exchange.upstream = .attached(connection)
            connection.delegate = self
            run(machine.upstreamAttached(writable: connection.channel.isWritable))
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

    func writeUpstream(_ exchange: Exchange, _ connection: UpstreamConnection, _ part: HTTPClientRequestPart) {
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

    /// A chunk of the current request's body; `forward` false when the rest of the body is dropped (it is only
    /// counted).
    func receivedBody(_ exchange: Exchange, _ buffer: ByteBuffer, forward: Bool) {
        exchange.bodyBytesIn += Int64(buffer.readableBytes)
        exchange.lastActivity = context.eventLoop.now
        guard forward else { return }
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
            collect(exchange, &buffer, limit: limit)
        case .staging:
            stageFeed(exchange, buffer)
        case .sinking:
            sinkReceived(exchange, .body(.byteBuffer(buffer)))
        case .filtering, .bodyFiltering, .connecting:
            if exchange.spoolReady { break } // cannot happen: a staged body ended before connecting
            exchange.pending.append(.body(.byteBuffer(buffer)))
        case .detached:
            break
        }
    }

    /// The current request's end (the machine already marked the request complete).
    func receivedEnd(_ exchange: Exchange) {
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
        case .sinking:
            sinkReceived(exchange, .end(nil))
        case .filtering, .bodyFiltering, .connecting:
            if exchange.spoolReady { break }
            exchange.pending.append(.end(nil))
        case .detached:
            break
        }
    }

    private func bodyTooLarge(_ exchange: Exchange) {
        if machine.canStillAnswer {
            // Say what happened: a body with no declared length may already be partly at the platform (its
            // connection is cut now, so the platform never sees a complete request).
            let forwarded = exchange.bodyBytesSent
            abandonUpstream(exchange)
            let error: GatewayError =
                forwarded > 0
                ? .bodyTooLargeAfterForwarding(limit: exchange.route.maxBodyBytes, forwarded: forwarded)
                : .bodyTooLarge(limit: exchange.route.maxBodyBytes)
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: true)
        } else {
            // An answer is already streaming: the only honest move left is to close.
            abandonUpstream(exchange)
            log(exchange, outcome: "body over limit")
            run(machine.failedMidResponse())
        }
    }
}
