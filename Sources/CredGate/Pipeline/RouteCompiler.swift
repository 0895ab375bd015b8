import Crypto
import Foundation

/// Turns one listener's routes into the one route table the data path looks requests up in, each route with
/// its filter chain: credential stripping, then the credentials, then the transforms, in order.
///
/// The table holds, in this order: credgate's own `/credgate/v1/` endpoints (each a copy of the platform route it
/// stands for, with one filter in front), the rest of the reserved `/credgate/` space (answered by the admin
/// endpoints), the platform logins answered locally for SDKs (`placeholder_login`), then the configured routes.
/// So the transport does one lookup and knows no endpoint by name.
///
/// Adding a transform or a credential kind is one case here (and one in the config model); the transport never
/// changes for it. Every semantic check of a configuration lives in ``ConfigLoader``, so a configuration
/// `check-config` accepts always compiles; the errors thrown here only guard configurations built in code.
struct RouteCompiler {
    let config: GatewayConfig
    /// The listener whose table this is (its routes and endpoint paths).
    var listener = 0
    /// Upstream targets by name.
    let targets: [String: UpstreamTarget]
    let sessions: [String: JWTSession]
    let placeholders: PlaceholderTokens
    let presignCache: PresignCache
    let admin: AdminEndpoints
    /// Makes the HTTP client a follow-up call (upload-and-attach) uses.
    let sessionTransport: ((UpstreamConfig) -> any SessionTransport)?
    let extraFilters: ((RouteConfig) -> [any RequestFilter])?
    /// Where each route's request metrics are registered.
    var metrics: GatewayMetrics? = nil

    func compile() throws(ConfigError) -> RouteTable<CompiledRoute> {
        let strip = StripClientCredentials(credentialHeaders: config.credentials.values.flatMap(\.headerNames))
        var platform: [RouteTable<CompiledRoute>.Entry] = []
        // A session's stand-in login is served where its routes are.
        let used = Set(config.listeners[listener].routes.flatMap(\.credentials))
        for (name, session) in sessions.sorted(by: { $0.key < $1.key })
        where session.config.placeholderLogin && used.contains(name) {
            platform.append(try placeholderLogin(name, session, strip: strip))
        }
        var configured: [(RouteConfig, CompiledRoute)] = []
        for route in config.listeners[listener].routes {
            let compiled = try compile(route, strip: strip)
            configured.append((route, compiled))
            platform.append(.init(methods: route.methods, pattern: route.path, payload: compiled))
        }
        let endpoints = endpointRoutes(configured)
        let reserved = RouteTable<CompiledRoute>.Entry(
            methods: nil, pattern: try! PathPattern("/credgate/**"),
            payload: CompiledRoute(
                name: "credgate-admin", target: nil, chain: FilterChain([AdminFilter(admin: admin)]),
                maxBodyBytes: 64 * 1024, replayMaxBodyBytes: 0,
                metrics: metrics?.route(named: "credgate-admin")))
        return RouteTable(endpoints + [reserved] + platform)
    }

    // MARK: - Configured routes

    private func compile(_ route: RouteConfig, strip: StripClientCredentials) throws(ConfigError) -> CompiledRoute {
        guard let target = targets[route.upstream] else {
            throw Self.error("routes.\(route.name).upstream", "unknown upstream '\(route.upstream)'")
        }
        var filters: [any RequestFilter] = [strip]
        // First, so that a retry waits before the credentials are fetched again.
        if route.retry.attempts > 0 { filters.append(RetryFilter(policy: route.retry)) }
        var routeSession: JWTSession?
        for credentialName in route.credentials {
            guard let credential = config.credentials[credentialName] else {
                throw Self.error("routes.\(route.name).credentials", "unknown credential '\(credentialName)'")
            }
            switch credential.kind {
            case .apiKey(let header, let value):
                filters.append(APIKeyFilter(header: header, value: value))
            case .jwtSession(let sessionConfig):
                guard let session = sessions[credentialName] else { continue }
                routeSession = routeSession ?? session
                filters.append(JWTSessionFilter(name: credentialName, session: session, config: sessionConfig))
            case .awsSigV4(let credentials):
                // Buckets and endpoint are checked by the loader (an aws_sigv4 route needs endpoints.s3).
                let s3 = config.listeners[listener].endpoints.s3
                filters.append(
                    SigV4SigningFilter(
                        credentials: credentials, endpoint: S3Config.endpoint(of: target.config.url),
                        buckets: s3?.reachableBuckets ?? []))
            }
        }
        for transform in route.transforms {
            switch transform {
            case .uploadValidation:
                filters.append(
                    UploadValidationFilter(
                        limit: Int(clamping: route.maxBodyBytes), rejections: metrics?.uploadRejections))
            case .presignCache:
                filters.append(
                    PresignCacheFilter(cache: presignCache, identity: Self.identity(of: route, config: config)))
            case .rewriteLinks:
                filters.append(LinkRewriteFilter(rewriter: target.links, passedUnchanged: LinkRewriteCounter()))
            case .ssnEncryption:
                guard let routeSession else {
                    throw Self.error(
                        "routes.\(route.name).transforms",
                        "ssn_encryption needs a jwt_session credential on the route: the SSN is encrypted with its token"
                    )
                }
                filters.append(
                    SSNEncryptionFilter(
                        session: routeSession.config,
                        placeholders: routeSession.config.placeholderLogin ? placeholders : nil))
            }
        }
        if let extraFilters { filters += extraFilters(route) }
        return CompiledRoute(
            name: route.name, target: target, chain: FilterChain(filters), maxBodyBytes: route.maxBodyBytes,
            replayMaxBodyBytes: route.replayMaxBodyBytes, forwardCookies: route.forwardCookies, rawPath: route.rawPath,
            credentialNames: route.credentials, metrics: metrics?.route(named: route.name),
            idleTimeout: route.idleTimeout, maxReplays: route.retry.attempts)
    }

    /// SDK compatibility: the platform's login answered locally with placeholder tokens, ahead of every route.
    private func placeholderLogin(_ name: String, _ session: JWTSession, strip: StripClientCredentials)
        throws(ConfigError)
        -> RouteTable<CompiledRoute>.Entry
    {
        let path = session.config.placeholderLoginPath
        guard let target = targets[session.config.upstream], let pattern = try? PathPattern(path) else {
            throw Self.error(
                "credentials.\(name).login.path", "'\(session.config.login.path)' cannot be answered locally")
        }
        let chain = FilterChain([strip, PlaceholderLoginFilter(config: session.config, placeholders: placeholders)])
        let compiled = CompiledRoute(
            name: "\(name)-placeholder-login", target: target, chain: chain, maxBodyBytes: 64 * 1024,
            replayMaxBodyBytes: 0, metrics: metrics?.route(named: "\(name)-placeholder-login"))
        return .init(methods: [session.config.login.method], pattern: pattern, payload: compiled)
    }

    // MARK: - credgate's own endpoints

    /// The `/credgate/v1/` endpoints whose platform route exists, each a copy of that route with one filter in
    /// front.
    private func endpointRoutes(_ configured: [(RouteConfig, CompiledRoute)]) -> [RouteTable<CompiledRoute>.Entry] {
        let table = RouteTable(
            configured.map {
                RouteTable<(RouteConfig, CompiledRoute)>.Entry(methods: $0.0.methods, pattern: $0.0.path, payload: $0)
            })
        func route(_ method: String, _ path: String) -> (config: RouteConfig, compiled: CompiledRoute)? {
            if case .matched(let r) = table.lookup(method: method, path: path[...]) { return r }
            return nil
        }
        func copy(_ base: CompiledRoute, name: String, first: any RequestFilter) -> CompiledRoute {
            CompiledRoute(
                name: name, target: base.target, chain: FilterChain([first] + base.chain.filters),
                maxBodyBytes: base.maxBodyBytes, replayMaxBodyBytes: base.replayMaxBodyBytes,
                forwardCookies: base.forwardCookies,
                credentialNames: base.credentialNames, metrics: metrics?.route(named: name),
                idleTimeout: base.idleTimeout.map { .after($0) } ?? .off, maxReplays: base.maxReplays)
        }
        let endpoints = config.listeners[listener].endpoints
        var entries: [RouteTable<CompiledRoute>.Entry] = []
        if let upload = route("POST", endpoints.uploadPath) {
            entries.append(
                .init(
                    methods: ["PUT"], pattern: try! PathPattern("/credgate/v1/files/{filename}"),
                    payload: copy(
                        upload.compiled, name: "credgate-raw-upload",
                        first: RawUploadEndpoint(uploadPath: endpoints.uploadPath))))
            if let documents = route("POST", endpoints.providerDocumentsPath), let sessionTransport,
                let upstream = config.upstreams[documents.config.upstream]
            {
                let attach = ProviderDocumentAttachEndpoint(
                    uploadPath: endpoints.uploadPath, providerDocumentsPath: endpoints.providerDocumentsPath,
                    attach: FollowUpCall(route: documents.compiled, transport: sessionTransport(upstream)))
                entries.append(
                    .init(
                        methods: ["POST"], pattern: try! PathPattern(ProviderDocumentAttachEndpoint.path),
                        payload: copy(upload.compiled, name: "credgate-upload-and-attach", first: attach)))
            }
        }
        // The redirect is the presign cache's answer: without the transform there is nothing to redirect with.
        if let presign = route("POST", endpoints.presignPath), presign.config.transforms.contains(.presignCache) {
            entries.append(
                .init(
                    methods: ["GET"], pattern: try! PathPattern(PresignDownloadEndpoint.path),
                    payload: copy(
                        presign.compiled, name: "credgate-download",
                        first: PresignDownloadEndpoint(presignPath: endpoints.presignPath))))
        }
        // WriftAI's whole upload in one call: the first platform call goes through the route that serves it (its
        // credentials), and so does the complete call (a follow-up call).
        if let wriftai = endpoints.wriftaiUpload, let start = route("POST", wriftai.path) {
            let complete = sessionTransport.flatMap { make in
                config.upstreams[start.config.upstream].map { FollowUpCall(route: start.compiled, transport: make($0)) }
            }
            var endpoint = WriftAIUploadEndpoint(
                config: wriftai, spool: WriftAIUploadEndpoint.resolved(config.spool), complete: complete)
            endpoint.mount = config.upstreams[start.config.upstream]?.mount ?? ""
            entries.append(
                .init(
                    methods: ["PUT"], pattern: try! PathPattern(WriftAIUploadEndpoint.pattern),
                    payload: copy(start.compiled, name: "credgate-wriftai-upload", first: endpoint)))
        }
        entries += s3LinkRoutes(configured)
        return entries
    }

    /// `/credgate/v1/s3/` links, signed with the keys of the first route carrying an `aws_sigv4` credential, for
    /// the S3 endpoint that is its upstream. Answered locally: the route's own chain (the signing filter) is not run.
    private func s3LinkRoutes(_ configured: [(RouteConfig, CompiledRoute)]) -> [RouteTable<CompiledRoute>.Entry] {
        guard let s3 = config.listeners[listener].endpoints.s3 else { return [] }
        for (route, compiled) in configured {
            for name in route.credentials {
                guard case .awsSigV4(let credentials)? = config.credentials[name]?.kind, let target = compiled.target
                else { continue }
                let endpoint = S3LinksEndpoint(
                    signer: S3LinkSigner(
                        credentials: credentials, endpoint: S3Config.endpoint(of: target.config.url), config: s3),
                    cache: presignCache)
                func local(_ routeName: String) -> CompiledRoute {
                    CompiledRoute(
                        name: routeName, target: target, chain: FilterChain([endpoint]),
                        maxBodyBytes: Int64(S3LinksEndpoint.requestLimit),
                        replayMaxBodyBytes: 0, credentialNames: [name], metrics: metrics?.route(named: routeName))
                }
                return [
                    .init(
                        methods: ["POST"], pattern: try! PathPattern(S3LinksEndpoint.linksPath),
                        payload: local("credgate-s3-links")),
                    .init(
                        methods: ["GET"], pattern: try! PathPattern(S3LinksEndpoint.downloadPattern),
                        payload: local("credgate-s3-download")),
                ]
            }
        }
        return []
    }

    // MARK: - Helpers

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
            case .awsSigV4(let credentials):
                hasher.update(
                    data: Data(
                        "aws:\(credentials.accessKeyID):\(credentials.secretAccessKey.reveal()):\(credentials.region)"
                            .utf8))
            case nil:
                break
            }
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func error(_ path: String, _ message: String) -> ConfigError {
        ConfigError(issues: [ConfigIssue(path: path, message: message)])
    }
}
