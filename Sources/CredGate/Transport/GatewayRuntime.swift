import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One listening socket's share of the runtime: its limits and its route table.
struct ListenerRuntime: Sendable {
    /// The profile's name (``ListenerConfig/name``).
    let name: String
    let listen: ListenConfig
    /// credgate's own endpoints, the reserved `/credgate/` space, then this listener's routes (``RouteCompiler``).
    let routes: RouteTable<CompiledRoute>
}

/// Everything the data path needs, built from one configuration and shared read-only by all connections.
///
/// A reload (``Gateway/reload(to:)``) builds a new one from the new configuration and the old one
/// (``init(config:logger:sessionTransport:extraFilters:metrics:previous:keys:)``): what did not change is carried
/// over, not rebuilt (the sessions with their tokens, the presign cache, the upstream targets and so their pooled
/// connections), and the old runtime lives on, unchanged, until the last request that started on it is done.
public final class GatewayRuntime: Sendable {
    /// The configuration this runtime was built from (secrets stay ``Secret``s).
    public let config: GatewayConfig
    let listen: ListenConfig
    /// Every route: credgate's own endpoints, the reserved `/credgate/` space, then the configured routes
    /// (``RouteCompiler``).
    let routes: RouteTable<CompiledRoute>
    /// Every listening socket, the first being ``listen``/``routes``.
    let listeners: [ListenerRuntime]
    let targets: [UpstreamTarget]
    let logger: Logger
    public let admin: AdminEndpoints
    /// The session credentials, by name (started and stopped by ``Gateway``).
    let sessions: [String: JWTSession]
    /// Stand-in tokens handed to SDKs that log in themselves (when a session enables `placeholder_login`).
    let placeholders: PlaceholderTokens
    /// The presign cache behind every `presign_cache` route.
    let presignCache: PresignCache
    /// Where bodies checked whole wait (resolved directory).
    let spool: SpoolConfig
    /// Headers credgate writes itself (every credential's, lower case): a client's `Connection` header may not
    /// name them.
    let protectedHeaders: [String]
    /// Lower-case request header names that send a request to the full path (``FastHead/fullPathRequestHeaders``
    /// and the credentials' headers), as bytes.
    let fastPathRefusedHeaders: [[UInt8]]
    let fileIO = NonBlockingFileIO(threadPool: .singleton)
    /// This gateway's Prometheus registry and pre-made metrics (`/credgate/metrics`).
    let metrics: GatewayMetrics
    /// Sessions a reload replaced while this runtime was current: they stop once this runtime is gone, that is
    /// once no request that started on it is still running (one could still be waiting for such a session).
    let retired = NIOLockedValueBox<[JWTSession]>([])

    /// Builds the runtime. `sessionTransport` makes the HTTP client a session logs in with (one per upstream);
    /// `extraFilters` lets tests and later stages add filters per route.
    convenience init(
        config: GatewayConfig, logger: Logger,
        sessionTransport: ((UpstreamConfig) -> any SessionTransport)? = nil,
        extraFilters: ((RouteConfig) -> [any RequestFilter])? = nil,
        metrics: GatewayMetrics? = nil
    ) throws {
        try self.init(
            config: config, logger: logger, sessionTransport: sessionTransport, extraFilters: extraFilters,
            metrics: metrics, previous: nil, keys: nil)
    }

    /// Builds the runtime of `config`; with `previous` (a reload), carries over from it what `config` did not change:
    /// - each upstream target whose settings are equal (and that has no `ca_file`, which is read again), so its
    ///   pooled connections stay in use; a changed one gets a fresh pool key from `keys`;
    /// - each session whose credential and upstream settings are equal, secrets included: the same ``JWTSession``,
    ///   so its token and refresh token, and no new login; a changed one is a new session (a new login);
    /// - the presign cache, when `presign_cache:` is unchanged (its entries are filed under a hash of the
    ///   credentials' secrets, so a changed credential's entries are never served again);
    /// - the placeholder tokens SDKs hold, the metrics, and the admin endpoints' state (drain, traffic, switches).
    /// Nothing is started or stopped here: ``Gateway/reload(to:)`` starts the new sessions once the runtime is in use.
    init(
        config: GatewayConfig, logger: Logger,
        sessionTransport: ((UpstreamConfig) -> any SessionTransport)?,
        extraFilters: ((RouteConfig) -> [any RequestFilter])?,
        metrics: GatewayMetrics?, previous: GatewayRuntime?, keys: UpstreamKeys?
    ) throws {
        let metrics = previous?.metrics ?? metrics ?? GatewayMetrics()
        self.metrics = metrics
        self.config = config
        self.listen = config.listen
        self.logger = logger
        var targets: [UpstreamTarget] = []
        var byName: [String: UpstreamTarget] = [:]
        var taken = Set<Int>()
        let oldTargets = Dictionary((previous?.targets ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for name in config.upstreams.keys.sorted() {
            let upstream = config.upstreams[name]!
            let target: UpstreamTarget
            if let old = oldTargets[name], old.config == upstream, upstream.caFile == nil {
                target = old
            } else {
                let key: Int
                if let keys, previous != nil {
                    guard let free = keys.next(excluding: taken) else {
                        throw configError(
                            "upstreams.\(name)",
                            "too many upstream changes in a short time: connections to the replaced upstreams are still open; try again in a minute, or restart"
                        )
                    }
                    key = free
                } else {
                    key = targets.count
                }
                target = try UpstreamTarget(
                    key: key, config: upstream, metrics: metrics.upstream(named: name), keys: keys)
            }
            taken.insert(target.key)
            targets.append(target)
            byName[name] = target
        }
        self.targets = targets
        let placeholders = previous?.placeholders ?? PlaceholderTokens()
        self.placeholders = placeholders

        // Sessions, one per jwt_session credential.
        var sessions: [String: JWTSession] = [:]
        for (name, credential) in config.credentials.sorted(by: { $0.key < $1.key }) {
            guard case .jwtSession(let sessionConfig) = credential.kind else { continue }
            guard let upstream = config.upstreams[sessionConfig.upstream] else {
                throw configError("credentials.\(name).upstream", "unknown upstream '\(sessionConfig.upstream)'")
            }
            if let previous, let old = previous.sessions[name], previous.config.credentials[name] == credential,
                previous.config.upstreams[sessionConfig.upstream] == upstream
            {
                sessions[name] = old
                continue
            }
            guard let sessionTransport else {
                throw configError(
                    "credentials.\(name)",
                    "session credentials need an HTTP client (start the gateway with Gateway.start)")
            }
            sessions[name] = JWTSession(
                name: name, config: sessionConfig, transport: sessionTransport(upstream), logger: logger)
        }
        self.sessions = sessions

        let presignCache: PresignCache
        if let previous, previous.config.presignCache == config.presignCache {
            presignCache = previous.presignCache
        } else {
            presignCache = PresignCache(
                configuration: PresignCache.Configuration(
                    capacity: config.presignCache.maxEntries,
                    maximumLifetime: Double(config.presignCache.maxLifetime.nanoseconds) / 1e9,
                    temporaryCredentialsMaximumLifetime: config.presignCache.temporaryCredentialsMaxLifetime.map {
                        Double($0.nanoseconds) / 1e9
                    }))
        }
        self.presignCache = presignCache
        var spool = config.spool
        if spool.directory.isEmpty {
            spool.directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        }
        self.spool = spool
        self.protectedHeaders =
            StripClientCredentials(credentialHeaders: config.credentials.values.flatMap(\.headerNames)).names
        self.fastPathRefusedHeaders = Array(Set(FastHead.fullPathRequestHeaders + protectedHeaders)).sorted().map {
            Array($0.utf8)
        }
        let credentialNames = config.credentials.keys.sorted()
        let kinds = config.credentials.mapValues { credential -> String in
            switch credential.kind {
            case .apiKey: "api_key"
            case .jwtSession: "jwt_session"
            case .awsSigV4: "aws_sigv4"
            }
        }
        let sessionsByName = sessions
        let notRequiredForReady = Set(
            config.credentials.compactMap { name, credential -> String? in
                guard case .jwtSession(let session) = credential.kind, !session.requiredForReady else { return nil }
                return name
            })
        let credentialStatus: @Sendable () -> [CredentialStatus] = {
            credentialNames.map { name in
                sessionsByName[name]?.status() ?? CredentialStatus.staticKey(name: name, kind: kinds[name] ?? "api_key")
            }
        }
        let admin: AdminEndpoints
        if let old = previous?.admin {
            // The same drain flag, route counters, start time and switch handlers: a reload is not a restart.
            admin = AdminEndpoints(
                credentialStatus: credentialStatus, presignCache: presignCache,
                notRequiredForReady: notRequiredForReady,
                drain: old.drain, traffic: old.traffic, metrics: metrics,
                quit: old.quit.with(enabled: config.admin.quitEndpoint),
                reload: old.reload.with(enabled: config.admin.reloadEndpoint), startedAt: old.startedAt)
        } else {
            admin = AdminEndpoints(
                credentialStatus: credentialStatus, presignCache: presignCache,
                notRequiredForReady: notRequiredForReady, metrics: metrics,
                quit: QuitSwitch(enabled: config.admin.quitEndpoint),
                reload: ReloadSwitch(enabled: config.admin.reloadEndpoint))
        }
        self.admin = admin
        var listeners: [ListenerRuntime] = []
        for index in config.listeners.indices {
            let table = try RouteCompiler(
                config: config, listener: index, targets: byName, sessions: sessions, placeholders: placeholders,
                presignCache: presignCache, admin: admin, sessionTransport: sessionTransport,
                extraFilters: extraFilters,
                metrics: metrics
            ).compile()
            listeners.append(
                ListenerRuntime(
                    name: config.listeners[index].name, listen: config.listeners[index].listen, routes: table))
        }
        self.listeners = listeners
        self.routes = listeners[0].routes
        // Every listener's table (the same compiled route in two entries counts once; names are added up). After a
        // reload the counts since start go on: the replaced routes' counters are kept under their names.
        admin.traffic.publish(
            listeners.flatMap { $0.routes.entries.map { ($0.payload.name, $0.payload.counters) } },
            keepingPrevious: previous != nil)
    }

    /// The sessions a reload replaced stop once no request can use them any more.
    deinit {
        let sessions = retired.withLockedValue { $0 }
        guard !sessions.isEmpty else { return }
        Task { for session in sessions { await session.shutdown() } }
    }
}

/// One problem at a YAML path, as the loader reports them.
private func configError(_ path: String, _ message: String) -> ConfigError {
    ConfigError(issues: [ConfigIssue(path: path, message: message)])
}
