import NIOCore
import NIOHTTP1

/// A route ready for the data path: where it goes, its filter chain and its limits. Built once from a
/// ``RouteConfig`` by ``RouteCompiler``; shared read-only by every connection.
final class CompiledRoute: Sendable {
    let name: String
    /// Where the route forwards; `nil` for a route answered by the gateway itself (its filters always answer).
    let target: UpstreamTarget?
    let chain: FilterChain
    let maxBodyBytes: Int64
    /// Bodies up to this size are kept while they stream so the request can be replayed once after a 401.
    let replayMaxBodyBytes: Int
    /// The client's `Cookie` header is forwarded (`forward_cookies`).
    let forwardCookies: Bool
    /// A path with no safe normalised reading may take this route as sent (`raw_path`).
    let rawPath: Bool
    /// Longest upstream silence after the answer head; nil: none (`idle_timeout: off`).
    let idleTimeout: TimeAmount?
    /// How many times the transport may send a request of this route again (a replay after a rejected session
    /// token, retries after a 429 or 5xx): the larger of 1 and the route's `retry.attempts`.
    let maxReplays: Int
    /// The names of the route's credentials (never their values), for the access log.
    let credentialNames: [String]
    /// Requests and errors since start, counted as each exchange is logged (`/credgate/status`).
    let counters = RouteCounters()
    /// Prometheus request metrics (`/credgate/metrics`), made once per route name; nil when built without a gateway.
    let metrics: RouteMetrics?
    /// How the byte-level fast path serves this route's requests without a body; nil when it never may.
    let fastPlan: FastRoutePlan?

    init(
        name: String, target: UpstreamTarget?, chain: FilterChain, maxBodyBytes: Int64, replayMaxBodyBytes: Int,
        forwardCookies: Bool = false, rawPath: Bool = false, credentialNames: [String] = [],
        metrics: RouteMetrics? = nil,
        idleTimeout: RouteIdleTimeout = .upstream, maxReplays: Int = 1
    ) {
        self.maxReplays = max(1, maxReplays)
        self.name = name
        self.target = target
        self.chain = chain
        self.maxBodyBytes = maxBodyBytes
        self.replayMaxBodyBytes = replayMaxBodyBytes
        self.forwardCookies = forwardCookies
        self.rawPath = rawPath
        self.credentialNames = credentialNames
        self.metrics = metrics
        self.fastPlan = FastRoutePlan(chain: chain, target: target)
        switch idleTimeout {
        case .upstream: self.idleTimeout = target?.config.idleTimeout
        case .after(let amount): self.idleTimeout = amount
        case .off: self.idleTimeout = nil
        }
    }
}

extension CompiledRoute {
    /// Counts one finished exchange, whichever path served it: the status counters (`/credgate/status`), the
    /// request metrics and a stale-connection retry.
    func count(
        method: HTTPMethod, status: UInt, bytesIn: Int64, bytesOut: Int64, nanoseconds: Int64, cutShort: Bool,
        fastPath: Bool, retriedStale: Bool
    ) {
        counters.record(status: status, cutShort: cutShort, fastPath: fastPath)
        guard let metrics else { return }
        metrics.record(method: method, status: status, bytesIn: bytesIn, bytesOut: bytesOut, nanoseconds: nanoseconds)
        if retriedStale { target?.metrics?.staleRetries.increment() }
    }
}

/// What the byte-level fast path (``FastPathHandler``) needs of a route: its credentials as header splicers, the
/// session filter that may ask for a replay after a 401, `rewrite_links`, and `presign_cache` (whose hits the fast
/// path answers; everything else on such a route is the full path's). A route with any other filter (one that
/// must see the head, the body or the whole answer as the full path gives them), or without an upstream, has
/// none.
/// A class: each fast exchange holds its route's plan, and a reference is one retain where a copy of the struct
/// was one per filter it holds.
final class FastRoutePlan: Sendable {
    let splicers: [any SplicingFilter]
    /// At most one: the fast path hands a rejected request to the full path once.
    let session: JWTSessionFilter?
    let links: LinkRewriteFilter?
    let presign: PresignCacheFilter?

    init?(chain: FilterChain, target: UpstreamTarget?) {
        guard target != nil else { return nil }
        var splicers: [any SplicingFilter] = []
        var session: JWTSessionFilter?
        var links: LinkRewriteFilter?
        var presign: PresignCacheFilter?
        for filter in chain.filters {
            if let jwt = filter as? JWTSessionFilter {
                guard session == nil else { return nil }
                session = jwt
                splicers.append(jwt)
            } else if let splicer = filter as? any SplicingFilter {
                splicers.append(splicer)
            } else if let rewrite = filter as? LinkRewriteFilter, links == nil {
                links = rewrite
            } else if let cache = filter as? PresignCacheFilter, presign == nil {
                presign = cache
            } else {
                return nil
            }
        }
        self.splicers = splicers
        self.session = session
        self.links = links
        self.presign = presign
    }

    /// Whether every credential can be written now (a session has a token): as on the full path, where a request
    /// waits for its credentials before any later filter (the presign cache) runs.
    var credentialsReady: Bool {
        session.map { $0.session.currentToken() != nil } ?? true
    }
}
