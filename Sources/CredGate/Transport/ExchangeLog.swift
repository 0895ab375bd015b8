import NIOCore
import NIOHTTP1

/// The counters, metrics and access-log line of each answered request.
extension ProxyHandler {
    func log(_ exchange: Exchange, outcome: String?) {
        exchange.route.count(
            method: exchange.clientHead.method, status: exchange.status, bytesIn: exchange.bodyBytesIn,
            bytesOut: exchange.bodyBytesOut, nanoseconds: (context.eventLoop.now - exchange.started).nanoseconds,
            cutShort: outcome != nil, fastPath: false, retriedStale: exchange.retriedStale)
        // Plain values only: the access log formats them on its own thread.
        guard let accessLog = pool.accessLog else { return }
        let now = context.eventLoop.now
        let forwardStarted = exchange.forwardStartedAt
        accessLog.append(
            AccessRecord(
                startedAtNanos: accessLog.wallNanos(exchange.started), requestID: .text(exchange.requestID),
                route: exchange.route.name,
                method: exchange.clientHead.method.rawValue, target: exchange.clientHead.uri, status: exchange.status,
                bytesIn: exchange.bodyBytesIn, bytesOut: exchange.bodyBytesOut,
                durationNanos: (now - exchange.started).nanoseconds,
                upstream: exchange.route.target?.name,
                connectNanos: forwardStarted.flatMap { start in exchange.connectedAt.map { ($0 - start).nanoseconds } },
                firstByteNanos: forwardStarted.flatMap { start in exchange.firstByteAt.map { ($0 - start).nanoseconds }
                },
                credentials: exchange.route.credentialNames, cache: exchange.cacheOutcome, error: exchange.errorCode,
                outcome: outcome))
    }

    /// A request answered before it had a route (a bad head, no route).
    func logUnrouted(_ response: LocalResponse, head: HTTPRequestHead, requestID: String) {
        runtime.metrics.unrouted.record(
            method: head.method, status: response.status.code, bytesIn: 0,
            bytesOut: Int64(response.body.readableBytes), nanoseconds: 0)
        guard let accessLog = pool.accessLog else { return }
        let now = context.eventLoop.now
        accessLog.append(
            AccessRecord(
                startedAtNanos: accessLog.wallNanos(now), requestID: .text(requestID), route: nil,
                method: head.method.rawValue,
                target: head.uri, status: response.status.code, bytesIn: 0,
                bytesOut: Int64(response.body.readableBytes),
                durationNanos: 0, upstream: nil, connectNanos: nil, firstByteNanos: nil, credentials: [],
                cache: nil, error: response.headers.first(name: "x-credgate-error"), outcome: nil))
    }
}
