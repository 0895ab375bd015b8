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
}

extension RequestFilter {
    public func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult { .proceed }
    public func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? { nil }
    public func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult { .proceed }
    public var mayReplay: Bool { false }
    public func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict { .forward }
}

/// A route's filters in order, with the index of the next one to run so a suspended chain can resume.
public struct FilterChain: Sendable {
    public let filters: [any RequestFilter]
    /// Whether any filter may ask for a replay (computed once).
    public let mayReplay: Bool

    public init(_ filters: [any RequestFilter]) {
        self.filters = filters
        self.mayReplay = filters.contains { $0.mayReplay }
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

    /// `.replay` if any filter asks for it.
    public func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict {
        for filter in filters {
            if case .replay = filter.upstreamResponded(head, context: context) { return .replay }
        }
        return .forward
    }
}
