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
    /// Reads and parses the file at `path`; `_FILE` secrets and `ca_file`s are read from the file system.
    public static func load(path: String, environment: [String: String]) throws(ConfigError) -> GatewayConfig {
        let yaml: String
        do {
            yaml = try readTextFile(path)
        } catch {
            let reason = (error as? FileReadFailure)?.reason ?? "cannot be read"
            throw ConfigError(issues: [ConfigIssue(path: "(file)", message: "cannot read '\(path)': \(reason)")])
        }
        return try parse(yaml: yaml, environment: environment)
    }

    /// Parses a configuration. `readFile` reads `VAR_FILE` secrets and `ca_file`s; tests pass their own.
    public static func parse(
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
    static func compose(_ yaml: String) -> Result<Node, ConfigError> {
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                return .failure(issue(path: "(file)", message: "the file is empty: it needs 'upstreams' and 'routes'"))
            }
            return .success(node)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                 .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                let during = context.map { "\($0.text) (line \($0.mark.line)), " } ?? ""
                return .failure(issue(path: "line \(mark.line), column \(mark.column)",
                                            message: "not valid YAML: \(during)\(problem)"))
            case .duplicatedKeysInMapping(let duplicates, let context):
                let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
                return .failure(issue(
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
        guard let top = w.mapping(root, at: .root, allowed: ["listen", "upstreams", "credentials", "routes"]) else {
            return nil
        }
        let listen = top.value("listen") { readListen($0, at: $1, w) } ?? ListenConfig()
        let upstreams = w.required(top, "upstreams") { readUpstreams($0, at: $1, w) } ?? Named()
        let credentials = top.value("credentials") { readCredentials($0, at: $1, w) } ?? Named()
        let routes = w.required(top, "routes") { readRoutes($0, at: $1, upstreams: upstreams, credentials: credentials, w) }
        guard let routes else { return nil }
        return GatewayConfig(listen: listen, upstreams: upstreams.valid, credentials: credentials.valid, routes: routes)
    }

    /// A map of names: the ones declared, and the ones that were also valid.
    private struct Named<Value> {
        var declared: [String] = []
        var valid: [String: Value] = [:]
    }

    /// Reads a mapping of name to definition with `read`.
    private static func named<Value>(
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

    private static func readListen(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> ListenConfig {
        var listen = ListenConfig()
        let keys = ["host", "port", "max_connections", "max_header_bytes", "idle_timeout", "threads"]
        guard let f = w.mapping(node, at: path, allowed: keys) else { return listen }
        if let v = f.value("host", { w.string($0, at: $1) }) { listen.host = v }
        if let v = f.value("port", { w.integer($0, at: $1, in: 0...65535) }) { listen.port = v }
        if let v = f.value("max_connections", { w.integer($0, at: $1, in: 1...Int.max) }) { listen.maxConnections = v }
        if let v = f.value("max_header_bytes", { w.byteSize($0, at: $1, in: 1...Int64(Int32.max)) }) {
            listen.maxHeaderBytes = Int(v)
        }
        if let v = f.value("idle_timeout", { w.duration($0, at: $1) }) { listen.idleTimeout = v }
        if let v = f.value("threads", { w.integer($0, at: $1, in: 0...Int.max) }) { listen.threads = v }
        return listen
    }

    // MARK: - upstreams

    private static func readUpstreams(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Named<UpstreamConfig> {
        named(node, at: path, w, what: "upstream") { name, node, path in
            let keys = ["url", "connect_timeout", "response_timeout", "idle_timeout", "ca_file",
                        "max_idle_connections", "pool_idle_timeout"]
            guard let f = w.mapping(node, at: path, allowed: keys) else { return nil }
            let url = w.required(f, "url") { upstreamURL($0, at: $1, w) }
            var upstream = url.map { UpstreamConfig(name: name, url: $0) }
            if let v = f.value("connect_timeout", { w.duration($0, at: $1) }) { upstream?.connectTimeout = v }
            if let v = f.value("response_timeout", { w.duration($0, at: $1) }) { upstream?.responseTimeout = v }
            if let v = f.value("idle_timeout", { w.duration($0, at: $1) }) { upstream?.idleTimeout = v }
            if let v = f.value("max_idle_connections", { w.integer($0, at: $1, in: 0...Int.max) }) {
                upstream?.maxIdleConnections = v
            }
            if let v = f.value("pool_idle_timeout", { w.duration($0, at: $1) }) { upstream?.poolIdleTimeout = v }
            if let v = f.value("ca_file", { caFile($0, at: $1, https: url.map { $0.scheme == .https }, w) }) {
                upstream?.caFile = v
            }
            return upstream
        }
    }

    private static func upstreamURL(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> UpstreamURL? {
        guard let text = w.scalar(node, at: path) else { return nil }
        switch UpstreamURL.parse(text.value) {
        case .success(let url):
            return url
        case .failure(.userInfo):
            // The URL holds a password: do not quote it, even as written.
            w.issue(path, "not a usable upstream URL: \(UpstreamURL.URLProblem.userInfo)")
            return nil
        case .failure(let problem):
            w.issue(path, "\(text.shown) is not a usable upstream URL: \(problem)")
            return nil
        }
    }

    /// Checked now, so that a wrong path fails `check-config` rather than the first request. The file is
    /// public (CA certificates), but still never quoted.
    private static func caFile(_ node: Node, at path: ConfigPath, https: Bool?, _ w: ConfigWalker) -> String? {
        guard let file = w.scalar(node, at: path) else { return nil }
        if https == false {
            w.issue(path, "a CA file applies only to an https upstream")
            return nil
        }
        let pem: String
        do {
            pem = try w.interpolator.readFile(file.value)
        } catch {
            let reason = (error as? FileReadFailure)?.reason ?? "cannot be read"
            w.issue(path, "cannot read CA file \(file.shown): \(reason)")
            return nil
        }
        guard pem.contains("-----BEGIN CERTIFICATE-----") else {
            w.issue(path, "CA file \(file.shown) holds no PEM certificate ('-----BEGIN CERTIFICATE-----')")
            return nil
        }
        return file.value
    }

    // MARK: - credentials

    /// The kinds of credential this build knows, as written in `kind:`.
    static let credentialKinds = ["api_key"]

    /// Headers that frame or route the request: a credential written there would break the exchange.
    private static let reservedHeaders: Set<String> = [
        "connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    private static func readCredentials(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Named<CredentialConfig> {
        named(node, at: path, w, what: "credential") { name, node, path in
            guard let all = w.mapping(node, at: path, allowed: nil) else { return nil }
            guard let kind = w.required(all, "kind", { w.scalar($0, at: $1) }) else {
                return nil
            }
            switch kind.value {
            case "api_key":
                let f = w.only(["kind", "header", "value"], in: all)
                let header = w.required(f, "header") { headerName($0, at: $1, w) }
                let value = w.required(f, "value") { secret($0, at: $1, w) }
                guard let header, let value else { return nil }
                return CredentialConfig(name: name, kind: .apiKey(header: header, value: value))
            default:
                w.issue(path.key("kind"), "unknown credential kind \(kind.shown) "
                        + "(expected one of: \(credentialKinds.joined(separator: ", ")))")
                return nil
            }
        }
    }

    private static func headerName(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> String? {
        guard let name = w.scalar(node, at: path) else { return nil }
        guard HTTPToken.isValid(name.value) else {
            let why = name.value.isEmpty ? "empty" : "not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
            w.issue(path, "\(name.shown) is not a header name: \(why)")
            return nil
        }
        guard !reservedHeaders.contains(name.value.lowercased()) else {
            w.issue(path, "header '\(name.value)' cannot carry a credential: the gateway manages it")
            return nil
        }
        return name.value
    }

    /// A credential's value. Messages here never show it, not even quoted as written: it may be a literal key.
    private static func secret(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Secret? {
        guard let value = w.scalar(node, at: path) else { return nil }
        if value.value.isEmpty {
            w.issue(path, "is empty")
            return nil
        }
        guard HTTPToken.isValidFieldValue(value.value) else {
            w.issue(path, "contains characters a header value cannot have (a line break or another control character)")
            return nil
        }
        return Secret(value.value)
    }

    // MARK: - routes

    /// A route read far enough to check it against the routes before it.
    private struct Matcher {
        var index: Int
        var name: String
        var methods: Set<String>?
        var pattern: PathPattern
    }

    private static func readRoutes(
        _ node: Node, at path: ConfigPath,
        upstreams: Named<UpstreamConfig>, credentials: Named<CredentialConfig>, _ w: ConfigWalker
    ) -> [RouteConfig]? {
        guard let items = w.sequence(node, at: path) else { return nil }
        if items.isEmpty { w.issue(path, "at least one route is required") }
        var routes: [RouteConfig] = []
        var firstByName: [String: Int] = [:]
        var earlier: [Matcher] = []
        let keys = ["name", "methods", "path", "upstream", "credentials", "max_body_bytes"]
        for (index, item) in items.enumerated() {
            let path = path.index(index)
            guard let f = w.mapping(item, at: path, allowed: keys) else { continue }

            var name = w.required(f, "name") { w.string($0, at: $1) }
            if let n = name, !w.name(n, at: path.key("name")) {
                name = nil
            } else if let n = name, let first = firstByName[n] {
                w.issue(path.key("name"), "duplicate route name '\(n)' (first used by routes[\(first)])")
            } else if let n = name {
                firstByName[n] = index
            }
            let methods = f["methods"].map { methodSet($0, at: path.key("methods"), w) } ?? .some(nil)
            let pattern = w.required(f, "path") { pathPattern($0, at: $1, w) }
            let upstream = w.required(f, "upstream") { reference($0, at: $1, in: upstreams.declared, "upstream", w) }
            let names = f.value("credentials") { routeCredentials($0, at: $1, credentials, w) } ?? (f["credentials"] == nil ? [] : nil)
            let maxBody = f.value("max_body_bytes") { w.byteSize($0, at: $1, in: 0...Int64.max) }

            guard let name, let methods, let pattern else { continue }
            if let shadow = earlier.first(where: { covers($0, methods, pattern) }) {
                w.issue(path, "route '\(name)' can never match: every request it takes is taken first by "
                        + "routes[\(shadow.index)] ('\(shadow.name)')")
            }
            earlier.append(Matcher(index: index, name: name, methods: methods, pattern: pattern))

            guard let upstream, let names else { continue }
            var route = RouteConfig(name: name, methods: methods, path: pattern, upstream: upstream, credentials: names)
            if let maxBody { route.maxBodyBytes = maxBody }
            routes.append(route)
        }
        return routes
    }

    /// Whether `route` takes every request that (methods, pattern) would: methods a superset (nil = all) and a
    /// pattern that covers.
    private static func covers(_ route: Matcher, _ methods: Set<String>?, _ pattern: PathPattern) -> Bool {
        switch (route.methods, methods) {
        case (nil, _): break
        case (.some, nil): return false
        case (.some(let mine), .some(let theirs)): if !mine.isSuperset(of: theirs) { return false }
        }
        return route.pattern.covers(pattern)
    }

    /// `methods`: a list of methods, or `"*"` (or no key) for every method. Returns `.some(nil)` for every
    /// method and nil when invalid.
    private static func methodSet(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Set<String>?? {
        let items: [(Node, ConfigPath)]
        if case .sequence(let sequence) = node {
            items = sequence.enumerated().map { ($1, path.index($0)) }
        } else {
            items = [(node, path)]
        }
        guard !items.isEmpty else {
            w.issue(path, "an empty list takes no request: list methods, or write \"*\" or omit the key for every method")
            return nil
        }
        var methods = Set<String>()
        var valid = true
        var every = false
        for (node, path) in items {
            guard let method = w.scalar(node, at: path) else {
                valid = false
                continue
            }
            if method.value == "*" {
                every = true
            } else if HTTPToken.isValid(method.value) {
                methods.insert(method.value.uppercased())
            } else {
                w.issue(path, "\(method.shown) is not an HTTP method (a token such as GET or POST)")
                valid = false
            }
        }
        if every && items.count > 1 {
            w.issue(path, "\"*\" (every method) cannot be listed with other methods")
            valid = false
        }
        guard valid else { return nil }
        return .some(every ? nil : methods)
    }

    private static func pathPattern(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> PathPattern? {
        guard let text = w.scalar(node, at: path) else { return nil }
        do {
            return try PathPattern(text.value)
        } catch {
            w.issue(path, "bad path pattern \(text.shown): \(error)")
            return nil
        }
    }

    /// A name that must be among `declared`.
    private static func reference(
        _ node: Node, at path: ConfigPath, in declared: [String], _ what: String, _ w: ConfigWalker
    ) -> String? {
        guard let name = w.scalar(node, at: path) else { return nil }
        guard declared.contains(name.value) else {
            w.issue(path, "unknown \(what) \(name.shown)")
            return nil
        }
        return name.value
    }

    /// A route's credentials: each defined, listed once, and no two writing the same header (the second would
    /// silently overwrite the first).
    private static func routeCredentials(
        _ node: Node, at path: ConfigPath, _ credentials: Named<CredentialConfig>, _ w: ConfigWalker
    ) -> [String]? {
        guard let items = w.sequence(node, at: path) else { return nil }
        var names: [String] = []
        var valid = true
        var writers: [String: String] = [:]  // header (lower-cased) -> credential writing it
        for (index, item) in items.enumerated() {
            let path = path.index(index)
            guard let name = reference(item, at: path, in: credentials.declared, "credential", w) else {
                valid = false
                continue
            }
            guard !names.contains(name) else {
                w.issue(path, "credential '\(name)' is listed twice")
                valid = false
                continue
            }
            names.append(name)
            for header in credentials.valid[name]?.headerNames ?? [] {
                if let other = writers[header] {
                    w.issue(path, "credentials '\(other)' and '\(name)' both write header '\(header)'")
                    valid = false
                } else {
                    writers[header] = name
                }
            }
        }
        return valid ? names : nil
    }
}
