import NIOCore
import NIOHTTP1

/// The upstream's answer on its way back: streamed to the client, or held whole for the filters that asked to
/// see it; one replay when a filter asks for it; the upstream connection closing early.
extension ProxyHandler {
    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange = machine.current else { return }
        exchange.lastActivity = context.eventLoop.now
        switch part {
        case .head(let head):
            receivedResponseHead(exchange, head)
        case .body(var buffer):
            if machine.request?.response == .buffering, var held = exchange.heldResponse {
                exchange.heldResponse = nil
                if held.body.readableBytes + buffer.readableBytes <= held.limit {
                    held.body.writeBuffer(&buffer)
                    exchange.heldResponse = held
                    return
                }
                // Larger than the filters asked to see: it goes to the client unchanged, unseen by them.
                run(machine.responseStreaming())
                context.write(wrapOutboundOut(.head(clientHead(exchange, held.head, fromUpstream: true))), promise: nil)
                exchange.bodyBytesOut += Int64(held.body.readableBytes)
                context.write(wrapOutboundOut(.body(.byteBuffer(held.body))), promise: nil)
            }
            exchange.bodyBytesOut += Int64(buffer.readableBytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            let held = machine.request?.response == .buffering ? exchange.heldResponse : nil
            exchange.heldResponse = nil
            let release = machine.responseEnded(reusable: exchange.requestSent && exchange.upstreamKeepAlive)
            if let connection = exchange.connection {
                exchange.upstream = .detached
                if case .releaseUpstream(reuse: true) = release {
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

    private func receivedResponseHead(_ exchange: Exchange, _ head: HTTPResponseHead) {
        if exchange.firstByteAt == nil { exchange.firstByteAt = context.eventLoop.now }
        if head.status == .switchingProtocols {
            // credgate strips Upgrade from every request, so a 101 is the platform's mistake, and relaying it
            // would leave the client waiting on a protocol nobody speaks. No route allows upgrades.
            if machine.awaitingResponseHead {
                abandonUpstream(exchange)
                let error = GatewayError.upgradeRefused(upstream: exchange.target.name)
                finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: true)
            }
            return
        }
        if head.status.code >= 100 && head.status.code < 200 {
            return // informational answers (100, 103) stay on the upstream hop
        }
        if exchange.keepsReplayCopy && exchange.attempt < exchange.route.maxReplays,
            case .replay = exchange.route.chain.upstreamResponded(
                head, context: exchange.filterContext(context.eventLoop)),
            // A retry (429, 5xx) of a body too large to keep passes the answer on; a rejected credential says so.
            !exchange.replayOverflow || head.status == .unauthorized
        {
            replay(exchange, rejectedWith: head)
            return
        }
        exchange.status = head.status.code
        let bodyless = exchange.clientHead.method == .HEAD || head.status == .noContent || head.status == .notModified
        // An HTTP/1.0 client can only find the end of a body with no declared length by the connection closing.
        let closeRequired =
            exchange.clientHead.version == .http1_0 && !bodyless
            && !head.headers.contains(name: "content-length")
        if case .stopSendingBody = machine.responseHeadArrived(closeRequired: closeRequired) {
            exchange.pending.removeAll()
        }
        // The head is in (``upstreamReceived`` stamped its arrival): the idle deadline, the route's or none for a
        // stream, replaces the head's.
        armTimer(exchange)
        exchange.upstreamKeepAlive = head.isKeepAlive
        if !bodyless, exchange.route.chain.inspectsResponses,
            let limit = exchange.route.chain.responseBufferLimit(
                for: head, context: exchange.filterContext(context.eventLoop))
        {
            run(machine.responseBuffering())
            exchange.heldResponse = (head, context.channel.allocator.buffer(capacity: 0), limit)
            return
        }
        context.write(wrapOutboundOut(.head(clientHead(exchange, head, fromUpstream: true))), promise: nil)
    }

    /// The head the client gets: hop-by-hop headers dropped, the request ID, `Connection: close` when this is the
    /// last answer, and (for the upstream's own answer) its links pointed at the gateway.
    private func clientHead(_ exchange: Exchange, _ head: HTTPResponseHead, fromUpstream: Bool) -> HTTPResponseHead {
        HeaderHygiene.clientHead(
            from: head, clientVersion: exchange.clientHead.version,
            requestID: exchange.requestID, closeAfter: machine.closeAfter,
            links: fromUpstream ? exchange.target.links : nil,
            gatewayBase: LinkRewriter.gatewayBase(clientHost: exchange.clientHead.headers.first(name: "host")))
    }

    /// The whole answer a filter asked for is in: let the filters see it, then send what they say.
    private func deliverHeld(_ exchange: Exchange, _ upstreamHead: HTTPResponseHead, _ upstreamBody: ByteBuffer) {
        var head = upstreamHead
        var body = upstreamBody
        switch exchange.route.chain.encodeResponse(
            &head, body: &body, context: exchange.filterContext(context.eventLoop))
        {
        case .proceed:
            writeWholeAnswer(exchange, head, body, fromUpstream: true)
        case .respondWith(let local):
            writeWholeAnswer(
                exchange, HTTPResponseHead(version: .http1_1, status: local.status, headers: local.headers), local.body)
        case .respondLater(let future):
            suspend(exchange, until: future) { [self] result in
                let local: LocalResponse
                switch result {
                case .success(let answer): local = answer
                case .failure(let error):
                    local = .problem(
                        .followUpFailed(reason: FollowUpCall.describe(error)), requestID: exchange.requestID)
                }
                self.writeWholeAnswer(
                    exchange, HTTPResponseHead(version: .http1_1, status: local.status, headers: local.headers),
                    local.body)
            }
        }
    }

    /// Writes an answer known whole: the upstream's (its own links pointed at the gateway) or one a filter made
    /// (left exactly as made: a presigned URL in a redirect must stay as signed).
    private func writeWholeAnswer(
        _ exchange: Exchange, _ head: HTTPResponseHead, _ body: ByteBuffer, fromUpstream: Bool = false
    ) {
        var head = head
        HeaderHygiene.setContentLength(&head.headers, body.readableBytes)
        exchange.status = head.status.code
        if pool.accessLog != nil { exchange.cacheOutcome = head.headers.first(name: "x-cache") }
        context.write(wrapOutboundOut(.head(clientHead(exchange, head, fromUpstream: fromUpstream))), promise: nil)
        if body.readableBytes > 0 {
            exchange.bodyBytesOut += Int64(body.readableBytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        completeResponse(exchange)
    }

    /// A filter asked to run the request again (a credential it wrote was rejected and replaced, or a retry after
    /// a 429 or 5xx): drop this answer and its connection, and send the request once more from the kept copy of
    /// its body. Never loops: at most the route's `maxReplays` times, then the answer goes to the client whatever
    /// it is.
    private func replay(_ exchange: Exchange, rejectedWith head: HTTPResponseHead) {
        if let connection = exchange.connection { pool.discard(connection) }
        exchange.timerArmed = false
        exchange.attempt += 1
        guard !exchange.replayOverflow else {
            detach(exchange)
            let error = GatewayError.sessionRejectedNotReplayed(
                upstreamStatus: Int(head.status.code), replayCap: exchange.route.replayMaxBodyBytes)
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: false)
            return
        }
        exchange.discardStagedBody()
        exchange.upstream = .filtering(next: 0)
        run(machine.responseRestarted())
        exchange.forwardHead = exchange.clientHead
        exchange.requestSent = false
        exchange.sentAt = nil
        exchange.bodyBytesSent = 0
        exchange.usedReusedConnection = false
        exchange.pending = exchange.replayParts.map { .body(.byteBuffer($0)) }
        if machine.requestComplete { exchange.pending.append(.end(nil)) }
        runFilters(exchange)
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        // Backpressure, request direction: stop reading the client while the upstream cannot take more.
        run(machine.upstreamWritabilityChanged(writable))
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard let exchange = machine.current, exchange.connection === connection else { return }
        pool.discard(connection)
        detach(exchange)
        switch machine.request?.response {
        case .awaitingHead, .buffering:
            // A stale pooled connection: retry once on a fresh one if no body byte went out.
            if machine.awaitingResponseHead && exchange.usedReusedConnection && !exchange.retriedStale
                && exchange.bodyBytesSent == 0
            {
                exchange.retriedStale = true
                exchange.requestSent = false
                exchange.timerArmed = false
                // A spooled body is read again from the spool once connected.
                if machine.requestComplete && !exchange.spoolReady { exchange.pending = [.end(nil)] }
                exchange.upstream = .connecting
                acquire(exchange, fresh: true)
                return
            }
            let error = GatewayError.upstreamReset(upstream: exchange.target.name)
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: false)
        case .streaming:
            // Mid-answer: the client can only learn of it by the connection closing.
            log(exchange, outcome: "upstream closed mid-response")
            exchange.timerArmed = false
            run(machine.failedMidResponse())
        case .complete, nil:
            break
        }
    }
}
