import NIOCore
import NIOHTTP1

/// What a filter tells the transport after seeing the request head or body.
///
/// Modelled on Envoy's HTTP filters: a filter lets the request go on, answers it locally (nothing is forwarded),
/// or asks to be called again once some asynchronous work (a login, a cache fill) is done. The transport keeps
/// the client's body back meanwhile.
public enum FilterHeadResult: Sendable {
    case proceed
    case respond(GatewayError)
    case respondWith(LocalResponse)
    /// Call this filter again once the future completes (on the connection's event loop).
    case retryAfter(EventLoopFuture<Void>)
}

/// What a filter says about the upstream's answer head.
public enum UpstreamVerdict: Sendable {
    case forward
    /// Drop this answer and run the request through the chain once more (a 401 after a session token was
    /// replaced). The transport does this at most once per request, and only when it kept the whole body.
    case replay
}

/// What a filter says about the whole upstream answer it asked to see (``RequestFilter/responseBufferLimit(for:context:)``).
public enum ResponseFilterResult: Sendable {
    /// Send the (possibly rewritten) answer on.
    case proceed
    /// Send this answer instead.
    case respondWith(LocalResponse)
    /// Send the answer this future gives (a follow-up call the filter makes); the client waits meanwhile.
    case respondLater(EventLoopFuture<LocalResponse>)
}

/// What a body stage says about the bytes it was given.
public enum BodyStageResult {
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
public protocol RequestBodyStage: AnyObject, Sendable {
    func feed(_ chunk: ByteBuffer) -> BodyStageResult
    /// The body ended. May rewrite the upstream head (the transport then sets `Content-Length` to the stored size).
    func finish(head: inout HTTPRequestHead) -> BodyStageResult
}

/// Per-request state shared by the filters of one request: what each filter needs to remember between the
/// head, the body and the answer (for example which session token it injected).
public final class RequestScratch: @unchecked Sendable {
    // Only touched on the connection's event loop.
    public var values: [String: any Sendable] = [:]
    public init() {}
}

/// Per-request facts a filter may read.
public struct FilterContext: Sendable {
    public var requestID: String
    public var routeName: String
    public var eventLoop: any EventLoop
    /// The head as the client sent it, before any filter (for example its own `Authorization`).
    public var clientHead: HTTPRequestHead
    /// 0 for the first pass, 1 for a replay.
    public var attempt: Int
    public var scratch: RequestScratch

    public init(requestID: String, routeName: String, eventLoop: any EventLoop, clientHead: HTTPRequestHead,
                attempt: Int = 0, scratch: RequestScratch = RequestScratch()) {
        self.requestID = requestID
        self.routeName = routeName
        self.eventLoop = eventLoop
        self.clientHead = clientHead
        self.attempt = attempt
        self.scratch = scratch
    }
}

/// A policy stage. Filters never touch a channel; the transport runs them in order on the connection's event
/// loop: every `decodeHead`, then (if any filter asked to see the whole body) every `decodeBody`, then it
/// forwards; each filter sees the upstream's answer head in `upstreamResponded`.
public protocol RequestFilter: Sendable {
    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult
    /// How many body bytes this filter must see whole before the request may be forwarded; `nil` lets the body
    /// stream through. A larger body is refused with 413.
    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int?
    /// Called with the whole body when ``bodyBufferLimit(for:context:)`` asked for it; may rewrite it (the
    /// transport fixes `Content-Length`).
    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult
    /// Whether this filter may ask for a replay: the transport then keeps a copy of the body up to the
    /// route's replay cap while it streams.
    var mayReplay: Bool { get }
    func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict
    /// Whether ``bodyStage(for:context:)`` may return a stage, and whether ``responseBufferLimit(for:context:)``
    /// may ask for an answer: computed once per chain, so the transport does not ask on every request.
    var hasBodyStage: Bool { get }
    var inspectsResponses: Bool { get }
    /// A streaming stage that must see the whole body before anything is forwarded (see ``RequestBodyStage``);
    /// asked once the head filters passed. At most one per request: the first filter's wins.
    func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)?
    /// How many bytes of the upstream's answer this filter must see whole (head and body) before the client gets
    /// any of it; `nil` lets the answer stream. A larger answer is passed on unchanged, without ``encodeResponse``.
    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int?
    /// Called with the whole answer when ``responseBufferLimit(for:context:)`` asked for it; may rewrite it (the
    /// transport fixes `Content-Length`), replace it, or replace it later.
    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext) -> ResponseFilterResult
}

extension RequestFilter {
    public func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult { .proceed }
    public func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? { nil }
    public func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult { .proceed }
    public var mayReplay: Bool { false }
    public func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict { .forward }
    public var hasBodyStage: Bool { false }
    public var inspectsResponses: Bool { false }
    public func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)? { nil }
    public func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? { nil }
    public func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext) -> ResponseFilterResult { .proceed }
}

/// A route's filters in order, with the index of the next one to run so a suspended chain can resume.
public struct FilterChain: Sendable {
    public let filters: [any RequestFilter]
    /// Whether any filter may ask for a replay (computed once).
    public let mayReplay: Bool
    /// Whether any filter may check the body as a stage, or see answers whole (computed once).
    public let hasBodyStage: Bool
    public let inspectsResponses: Bool

    public init(_ filters: [any RequestFilter]) {
        self.filters = filters
        self.mayReplay = filters.contains { $0.mayReplay }
        self.hasBodyStage = filters.contains { $0.hasBodyStage }
        self.inspectsResponses = filters.contains { $0.inspectsResponses }
    }

    /// Runs `decodeHead` from `index` on; returns the first result that is not `.proceed` and the index it came
    /// from, or `.proceed` with `filters.count` when all passed.
    public func runHead(from index: Int, head: inout HTTPRequestHead, context: FilterContext) -> (FilterHeadResult, Int) {
        var i = index
        while i < filters.count {
            let result = filters[i].decodeHead(&head, context: context)
            if case .proceed = result {
                i += 1
                continue
            }
            return (result, i)
        }
        return (.proceed, i)
    }

    /// The largest body any filter wants to see whole, or `nil` when the body may stream.
    public func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? {
        var limit: Int? = nil
        for filter in filters {
            if let l = filter.bodyBufferLimit(for: head, context: context) { limit = max(limit ?? 0, l) }
        }
        return limit
    }

    /// Runs `decodeBody` from `index` on, like ``runHead(from:head:context:)``.
    public func runBody(from index: Int, body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> (FilterHeadResult, Int) {
        var i = index
        while i < filters.count {
            let result = filters[i].decodeBody(&body, head: &head, context: context)
            if case .proceed = result {
                i += 1
                continue
            }
            return (result, i)
        }
        return (.proceed, i)
    }

    /// The first filter's body stage, if any.
    public func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)? {
        guard hasBodyStage else { return nil }
        for filter in filters {
            if let stage = filter.bodyStage(for: head, context: context) { return stage }
        }
        return nil
    }

    /// The largest answer any filter wants to see whole, or `nil` when the answer may stream.
    public func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        guard inspectsResponses else { return nil }
        var limit: Int? = nil
        for filter in filters {
            if let l = filter.responseBufferLimit(for: head, context: context) { limit = max(limit ?? 0, l) }
        }
        return limit
    }

    /// Runs `encodeResponse` from the last filter to the first (the answer travels the chain backwards, as in
    /// Envoy); stops at the first result that is not `.proceed`.
    public func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext) -> ResponseFilterResult {
        for filter in filters.reversed() {
            let result = filter.encodeResponse(&head, body: &body, context: context)
            if case .proceed = result { continue }
            return result
        }
        return .proceed
    }

    /// `.replay` if any filter asks for it.
    public func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict {
        for filter in filters {
            if case .replay = filter.upstreamResponded(head, context: context) { return .replay }
        }
        return .forward
    }
}
