import NIOCore

/// The whole configuration, as built once from YAML by ``ConfigLoader``. Plain values: the running gateway never
/// reads the environment or a file again.
///
/// One process serves several platforms side by side: each configuration file with routes (a platform profile,
/// `Config/credgate.yaml`, `Config/wriftai.yaml`) becomes one ``ListenerConfig``, its own port with its own
/// routes, while upstreams, credentials and the process-wide sections are shared (names may not clash).
public struct GatewayConfig: Sendable {
    /// The listening sockets in the order their files were given; never empty.
    public var listeners: [ListenerConfig]
    /// Upstreams by name.
    public var upstreams: [String: UpstreamConfig]
    /// Credentials by name.
    public var credentials: [String: CredentialConfig]
    /// The presign cache shared by every route with the `presign_cache` transform.
    var presignCache = PresignCacheConfig()
    /// Where uploads wait, whole, while they are checked.
    var spool = SpoolConfig()
    /// The access log.
    public var log = LogConfig()
    /// What SIGTERM and SIGINT do: drain, then stop.
    public var shutdown = ShutdownConfig()
    /// credgate's own endpoints that change its state (`admin:`).
    var admin = AdminConfig()
    /// How a running gateway notices changes without a restart (`reload:`).
    var reload = ReloadConfig()

    /// A configuration with one listener.
    init(
        listen: ListenConfig = ListenConfig(),
        upstreams: [String: UpstreamConfig],
        credentials: [String: CredentialConfig],
        routes: [RouteConfig]
    ) {
        self.listeners = [ListenerConfig(name: "main", listen: listen, routes: routes)]
        self.upstreams = upstreams
        self.credentials = credentials
    }

    /// The first listener's settings (the only one's, in a one-file configuration).
    var listen: ListenConfig {
        get { listeners[0].listen }
        set { listeners[0].listen = newValue }
    }

    /// The first listener's routes (the only one's, in a one-file configuration).
    var routes: [RouteConfig] {
        get { listeners[0].routes }
        set { listeners[0].routes = newValue }
    }

    /// The first listener's endpoint paths.
    var endpoints: EndpointsConfig {
        get { listeners[0].endpoints }
        set { listeners[0].endpoints = newValue }
    }

    /// Every route of every listener.
    public var allRoutes: [RouteConfig] { listeners.flatMap(\.routes) }
}

/// One listening socket and the routes it serves: one platform profile.
public struct ListenerConfig: Sendable {
    /// The profile's name (its file's base name, `credgate`, `wriftai`), shown by `status` and at start.
    public var name: String
    public var listen: ListenConfig
    /// Routes in the order they are matched: first match wins.
    public var routes: [RouteConfig]
    /// credgate's own endpoints under `/credgate/v1/` on this listener, and the platform paths they stand for.
    var endpoints = EndpointsConfig()

    init(name: String, listen: ListenConfig, routes: [RouteConfig]) {
        self.name = name
        self.listen = listen
        self.routes = routes
    }
}

/// Where and how the gateway listens for its clients.
public struct ListenConfig: Sendable, Equatable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// Client connections served at once. At the cap the listener stops accepting (new connections wait in the
    /// kernel's backlog); one accepted over it in the meantime gets 503 and is closed at once.
    var maxConnections: Int = 1024
    /// Client connections one peer address may hold at once; more get 503 and are closed at once. Every local
    /// client shares the loopback address, so on a sidecar this caps the app itself: keep it well above what
    /// the app opens. 0 turns it off.
    var maxConnectionsPerPeer: Int = 512
    /// Longest time from the first byte of a request to the end of its head (slowloris defence; nginx's
    /// `client_header_timeout`, HAProxy's `timeout http-request`). Past it the connection gets 408 and is closed.
    var headerTimeout: TimeAmount = .seconds(10)
    /// Whether `X-Forwarded-For`, `Forwarded`, `X-Real-IP` and `Via` from the client are believed and extended
    /// (credgate behind another proxy) instead of replaced (credgate as the first hop, the default).
    var trustForwardedHeaders = false
    /// Whether plain requests without a body on routes whose filters only add credentials (and rewrite links) take
    /// the byte-level fast path (``FastPathHandler``); `false` sends every request through NIO's HTTP codec.
    var fastPath = true
    /// The request line plus all header lines, in bytes; larger heads get 431.
    var maxHeaderBytes: Int = 32 * 1024
    /// A keep-alive client connection with no request in flight is closed after this long.
    var idleTimeout: TimeAmount = .seconds(60)
    /// Event loops (threads) of the data path; 0 means one per core.
    var threads: Int = 0

    init() {}
}

/// `shutdown:` the graceful drain on SIGTERM or SIGINT.
public struct ShutdownConfig: Sendable, Equatable {
    /// How long new connections are still accepted after the signal, with readiness already 503 (Kubernetes
    /// users set a few seconds, while the endpoints stop sending traffic here).
    public var delay: TimeAmount = .zero
    /// How long requests in flight may still run once the listener is closed; past it they are cut.
    public var grace: TimeAmount = .seconds(25)

    init() {}
}

/// `admin:` endpoints under `/credgate/` that are off unless asked for.
struct AdminConfig: Sendable, Equatable {
    /// `POST /credgate/quitquitquit` drains and stops the gateway (for a Kubernetes Job whose app finished).
    var quitEndpoint = false
    /// `POST /credgate/reload` re-reads the configuration as SIGHUP does (what `credgate reload` calls when it has
    /// no pid file). Off by default: anyone who can reach credgate could otherwise make it re-read its files.
    var reloadEndpoint = false

    init() {}
}

/// `reload:` what a running gateway re-reads without a restart. SIGHUP, `credgate reload` and
/// `POST /credgate/reload` (when on) always reload; this section is about the secret files.
struct ReloadConfig: Sendable, Equatable {
    /// How often the `*_FILE` secrets the configuration read are checked for a change (a rotated Kubernetes
    /// Secret); a change reloads the configuration. `nil` (written `off`): never checked.
    var secretFilesInterval: TimeAmount? = .seconds(5)

    init() {}
}

/// `log:` the access log: one line per request, written off the event loop.
public struct LogConfig: Sendable, Equatable {
    /// Whether requests are logged at all (they also need a log level of `info` or lower).
    var access = true
    /// `json` (one object per line, the container's default) or `text` (for a terminal).
    public var format: AccessLog.Format = .text
    /// Whether the query string is logged with the path. Off by default: queries carry tokens and keys.
    var query = false

    init() {}
}

/// A platform the gateway forwards to.
public struct UpstreamConfig: Sendable, Equatable {
    var name: String
    public var url: UpstreamURL
    /// Time to open the TCP (and TLS) connection.
    var connectTimeout: TimeAmount = .seconds(5)
    /// Time from the end of the request to the response head.
    var responseTimeout: TimeAmount = .seconds(60)
    /// Longest silence (no byte either way) while a request is in flight, after the response head.
    var idleTimeout: TimeAmount = .seconds(60)
    /// The path at which clients reach this upstream's base URL on credgate (nginx's `location /v1/ {
    /// proxy_pass https://api.wrift.ai/v1/; }`): a request path under it loses the mount before the base path is
    /// put in front (`/v1/models` → `https://api.wrift.ai/v1` + `/models`), and the upstream's own links point
    /// back under it. "" (the default): paths go as they are, after the base path.
    var mount: String = ""
    /// PEM file with the CA certificates to trust for an `https` upstream instead of the system store.
    var caFile: String? = nil
    /// Idle keep-alive connections kept per event loop.
    var maxIdleConnections: Int = 32
    /// An idle pooled connection is closed after this long.
    var poolIdleTimeout: TimeAmount = .seconds(30)

    init(name: String, url: UpstreamURL) {
        self.name = name
        self.url = url
    }
}

/// An upstream's base URL, taken apart once.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable { case http, https }
    var scheme: Scheme
    var host: String
    var port: Int
    /// A path prefix put before every forwarded path, without a trailing slash ("" for none).
    var basePath: String

    public init(scheme: Scheme, host: String, port: Int, basePath: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
    }

    /// The `Host` header value for this upstream (the port only when it is not the scheme's default).
    var hostHeader: String {
        let defaultPort = scheme == .https ? 443 : 80
        // `utf8.contains`, not `contains(":")`: in a module that imports Foundation anywhere, the latter is
        // Foundation's StringProtocol.contains, which bridges to NSString.
        let h = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host
        return port == defaultPort ? h : "\(h):\(port)"
    }

    public var description: String { "\(scheme.rawValue)://\(hostHeader)\(basePath)" }
}

/// A credential the gateway holds and writes into requests.
public struct CredentialConfig: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// A static key written into one header.
        case apiKey(header: String, value: Secret)
        /// A session token obtained by logging in, renewed ahead of expiry (see ``JWTSession``).
        case jwtSession(JWTSessionConfig)
        /// AWS keys that sign S3 requests and links (SigV4): the signing route and `/credgate/v1/s3/`.
        case awsSigV4(AWSSigV4.Credentials)
    }

    var name: String
    var kind: Kind
    /// A cheap request `credgate doctor` sends with this credential to check it works (`probe:`).
    var probe: CredentialProbe? = nil

    init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// Names (lower-cased) of the headers this credential writes: removed from the client's request first.
    var headerNames: [String] {
        switch kind {
        case .apiKey(let header, _): return [header.lowercased()]
        case .jwtSession(let session): return [session.header.lowercased()]
        case .awsSigV4: return ["authorization", "x-amz-security-token"]
        }
    }
}

/// `probe:` a request that shows a static credential works: `GET <upstream base URL><path>` with the credential,
/// expecting a 2xx.
struct CredentialProbe: Sendable, Equatable {
    var method: String = "GET"
    /// A platform path, after the upstream's base URL (as login paths are).
    var path: String
    /// The upstream to ask; nil: the upstream of the first route that uses the credential.
    var upstream: String?

    init(path: String, method: String = "GET", upstream: String? = nil) {
        self.path = path
        self.method = method
        self.upstream = upstream
    }
}

/// One route: which requests it takes, where they go and with which credentials.
public struct RouteConfig: Sendable {
    var name: String
    /// Methods the route takes (upper-case); `nil` takes every method.
    var methods: Set<String>?
    var path: PathPattern
    public var upstream: String
    var credentials: [String]
    /// Largest request body accepted, in bytes; larger ones get 413 and are not forwarded.
    var maxBodyBytes: Int64 = 128 * 1024 * 1024
    /// Bodies up to this size are kept while they stream so the request can be replayed once when the platform
    /// rejects a session token (401); larger ones are not replayed.
    var replayMaxBodyBytes: Int = 1024 * 1024
    /// Request transforms applied in order after the credentials.
    var transforms: [RouteTransform] = []
    /// Whether the client's `Cookie` header is forwarded. Off by default: a browser on the same machine could
    /// otherwise ride a session cookie through the gateway.
    var forwardCookies = false
    /// Whether a request whose path cannot be normalised safely (an encoded `/`, a `;`, `//`, a dot segment in
    /// any encoding) may still take this route, matched and forwarded as sent. Off by default: such paths get 400.
    var rawPath = false
    /// Longest silence from the upstream once its answer head has arrived (`idle_timeout`): the upstream's own
    /// by default; `off` for streams (server-sent events) that may be quiet for long.
    var idleTimeout: RouteIdleTimeout = .upstream
    /// Idempotent requests sent again after a 429 or 5xx (`retry:`); off by default.
    var retry = RetryPolicy()

    init(name: String, methods: Set<String>?, path: PathPattern, upstream: String, credentials: [String]) {
        self.name = name
        self.methods = methods
        self.path = path
        self.upstream = upstream
        self.credentials = credentials
    }
}

/// A route's `idle_timeout`.
enum RouteIdleTimeout: Sendable, Equatable {
    /// The upstream's `idle_timeout`.
    case upstream
    case after(TimeAmount)
    /// No limit once the answer head has arrived (the response timeout still bounds the wait for the head).
    case off
}

/// What a route does to requests beyond credentials, as written in its `transforms:` list.
enum RouteTransform: String, Sendable, CaseIterable, Hashable {
    /// `{"ssn": ...}` checked and encrypted with the route's session token (needs a `jwt_session` credential).
    case ssnEncryption = "ssn_encryption"
    /// A multipart upload checked (type, size, framing) before anything is forwarded.
    case uploadValidation = "upload_validation"
    /// Presign answers cached until shortly before the URL expires.
    case presignCache = "presign_cache"
    /// The upstream's own absolute links in JSON answers (pagination `next`/`previous`) pointed at the gateway.
    case rewriteLinks = "rewrite_links"
}

/// `presign_cache:`; see ``PresignCache/Configuration``.
struct PresignCacheConfig: Sendable, Equatable {
    var maxEntries = 10_000
    var maxLifetime: TimeAmount = .hours(1)
    /// `nil` (written `0s`): no separate ceiling for URLs signed with temporary credentials.
    var temporaryCredentialsMaxLifetime: TimeAmount? = .minutes(10)

    init() {}
}

/// `spool:` where a body checked whole before forwarding (an upload) waits: in memory up to `memoryLimit`, beyond
/// it in an unnamed, encrypted file in `directory`.
struct SpoolConfig: Sendable {
    /// Empty: the system's temporary directory (`TMPDIR`, else `/tmp`).
    var directory = ""
    var memoryLimit = 64 * 1024

    init() {}
}

/// `endpoints:` the platform paths behind credgate's own endpoints. Each endpoint takes the upstream,
/// credentials, limits and transforms of the route that serves the platform path it stands for, and exists only
/// when such a route exists.
struct EndpointsConfig: Sendable {
    /// `PUT /credgate/v1/files/{filename}` uploads here (multipart, as the SDK does).
    var uploadPath = "/api/v1/files/handle/"
    /// `GET /credgate/v1/files/download?s3_url=` presigns here.
    var presignPath = "/api/v1/files/presign-s3-url/presign_s3_url/"
    /// `POST /credgate/v1/provider-documents` attaches the uploaded file here.
    var providerDocumentsPath = "/api/v1/users/provider-documents/"
    /// `PUT /credgate/v1/wriftai/files/{name}`: WriftAI's whole upload in one call; `nil` (the default): no such
    /// endpoint.
    var wriftaiUpload: WriftAIUploadConfig? = nil
    /// `POST /credgate/v1/s3/links` and `GET /credgate/v1/s3/download/{key}`, and the buckets the signing route may
    /// reach; `nil` (the default): no S3 endpoints.
    var s3: S3Config? = nil

    init() {}
}
