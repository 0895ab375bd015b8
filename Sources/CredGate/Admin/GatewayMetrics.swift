import Atomics
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Prometheus

/// The metrics `GET /credgate/metrics` exposes, in the Prometheus text format. One registry per gateway (never the
/// process-wide `MetricsSystem`: tests run many gateways in one process).
///
/// Per-request values are counted where the access-log record is made, through objects made once per route at
/// start-up (``RouteMetrics``): relaxed atomic increments and one short lock for the histogram, no lookup, no string
/// built. Values that other parts already count (credential sessions, the presign cache, open connections, the
/// access log's drops) are read when Prometheus scrapes. Labels are bounded: route, upstream and credential names
/// from the configuration, the method (seven names or `OTHER`), the status class, rejection codes. Never a path,
/// an id or a secret.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let routes = NIOLockedValueBox<[String: RouteMetrics]>([:])
    private let upstreams = NIOLockedValueBox<[String: UpstreamMetrics]>([:])
    /// Requests answered before their route's exchange started (no route, 405, a refused head): route `none`.
    let unrouted: RouteMetrics
    let uploadRejections: UploadRejectionMetrics
    /// Configuration reloads (SIGHUP, `credgate reload`, a rotated secret file).
    let reloads: ReloadMetrics

    private struct Sources {
        var openConnections: (@Sendable () -> Int)?
        var accessLogDropped: (@Sendable () -> Int)?
    }
    private let sources = NIOLockedValueBox(Sources())
    /// Last value read of each counter copied at scrape time, so the registry's counter moves by the difference.
    private let scraped = NIOLockedValueBox<[String: Int]>([:])

    init() {
        unrouted = RouteMetrics(registry: registry, route: "none")
        uploadRejections = UploadRejectionMetrics(registry: registry)
        reloads = ReloadMetrics(registry: registry)
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The metrics of the route named `name` (the same object for every compiled route of that name).
    func route(named name: String) -> RouteMetrics {
        routes.withLockedValue { all in
            if let existing = all[name] { return existing }
            let made = RouteMetrics(registry: registry, route: name)
            all[name] = made
            return made
        }
    }

    /// The counters of the upstream named `name`.
    func upstream(named name: String) -> UpstreamMetrics {
        upstreams.withLockedValue { all in
            if let existing = all[name] { return existing }
            let made = UpstreamMetrics(registry: registry, upstream: name)
            all[name] = made
            return made
        }
    }

    /// What only the running ``Gateway`` knows: its open client connections and its access log.
    func attach(openConnections: @escaping @Sendable () -> Int, accessLogDropped: (@Sendable () -> Int)?) {
        sources.withLockedValue {
            $0.openConnections = openConnections
            $0.accessLogDropped = accessLogDropped
        }
    }

    /// The credential states a `credgate_credential_state` gauge is written for (1 for the current one, 0 for the
    /// others).
    static let credentialStates = ["valid", "refreshing", "logging_in", "backing_off", "circuit_open", "no_token"]

    /// Reads the scrape-time values into the registry and renders everything.
    func render(credentials: [CredentialStatus], presignCache: PresignCache?) -> [UInt8] {
        let sources = sources.withLockedValue { $0 }
        return scraped.withLockedValue { last -> [UInt8] in
            func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
                registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels).set(to: value)
            }
            func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Int) {
                let c = registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
                let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
                let before = last[key] ?? 0
                if value >= before {
                    c.increment(by: Int64(value - before))
                } else {
                    c.reset()
                    c.increment(by: Int64(max(0, value)))
                }
                last[key] = value
            }
            gauge(
                "credgate_client_connections", "Client connections open now.", [],
                Double(sources.openConnections?() ?? 0))
            counter(
                "credgate_access_log_dropped_total", "Access-log lines dropped because the writer fell behind.", [],
                sources.accessLogDropped?() ?? 0)
            for c in credentials where c.kind == "jwt_session" {
                let l = [("credential", c.name)]
                for state in Self.credentialStates {
                    gauge(
                        "credgate_credential_state", "1 for the session credential's current state, 0 for the others.",
                        [("credential", c.name), ("state", state)], c.state == state ? 1 : 0)
                }
                gauge(
                    "credgate_credential_circuit_open", "1 while the credential's circuit breaker is open.", l,
                    c.state == "circuit_open" ? 1 : 0)
                gauge(
                    "credgate_credential_expiry_seconds", "Seconds until the held token lapses (0 when none is held).",
                    l,
                    Double(max(0, c.expiresInSeconds ?? 0)))
                counter("credgate_credential_logins_total", "Successful logins of the session credential.", l, c.logins)
                counter(
                    "credgate_credential_refreshes_total", "Successful token refreshes of the session credential.", l,
                    c.refreshes)
                counter(
                    "credgate_credential_failures_total", "Failed logins and refreshes of the session credential.",
                    [("credential", c.name), ("operation", "login")], c.loginFailures)
                counter(
                    "credgate_credential_failures_total", "Failed logins and refreshes of the session credential.",
                    [("credential", c.name), ("operation", "refresh")], c.refreshFailures)
            }
            if let presignCache {
                let s = presignCache.statistics
                counter("credgate_presign_cache_hits_total", "Presign requests answered from the cache.", [], s.hits)
                counter("credgate_presign_cache_misses_total", "Presign requests not found in the cache.", [], s.misses)
                counter(
                    "credgate_presign_cache_evictions_total", "Presigned URLs evicted to make room.", [], s.evictions)
                gauge("credgate_presign_cache_entries", "Presigned URLs held now.", [], Double(presignCache.count))
            }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16_384)
            registry.emit(into: &buffer)
            return buffer
        }
    }
}

/// One route's per-request metrics, made once when the route is compiled. ``record`` costs a few relaxed atomic
/// increments and the histogram's short lock; the counter of a (method, status class) pair is registered the
/// first time it is used, so a route shows only the series it served.
final class RouteMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let route: String
    /// Indexed by method slot * 6 + status class slot.
    private let requests: [ManagedAtomicLazyReference<Counter>]
    private let duration: DurationHistogram
    private let bytesIn: Counter
    private let bytesOut: Counter

    static let methodNames = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"]
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"]
    static let buckets: [Duration] = [
        .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500),
        .milliseconds(2500), .seconds(10), .seconds(60),
    ]

    init(registry: PrometheusCollectorRegistry, route: String) {
        self.registry = registry
        self.route = route
        requests = (0..<(Self.methodNames.count * Self.statusClasses.count)).map { _ in ManagedAtomicLazyReference() }
        duration = registry.makeDurationHistogram(
            descriptor: GatewayMetrics.descriptor(
                "credgate_request_duration_seconds",
                "Time from the request head to the end of the answer."),
            labels: [("route", route)], buckets: Self.buckets)
        bytesIn = registry.makeCounter(
            descriptor: GatewayMetrics.descriptor(
                "credgate_request_body_bytes_total", "Request body bytes received from clients."),
            labels: [("route", route)])
        bytesOut = registry.makeCounter(
            descriptor: GatewayMetrics.descriptor(
                "credgate_response_body_bytes_total", "Response body bytes sent to clients."),
            labels: [("route", route)])
    }

    @inline(__always)
    static func methodSlot(_ method: HTTPMethod) -> Int {
        switch method {
        case .GET: 0
        case .HEAD: 1
        case .POST: 2
        case .PUT: 3
        case .PATCH: 4
        case .DELETE: 5
        case .OPTIONS: 6
        default: 7
        }
    }

    /// Counts one answered request. `status` is 0 when no answer head was sent.
    func record(method: HTTPMethod, status: UInt, bytesIn: Int64, bytesOut: Int64, nanoseconds: Int64) {
        let statusSlot = (1...5).contains(status / 100) ? Int(status / 100) - 1 : 5
        let slot = Self.methodSlot(method) * Self.statusClasses.count + statusSlot
        let counter =
            requests[slot].load()
            ?? requests[slot].storeIfNilThenLoad(
                registry.makeCounter(
                    descriptor: GatewayMetrics.descriptor(
                        "credgate_requests_total", "Requests answered, by route, method and status class."),
                    labels: [
                        ("route", route), ("method", Self.methodNames[slot / Self.statusClasses.count]),
                        ("status_class", Self.statusClasses[statusSlot]),
                    ]))
        counter.increment()
        duration.record(.nanoseconds(max(0, nanoseconds)))
        if bytesIn > 0 { self.bytesIn.increment(by: bytesIn) }
        if bytesOut > 0 { self.bytesOut.increment(by: bytesOut) }
    }
}

/// One upstream's connection counters.
final class UpstreamMetrics: Sendable {
    /// Connections that could not be opened (refused, unreachable, timed out).
    let connectFailures: Counter
    /// Requests sent again on a fresh connection after a pooled one turned out closed.
    let staleRetries: Counter

    init(registry: PrometheusCollectorRegistry, upstream: String) {
        connectFailures = registry.makeCounter(
            descriptor: GatewayMetrics.descriptor(
                "credgate_upstream_connect_failures_total",
                "Upstream connections that could not be opened."),
            labels: [("upstream", upstream)])
        staleRetries = registry.makeCounter(
            descriptor: GatewayMetrics.descriptor(
                "credgate_upstream_stale_retries_total",
                "Requests retried on a fresh connection after a pooled one was found closed."),
            labels: [("upstream", upstream)])
    }
}

/// Uploads refused by `upload_validation`, one counter per rejection code (all made at start-up, so each shows 0).
final class UploadRejectionMetrics: Sendable {
    private let counters: [Counter]

    init(registry: PrometheusCollectorRegistry) {
        counters = UploadRejection.Kind.allCases.map { kind in
            registry.makeCounter(
                descriptor: GatewayMetrics.descriptor(
                    "credgate_upload_rejections_total", "Uploads refused, by rejection code."),
                labels: [("reason", kind.rawValue)])
        }
    }

    func record(_ kind: UploadRejection.Kind) {
        guard let i = UploadRejection.Kind.allCases.firstIndex(of: kind) else { return }
        counters[i].increment()
    }
}

/// Configuration reloads, named as Prometheus names its own (`prometheus_config_last_reload_successful`): a counter
/// per result, and whether the last one worked, so an alert fires on a configuration that was refused and is not
/// serving. Both series exist from the start (the configuration loaded at start-up counts as a success).
final class ReloadMetrics: Sendable {
    private let succeeded: Counter
    private let failed: Counter
    private let lastSuccess: Gauge
    private let lastSuccessTime: Gauge

    init(registry: PrometheusCollectorRegistry) {
        let reloads = GatewayMetrics.descriptor(
            "credgate_config_reloads_total",
            "Configuration reloads, by result (a failed one leaves the old configuration serving).")
        succeeded = registry.makeCounter(descriptor: reloads, labels: [("result", "success")])
        failed = registry.makeCounter(descriptor: reloads, labels: [("result", "failure")])
        lastSuccess = registry.makeGauge(
            descriptor: GatewayMetrics.descriptor(
                "credgate_config_last_reload_success",
                "1 when the last configuration load (at start or a reload) succeeded, 0 when it was refused."),
            labels: [])
        lastSuccessTime = registry.makeGauge(
            descriptor: GatewayMetrics.descriptor(
                "credgate_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load."),
            labels: [])
        lastSuccess.set(to: 1)
        lastSuccessTime.set(to: Date().timeIntervalSince1970)
    }

    /// Counts one reload.
    func record(success: Bool) {
        if success {
            succeeded.increment()
            lastSuccess.set(to: 1)
            lastSuccessTime.set(to: Date().timeIntervalSince1970)
        } else {
            failed.increment()
            lastSuccess.set(to: 0)
        }
    }
}
