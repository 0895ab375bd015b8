import NIOCore
import NIOHTTP1

/// Bodies checked whole by a body stage before anything is forwarded: what the stage passes waits in a
/// ``BodySpool`` and is read back once an upstream connection is in hand.
extension ProxyHandler {
    func startStaging(_ exchange: Exchange, _ stage: any RequestBodyStage) {
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
    @discardableResult
    func stageFeed(_ exchange: Exchange, _ buffer: ByteBuffer) -> Bool {
        guard let stage = exchange.stage else { return false }
        switch stage.feed(buffer) {
        case .pass(let parts):
            for part in parts { spoolAppend(exchange, part) }
            return true
        case .respond(let error):
            exchange.discardStagedBody()
            answerForFilter(exchange, error)
            return false
        }
    }

    func stageEnd(_ exchange: Exchange) {
        guard let stage = exchange.stage else { return }
        var head = exchange.forwardHead
        switch stage.finish(head: &head) {
        case .pass(let parts):
            exchange.forwardHead = head
            // The stage stays set until every part is handed over: an append that completes at once (in memory)
            // must not seal the spool before the next one is in.
            for part in parts { spoolAppend(exchange, part) }
            exchange.stage = nil
            if machine.spoolWrites == 0 { spoolComplete(exchange) }
        case .respond(let error):
            exchange.discardStagedBody()
            answerForFilter(exchange, error)
        }
    }

    private func spoolAppend(_ exchange: Exchange, _ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, let spool = exchange.spool else { return }
        run(machine.spoolWriteStarted())
        spool.append(buffer).hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard self.machine.current === exchange else { return }
            self.run(self.machine.spoolWriteFinished())
            guard case .staging = exchange.upstream, exchange.spool === spool else { return }
            if case .failure(let error) = result {
                self.spoolFailed(exchange, error)
                return
            }
            if exchange.stage == nil && self.machine.spoolWrites == 0 { self.spoolComplete(exchange) }
        }
    }

    /// The stage accepted the body and every byte is in the spool: forward the request, body from the spool.
    private func spoolComplete(_ exchange: Exchange) {
        guard let spool = exchange.spool else { return }
        spool.finish().hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard self.machine.current === exchange, exchange.spool === spool else { return }
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
        exchange.discardStagedBody()
        let reason = Self.describe(spoolError: error)
        runtime.logger.error(
            "request body spool failed", metadata: ["request_id": "\(exchange.requestID)", "error": "\(reason)"])
        answerForFilter(exchange, .spoolFailed(reason: reason))
    }

    private static func describe(spoolError error: any Error) -> String {
        if let e = error as? IOError { return e.description }
        return "an I/O error"
    }

    /// Streams the spooled body to the upstream, one chunk in flight at a time (the write's completion is the
    /// backpressure), then ends the request.
    func pumpSpool(_ exchange: Exchange, _ connection: UpstreamConnection, _ spool: BodySpool) {
        struct Stopped: Error {}
        let loop = context.eventLoop
        spool.read { [self] chunk in
            guard self.machine.current === exchange, exchange.connection === connection else {
                return loop.makeFailedFuture(Stopped())
            }
            let promise = loop.makePromise(of: Void.self)
            exchange.bodyBytesSent += Int64(chunk.readableBytes)
            exchange.lastActivity = loop.now
            connection.write(.body(.byteBuffer(chunk)), promise: promise)
            connection.flush()
            return promise.futureResult
        }.hop(to: loop).assumeIsolated().whenComplete { [self] result in
            guard self.machine.current === exchange, exchange.connection === connection else { return }
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
}
