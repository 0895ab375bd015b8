import NIOHTTP1

/// The reserved `/credgate/` space as a route: every request there is answered by ``AdminEndpoints`` and never
/// forwarded (the route has no upstream).
struct AdminFilter: HeadFilter {
    let admin: AdminEndpoints

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        .stop(admin.respond(method: head.method, path: ProxyHandler.path(of: head.uri), requestID: context.requestID))
    }
}
