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

    /// Builds the runtime; `extraFilters` lets later stages (sessions, validation) add filters per route.
    public init(config: GatewayConfig, logger: Logger, extraFilters: ((RouteConfig) -> [any RequestFilter])? = nil) throws {
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
        let allCredentialHeaders = config.credentials.values.flatMap(\.headerNames)
        let strip = StripClientCredentials(credentialHeaders: allCredentialHeaders)
        var entries: [RouteTable<CompiledRoute>.Entry] = []
        for route in config.routes {
            guard let target = byName[route.upstream] else {
                throw ConfigError(issues: [ConfigIssue(path: "routes.\(route.name).upstream", message: "unknown upstream '\(route.upstream)'")])
            }
            var filters: [any RequestFilter] = [strip]
            for credentialName in route.credentials {
                guard let credential = config.credentials[credentialName] else {
                    throw ConfigError(issues: [ConfigIssue(path: "routes.\(route.name).credentials", message: "unknown credential '\(credentialName)'")])
                }
                switch credential.kind {
                case .apiKey(let header, let value):
                    filters.append(APIKeyFilter(header: header, value: value))
                case .jwtSession:
                    break  // TODO(lead): the session filter is wired by the transport stage.
                }
            }
            if let extraFilters { filters += extraFilters(route) }
            let compiled = CompiledRoute(name: route.name, target: target, chain: FilterChain(filters), maxBodyBytes: route.maxBodyBytes,
                                         replayMaxBodyBytes: route.replayMaxBodyBytes)
            entries.append(.init(methods: route.methods, pattern: route.path, payload: compiled))
        }
        self.routes = RouteTable(entries)
        self.admin = AdminEndpoints()
    }
}
