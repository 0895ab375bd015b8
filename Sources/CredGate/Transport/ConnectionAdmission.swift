import NIOConcurrencyHelpers
import NIOCore

/// Counts client connections, in all and per peer address, and pauses the listener at the cap.
///
/// At `limit` the listening socket stops accepting (`autoRead` off): further connections wait in the kernel's
/// backlog instead of each taking a descriptor and memory here, and accepting resumes as soon as one closes.
/// Connections accepted over a cap all the same (the listener accepts in batches) get a 503 at once.
final class ConnectionAdmission: Sendable {
    enum Verdict: Equatable { case admitted, overLimit, overPeerLimit }

    private struct Counts {
        var total = 0
        var byPeer: [String: Int] = [:]
        var paused = false
    }

    private let limit: Int
    private let perPeer: Int
    private let counts = NIOLockedValueBox(Counts())

    init(limit: Int, perPeer: Int) {
        self.limit = limit
        self.perPeer = perPeer
    }

    /// Client connections open now (for `/credgate/metrics`).
    var open: Int { counts.withLockedValue { $0.total } }

    func admit(peer: String, listener: (any Channel)?) -> Verdict {
        let (verdict, pause) = counts.withLockedValue { c -> (Verdict, Bool) in
            guard c.total < limit else { return (.overLimit, false) }
            let mine = c.byPeer[peer, default: 0]
            if perPeer > 0 && mine >= perPeer { return (.overPeerLimit, false) }
            c.total += 1
            c.byPeer[peer] = mine + 1
            let pause = c.total >= limit && !c.paused
            if pause { c.paused = true }
            return (.admitted, pause)
        }
        if pause { _ = listener?.setOption(ChannelOptions.autoRead, value: false) }
        return verdict
    }

    func release(peer: String, listener: (any Channel)?) {
        let resume = counts.withLockedValue { c -> Bool in
            c.total -= 1
            let mine = c.byPeer[peer, default: 1] - 1
            c.byPeer[peer] = mine > 0 ? mine : nil
            let resume = c.paused && c.total < limit
            if resume { c.paused = false }
            return resume
        }
        if resume { _ = listener?.setOption(ChannelOptions.autoRead, value: true) }
    }
}

/// A connection over a cap: a 503 written at once (the client may not have sent anything yet), then the write
/// side shut and the connection closed shortly after, so a request already on its way is not met with a reset
/// before the 503 can be read.
final class RefuseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let verdict: ConnectionAdmission.Verdict
    let limit: Int

    init(verdict: ConnectionAdmission.Verdict, limit: Int) {
        self.verdict = verdict
        self.limit = limit
    }

    func channelActive(context: ChannelHandlerContext) {
        let requestID = RequestID.generate()
        let error: GatewayError =
            verdict == .overPeerLimit ? .tooManyConnectionsFromPeer(limit: limit) : .tooManyConnections(limit: limit)
        let response = LocalResponse.problem(error, requestID: requestID)
        var head = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head +=
            "x-request-id: \(requestID)\r\ncontent-length: \(response.body.readableBytes)\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
        var bytes = context.channel.allocator.buffer(string: head)
        var body = response.body
        bytes.writeBuffer(&body)
        let channel = context.channel
        let loop = context.eventLoop
        context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            loop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever the client sends is dropped.
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
    }
}
