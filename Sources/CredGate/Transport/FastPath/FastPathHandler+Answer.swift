import NIOCore
import NIOHTTP1

// MARK: - The answer

extension FastPathHandler {
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
        context?.flush()
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
            if exchange.upstreamReusable {
                // Inside an upstream read, its time is now (one clock read fewer per request).
                pool.raw?.release(connection, now: readingUpstream ? exchange.lastActivity : nil)
            } else {
                pool.raw?.discard(connection)
            }
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
        var out = headBuffer(&spareClientHead, capacity: head.readableBytes + 128 + (body?.readableBytes ?? 0))
        let rewriteLocations = response.hasLocation && (response.status == 201 || (300..<400).contains(response.status))
        head.withUnsafeReadableBytes { bytes in
            out.writeStaticString("HTTP/1.1 ")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[response.statusText]))
            out.writeStaticString("\r\n")
            var lines = HeaderLineCopier()
            FastHead.forEachHeader(bytes, from: response.headersStart, to: response.length) { name, value in
                if Self.dropped(bytes, name, response, replacingFraming: contentLength != nil) { return true }
                if rewriteLocations,
                    FastHead.equalsLowercased(bytes, name, "location")
                        || FastHead.equalsLowercased(bytes, name, "content-location"),
                    let gateway = LinkRewriter.gatewayBase(clientHost: exchange.clientHost),
                    let rewritten = exchange.target.links.rewriteHeader(
                        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[value]), as: UTF8.self), to: gateway)
                {
                    lines.flush(bytes, into: &out)
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[name]))
                    out.writeStaticString(": ")
                    out.writeString(rewritten)
                    out.writeStaticString("\r\n")
                    return true
                }
                lines.copy(bytes, name, value, into: &out)
                return true
            } onMalformed: {
            }
            lines.flush(bytes, into: &out)
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
        exchange.requestID.write(into: &out)
        out.writeStaticString(closeWhenDone ? "\r\nconnection: close\r\n\r\n" : "\r\n\r\n")
        if var body, body.readableBytes > 0 {
            exchange.bytesOut += Int64(body.readableBytes)
            out.writeBuffer(&body)
        }
        exchange.wroteToClient = true
        context.write(wrapOutboundOut(out), promise: nil)
        keepSpare(out, in: &spareClientHead)
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
}
