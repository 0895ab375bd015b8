import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Sends raw bytes over TCP and collects everything the server answers, for requests no HTTP client would
/// send (absolute-form targets, `..` segments, smuggling attempts, pipelining).
enum RawClient {
    /// Writes `request`, then reads until the server closes or `idle` passes with no byte (or `until` is seen).
    /// Before the first byte the wait is at least `firstByte`: on a loaded 2-core machine the first answer (a new
    /// upstream connection, a cold sandbox) can take seconds, which is not the silence `idle` is about.
    static func exchange(
        port: Int, _ request: String, idle: TimeAmount = .milliseconds(1500), firstByte: TimeAmount = .seconds(10),
        until: String? = nil
    ) async throws -> String {
        let collector = Collector(until: until)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(ByteBuffer(string: request))
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            let (closed, text, last) = collector.snapshot()
            if closed { break }
            if let until, text.contains(until) { break }
            let quiet = text.isEmpty ? max(idle, firstByte) : idle
            if ContinuousClock.now - last > .nanoseconds(quiet.nanoseconds) { break }
        }
        try? await channel.close()
        return collector.snapshot().1
    }

    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        private let lock = NIOLock()
        private var text = ""
        private var closed = false
        private var last = ContinuousClock.now
        let until: String?

        init(until: String?) { self.until = until }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            lock.withLock {
                text += String(buffer: buffer)
                last = .now
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            lock.withLock { closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        func snapshot() -> (Bool, String, ContinuousClock.Instant) {
            lock.withLock { (closed, text, last) }
        }
    }
}

extension String {
    /// The status code of the first HTTP response in a raw answer.
    var firstStatus: Int? {
        guard let line = split(separator: "\r\n").first, line.hasPrefix("HTTP/1.") else { return nil }
        let parts = line.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) : nil
    }

    /// Status codes of all responses in order (a status line may follow a body with no line break).
    var statuses: [Int] {
        matches(of: #/HTTP\/1\.[01] (\d{3}) /#).compactMap { Int($0.output.1) }
    }
}
