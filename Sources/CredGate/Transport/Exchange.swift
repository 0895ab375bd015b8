import NIOCore
import NIOHTTP1

/// One request in flight on a client connection, from its head to the end of the answer: what its way upstream
/// is doing, and the data the handler moves and logs.
///
/// Whether the request and the answer are complete, whether the rest of the body is dropped and whether the
/// connection closes after the answer are the connection's decisions: ``ProxyStateMachine`` keeps them. The
/// upstream connection goes back to the pool only when the request was sent whole *and* the response was
/// complete and keep-alive.
final class Exchange {
    enum Upstream {
        /// Head filters are running (or waiting for asynchronous work); nothing is connected yet.
        case filtering(next: Int)
        /// A filter wants the whole body: it is being collected, up to this many bytes.
        case collecting(limit: Int)
        /// Body filters are running on the collected body.
        case bodyFiltering(next: Int)
        /// A body stage checks the body as it streams in; what it passes goes to the spool, and nothing is
        /// forwarded before the stage accepted the whole body.
        case staging
        /// A filter's body sink takes the body as it streams and will answer the request; nothing is forwarded.
        case sinking
        /// Waiting for a pooled or new connection.
        case connecting
        case attached(UpstreamConnection)
        /// The upstream is done with (answered, failed, or abandoned).
        case detached
    }

    let clientHead: HTTPRequestHead
    var forwardHead: HTTPRequestHead
    let route: CompiledRoute
    let requestID: String
    let started: NIODeadline
    let clientKeepAlive: Bool
    let expectsContinue: Bool
    let hasBody: Bool

    var upstream: Upstream = .filtering(next: 0)
    /// The `.end` was written to the upstream.
    var requestSent = false
    var bodyBytesIn: Int64 = 0
    var bodyBytesSent: Int64 = 0
    var bodyBytesOut: Int64 = 0
    var pending: [HTTPClientRequestPart] = []
    var usedReusedConnection = false
    var retriedStale = false
    var status: UInt = 0
    var lastActivity: NIODeadline
    var sentAt: NIODeadline?
    /// For the access log: when forwarding started, when the upstream connection was in hand, when the answer's
    /// head arrived; the cache outcome (`X-Cache`) and the gateway's error code (`X-Credgate-Error`).
    var forwardStartedAt: NIODeadline?
    var connectedAt: NIODeadline?
    var firstByteAt: NIODeadline?
    var cacheOutcome: String?
    var errorCode: String?
    /// Whether the connection's exchange timer watches this exchange (set when armed, cleared where the old
    /// per-exchange timer was cancelled).
    var timerArmed = false
    var wroteToUpstream = false
    var upstreamKeepAlive = true
    /// The body collected for body filters.
    var collected = ByteBuffer()
    /// 0 for the first pass through the filters, 1 for the replay after a 401.
    var attempt = 0
    let scratch = RequestScratch()
    /// A copy of the client's body, kept (up to the route's replay cap) when a filter may ask for a replay.
    var replayParts: [ByteBuffer] = []
    var replayBytes = 0
    var replayOverflow = false
    let keepsReplayCopy: Bool
    /// The body stage checking a spooled body, until it finished.
    var stage: (any RequestBodyStage)?
    /// The filter's sink that takes the body and answers the request (``Upstream/sinking``).
    var sink: (any RequestBodySink)?
    /// A part was handed to the sink and not yet taken (or its answer is awaited).
    var sinkBusy = false
    /// Where a staged body waits, whole, until it may be forwarded; read back once connected.
    var spool: BodySpool?
    /// The stage accepted the whole body and the spool holds it: forward from the spool.
    var spoolReady = false
    /// `100 Continue` was sent to the client.
    var sentContinue = false
    /// The upstream's answer head and what arrived of its body, while a filter wants the answer whole (the
    /// machine's response is `.buffering`).
    var heldResponse: (head: HTTPResponseHead, body: ByteBuffer, limit: Int)?

    init(clientHead: HTTPRequestHead, route: CompiledRoute, requestID: String, now: NIODeadline) {
        self.clientHead = clientHead
        self.forwardHead = clientHead
        self.route = route
        self.requestID = requestID
        self.started = now
        self.lastActivity = now
        self.clientKeepAlive = clientHead.isKeepAlive
        self.hasBody = ProxyHandler.hasBody(clientHead)
        self.keepsReplayCopy = route.chain.mayReplay
        self.expectsContinue =
            clientHead.headers.contains(name: "expect")
            && clientHead.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
    }

    var connection: UpstreamConnection? {
        if case .attached(let c) = upstream { return c }
        return nil
    }

    /// Where the request goes. Read only once forwarding started, which a route without an upstream never does
    /// (``ProxyHandler`` answers it instead).
    var target: UpstreamTarget { route.target! }

    /// Drops a staged body and its spool (the spool's file is closed at once), and stops a body sink.
    func discardStagedBody() {
        sink?.cancel()
        sink = nil
        spool?.close()
        spool = nil
        stage = nil
        spoolReady = false
    }

    func filterContext(_ loop: any EventLoop) -> FilterContext {
        FilterContext(
            requestID: requestID, routeName: route.name, eventLoop: loop, clientHead: clientHead,
            attempt: attempt, scratch: scratch)
    }

    /// Keeps a copy of a body chunk for a possible replay, until the route's cap is passed.
    func retainForReplay(_ buffer: ByteBuffer) {
        guard keepsReplayCopy, !replayOverflow else { return }
        replayBytes += buffer.readableBytes
        if replayBytes > route.replayMaxBodyBytes {
            replayOverflow = true
            replayParts = []
        } else {
            replayParts.append(buffer)
        }
    }
}
