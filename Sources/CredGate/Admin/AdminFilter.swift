import NIOConcurrencyHelpers
import NIOHTTP1

/// The reserved `/credgate/` space as a route: every request there is answered by ``AdminEndpoints`` and never
/// forwarded (the route has no upstream).
struct AdminFilter: HeadFilter {
    let admin: AdminEndpoints

    /// The outcome of the reload a `POST /credgate/reload` started, waiting for the filter's second call.
    static let reloadKey = ScratchKey<NIOLockedValueBox<ReloadOutcome?>>("admin.reload")

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        let path = ProxyHandler.path(of: head.uri)
        if head.method == .POST, path == "/credgate/reload", let reload = admin.reload.action() {
            return self.reload(reload, context: context)
        }
        return .stop(admin.respond(method: head.method, path: path, requestID: context.requestID))
    }

    /// A reload reads files and builds route tables: it runs off the event loop, and the request waits for it
    /// (called again once it is done, with its outcome in the scratch).
    private func reload(_ action: @escaping @Sendable () async -> ReloadOutcome, context: FilterContext)
        -> FilterHeadResult
    {
        if let done = context.scratch[Self.reloadKey]?.withLockedValue({ $0 }) {
            return .stop(AdminEndpoints.reloadResponse(done))
        }
        let box = NIOLockedValueBox<ReloadOutcome?>(nil)
        context.scratch[Self.reloadKey] = box
        let promise = context.eventLoop.makePromise(of: Void.self)
        Task {
            let outcome = await action()
            box.withLockedValue { $0 = outcome }
            promise.succeed(())
        }
        return .retryAfter(promise.futureResult)
    }
}
