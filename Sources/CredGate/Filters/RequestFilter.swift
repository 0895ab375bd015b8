import NIOCore
import NIOHTTP1

/// What a filter tells the transport after seeing the request head.
///
/// Modelled on Envoy's HTTP filters: a filter lets the request go on, answers it locally (nothing is forwarded),
/// or asks to be called again once some asynchronous work (a login, a cache fill) is done. The transport keeps
/// the client's body back meanwhile.
public enum FilterHeadResult: Sendable {
    case proceed
    case respond(GatewayError)
    case respondWith(LocalResponse)
    /// Call this filter's `decodeHead` again once the future completes (on the connection's event loop).
    case retryAfter(EventLoopFuture<Void>)
}

/// Per-request facts a filter may read.
public struct FilterContext: Sendable {
    public var requestID: String
    public var routeName: String
    public var eventLoop: any EventLoop

    public init(requestID: String, routeName: String, eventLoop: any EventLoop) {
        self.requestID = requestID
        self.routeName = routeName
        self.eventLoop = eventLoop
    }
}

/// A policy stage that sees (and may rewrite) the request head before it is forwarded. Filters never touch a
/// channel; the transport runs them in order on the connection's event loop.
public protocol RequestFilter: Sendable {
    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult
}

/// A route's filters in order, with the index of the next one to run so a suspended chain can resume.
public struct FilterChain: Sendable {
    public let filters: [any RequestFilter]

    public init(_ filters: [any RequestFilter]) { self.filters = filters }

    /// Runs filters from `index` on; returns the first result that is not `.proceed` and the index it came from,
    /// or `.proceed` with `filters.count` when all passed.
    public func run(from index: Int, head: inout HTTPRequestHead, context: FilterContext) -> (FilterHeadResult, Int) {
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
}
