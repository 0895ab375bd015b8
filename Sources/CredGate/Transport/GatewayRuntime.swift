import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// One listening socket's share of the runtime: its limits and its route table.
public struct ListenerRuntime: Sendable {
    /// The profile's name (``ListenerConfig/name``).
    public let name: String
    public let listen: ListenConfig
    /// credgate's own endpoints, the reserved `/credgate/` space, then this listener's routes (``RouteCompiler``).
    public let routes: RouteTable<CompiledRoute>
}

/// Everything the data path needs, built once from the configuration and shared read-only by all connections.
public final class GatewayRuntime: Sendable {
    public let listen: ListenConfig
    /// Every route: credgate's own endpoints, the reserved `/credgate/` space, then the configured routes
    /// (``RouteCompiler``).
    public let routes: RouteTable<CompiledRoute>
    /// Every listening socket, the first being ``listen``/``routes``.
    public let listeners: [ListenerRuntime]
    public let targets: [UpstreamTarget]
    public let logger: Logger
    public let admin: AdminEndpoints
    /// The session credentials, by name (started and stopped by ``Gateway``).
    public let sessions: [String: JWTSession]
    /// Stand-in tokens handed to SDKs that log in themselves (when a session enables `placeholder_login`).
    public let placeholders: PlaceholderTokens
    /// The presign cache behind every `presign_cache` route.
    public let presignCache: PresignCache
    /// Where bodies checked whole wait (resolved directory).
    public let spool: SpoolConfig
    /// Headers credgate writes itself (every credential's, lower case): a client's `Connection` header may not
    /// name them.
    let protectedHeaders: [String]
    let fileIO = NonBlockingFileIO(threadPool: .singleton)
    /// This gateway's Prometheus registry and pre-made metrics (`/credgate/metrics`).
    public let metrics: GatewayMetrics

    /// Builds the runtime. `sessionTransport` makes the HTTP client a session logs in with (one per upstream);
    /// `extraFilters` lets tests and later stages add filters per route.
    public init(
        config: GatewayConfig, logger: Logger,
        sessionTransport: ((UpstreamConfig) -> any SessionTransport)? = nil,
        extraFilters: ((RouteConfig) -> [any RequestFilter])? = nil,
        metrics: GatewayMetrics? = nil
    ) throws {
        let metrics = metrics ?? GatewayMetrics()
        self.metrics = metrics
        self.listen = config.listen
        self.logger = logger
        var targets: [UpstreamTarget] = []
        var byName: [String: UpstreamTarget] = [:]
        for name in config.upstreams.keys.sorted() {
            let target = try UpstreamTarget(key: targets.count, config: config.upstreams[name]!, metrics: metrics.upstream(named: name))
            targets.append(target)
            byName[name] = target
        }
        self.targets = targets
        let placeholders = PlaceholderTokens()
        self.placeholders = placeholders

        func configError(_ path: String, _ message: String) -> ConfigError {
            ConfigError(issues: [ConfigIssue(path: path, message: message)])
        }

        // Sessions, one per jwt_session credential.
        var sessions: [String: JWTSession] = [:]
        for (name, credential) in config.credentials.sorted(by: { $0.key < $1.key }) {
            guard case .jwtSession(let sessionConfig) = credential.kind else { continue }
            guard let upstream = config.upstreams[sessionConfig.upstream] else {
                throw configError("credentials.\(name).upstream", "unknown upstream '\(sessionConfig.upstream)'")
            }
            guard let sessionTransport else {
                throw configError("credentials.\(name)", "session credentials need an HTTP client (start the gateway with Gateway.start)")
            }
            sessions[name] = JWTSession(name: name, config: sessionConfig, transport: sessionTransport(upstream), logger: logger)
        }
        self.sessions = sessions

        let presignCache = PresignCache(configuration: PresignCache.Configuration(
            capacity: config.presignCache.maxEntries,
            maximumLifetime: Double(config.presignCache.maxLifetime.nanoseconds) / 1e9,
            temporaryCredentialsMaximumLifetime: config.presignCache.temporaryCredentialsMaxLifetime.map { Double($0.nanoseconds) / 1e9 }))
        self.presignCache = presignCache
        var spool = config.spool
        if spool.directory.isEmpty {
            spool.directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        }
        self.spool = spool
        self.protectedHeaders = StripClientCredentials(credentialHeaders: config.credentials.values.flatMap(\.headerNames)).names
        let credentialNames = config.credentials.keys.sorted()
        let kinds = config.credentials.mapValues { credential -> String in
            switch credential.kind {
            case .apiKey: "api_key"
            case .jwtSession: "jwt_session"
            case .awsSigV4: "aws_sigv4"
            }
        }
        let sessionsByName = sessions
        let notRequiredForReady = Set(config.credentials.compactMap { name, credential -> String? in
            guard case .jwtSession(let session) = credential.kind, !session.requiredForReady else { return nil }
            return name
        })
        let admin = AdminEndpoints(credentialStatus: {
            credentialNames.map { name in
                sessionsByName[name]?.status() ?? CredentialStatus.staticKey(name: name, kind: kinds[name] ?? "api_key")
            }
        }, presignCache: presignCache, notRequiredForReady: notRequiredForReady, metrics: metrics,
           quit: QuitSwitch(enabled: config.admin.quitEndpoint))
        self.admin = admin
        var listeners: [ListenerRuntime] = []
        for index in config.listeners.indices {
            let table = try RouteCompiler(
                config: config, listener: index, targets: byName, sessions: sessions, placeholders: placeholders,
                presignCache: presignCache, admin: admin, sessionTransport: sessionTransport, extraFilters: extraFilters,
                metrics: metrics
            ).compile()
            listeners.append(ListenerRuntime(name: config.listeners[index].name, listen: config.listeners[index].listen, routes: table))
        }
        self.listeners = listeners
        self.routes = listeners[0].routes
        // Every listener's table (the same compiled route in two entries counts once; names are added up).
        admin.traffic.publish(listeners.flatMap { $0.routes.entries.map { ($0.payload.name, $0.payload.counters) } })
    }
}
