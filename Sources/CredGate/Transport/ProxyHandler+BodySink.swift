import NIOCore
import NIOHTTP1

/// Bodies a filter's ``RequestBodySink`` takes as they stream: each chunk is handed over once the previous one
/// was taken, and the client is not read meanwhile (the machine counts a pending hand-over as it counts a spool
/// write), so the sink's own pace holds the client back. The sink's answer is the request's answer.
extension ProxyHandler {
    func startSinking(_ exchange: Exchange, _ sink: any RequestBodySink) {
        exchange.sink = sink
        exchange.upstream = .sinking
        // The body must come for the sink to take it.
        sendContinueIfExpected(exchange)
        // What arrived while the head filters ran (the end too, if it came) waits in `pending`.
        pumpSink(exchange)
    }

    /// A part of the body for the sink: queued behind any hand-over still pending.
    func sinkReceived(_ exchange: Exchange, _ part: HTTPClientRequestPart) {
        exchange.pending.append(part)
        if !exchange.sinkBusy { pumpSink(exchange) }
    }

    /// Hands the next queued part to the sink; called again when the sink took it.
    private func pumpSink(_ exchange: Exchange) {
        guard let sink = exchange.sink, !exchange.sinkBusy, !exchange.pending.isEmpty else { return }
        let part = exchange.pending.removeFirst()
        switch part {
        case .body(.byteBuffer(let buffer)):
            exchange.sinkBusy = true
            run(machine.spoolWriteStarted())
            sink.write(buffer).hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
                guard self.machine.current === exchange, exchange.sink === sink else { return }
                exchange.sinkBusy = false
                self.run(self.machine.spoolWriteFinished())
                switch result {
                case .success(.more):
                    self.pumpSink(exchange)
                case .success(.answer(let response)):
                    self.answerForFilter(exchange, response)
                case .failure:
                    self.answerForFilter(exchange, .followUpFailed(reason: "the request body could not be handed on"))
                }
            }
        case .end:
            exchange.sinkBusy = true
            suspend(exchange, until: sink.finish()) { [self] result in
                guard exchange.sink === sink else { return }
                switch result {
                case .success(let response):
                    self.answerForFilter(exchange, response)
                case .failure:
                    self.answerForFilter(exchange, .followUpFailed(reason: "the request could not be completed"))
                }
            }
        case .head, .body:
            pumpSink(exchange)
        }
    }
}
