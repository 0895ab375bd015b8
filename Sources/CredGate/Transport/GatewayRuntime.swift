import Logging
import NIOCore
import NIOHTTP1

/// A route ready for the data path: where it goes, its filter chain and its limits.
public final class CompiledRoute: Sendable {
    public let name: String
    public let target: UpstreamTarget
    public let chain: FilterChain
    public let maxBodyBytes: Int64
    /// Bodies up to this size are kept while they stream so the request can be replayed once after a 401.
    public let replayMaxBodyBytes: Int

    init(name: String, target: UpstreamTarget, chain: FilterChain, maxBodyBytes: Int64, replayMaxBodyBytes: Int) {
        self.name = name
        self.target = target
        self.chain = chain
        self.maxBodyBytes = maxBodyBytes
        self.replayMaxBodyBytes = replayMaxBodyBytes
    }
}

/// Everything the data path needs, built once from the configuration and shared read-only by all connections.
public final class GatewayRuntime: Sendable {
    public let listen: ListenConfig
    public let routes: RouteTable<CompiledRoute>
    public let targets: [UpstreamTarget]
    public let logger: Logger
    public let admin: AdminEndpoints
    /// The session credentials, by name (started and stopped by ``Gateway``).
    public let sessions: [String: JWTSession]
    /// Stand-in tokens handed to SDKs that log in themselves (when a session enables `placeholder_login`).
    public let placeholders: PlaceholderTokens

    /// Builds the runtime. `sessionTransport` makes the HTTP client a session logs in with (one per upstream);
    /// `extraFilters` lets tests and later stages add filters per route.
    public init(
        config: GatewayConfig, logger: Logger,
        sessionTransport: ((UpstreamConfig) -> any SessionTransport)? = nil,
        extraFilters: ((RouteConfig) -> [any RequestFilter])? = nil
    ) throws {
        self.listen = config.listen
        self.logger = logger
        var targets: [UpstreamTarget] = []
        var byName: [String: UpstreamTarget] = [:]
        for name in config.upstreams.keys.sorted() {
            let target = try UpstreamTarget(key: targets.count, config: config.upstreams[name]!)
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

        let allCredentialHeaders = config.credentials.values.flatMap(\.headerNames)
        let strip = StripClientCredentials(credentialHeaders: allCredentialHeaders)
        var entries: [RouteTable<CompiledRoute>.Entry] = []

        // SDK compatibility: the platform's login answered locally with placeholder tokens, ahead of every route.
        for (name, session) in sessions.sorted(by: { $0.key < $1.key }) where session.config.placeholderLogin {
            let login = session.config.login
            let path = String(login.path.split(separator: "?", maxSplits: 1).first ?? "")
            guard let target = byName[session.config.upstream], let pattern = try? PathPattern(path) else {
                throw configError("credentials.\(name).login.path", "'\(login.path)' cannot be answered locally")
            }
            let chain = FilterChain([strip, PlaceholderLoginFilter(config: session.config, placeholders: placeholders)])
            let compiled = CompiledRoute(name: "\(name)-placeholder-login", target: target, chain: chain, maxBodyBytes: 64 * 1024,
                                         replayMaxBodyBytes: 0)
            entries.append(.init(methods: [login.method], pattern: pattern, payload: compiled))
        }

        for route in config.routes {
            guard let target = byName[route.upstream] else {
                throw configError("routes.\(route.name).upstream", "unknown upstream '\(route.upstream)'")
            }
            var filters: [any RequestFilter] = [strip]
            var routeSession: JWTSession?
            for credentialName in route.credentials {
                guard let credential = config.credentials[credentialName] else {
                    throw configError("routes.\(route.name).credentials", "unknown credential '\(credentialName)'")
                }
                switch credential.kind {
                case .apiKey(let header, let value):
                    filters.append(APIKeyFilter(header: header, value: value))
                case .jwtSession(let sessionConfig):
                    guard let session = sessions[credentialName] else { continue }
                    routeSession = routeSession ?? session
                    filters.append(JWTSessionFilter(name: credentialName, session: session, config: sessionConfig))
                }
            }
            for transform in route.transforms {
                switch transform {
                case "ssn_encryption":
                    guard let routeSession else {
                        throw configError("routes.\(route.name).transforms", "ssn_encryption needs a jwt_session credential on the route: the SSN is encrypted with its token")
                    }
                    filters.append(SSNEncryptionFilter(session: routeSession.config, placeholders: routeSession.config.placeholderLogin ? placeholders : nil))
                default:
                    throw configError("routes.\(route.name).transforms", "unknown transform '\(transform)'")
                }
            }
            if let extraFilters { filters += extraFilters(route) }
            let compiled = CompiledRoute(name: route.name, target: target, chain: FilterChain(filters), maxBodyBytes: route.maxBodyBytes,
                                         replayMaxBodyBytes: route.replayMaxBodyBytes)
            entries.append(.init(methods: route.methods, pattern: route.path, payload: compiled))
        }
        self.routes = RouteTable(entries)
        let credentialNames = config.credentials.keys.sorted()
        let sessionsByName = sessions
        self.admin = AdminEndpoints(credentialStatus: {
            credentialNames.map { name in
                sessionsByName[name]?.status() ?? CredentialStatus.staticKey(name: name)
            }
        })
    }
}
