import Yams

/// `upstreams:`: the platforms to forward to.
extension ConfigLoader {
    static func readUpstreams(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Named<UpstreamConfig> {
        named(node, at: path, w, what: "upstream") { name, node, path in
            let keys = [
                "url", "connect_timeout", "response_timeout", "idle_timeout", "ca_file",
                "max_idle_connections", "pool_idle_timeout", "mount",
            ]
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
            if let v = f.value(
                "mount",
                { node, at -> String? in
                    guard let v = w.string(node, at: at) else { return nil }
                    let mount = v.hasSuffix("/") ? String(v.dropLast()) : v
                    guard v.hasPrefix("/"), !mount.contains("?"), !mount.contains("*"), !mount.contains("{"),
                        !mount.contains("//")
                    else {
                        w.issue(
                            at, "must be a literal path starting with '/' (no query, parameter or wildcard), e.g. /v1")
                        return nil
                    }
                    return mount
                })
            {
                upstream?.mount = v
            }
            if let v = f.value("ca_file", { caFile($0, at: $1, https: url.map { $0.scheme == .https }, w) }) {
                upstream?.caFile = v
            }
            return upstream
        }
    }

    static func upstreamURL(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> UpstreamURL? {
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
    /// (CA certificates), but still never quoted.
    static func caFile(_ node: Node, at path: ConfigPath, https: Bool?, _ w: ConfigWalker) -> String? {
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
}
