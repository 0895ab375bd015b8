import NIOCore
import NIOHTTP1

/// Watches a client connection's raw bytes, in front of the HTTP decoder, for the two ways a client can hold a
/// connection without ever sending a request head:
///
/// - **Slowloris**: a head sent a byte at a time, or never. From the connection's start (for its first request)
///   or the first byte of a later request, the head must be in within
///   `listen.header_timeout` (nginx's `client_header_timeout`, HAProxy's `timeout http-request`); otherwise the
///   ``ProxyHandler`` is told (``HeaderTimedOut``) and answers 408 and closes.
/// - **A request line with no HTTP version** (HTTP/0.9, `GET /\r\n`): the decoder would wait for more; it is
///   refused as malformed (400) as soon as its line break arrives.
///
/// ``ProxyHandler`` says when a head arrived (``HeadArrived``) and when the connection waits for the next one
/// (``AwaitingHead``), as outbound user events: the guard cannot tell where a body ends.
final class RequestHeadGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Outbound event from ``ProxyHandler``: a request head was decoded.
    struct HeadArrived: Sendable {}
    /// Outbound event from ``ProxyHandler``: the connection is waiting for the next request.
    struct AwaitingHead: Sendable {}
    /// Inbound event to ``ProxyHandler``: the head did not arrive in time.
    struct HeaderTimedOut: Sendable {
        var timeout: TimeAmount
    }
    /// A request line without an HTTP version.
    struct NoHTTPVersion: Error {}

    private enum Phase {
        /// Between requests, or reading a request line `lineLength` bytes long so far (its last bytes in `tail`).
        case awaitingHead(lineLength: Int)
        /// The request line was checked; the rest of the head is the decoder's.
        case lineChecked
        /// A head arrived; bytes are body or later pipelined requests.
        case inRequest
        case failed
    }

    private let timeout: TimeAmount
    private var phase: Phase = .awaitingHead(lineLength: 0)
    /// The head clock's timer, kept across requests (see ``ReArmingTimer``).
    private var timer = ReArmingTimer()
    /// When the head being awaited must be in; nil while no head clock runs.
    private var deadline: NIODeadline?
    /// The last bytes of the request line being read (enough for ` HTTP/1.1\r`).
    private var tail: [UInt8] = []
    /// Heads that arrived (``headArrived()``): a read that brought one needs no head clock.
    private var headsArrived = 0
    private var context: ChannelHandlerContext?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        // A new connection must bring its first head in time even if it never sends a byte; between requests
        // on a kept-alive connection the clock starts at the next request's first byte (the idle timeout
        // governs the wait before it), as nginx does.
        startClock(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .inRequest, .lineChecked:
            context.fireChannelRead(data)
        case .failed:
            break
        case .awaitingHead(let lineLength):
            guard checkRequestLine(unwrapInboundIn(data), lineLength: lineLength) else {
                phase = .failed
                return context.fireErrorCaught(HTTPParserError.invalidVersion)
            }
            guard deadline == nil else { return context.fireChannelRead(data) }
            // The clock starts at the head's first byte, but only once these bytes are passed on and only if the
            // head did not arrive with them: a whole head in one read, the usual request, costs no clock read and
            // no timer (the clock would start and stop within this call).
            let heads = headsArrived
            context.fireChannelRead(data)
            guard headsArrived == heads, deadline == nil else { return }
            switch phase {
            case .awaitingHead, .lineChecked: startClock(context)
            case .inRequest, .failed: break
            }
        }
    }

    /// Scans for the end of the request line; false when it ends without an HTTP version.
    private func checkRequestLine(_ buffer: ByteBuffer, lineLength: Int) -> Bool {
        // The usual read: a whole request line from its start, judged in place.
        if lineLength == 0, tail.isEmpty, let ok = buffer.withUnsafeReadableBytes(Self.wholeLineVerdict) {
            phase = .lineChecked
            return ok
        }
        var length = lineLength
        let view = buffer.readableBytesView
        var start = view.startIndex
        // Line by line (a search for each line break, not a step per byte): only a line's last 16 bytes are kept.
        while let end = view[start...].firstIndex(of: UInt8(ascii: "\n")) {
            keepTail(view[start..<end])
            length += end - start
            start = end + 1
            if tail.last == UInt8(ascii: "\r") { tail.removeLast() }
            if length <= 1 && tail.isEmpty {
                // An empty line before the request line is allowed (RFC 9112 section 2.2).
                length = 0
                continue
            }
            let ok = tail.withUnsafeBytes(Self.endsWithVersion)
            tail.removeAll(keepingCapacity: true)
            phase = .lineChecked
            return ok
        }
        keepTail(view[start...])
        length += view.endIndex - start
        phase = .awaitingHead(lineLength: length)
        return true
    }

    /// Appends bytes of the request line to ``tail``, keeping its last 16.
    private func keepTail(_ bytes: ByteBufferView.SubSequence) {
        if bytes.count >= 16 {
            tail.removeAll(keepingCapacity: true)
            tail.append(contentsOf: bytes.suffix(16))
        } else {
            tail.append(contentsOf: bytes)
            if tail.count > 16 { tail.removeFirst(tail.count - 16) }
        }
    }

    /// For bytes that start with a request line (no empty line first) and hold its line break: whether the line
    /// ends with a version, as the general scan would judge it; nil otherwise (the general scan decides).
    private static func wholeLineVerdict(_ bytes: UnsafeRawBufferPointer) -> Bool? {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        var end = newline
        if end > 0 && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard end > 0 else { return nil }
        return endsWithVersion(UnsafeRawBufferPointer(rebasing: bytes[..<end]))
    }

    /// Whether a request line ends with ` HTTP/<digit>.<digit>`: a version the decoder judges.
    private static func endsWithVersion(_ line: UnsafeRawBufferPointer) -> Bool {
        guard line.count >= 9 else { return false }
        let v = UnsafeRawBufferPointer(rebasing: line[(line.count - 9)...])
        return v.prefix(6).elementsEqual(" HTTP/".utf8) && isDigit(v[6]) && v[7] == UInt8(ascii: ".")
            && isDigit(v[8])
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        switch event {
        case is HeadArrived:
            headArrived()
            promise?.succeed()
        case is AwaitingHead:
            awaitingHead()
            promise?.succeed()
        default:
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    /// A request head was read (``HeadArrived``; the fast path calls it directly, on the channel's loop).
    func headArrived() {
        deadline = nil
        headsArrived &+= 1
        phase = .inRequest
    }

    /// The connection waits for the next head (``AwaitingHead``; the fast path calls it directly).
    ///
    /// - Parameter begun: bytes of the next head are already in (pipelined behind the request just answered,
    ///   held by the fast path): its clock starts now, as no later read may come to start it, and its request
    ///   line, which this guard saw pass mid-request, is not judged again (the fast path's parser or the decoder
    ///   judges it; a line without a version then waits for the deadline).
    func awaitingHead(begun: Bool = false) {
        if case .failed = phase { return }
        deadline = nil
        tail.removeAll(keepingCapacity: true)
        phase = begun ? .lineChecked : .awaitingHead(lineLength: 0)
        if begun, let context { startClock(context) }
    }

    private func startClock(_ context: ChannelHandlerContext) {
        let deadline = context.eventLoop.now + timeout
        self.deadline = deadline
        arm(at: deadline, context)
    }

    private func arm(at deadline: NIODeadline, _ context: ChannelHandlerContext) {
        if timer.isDue(by: deadline) { return }
        timer.arm(at: deadline, on: context.eventLoop) { [self] in
            self.timer.fired()
            guard let deadline = self.deadline else { return } // no head awaited now: the next clock arms it
            switch self.phase {
            case .awaitingHead, .lineChecked:
                if context.eventLoop.now >= deadline {
                    context.fireUserInboundEventTriggered(HeaderTimedOut(timeout: self.timeout))
                } else {
                    self.arm(at: deadline, context)
                }
            case .inRequest, .failed:
                break
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer.cancel()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.cancel()
        context.fireChannelInactive()
    }
}
