import Foundation
import Yams

/// Several platforms in one process: `--config` given more than once, or a file that `include:`s profiles.
///
/// Each file with routes is one listener (its own `listen:` port and its own routes, as an nginx `server` block
/// or an Envoy listener), so every SDK keeps a plain base URL (`http://127.0.0.1:8081/v1`). Upstream,
/// credential and route names are shared by the whole process and may not clash; the process-wide sections
/// (`presign_cache`, `spool`, `log`, `shutdown`, `admin`, `reload`) may be written in one file only. Every file is
/// interpolated with the same environment, and only the files given are read: a user of one platform never sets
/// another's variables.
extension ConfigLoader {
    /// Reads the files at `paths`, in order, each after the files it includes; messages name the file when
    /// there is more than one.
    public static func load(
        paths: [String], environment: [String: String], readFile: (String) throws -> String = ConfigLoader.readTextFile
    ) throws(ConfigError) -> GatewayConfig {
        var secretFiles: [String] = []
        return try load(paths: paths, environment: environment, readFile: readFile, secretFiles: &secretFiles)
    }

    /// ``load(paths:environment:readFile:)``, also saying which `VAR_FILE` secrets it read, in the order first
    /// read, without repeats. They are filled in whether or not the configuration has problems: a secret file
    /// that is missing now (a Kubernetes Secret being rotated) is still worth watching.
    static func load(
        paths: [String], environment: [String: String], readFile: (String) throws -> String = ConfigLoader.readTextFile,
        secretFiles: inout [String]
    ) throws(ConfigError) -> GatewayConfig {
        final class Used {
            var paths: [String] = []
            func add(_ path: String) { if !paths.contains(path) { paths.append(path) } }
        }
        let used = Used()
        defer { secretFiles = used.paths }
        var issues: [ConfigIssue] = []
        var files: [(path: String, root: Node)] = []
        var visiting: [String] = []
        var loaded = Set<String>()

        func fail(_ file: String, _ message: String) {
            issues.append(ConfigIssue(path: file, message: message))
        }
        /// Depth first: a file's includes come before it, so its own routes are matched after theirs.
        func visit(_ path: String, from parent: String?) {
            let key = URL(fileURLWithPath: path).standardizedFileURL.path
            if visiting.contains(key) {
                fail(parent ?? path, "includes '\(path)', which includes it back (an include cycle)")
                return
            }
            guard loaded.insert(key).inserted else {
                fail(parent ?? path, "'\(path)' is given twice (its names would clash with themselves)")
                return
            }
            let yaml: String
            do {
                yaml = try readFile(path)
            } catch {
                let reason = (error as? FileReadFailure)?.reason ?? "cannot be read"
                fail(parent ?? "(file)", "cannot read '\(path)': \(reason)")
                return
            }
            let root: Node
            switch compose(yaml) {
            case .success(let node): root = node
            case .failure(let error):
                issues += error.issues.map { ConfigIssue(path: "\(path) \($0.path)", message: $0.message) }
                return
            }
            visiting.append(key)
            for include in includes(of: root) {
                let resolved =
                    include.hasPrefix("/")
                    ? include
                    : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(include)
                        .standardizedFileURL.path
                visit(shown(resolved), from: path)
            }
            visiting.removeLast()
            files.append((path, root))
        }
        for path in paths { visit(path, from: nil) }
        // One file, no include: messages keep the plain YAML paths they always had.
        let prefixed = files.count > 1 || !issues.isEmpty
        if !issues.isEmpty && files.isEmpty { throw ConfigError(issues: issues) }

        var documents: [(path: String, document: Document)] = []
        var names = Set<String>()
        for (path, root) in files {
            let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            var name = base
            var n = 2
            while !names.insert(name).inserted {
                name = "\(base)-\(n)"
                n += 1
            }
            let result = withoutActuallyEscaping(readFile) { readFile -> ([ConfigIssue], Document?) in
                let interpolator = Interpolator(environment: environment, readFile: readFile, secretFileUsed: used.add)
                let walker = ConfigWalker(interpolator: interpolator)
                let document = document(root, walker, name: name)
                return (walker.issues, document)
            }
            issues += result.0.map { prefixed ? ConfigIssue(path: "\(path) \($0.path)", message: $0.message) : $0 }
            if let document = result.1 { documents.append((path, document)) }
        }
        guard issues.isEmpty else { throw ConfigError(issues: issues) }
        return try merge(documents)
    }

    /// A resolved path as messages show it: relative to the working directory when it is under it.
    private static func shown(_ path: String) -> String {
        let cwd = FileManager.default.currentDirectoryPath
        let prefix = cwd.hasSuffix("/") ? cwd : cwd + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    /// The `include:` list of a composed file, read leniently (the walker reports a malformed one later).
    private static func includes(of root: Node) -> [String] {
        guard case .mapping(let top) = root, let node = top["include"], case .sequence(let items) = node else {
            return []
        }
        return items.compactMap(\.string)
    }

    /// One configuration from several files' documents, refusing clashes with both files named.
    static func merge(_ documents: [(path: String, document: Document)]) throws(ConfigError) -> GatewayConfig {
        var issues: [ConfigIssue] = []
        var listeners: [ListenerConfig] = []
        var listenerFiles: [String] = []
        var upstreams: [String: UpstreamConfig] = [:]
        var credentials: [String: CredentialConfig] = [:]
        var definedIn: [String: String] = [:]
        var routeFile: [String: String] = [:]
        var presignCache: (PresignCacheConfig, String)?
        var spool: (SpoolConfig, String)?
        var log: (LogConfig, String)?
        var shutdown: (ShutdownConfig, String)?
        var admin: (AdminConfig, String)?
        var reload: (ReloadConfig, String)?

        func once<T>(_ slot: inout (T, String)?, _ value: T?, _ key: String, _ path: String) {
            guard let value else { return }
            if let (_, first) = slot {
                issues.append(
                    ConfigIssue(
                        path: "\(path) \(key)",
                        message:
                            "already set in \(first): '\(key)' applies to the whole process, so only one file may set it"
                    ))
            } else {
                slot = (value, path)
            }
        }

        for (path, doc) in documents {
            for (name, upstream) in doc.upstreams.sorted(by: { $0.key < $1.key }) {
                if let first = definedIn["upstreams.\(name)"] {
                    issues.append(
                        ConfigIssue(
                            path: "\(path) upstreams.\(name)",
                            message: "upstream '\(name)' is also defined in \(first): names must be unique across files"
                        ))
                } else {
                    definedIn["upstreams.\(name)"] = path
                    upstreams[name] = upstream
                }
            }
            for (name, credential) in doc.credentials.sorted(by: { $0.key < $1.key }) {
                if let first = definedIn["credentials.\(name)"] {
                    issues.append(
                        ConfigIssue(
                            path: "\(path) credentials.\(name)",
                            message:
                                "credential '\(name)' is also defined in \(first): names must be unique across files"))
                } else {
                    definedIn["credentials.\(name)"] = path
                    credentials[name] = credential
                }
            }
            once(&presignCache, doc.presignCache, "presign_cache", path)
            once(&spool, doc.spool, "spool", path)
            once(&log, doc.log, "log", path)
            once(&shutdown, doc.shutdown, "shutdown", path)
            once(&admin, doc.admin, "admin", path)
            once(&reload, doc.reload, "reload", path)
            guard let listener = doc.listener else { continue }
            for (i, route) in listener.routes.enumerated() {
                if let first = routeFile[route.name] {
                    issues.append(
                        ConfigIssue(
                            path: "\(path) routes[\(i)].name",
                            message:
                                "route '\(route.name)' is also defined in \(first): names must be unique across files"))
                } else {
                    routeFile[route.name] = path
                }
            }
            for (other, otherPath) in zip(listeners, listenerFiles) where Self.sameSocket(other.listen, listener.listen)
            {
                issues.append(
                    ConfigIssue(
                        path: "\(path) listen.port",
                        message:
                            "port \(listener.listen.port) on \(listener.listen.host) is also the listener of \(otherPath): give each file its own port"
                    ))
            }
            if let first = listeners.first, listener.listen.threads != 0,
                listener.listen.threads != first.listen.threads
            {
                issues.append(
                    ConfigIssue(
                        path: "\(path) listen.threads",
                        message: "threads is process-wide: set it in the first file (\(listenerFiles[0])) only"))
            }
            listeners.append(listener)
            listenerFiles.append(path)
        }
        if listeners.isEmpty {
            issues.append(
                ConfigIssue(
                    path: documents.first?.path ?? "(file)",
                    message: "no file has routes: include or give at least one platform profile"))
        }
        guard issues.isEmpty else { throw ConfigError(issues: issues) }
        var config = GatewayConfig(upstreams: upstreams, credentials: credentials, routes: [])
        config.listeners = listeners
        config.presignCache = presignCache?.0 ?? PresignCacheConfig()
        config.spool = spool?.0 ?? SpoolConfig()
        config.log = log?.0 ?? LogConfig()
        config.shutdown = shutdown?.0 ?? ShutdownConfig()
        config.admin = admin?.0 ?? AdminConfig()
        config.reload = reload?.0 ?? ReloadConfig()
        return config
    }

    /// Whether two listeners would bind the same socket (port 0 always gets a fresh one).
    static func sameSocket(_ a: ListenConfig, _ b: ListenConfig) -> Bool {
        guard a.port != 0, a.port == b.port else { return false }
        let any: Set<String> = ["0.0.0.0", "::", "[::]", ""]
        return a.host == b.host || any.contains(a.host) || any.contains(b.host)
    }
}
