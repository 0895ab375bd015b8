import NIOCore

/// One request on the fast path, from its head to the end of its answer. Used on its connection's loop only.
final class FastExchange {
    enum Body {
        case none
        case length(Int)
        case chunked(ChunkedFraming)
        case untilClose
    }

    /// A JSON answer held whole for `rewrite_links`.
    struct HeldAnswer {
        var response: FastHead.Response
        var head: ByteBuffer
        var data: ByteBuffer
    }

    let route: CompiledRoute
    let plan: FastRoutePlan
    let target: UpstreamTarget
    /// The client's head, as it came (handed to the full path after a 401 on a session token).
    let head: ByteBuffer
    let request: FastHead.Request
    let requestID: RandomRequestID
    let started: NIODeadline
    let upstreamHead: ByteBuffer
    let sessionToken: SessionToken?
    var connection: UpstreamConnection?
    var reused = false
    var retriedStale = false
    var connectedAt: NIODeadline?
    var sentAt: NIODeadline?
    var firstByteAt: NIODeadline?
    var lastActivity: NIODeadline
    /// An answer head not all in yet.
    var pendingHead: ByteBuffer?
    var response: FastHead.Response?
    var body = Body.none
    var heldAnswer: HeldAnswer?
    /// A held chunked answer that grew too large goes on re-chunked.
    var rechunk = false
    var upstreamReusable = false
    var wroteToClient = false
    var status: UInt = 0
    var bytesIn: Int64 = 0
    var bytesOut: Int64 = 0
    var errorCode: String?
    /// `HIT` for a presign call answered from the cache (the access log's `cache`).
    var cacheOutcome: String?

    init(
        route: CompiledRoute, plan: FastRoutePlan, target: UpstreamTarget, head: ByteBuffer, request: FastHead.Request,
        requestID: RandomRequestID, upstreamHead: ByteBuffer, sessionToken: SessionToken?, now: NIODeadline
    ) {
        self.route = route
        self.plan = plan
        self.target = target
        self.head = head
        self.request = request
        self.requestID = requestID
        self.upstreamHead = upstreamHead
        self.sessionToken = sessionToken
        self.started = now
        self.lastActivity = now
    }

    /// The client's checked `Host` value (for the gateway's address in rewritten links).
    var clientHost: String? {
        head.getString(at: head.readerIndex + request.host.lowerBound, length: request.host.count)
    }

    /// The request target as the client sent it (for the access log).
    var clientTarget: String {
        head.getString(at: head.readerIndex + request.target.lowerBound, length: request.target.count) ?? ""
    }
}
