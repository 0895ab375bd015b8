import NIOCore

/// One timer per connection covers the response-head timeout (from the end of the request) and the idle timeout
/// (no byte either way) of its exchanges. It is armed for the nearest deadline and, when it fires early, re-arms
/// itself for the one then in force instead of being rescheduled on every chunk; it outlives the exchange it was
/// armed for (an exchange is "disarmed" instead of the timer being cancelled): a ``ReArmingTimer``, cancelled when the
/// connection closes.
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
        // No deadline in force (a stream with `idle_timeout: off`): nothing to watch.
        guard deadline != .distantFuture else {
            exchange.timerArmed = false
            return
        }
        exchange.timerArmed = true
        if exchangeTimer.isDue(by: deadline) { return }
        exchangeTimer.arm(at: deadline, on: context.eventLoop) { [self] in
            self.exchangeTimer.fired()
            self.timerFired()
        }
    }

    private func currentDeadline(_ exchange: Exchange) -> NIODeadline {
        Self.deadline(
            awaitingHead: machine.awaitingResponseHead, sentAt: exchange.sentAt,
            lastActivity: exchange.lastActivity, responseTimeout: exchange.target.config.responseTimeout,
            idleTimeout: exchange.route.idleTimeout)
    }

    private func timerFired() {
        guard let exchange = machine.current, exchange.timerArmed, exchange.connection != nil else { return }
        guard context.eventLoop.now >= currentDeadline(exchange) else {
            armTimer(exchange)
            return
        }
        exchange.timerArmed = false
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
