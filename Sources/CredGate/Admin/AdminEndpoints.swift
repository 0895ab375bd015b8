import Foundation
import NIOCore
import NIOHTTP1

/// The gateway's own endpoints under the reserved prefix `/credgate/`; never forwarded.
public struct AdminEndpoints: Sendable {
    static let prefix = "/credgate/"

    /// What `/credgate/status` reports per credential (built from counters only: no secrets).
    let credentialStatus: @Sendable () -> [CredentialStatus]
    /// When the gateway started (a reload keeps it: uptime counts from the start).
    let startedAt: ContinuousClock.Instant
    /// The presign cache `DELETE /credgate/v1/cache/presign` empties.
    let presignCache: PresignCache?
    /// Session credentials that set `required_for_ready: false`: readiness does not wait for them.
    let notRequiredForReady: Set<String>
    /// Set when the gateway starts draining (``Gateway/drain(delay:grace:)``); readiness then answers 503.
    let drain: DrainState
    /// Requests and errors per route, for `/credgate/status` (published once the route table is compiled).
    let traffic: RouteTraffic
    /// The gateway's Prometheus metrics, rendered by `GET /credgate/metrics`.
    let metrics: GatewayMetrics?
    /// `POST /credgate/quitquitquit` (off unless configured).
    public let quit: QuitSwitch
    /// `POST /credgate/reload` (off unless configured).
    public let reload: ReloadSwitch

    init(
        credentialStatus: @escaping @Sendable () -> [CredentialStatus] = { [] }, presignCache: PresignCache? = nil,
        notRequiredForReady: Set<String> = [], drain: DrainState = DrainState(), traffic: RouteTraffic = RouteTraffic(),
        metrics: GatewayMetrics? = nil, quit: QuitSwitch = QuitSwitch(), reload: ReloadSwitch = ReloadSwitch(),
        startedAt: ContinuousClock.Instant = .now
    ) {
        self.quit = quit
        self.reload = reload
        self.startedAt = startedAt
        self.metrics = metrics
        self.credentialStatus = credentialStatus
        self.presignCache = presignCache
        self.notRequiredForReady = notRequiredForReady
        self.drain = drain
        self.traffic = traffic
    }

    /// Whether a request path is in the reserved admin space.
    static func isAdminPath(_ path: Substring) -> Bool {
        path.hasPrefix(prefix) || path == "/credgate"
    }

    /// Answers an admin request. Health endpoints are named for what Kubernetes asks: `startup` and `liveness`
    /// say the process serves (never anything about the platform: a platform outage must not get credgate
    /// restarted), `readiness` whether it should get traffic (``Readiness``).
    func respond(method: HTTPMethod, path: Substring, requestID: String) -> LocalResponse {
        switch (method, path) {
        case (.GET, "/credgate/healthz"), (.GET, "/credgate/liveness"), (.GET, "/credgate/startup"),
            (.HEAD, "/credgate/healthz"):
            return .json(.ok, "{\"status\":\"ok\"}", headers: ["cache-control": "no-store"])
        case (.GET, "/credgate/readiness"):
            return readinessResponse()
        case (.GET, "/credgate/status"):
            return status()
        case (.GET, "/credgate/metrics"):
            guard let metrics else { return .problem(.adminNotFound(path: String(path)), requestID: requestID) }
            let text = metrics.render(credentials: credentialStatus(), presignCache: presignCache)
            return LocalResponse(
                status: .ok,
                headers: [
                    "content-type": "text/plain; version=0.0.4; charset=utf-8",
                    "cache-control": "no-store",
                ],
                body: ByteBuffer(bytes: text))
        case (.DELETE, "/credgate/v1/cache/presign"):
            guard let presignCache else { return .problem(.adminNotFound(path: String(path)), requestID: requestID) }
            let removed = presignCache.count
            presignCache.removeAll()
            return .json(.ok, "{\"removed\":\(removed)}", headers: ["cache-control": "no-store"])
        case (.POST, "/credgate/quitquitquit"):
            // Off: the same answer as any unknown admin path, so a probe learns nothing.
            guard let drain = quit.action() else {
                return .problem(.adminNotFound(path: String(path)), requestID: requestID)
            }
            drain()
            return .json(.ok, "{\"status\":\"draining\"}", headers: ["cache-control": "no-store"])
        default:
            return .problem(.adminNotFound(path: String(path)), requestID: requestID)
        }
    }

    /// The answer of `POST /credgate/reload`: 200 when the new configuration serves, 422 with every problem at its
    /// YAML path when the old one still does, 503 while draining. Paths and names only, as `check-config` prints.
    static func reloadResponse(_ outcome: ReloadOutcome) -> LocalResponse {
        struct Problem: Encodable {
            let path: String
            let message: String
        }
        struct Body: Encodable {
            let status: String
            let problems: [Problem]
            let needs_restart: [Problem]
            let sessions_kept: [String]
            let sessions_new: [String]
        }
        let status: HTTPResponseStatus =
            switch outcome.result {
            case .reloaded: .ok
            case .failed: .unprocessableEntity
            case .draining: .serviceUnavailable
            }
        return encoded(
            status,
            Body(
                status: outcome.result.rawValue,
                problems: outcome.problems.map { Problem(path: $0.path, message: $0.message) },
                needs_restart: outcome.needsRestart.map { Problem(path: $0.path, message: $0.message) },
                sessions_kept: outcome.sessionsKept, sessions_new: outcome.sessionsNew), pretty: false)
    }

    /// The readiness of the gateway now.
    func readiness() -> Readiness {
        Readiness(credentials: credentialStatus(), notRequired: notRequiredForReady, draining: drain.isDraining)
    }

    /// `GET /credgate/readiness`: 200 `{"status":"ok"}` (as the other probes) when ready, else 503 with a body
    /// that says which credential is not ready and why (``ReadinessBody``).
    func readinessResponse() -> LocalResponse {
        let readiness = readiness()
        guard readiness.isReady else {
            return Self.encoded(.serviceUnavailable, ReadinessBody(readiness), pretty: false)
        }
        return .json(.ok, "{\"status\":\"ok\"}", headers: ["cache-control": "no-store"])
    }

    /// What `/credgate/readiness` answers, and the `readiness` part of `/credgate/status`.
    struct ReadinessBody: Encodable {
        let status: String
        let detail: String
        let draining: Bool
        let not_ready: [Readiness.Blocker]
        let not_required: [String]

        init(_ r: Readiness) {
            status = r.draining ? "draining" : r.isReady ? "ok" : "not_ready"
            detail = r.summary
            draining = r.draining
            not_ready = r.blockers
            not_required = r.ignored
        }
    }

    /// `GET /credgate/status`: version, uptime, readiness, each credential's state, the presign cache and the
    /// requests and errors per route. Everything in it comes from ``CredentialStatus``, cache statistics and
    /// counters, which hold no token, password or response body.
    func status() -> LocalResponse {
        struct Cache: Encodable {
            let entries: Int
            let capacity: Int
            let hits: Int
            let misses: Int
            /// hits / (hits + misses); null before the first lookup.
            let hit_rate: Double?
            let platform_calls: Int
            let joined: Int
            let stored: Int
            let evictions: Int

            enum CodingKeys: String, CodingKey {
                case entries, capacity, hits, misses, hit_rate, platform_calls, joined, stored, evictions
            }

            /// `hit_rate` is written as `null` before the first lookup, so the key is always there.
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(entries, forKey: .entries)
                try c.encode(capacity, forKey: .capacity)
                try c.encode(hits, forKey: .hits)
                try c.encode(misses, forKey: .misses)
                try c.encode(hit_rate, forKey: .hit_rate)
                try c.encode(platform_calls, forKey: .platform_calls)
                try c.encode(joined, forKey: .joined)
                try c.encode(stored, forKey: .stored)
                try c.encode(evictions, forKey: .evictions)
            }
        }
        struct Route: Encodable {
            let route: String
            let requests: Int
            /// 4xx + 5xx + cut short.
            let errors: Int
            let client_errors: Int
            let server_errors: Int
            let cut_short: Int
            /// Of `requests`, those served by the byte-level fast path.
            let fast_path: Int
        }
        struct Body: Encodable {
            let version: String
            let uptime_seconds: Int
            let readiness: ReadinessBody
            let credentials: [CredentialStatus]
            let presign_cache: Cache?
            let routes: [Route]
        }
        let cache = presignCache.map { c in
            let s = c.statistics
            let lookups = s.hits + s.misses
            return Cache(
                entries: c.count, capacity: c.configuration.capacity, hits: s.hits, misses: s.misses,
                hit_rate: lookups == 0 ? nil : Double(s.hits) / Double(lookups),
                platform_calls: s.fetches, joined: s.joined, stored: s.stored, evictions: s.evictions)
        }
        let routes = traffic.snapshot().map { name, t in
            Route(
                route: name, requests: t.requests, errors: t.errors, client_errors: t.clientErrors,
                server_errors: t.serverErrors, cut_short: t.cutShort, fast_path: t.fastPath)
        }
        let credentials = credentialStatus()
        let readiness = Readiness(
            credentials: credentials, notRequired: notRequiredForReady, draining: drain.isDraining)
        let uptime = Int((ContinuousClock.now - startedAt).components.seconds)
        return Self.encoded(
            .ok,
            Body(
                version: CredGateVersion.string, uptime_seconds: uptime, readiness: ReadinessBody(readiness),
                credentials: credentials, presign_cache: cache, routes: routes), pretty: true)
    }

    private static func encoded(_ status: HTTPResponseStatus, _ value: some Encodable, pretty: Bool) -> LocalResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return LocalResponse(
            status: status, headers: ["content-type": "application/json", "cache-control": "no-store"],
            body: ByteBuffer(bytes: data))
    }
}
