import NIOCore
import NIOHTTP1

/// What a filter tells the transport after seeing the request head or body.
///
/// Modelled on Envoy's HTTP filters: a filter lets the request go on, answers it locally (nothing is forwarded),
/// or asks to be called again once some asynchronous work (a login, a cache fill) is done. The transport keeps
/// the client's body back meanwhile.
enum FilterHeadResult: Sendable {
    case proceed
    /// Stop here and answer the client with this (nothing more is forwarded).
    case stop(LocalResponse)
    /// Call this filter again once the future completes (on the connection's event loop).
    case retryAfter(EventLoopFuture<Void>)

    /// Stop with one of the catalogue's errors as problem+json.
    static func problem(_ error: GatewayError, _ context: FilterContext) -> FilterHeadResult {
        .stop(.problem(error, requestID: context.requestID))
    }
}

/// What a filter says about the upstream's answer head.
enum UpstreamVerdict: Sendable {
    case forward
    /// Drop this answer and run the request through the chain once more (a 401 after a session token was
    /// replaced, a retry after a 429). The transport does this at most the route's `maxReplays` times per request,
    /// and only when it kept the whole body.
    case replay
}

/// What a filter says about the whole upstream answer it asked to see (``ResponseFilter/responseBufferLimit(for:context:)``).
enum ResponseFilterResult: Sendable {
    /// Send the (possibly rewritten) answer on.
    case proceed
    /// Send this answer instead.
    case respondWith(LocalResponse)
    /// Send the answer this future gives (a follow-up call the filter makes); the client waits meanwhile.
    case respondLater(EventLoopFuture<LocalResponse>)
}

/// What a body stage says about the bytes it was given.
enum BodyStageResult {
    /// These bytes (the client's, possibly rewritten) are good so far; the transport keeps them.
    case pass([ByteBuffer])
    /// Refuse the request with this answer: nothing was or will be forwarded.
    case respond(GatewayError)
}

/// A streaming check of a request body, for bodies too large to buffer in memory (uploads): the transport feeds it
/// every chunk as it arrives and stores what it passes (in memory, then in an encrypted spool file); only when
/// ``finish(head:)`` passes does anything, head included, go to the upstream. So a refused body never reaches the
/// platform, and memory stays small whatever the body's size.
///
/// Used on the connection's event loop only (hence `@unchecked Sendable` conformances, like ``RequestScratch``).
protocol RequestBodyStage: AnyObject, Sendable {
    func feed(_ chunk: ByteBuffer) -> BodyStageResult
    /// The body ended. May rewrite the upstream head (the transport then sets `Content-Length` to the stored size).
    func finish(head: inout HTTPRequestHead) -> BodyStageResult
}

/// What a body sink says once it took a chunk.
enum BodySinkResult: Sendable {
    /// Send more (the client is read again).
    case more
    /// Answer the client now with this: the rest of its body is read and dropped (an upload that failed mid-way).
    case answer(LocalResponse)
}

/// A request body taken over by a filter as it streams, with backpressure: the filter sends the bytes somewhere
/// itself (an upload's parts to their presigned URLs), and answers the request; nothing is forwarded to the route's
/// upstream by the transport. The transport does not read the client while a ``write(_:)`` is pending, so memory
/// stays bounded by what the sink itself holds, whatever the body's size and however slow the place it goes.
///
/// The transport calls, on the connection's event loop: ``write(_:)`` for each chunk (the next only once the
/// previous future completed with ``BodySinkResult/more``), then ``finish()`` at the body's end, whose answer the
/// client gets; ``cancel()`` when the request is cut short (the client went away, a malformed body, the gateway
/// answered otherwise) or after an answer, and it must then stop whatever it started. Futures may complete on
/// any loop.
protocol RequestBodySink: AnyObject, Sendable {
    func write(_ chunk: ByteBuffer) -> EventLoopFuture<BodySinkResult>
    func finish() -> EventLoopFuture<LocalResponse>
    /// Stops everything the sink started; safe more than once and after ``finish()``.
    func cancel()
}

/// A typed key for ``RequestScratch``: a filter that leaves something for a later stage (or another filter)
/// declares the key as a static constant, so every reader names the writer (as Hummingbird's typed request
/// context does).
struct ScratchKey<Value: Sendable>: Sendable {
    let name: String
    init(_ name: String) { self.name = name }
}

/// Per-request state shared by the filters of one request: what each filter needs to remember between the
/// head, the body and the answer (for example which session token it injected).
final class RequestScratch: @unchecked Sendable {
    // Only touched on the connection's event loop.
    private var values: [String: any Sendable] = [:]
    init() {}

    subscript<Value>(_ key: ScratchKey<Value>) -> Value? {
        get { values[key.name] as? Value }
        set { values[key.name] = newValue }
    }
}

/// Per-request facts a filter may read.
struct FilterContext: Sendable {
    var requestID: String
    var routeName: String
    var eventLoop: any EventLoop
    /// The head as the client sent it, before any filter (for example its own `Authorization`).
    var clientHead: HTTPRequestHead
    /// How many times the request was sent again so far: 0 for the first pass.
    var attempt: Int
    var scratch: RequestScratch

    init(
        requestID: String, routeName: String, eventLoop: any EventLoop, clientHead: HTTPRequestHead,
        attempt: Int = 0, scratch: RequestScratch = RequestScratch()
    ) {
        self.requestID = requestID
        self.routeName = routeName
        self.eventLoop = eventLoop
        self.clientHead = clientHead
        self.attempt = attempt
        self.scratch = scratch
    }
}

/// A policy stage. Filters never touch a channel; the transport runs them in order on the connection's event
/// loop. A filter conforms to one protocol per hook it implements, so a filter that has a hook is always called
/// for it (there is no flag to forget): ``HeadFilter``, ``BodyFilter``, ``BodyStageFilter``, ``ReplayFilter``,
/// ``ResponseFilter``. Modelled on Envoy's HTTP filters (decodeHeaders / decodeData / encodeHeaders).
protocol RequestFilter: Sendable {}

/// Sees (and may rewrite) the request head, in chain order.
protocol HeadFilter: RequestFilter {
    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult
}

/// Must see the whole (small) body before the request may be forwarded.
protocol BodyFilter: RequestFilter {
    /// How many body bytes this filter must see whole; `nil` lets the body stream through (for this request).
    /// A larger body is refused with 413.
    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int?
    /// Called with the whole body when ``bodyBufferLimit(for:context:)`` asked for it; may rewrite it (the
    /// transport fixes `Content-Length`).
    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult
}

/// Checks a large body as it streams, before anything is forwarded (see ``RequestBodyStage``).
protocol BodyStageFilter: RequestFilter {
    /// The stage for this request, asked once the head filters passed; `nil` for none. At most one per
    /// request: the first filter's wins.
    func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)?
}

/// Takes the body over as it streams, sends it somewhere itself and answers the request (see ``RequestBodySink``).
protocol BodySinkFilter: RequestFilter {
    /// The sink for this request, asked once the head filters passed, before any body stage; `nil` for none. At
    /// most one per request: the first filter's wins.
    func bodySink(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodySink)?
}

/// May ask for the request to be sent once more after the upstream's answer head (a session token replaced
/// after a 401). The transport keeps a copy of the body, up to the route's replay cap, for routes with one.
protocol ReplayFilter: RequestFilter {
    func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict
}

/// Must see the upstream's answer whole (head and body) before the client gets any of it.
protocol ResponseFilter: RequestFilter {
    /// How many bytes of the answer to hold; `nil` lets it stream. A larger answer is passed on unchanged,
    /// without ``encodeResponse(_:body:context:)``.
    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int?
    /// Called with the whole answer; may rewrite it (the transport fixes `Content-Length`), replace it, or
    /// replace it later.
    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext)
        -> ResponseFilterResult
}

/// A route's filters in order, sorted once by the hooks they implement, with the index of the next head or body
/// filter to run so a suspended chain can resume.
struct FilterChain: Sendable {
    let filters: [any RequestFilter]
    let heads: [any HeadFilter]
    let bodies: [any BodyFilter]
    let stages: [any BodyStageFilter]
    let sinks: [any BodySinkFilter]
    let replays: [any ReplayFilter]
    let responses: [any ResponseFilter]

    /// Whether any filter may ask for a replay.
    var mayReplay: Bool { !replays.isEmpty }
    /// Whether any filter may check the body as a stage.
    var hasBodyStage: Bool { !stages.isEmpty }
    /// Whether any filter may want to see answers whole.
    var inspectsResponses: Bool { !responses.isEmpty }

    init(_ filters: [any RequestFilter]) {
        self.filters = filters
        self.heads = filters.compactMap { $0 as? any HeadFilter }
        self.bodies = filters.compactMap { $0 as? any BodyFilter }
        self.stages = filters.compactMap { $0 as? any BodyStageFilter }
        self.sinks = filters.compactMap { $0 as? any BodySinkFilter }
        self.replays = filters.compactMap { $0 as? any ReplayFilter }
        self.responses = filters.compactMap { $0 as? any ResponseFilter }
    }

    /// Runs `decodeHead` from head filter `index` on; returns the first result that is not `.proceed` and the
    /// index it came from, or `.proceed` with the count when all passed.
    func runHead(from index: Int, head: inout HTTPRequestHead, context: FilterContext) -> (FilterHeadResult, Int) {
        var i = index
        while i < heads.count {
            let result = heads[i].decodeHead(&head, context: context)
            if case .proceed = result {
                i += 1
                continue
            }
            return (result, i)
        }
        return (.proceed, i)
    }

    /// The largest body any filter wants to see whole, or `nil` when the body may stream.
    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? {
        var limit: Int? = nil
        for filter in bodies {
            if let l = filter.bodyBufferLimit(for: head, context: context) { limit = max(limit ?? 0, l) }
        }
        return limit
    }

    /// Runs `decodeBody` from body filter `index` on, like ``runHead(from:head:context:)``.
    func runBody(from index: Int, body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext)
        -> (FilterHeadResult, Int)
    {
        var i = index
        while i < bodies.count {
            let result = bodies[i].decodeBody(&body, head: &head, context: context)
            if case .proceed = result {
                i += 1
                continue
            }
            return (result, i)
        }
        return (.proceed, i)
    }

    /// The first filter's body stage, if any.
    func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)? {
        for filter in stages {
            if let stage = filter.bodyStage(for: head, context: context) { return stage }
        }
        return nil
    }

    /// The first sink a filter gives for this request, if any.
    func bodySink(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodySink)? {
        for filter in sinks {
            if let sink = filter.bodySink(for: head, context: context) { return sink }
        }
        return nil
    }

    /// The largest answer any filter wants to see whole, or `nil` when the answer may stream.
    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        var limit: Int? = nil
        for filter in responses {
            if let l = filter.responseBufferLimit(for: head, context: context) { limit = max(limit ?? 0, l) }
        }
        return limit
    }

    /// Runs `encodeResponse` from the last filter to the first (the answer travels the chain backwards, as in
    /// Envoy); stops at the first result that is not `.proceed`.
    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext)
        -> ResponseFilterResult
    {
        for filter in responses.reversed() {
            let result = filter.encodeResponse(&head, body: &body, context: context)
            if case .proceed = result { continue }
            return result
        }
        return .proceed
    }

    /// `.replay` if any filter asks for it.
    func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict {
        for filter in replays {
            if case .replay = filter.upstreamResponded(head, context: context) { return .replay }
        }
        return .forward
    }
}

/// What a ``SplicingFilter`` did for a request on the fast path.
enum SpliceOutcome {
    /// It cannot say now (no valid session token yet): the request takes the full path.
    case fullPath
    case spliced
    /// It wrote this session token (remembered in case the platform answers 401).
    case splicedSession(SessionToken)
}

/// A head filter whose whole effect on a request without a body is a header it can write without reading the
/// head (a credential): the byte-level fast path (``FastPathHandler``) has it write the header line straight into
/// the bytes of the upstream head, with no `HTTPRequestHead` made. Its ``HeadFilter/decodeHead(_:context:)`` must
/// do the same to a head, so that both paths send the same request.
protocol SplicingFilter: HeadFilter {
    /// Writes the filter's header lines (`name: value\r\n`) at the end of `head`.
    func splice(into head: inout ByteBuffer) -> SpliceOutcome
}

extension ByteBuffer {
    /// A header line, `name: value\r\n`.
    mutating func writeHeaderLine(_ name: String, _ value: String) {
        writeString(name)
        writeStaticString(": ")
        writeString(value)
        writeStaticString("\r\n")
    }
}
