import NIOCore
import NIOHTTP1

/// The route's filter chain on a request: head filters, then a body collected whole for body filters, a body
/// stage, or straight to forwarding.
extension ProxyHandler {
    func runFilters(_ exchange: Exchange) {
        guard case .filtering(let next) = exchange.upstream else { return }
        let (result, index) = exchange.route.chain.runHead(
            from: next, head: &exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
        switch result {
        case .proceed:
            afterHeadFilters(exchange)
        case .retryAfter(let future):
            exchange.upstream = .filtering(next: index)
            suspend(exchange, until: future) { [self] _ in self.runFilters(exchange) }
        case .stop(let response):
            answerForFilter(exchange, response)
        }
    }

    func answerForFilter(_ exchange: Exchange, _ response: LocalResponse) {
        detach(exchange)
        exchange.pending.removeAll()
        finishWithLocal(exchange, response, close: false)
    }

    func answerForFilter(_ exchange: Exchange, _ error: GatewayError) {
        answerForFilter(exchange, .problem(error, requestID: exchange.requestID))
    }

    /// Head filters passed: give the body to a filter's sink, check it in a body stage, or collect it if a filter wants it whole, else
    /// forward at once.
    private func afterHeadFilters(_ exchange: Exchange) {
        let chain = exchange.route.chain
        if !chain.sinks.isEmpty,
            let sink = chain.bodySink(for: exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
        {
            startSinking(exchange, sink)
            return
        }
        if chain.hasBodyStage,
            let stage = chain.bodyStage(for: exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
        {
            startStaging(exchange, stage)
            return
        }
        // A filter that supplies a body the client did not send declares its length in the head it rewrote.
        guard exchange.hasBody || Self.hasBody(exchange.forwardHead),
            let limit = chain.bodyBufferLimit(
                for: exchange.forwardHead, context: exchange.filterContext(context.eventLoop))
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
        if machine.requestComplete { runBodyFilters(exchange) }
    }

    /// Adds a chunk to the collected body; answers 413 and returns false past the limit.
    @discardableResult
    func collect(_ exchange: Exchange, _ buffer: inout ByteBuffer, limit: Int) -> Bool {
        if exchange.collected.readableBytes + buffer.readableBytes > limit {
            abandonUpstream(exchange)
            finishWithLocal(
                exchange, .problem(.bodyTooLarge(limit: Int64(limit)), requestID: exchange.requestID), close: true)
            return false
        }
        exchange.collected.writeBuffer(&buffer)
        return true
    }

    func runBodyFilters(_ exchange: Exchange, from next: Int = 0) {
        exchange.upstream = .bodyFiltering(next: next)
        let (result, index) = exchange.route.chain.runBody(
            from: next, body: &exchange.collected, head: &exchange.forwardHead,
            context: exchange.filterContext(context.eventLoop))
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
            suspend(exchange, until: future) { [self] _ in self.runBodyFilters(exchange, from: index) }
        case .stop(let response):
            answerForFilter(exchange, response)
        }
    }
}
