import Foundation
import NIOCore
import Yams

/// Builds a ``GatewayConfig`` from YAML once, at start-up (or an explicit reload), and refuses a file with any
/// problem, listing all of them with their YAML paths: a gateway half-configured is worse than one not started.
///
/// The tree is walked by hand rather than decoded with `Codable`, so that every message says exactly where it
/// is, unknown keys (typos) are errors rather than silently ignored, and a secret is never quoted.
/// The reference of every key is `docs/configuration.md`.
public enum ConfigLoader {
    /// Reads and parses the file at `path` (and the files it includes); `_FILE` secrets and `ca_file`s are read
    /// from the file system.
    static func load(path: String, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        try load(paths: [path], environment: environment)
    }

    /// Parses a configuration. `readFile` reads `VAR_FILE` secrets and `ca_file`s; tests pass their own.
    static func parse(
        yaml: String,
        environment: [String: String],
        readFile: (String) throws -> String = ConfigLoader.readTextFile
    ) throws(ConfigError) -> GatewayConfig {
        let root: Node
        switch compose(yaml) {
        case .success(let node): root = node
        case .failure(let error): throw error
        }
        let result = withoutActuallyEscaping(readFile) { readFile -> Result<GatewayConfig, ConfigError> in
            let walker = ConfigWalker(interpolator: Interpolator(environment: environment, readFile: readFile))
            let config = gateway(root, walker)
            guard walker.issues.isEmpty, let config else { return .failure(ConfigError(issues: walker.issues)) }
            return .success(config)
        }
        return try result.get()
    }

    /// Reads a UTF-8 text file, failing with a reason that never includes the file's content.
    public static func readTextFile(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FileReadFailure(reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw FileReadFailure(reason: "it is a directory") }
        guard FileManager.default.isReadableFile(atPath: path), let data = FileManager.default.contents(atPath: path)
        else { throw FileReadFailure(reason: "permission denied") }
        guard let text = String(data: data, encoding: .utf8) else { throw FileReadFailure(reason: "not UTF-8 text") }
        return text
    }

    // MARK: - The document

    /// A YAML syntax error becomes one issue at its line: nothing else can be trusted after it. Only libyaml's
    /// fixed phrases are kept, not Yams' snippet of the line, which could hold a secret written in the file.
    ///
    /// The tree is composed with `Resolver.basic` (no implicit tags): the walker reads every scalar as text and
    /// parses numbers, sizes, durations and booleans itself, so the tags `Resolver.default` would infer (bool,
    /// int, null, timestamp...) are never used. `Resolver.default` compiles seven `NSRegularExpression`s and runs
    /// them on every mapping key (Yams hashes keys to find duplicates): that alone brought ICU's regular
    /// expression engine and its data into the memory of a running gateway (issue 13: 1.2-2 MiB of idle RSS). `null` is still read as
    /// "not set": `Node.null` looks at the plain scalar's text, not at its tag. Two keys of one mapping now
    /// differ only by their text, so `1:` and `"1":` are the duplicate key they look like.
    static func compose(_ yaml: String) -> Result<Node, ConfigError> {
        do {
            guard let node = try Yams.compose(yaml: yaml, .basic) else {
                return .failure(issue(path: "(file)", message: "the file is empty: it needs 'upstreams' and 'routes'"))
            }
            return .success(node)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                .parser(let context, let problem, let mark, _),
                .composer(let context, let problem, let mark, _):
                let during = context.map { "\($0.text) (line \($0.mark.line)), " } ?? ""
                return .failure(
                    issue(
                        path: "line \(mark.line), column \(mark.column)",
                        message: "not valid YAML: \(during)\(problem)"))
            case .duplicatedKeysInMapping(let duplicates, let context):
                let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
                return .failure(
                    issue(
                        path: "line \(context.mark.line), column \(context.mark.column)",
                        message: "duplicate key \(keys) in one mapping (a key, or an upstream or credential name, "
                            + "may appear only once)"))
            case .reader(let problem, _, _, _):
                return .failure(issue(path: "(file)", message: "not valid YAML: \(problem)"))
            default:
                return .failure(issue(path: "(file)", message: "not valid YAML"))
            }
        } catch {
            return .failure(issue(path: "(file)", message: "not valid YAML"))
        }
    }

    private static func issue(path: String, message: String) -> ConfigError {
        ConfigError(issues: [ConfigIssue(path: path, message: message)])
    }

    /// Sections are read in dependency order whatever their order in the file, so routes can check their
    /// references; names that were defined but invalid still count as defined, to report one problem, not two.
    private static func gateway(_ root: Node, _ w: ConfigWalker) -> GatewayConfig? {
        guard let part = document(root, w, name: "main") else { return nil }
        if !part.includes.isEmpty {
            // Included paths are relative to a file: only ConfigLoader.load(paths:) (the command line) has one.
            w.issue(
                ConfigPath.root.key("include"),
                "includes are read only from a configuration file (credgate --config FILE)")
            return nil
        }
        guard let listener = part.listener else { return nil }
        var config = GatewayConfig(
            listen: listener.listen, upstreams: part.upstreams, credentials: part.credentials, routes: listener.routes)
        config.listeners = [listener]
        config.presignCache = part.presignCache ?? PresignCacheConfig()
        config.spool = part.spool ?? SpoolConfig()
        config.log = part.log ?? LogConfig()
        config.shutdown = part.shutdown ?? ShutdownConfig()
        config.admin = part.admin ?? AdminConfig()
        config.reload = part.reload ?? ReloadConfig()
        return config
    }

    /// What one file says. A file with `include:` may leave out `upstreams` and `routes` (it then only sets
    /// process-wide sections); a file with routes is one listener.
    struct Document {
        var includes: [String] = []
        var listener: ListenerConfig?
        /// Whether the file wrote `listen:` (a file without routes may not).
        var wroteListen = false
        var upstreams: [String: UpstreamConfig] = [:]
        var credentials: [String: CredentialConfig] = [:]
        var presignCache: PresignCacheConfig?
        var spool: SpoolConfig?
        var log: LogConfig?
        var shutdown: ShutdownConfig?
        var admin: AdminConfig?
        var reload: ReloadConfig?
        var wroteEndpoints = false
    }

    static let topLevelKeys = [
        "include", "listen", "upstreams", "credentials", "routes", "presign_cache", "spool", "endpoints", "log",
        "shutdown", "admin", "reload",
    ]

    static func document(_ root: Node, _ w: ConfigWalker, name: String) -> Document? {
        guard let top = w.mapping(root, at: .root, allowed: topLevelKeys) else { return nil }
        var doc = Document()
        doc.includes =
            top.value("include") { node, at -> [String]? in
                guard let items = w.sequence(node, at: at) else { return nil }
                return items.enumerated().compactMap { i, item in w.string(item, at: at.index(i)) }
            } ?? []
        let includeOnly = top["include"] != nil && top["routes"] == nil
        let listen = top.value("listen") { readListen($0, at: $1, w) } ?? ListenConfig()
        doc.wroteListen = top["listen"] != nil
        let upstreams =
            includeOnly
            ? (top.value("upstreams") { readUpstreams($0, at: $1, w) } ?? Named())
            : (w.required(top, "upstreams") { readUpstreams($0, at: $1, w) } ?? Named())
        let credentials =
            top.value("credentials") {
                readCredentials($0, at: $1, upstreams: upstreams.declared, w)
            } ?? Named()
        doc.presignCache = top.value("presign_cache") { readPresignCache($0, at: $1, w) }
        doc.spool = top.value("spool") { readSpool($0, at: $1, w) }
        let endpoints = top.value("endpoints") { readEndpoints($0, at: $1, w) } ?? EndpointsConfig()
        doc.wroteEndpoints = top["endpoints"] != nil
        doc.log = top.value("log") { readLog($0, at: $1, w) }
        doc.shutdown = top.value("shutdown") { readShutdown($0, at: $1, w) }
        doc.admin = top.value("admin") { node, at -> AdminConfig? in
            guard let f = w.mapping(node, at: at, allowed: ["quit_endpoint", "reload_endpoint"]) else { return nil }
            var admin = AdminConfig()
            if let v = f.value("quit_endpoint", { boolean($0, at: $1, w) }) { admin.quitEndpoint = v }
            if let v = f.value("reload_endpoint", { boolean($0, at: $1, w) }) { admin.reloadEndpoint = v }
            return admin
        }
        doc.reload = top.value("reload") { readReload($0, at: $1, w) }
        doc.upstreams = upstreams.valid
        doc.credentials = credentials.valid
        if !includeOnly {
            guard
                let routes = w.required(
                    top, "routes", { readRoutes($0, at: $1, upstreams: upstreams, credentials: credentials, w) })
            else { return nil }
            var listener = ListenerConfig(name: name, listen: listen, routes: routes)
            listener.endpoints = endpoints
            checkS3(listener, upstreams: upstreams.valid, credentials: credentials.valid, w)
            doc.listener = listener
        } else {
            if doc.wroteListen {
                w.issue(
                    ConfigPath.root.key("listen"),
                    "a file without routes has no listener: put 'listen' in the file whose routes it serves")
            }
            if doc.wroteEndpoints {
                w.issue(
                    ConfigPath.root.key("endpoints"),
                    "a file without routes has no endpoints: put 'endpoints' in the file whose routes they use")
            }
        }
        return doc
    }

    static func readLog(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> LogConfig {
        var log = LogConfig()
        guard let f = w.mapping(node, at: path, allowed: ["access", "format", "query"]) else { return log }
        if let v = f.value("access", { boolean($0, at: $1, w) }) { log.access = v }
        if let v = f.value("query", { boolean($0, at: $1, w) }) { log.query = v }
        if let v = f.value(
            "format",
            { node, path -> AccessLog.Format? in
                guard let text = w.scalar(node, at: path) else { return nil }
                guard let format = AccessLog.Format(rawValue: text.value) else {
                    w.issue(path, "expected json or text, got \(text.shown)")
                    return nil
                }
                return format
            })
        {
            log.format = v
        }
        return log
    }

    /// A map of names: the ones declared, and the ones that were also valid.
    struct Named<Value> {
        var declared: [String] = []
        var valid: [String: Value] = [:]
    }

    /// Reads a mapping of name to definition with `read`.
    static func named<Value>(
        _ node: Node, at path: ConfigPath, _ w: ConfigWalker, what: String,
        _ read: (String, Node, ConfigPath) -> Value?
    ) -> Named<Value> {
        var named = Named<Value>()
        guard let fields = w.mapping(node, at: path, allowed: nil) else { return named }
        if fields.entries.isEmpty { w.issue(path, "at least one \(what) is required") }
        for (name, definition) in fields.entries {
            named.declared.append(name)
            guard w.name(name, at: path.key(name)) else { continue }
            named.valid[name] = read(name, definition, path.key(name))
        }
        return named
    }

    // MARK: - listen

    static func readListen(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> ListenConfig {
        var listen = ListenConfig()
        let keys = [
            "host", "port", "max_connections", "max_connections_per_peer", "max_header_bytes", "idle_timeout",
            "header_timeout", "threads", "trust_forwarded_headers", "fast_path",
        ]
        guard let f = w.mapping(node, at: path, allowed: keys) else { return listen }
        if let v = f.value("host", { w.string($0, at: $1) }) { listen.host = v }
        if let v = f.value("port", { w.integer($0, at: $1, in: 0...65535) }) { listen.port = v }
        if let v = f.value("max_connections", { w.integer($0, at: $1, in: 1...Int.max) }) { listen.maxConnections = v }
        if let v = f.value("max_header_bytes", { w.byteSize($0, at: $1, in: 1...Int64(Int32.max)) }) {
            listen.maxHeaderBytes = Int(v)
        }
        if let v = f.value("idle_timeout", { w.duration($0, at: $1) }) { listen.idleTimeout = v }
        if let v = f.value("max_connections_per_peer", { w.integer($0, at: $1, in: 0...Int.max) }) {
            listen.maxConnectionsPerPeer = v
        }
        if let v = f.value("header_timeout", { w.duration($0, at: $1) }) { listen.headerTimeout = v }
        if let v = f.value("trust_forwarded_headers", { boolean($0, at: $1, w) }) { listen.trustForwardedHeaders = v }
        if let v = f.value("fast_path", { boolean($0, at: $1, w) }) { listen.fastPath = v }
        if let v = f.value("threads", { w.integer($0, at: $1, in: 0...Int.max) }) { listen.threads = v }
        return listen
    }

    // MARK: - presign_cache, spool, endpoints

    static func readPresignCache(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> PresignCacheConfig {
        var c = PresignCacheConfig()
        guard
            let f = w.mapping(
                node, at: path, allowed: ["max_entries", "max_lifetime", "temporary_credentials_max_lifetime"])
        else { return c }
        if let v = f.value("max_entries", { w.integer($0, at: $1, in: 0...10_000_000) }) { c.maxEntries = v }
        if let v = f.value("max_lifetime", { w.duration($0, at: $1) }) { c.maxLifetime = v }
        if let v = f.value("temporary_credentials_max_lifetime", { w.duration($0, at: $1) }) {
            c.temporaryCredentialsMaxLifetime = v.nanoseconds > 0 ? v : nil
        }
        return c
    }

    static func readShutdown(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> ShutdownConfig {
        var c = ShutdownConfig()
        guard let f = w.mapping(node, at: path, allowed: ["delay", "grace"]) else { return c }
        // 0 (the default) is a valid delay: the listener closes at once.
        if let v = f.value(
            "delay",
            { node, at -> TimeAmount? in
                guard let scalar = w.scalar(node, at: at) else { return nil }
                switch Quantity.duration(scalar.value) {
                case .success(let amount): return amount
                case .failure(.malformed):
                    w.issue(at, "expected a duration (\(Quantity.durationHint)), got \(scalar.shown)")
                case .failure(.tooLarge): w.issue(at, "\(scalar.shown) is too long a duration")
                }
                return nil
            })
        {
            c.delay = v
        }
        if let v = f.value("grace", { w.duration($0, at: $1) }) { c.grace = v }
        return c
    }

    static func readReload(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> ReloadConfig {
        var c = ReloadConfig()
        guard let f = w.mapping(node, at: path, allowed: ["secret_files_interval"]) else { return c }
        // `off` (or `0s`) turns the watching off; a poll more often than every 100 ms would only burn CPU.
        if let v = f.value(
            "secret_files_interval",
            { node, at -> TimeAmount?? in
                guard let scalar = w.scalar(node, at: at) else { return nil }
                if scalar.value == "off" { return .some(nil) }
                switch Quantity.duration(scalar.value) {
                case .success(let amount) where amount == .zero: return .some(nil)
                case .success(let amount) where amount < .milliseconds(100):
                    w.issue(at, "\(scalar.shown) is too short: at least 100ms, or off")
                case .success(let amount): return .some(amount)
                case .failure(.malformed):
                    w.issue(at, "expected a duration (\(Quantity.durationHint)) or off, got \(scalar.shown)")
                case .failure(.tooLarge): w.issue(at, "\(scalar.shown) is too long a duration")
                }
                return nil
            })
        {
            c.secretFilesInterval = v
        }
        return c
    }

    static func readSpool(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> SpoolConfig {
        var c = SpoolConfig()
        guard let f = w.mapping(node, at: path, allowed: ["directory", "memory_limit"]) else { return c }
        if let v = f.value("directory", { w.string($0, at: $1) }) { c.directory = v }
        if let v = f.value("memory_limit", { w.byteSize($0, at: $1, in: 0...(64 * 1024 * 1024)) }) {
            c.memoryLimit = Int(v)
        }
        return c
    }

    static func readEndpoints(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> EndpointsConfig {
        var c = EndpointsConfig()
        guard
            let f = w.mapping(
                node, at: path,
                allowed: ["upload_path", "presign_path", "provider_documents_path", "wriftai_upload", "s3"])
        else { return c }
        func platformPath(_ key: String) -> String? {
            f.value(key) { node, at in
                guard let v = w.string(node, at: at) else { return nil }
                guard v.hasPrefix("/"), !v.contains("?"), !v.contains("{"), !v.contains("*") else {
                    w.issue(at, "must be a literal path starting with '/' (no query, parameter or wildcard)")
                    return nil
                }
                return v
            }
        }
        if let v = platformPath("upload_path") { c.uploadPath = v }
        if let v = platformPath("presign_path") { c.presignPath = v }
        if let v = platformPath("provider_documents_path") { c.providerDocumentsPath = v }
        c.wriftaiUpload = f.value("wriftai_upload") { readWriftAIUpload($0, at: $1, w) }
        c.s3 = f.value("s3") { readS3($0, at: $1, w) }
        return c
    }
}
