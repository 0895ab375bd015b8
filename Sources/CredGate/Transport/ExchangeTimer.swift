import NIOCore

/// One timer per exchange covers the response-head timeout (from the end of the request) and the idle timeout
/// (no byte either way). It is armed for the nearest deadline and, when it fires early, re-arms itself for the one
/// then in force instead of being rescheduled on every chunk.
extension ProxyHandler {
    /// The deadline in force: the response head's while it is awaited after the request went out whole, else the
    /// idle one (the route's `idle_timeout`; none when it is off: `distantFuture`).
    static func deadline(
        awaitingHead: Bool, sentAt: NIODeadline?, lastActivity: NIODeadline,
        responseTimeout: TimeAmount, idleTimeout: TimeAmount?
    ) -> NIODeadline {
        if awaitingHead, let sentAt { return sentAt + responseTimeout }
        guard let idleTimeout else { return .distantFuture }
        return lastActivity + idleTimeout
    }

    func armTimer(_ exchange: Exchange) {
        let deadline = currentDeadline(exchange)
        if let timer = exchange.timer {
            if exchange.timerDeadline <= deadline { return }
            timer.cancel()
            exchange.timer = nil
        }
        // No deadline in force (a stream with `idle_timeout: off`): nothing to arm.
        guard deadline != .distantFuture else { return }
        exchange.timerDeadline = deadline
        exchange.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            exchange.timer = nil
            self.timerFired(exchange)
        }
    }

    private func currentDeadline(_ exchange: Exchange) -> NIODeadline {
        Self.deadline(
            awaitingHead: machine.awaitingResponseHead, sentAt: exchange.sentAt,
            lastActivity: exchange.lastActivity, responseTimeout: exchange.target.config.responseTimeout,
            idleTimeout: exchange.route.idleTimeout)
    }

    private func timerFired(_ exchange: Exchange) {
        guard machine.current === exchange, exchange.connection != nil else { return }
        guard context.eventLoop.now >= currentDeadline(exchange) else {
            armTimer(exchange)
            return
        }
        abandonUpstream(exchange)
        if machine.canStillAnswer {
            let phase = exchange.sentAt == nil ? "idle while sending the request" : "response head"
            let error = GatewayError.upstreamTimeout(upstream: exchange.target.name, phase: phase)
            finishWithLocal(exchange, .problem(error, requestID: exchange.requestID), close: false)
        } else {
            log(exchange, outcome: "upstream idle timeout mid-response")
            run(machine.failedMidResponse())
        }
    }
}
