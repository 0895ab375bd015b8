import NIOCore
import NIOEmbedded
import Testing

@testable import CredGate

/// The head guard's one timer per connection, on a manual clock: a later request's head gets its own deadline.
@Suite struct RequestHeadGuardTests {
    /// Counts the guard's timeouts (inbound user events) and keeps what it passes on.
    final class TimeoutCounter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var timeouts = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is RequestHeadGuard.HeaderTimedOut { timeouts += 1 }
        }
    }

    @Test func aLaterHeadIsTimedFromItsOwnFirstByte() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let counter = TimeoutCounter()
        try channel.pipeline.syncOperations.addHandlers([RequestHeadGuard(timeout: .seconds(2)), counter])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait() // clock: due at 2 s
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        channel.pipeline.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        loop.advanceTime(by: .seconds(1))
        channel.pipeline.triggerUserOutboundEvent(RequestHeadGuard.AwaitingHead(), promise: nil)
        try channel.writeInbound(ByteBuffer(string: "GE")) // the next head starts at 1 s: due at 3 s
        loop.advanceTime(by: .milliseconds(1500)) // 2.5 s: the timer set for the first head fired and re-armed
        #expect(counter.timeouts == 0)
        loop.advanceTime(by: .seconds(1)) // 3.5 s
        #expect(counter.timeouts == 1)
        _ = try? channel.finish()
    }

    @Test func aConnectionIdleBetweenRequestsIsNotCut() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let counter = TimeoutCounter()
        try channel.pipeline.syncOperations.addHandlers([RequestHeadGuard(timeout: .seconds(2)), counter])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        channel.pipeline.triggerUserOutboundEvent(RequestHeadGuard.HeadArrived(), promise: nil)
        channel.pipeline.triggerUserOutboundEvent(RequestHeadGuard.AwaitingHead(), promise: nil)
        loop.advanceTime(by: .seconds(10))
        #expect(counter.timeouts == 0)
        _ = try? channel.finish()
    }
}
