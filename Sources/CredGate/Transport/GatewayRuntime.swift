import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// A route ready for the data path: where it goes, its filter chain and its limits.
public final class CompiledRoute: Sendable {
    public let name: String
    public let target: UpstreamTarget
    public let chain: FilterChain
    public let maxBodyBytes: Int64
    /// Bodies up to this size are kept while they stream so the request can be replayed once after a 401.
    public let replayMaxBodyBytes: Int
    /// The client's `Cookie` header is forwarded (`forward_cookies`).
    public let forwardCookies: Bool
    /// A path with no safe normalised reading may take this route as sent (`raw_path`).
    public let rawPath: Bool

    init(name: String, target: UpstreamTarget, chain: FilterChain, maxBodyBytes: Int64, replayMaxBodyBytes: Int,
         forwardCookies: Bool = false, rawPath: Bool = false) {
        self.name = name
        self.target = target
        self.chain = chain
        self.maxBodyBytes = maxBodyBytes
        self.replayMaxBodyBytes = replayMaxBodyBytes
        self.forwardCookies = forwardCookies
        self.rawPath = rawPath
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
    /// credgate's own endpoints under `/credgate/v1/` that go to the platform (raw upload, download redirect,
    /// upload-and-attach), each a copy of the route serving the platform path it stands for.
    public let endpointRoutes: RouteTable<CompiledRoute>
    /// The presign cache behind every `presign_cache` route.
    public let presignCache: PresignCache
    /// Where bodies checked whole wait (resolved directory).
    public let spool: SpoolConfig
    /// Headers credgate writes itself (every credential's, lower case): a client's `Connection` header may not
    /// name them.
    let protectedHeaders: [String]
    let fileIO = NonBlockingFileIO(threadPool: .singleton)

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
        let allCredentialHeaders = config.credentials.values.flatMap(\.headerNames)
        let strip = StripClientCredentials(credentialHeaders: allCredentialHeaders)
        self.protectedHeaders = strip.names
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
                case "upload_validation":
                    filters.append(UploadValidationFilter(limit: Int(clamping: route.maxBodyBytes)))
                case "presign_cache":
                    filters.append(PresignCacheFilter(cache: presignCache, identity: Self.identity(of: route, config: config)))
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
                                         replayMaxBodyBytes: route.replayMaxBodyBytes, forwardCookies: route.forwardCookies,
                                         rawPath: route.rawPath)
            entries.append(.init(methods: route.methods, pattern: route.path, payload: compiled))
        }
        let routes = RouteTable(entries)
        self.routes = routes
        self.endpointRoutes = Self.endpointRoutes(config: config, routes: routes, sessionTransport: sessionTransport)
        let credentialNames = config.credentials.keys.sorted()
        let sessionsByName = sessions
        self.admin = AdminEndpoints(credentialStatus: {
            credentialNames.map { name in
                sessionsByName[name]?.status() ?? CredentialStatus.staticKey(name: name)
            }
        }, presignCache: presignCache)
    }

    /// Who a route's platform calls answer as, for keying cached answers: a hash of the upstream and of every
    /// credential's secret material (the API key; the session's login body, which names the user). Two
    /// configurations with different users never share an entry; the hash is never shown.
    static func identity(of route: RouteConfig, config: GatewayConfig) -> String {
        var hasher = SHA256()
        hasher.update(data: Data((config.upstreams[route.upstream]?.url.description ?? route.upstream).utf8))
        for name in route.credentials {
            hasher.update(data: Data([0]))
            switch config.credentials[name]?.kind {
            case .apiKey(let header, let value):
                hasher.update(data: Data("key:\(header):\(value.reveal())".utf8))
            case .jwtSession(let session):
                hasher.update(data: Data("session:\(session.login.path):\(session.login.body.reveal())".utf8))
            case nil:
                break
            }
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The `/credgate/v1/` endpoints whose platform route exists.
    private static func endpointRoutes(
        config: GatewayConfig, routes: RouteTable<CompiledRoute>,
        sessionTransport: ((UpstreamConfig) -> any SessionTransport)?
    ) -> RouteTable<CompiledRoute> {
        func route(_ method: String, _ path: String) -> CompiledRoute? {
            if case .matched(let r) = routes.lookup(method: method, path: path[...]) { return r }
            return nil
        }
        func copy(_ base: CompiledRoute, name: String, first: any RequestFilter) -> CompiledRoute {
            CompiledRoute(name: name, target: base.target, chain: FilterChain([first] + base.chain.filters),
                          maxBodyBytes: base.maxBodyBytes, replayMaxBodyBytes: base.replayMaxBodyBytes,
                          forwardCookies: base.forwardCookies)
        }
        let endpoints = config.endpoints
        var entries: [RouteTable<CompiledRoute>.Entry] = []
        if let upload = route("POST", endpoints.uploadPath) {
            entries.append(.init(methods: ["PUT"], pattern: try! PathPattern("/credgate/v1/files/{filename}"),
                                 payload: copy(upload, name: "credgate-raw-upload", first: RawUploadEndpoint(uploadPath: endpoints.uploadPath))))
            if let documents = route("POST", endpoints.providerDocumentsPath), let sessionTransport,
               let upstream = config.upstreams[documents.target.name]
            {
                let attach = ProviderDocumentAttachEndpoint(
                    uploadPath: endpoints.uploadPath, providerDocumentsPath: endpoints.providerDocumentsPath,
                    attach: FollowUpCall(route: documents, transport: sessionTransport(upstream)))
                entries.append(.init(methods: ["POST"], pattern: try! PathPattern(ProviderDocumentAttachEndpoint.path),
                                     payload: copy(upload, name: "credgate-upload-and-attach", first: attach)))
            }
        }
        // The redirect is the presign cache's answer: without the transform there is nothing to redirect with.
        if let presign = route("POST", endpoints.presignPath), presign.chain.filters.contains(where: { $0 is PresignCacheFilter }) {
            entries.append(.init(methods: ["GET"], pattern: try! PathPattern(PresignDownloadEndpoint.path),
                                 payload: copy(presign, name: "credgate-download", first: PresignDownloadEndpoint(presignPath: endpoints.presignPath))))
        }
        return RouteTable(entries)
    }
}
