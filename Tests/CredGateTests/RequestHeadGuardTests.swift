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

    /// Whether the guard refuses `bytes` (a line without an HTTP version), fed in one read or a byte at a time.
    static func refuses(_ bytes: [UInt8], byteByByte: Bool) throws -> Bool {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RequestHeadGuard(timeout: .seconds(2)))
        defer { _ = try? channel.finish() }
        do {
            if byteByByte {
                for byte in bytes { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
            } else {
                try channel.writeInbound(ByteBuffer(bytes: bytes))
            }
            return false
        } catch {
            return true
        }
    }

    /// The whole line judged in place (the usual read) and the line scanned across reads agree.
    @Test(arguments: [
        "GET / HTTP/1.1\r\n", "GET /\r\n", "GET / HTTP/1.1\n", "\r\nGET / HTTP/1.1\r\n", "\r\nGET /\r\n",
        "GET / HTTP/1.1\r\r\n", "GET / HTTP/x.1\r\n", "GET / HTTP/1.x\r\n", "x\r\n", "\n\nGET / HTTP/2.0\n",
        "GET /a-long-path/that-goes-on/and-on?query=1 HTTP/1.0\r\nHost: a\r\n", "HTTP/1.1\r\n", " HTTP/1.1\r\n",
    ])
    func aWholeLineIsJudgedAsALineReadByteByByte(line: String) throws {
        let bytes = Array(line.utf8)
        #expect(try Self.refuses(bytes, byteByByte: false) == Self.refuses(bytes, byteByByte: true))
    }

    @Test func aVersionlessLineIsRefusedAndAVersionedOneIsNot() throws {
        #expect(try Self.refuses(Array("GET /\r\n".utf8), byteByByte: false))
        #expect(try !Self.refuses(Array("GET / HTTP/1.1\r\n".utf8), byteByByte: false))
    }

    /// A whole head in one read, whose arrival is told while the read is passed on, starts no clock; bytes of the
    /// next head already held when the next head is awaited (``RequestHeadGuard/awaitingHead(begun:)``) start it.
    @Test func aHeldNextHeadIsTimedFromWhenItIsAwaited() throws {
        final class ToldOnRead: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            let headGuard: RequestHeadGuard
            init(_ headGuard: RequestHeadGuard) { self.headGuard = headGuard }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) { headGuard.headArrived() }
        }
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let counter = TimeoutCounter()
        let headGuard = RequestHeadGuard(timeout: .seconds(2))
        try channel.pipeline.syncOperations.addHandlers([headGuard, ToldOnRead(headGuard), counter])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b"))
        headGuard.awaitingHead()
        loop.advanceTime(by: .seconds(5))
        #expect(counter.timeouts == 0)
        headGuard.awaitingHead(begun: true)
        loop.advanceTime(by: .milliseconds(1900))
        #expect(counter.timeouts == 0)
        loop.advanceTime(by: .milliseconds(200))
        #expect(counter.timeouts == 1)
        _ = try? channel.finish()
    }
}
