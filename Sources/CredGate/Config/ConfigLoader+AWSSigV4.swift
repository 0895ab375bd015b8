import Yams

/// `kind: aws_sigv4` credentials and `endpoints.s3`, and the checks that tie them to a listener's routes.
extension ConfigLoader {
    static let awsSigV4Keys = ["kind", "access_key_id", "secret_access_key", "session_token", "region", "service"]
    static let s3EndpointKeys = [
        "bucket", "extra_buckets", "key_prefix", "addressing", "link_lifetime", "max_link_lifetime",
    ]

    /// `kind: aws_sigv4`. The secret and the session token are never quoted in a message.
    static func awsSigV4(_ f: ConfigFields, _ w: ConfigWalker) -> AWSSigV4.Credentials? {
        let keyID = w.required(f, "access_key_id") { node, path -> String? in
            guard let text = w.scalar(node, at: path) else { return nil }
            guard !text.value.isEmpty, text.value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") })
            else {
                w.issue(
                    path,
                    text.value.isEmpty ? "is empty" : "is not an access key id (printable ASCII without spaces or '/')")
                return nil
            }
            return text.value
        }
        let secretKey = w.required(f, "secret_access_key") { secret($0, at: $1, w) }
        // `${AWS_SESSION_TOKEN:-}` is the usual spelling: empty means long-term keys, no token.
        var token: Secret?
        if let node = f["session_token"], let text = w.scalar(node, at: f.path.key("session_token")),
            !text.value.isEmpty
        {
            token = secret(node, at: f.path.key("session_token"), w)
        }
        let region = w.required(f, "region") { scopePart($0, at: $1, what: "region (such as eu-west-1)", w) }
        let service = f.value("service") { scopePart($0, at: $1, what: "service name (s3)", w) } ?? "s3"
        guard let keyID, let secretKey, let region else { return nil }
        return AWSSigV4.Credentials(
            accessKeyID: keyID, secretAccessKey: secretKey, sessionToken: token, region: region, service: service)
    }

    /// A region or service: lower-case letters, digits and `-` (they go into the credential scope as they are).
    private static func scopePart(_ node: Node, at path: ConfigPath, what: String, _ w: ConfigWalker) -> String? {
        guard let text = w.scalar(node, at: path) else { return nil }
        guard !text.value.isEmpty,
            text.value.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D })
        else {
            let hint = text.value.isEmpty && text.usedEnvironment ? " (set AWS_REGION or AWS_DEFAULT_REGION)" : ""
            w.issue(path, "\(text.shown) is not a \(what)\(hint)")
            return nil
        }
        return text.value
    }

    /// `endpoints.s3`.
    static func readS3(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> S3Config? {
        guard let f = w.mapping(node, at: path, allowed: s3EndpointKeys) else { return nil }
        let bucket = w.required(f, "bucket") { bucketName($0, at: $1, w) }
        let extra = f.value("extra_buckets") { node, at -> [String]? in
            guard let items = w.sequence(node, at: at) else { return nil }
            let names = items.enumerated().compactMap { i, item in bucketName(item, at: at.index(i), w) }
            return names.count == items.count ? names : nil
        }
        let prefix = f.value("key_prefix") { node, at -> String? in
            guard let text = w.scalar(node, at: at) else { return nil }
            guard !text.value.hasPrefix("/"), text.value.utf8.count <= 512,
                !text.value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                w.issue(
                    at, "\(text.shown) is not a key prefix (no leading '/', no control characters, at most 512 bytes)")
                return nil
            }
            return text.value
        }
        let addressing = f.value("addressing") { node, at -> AWSSigV4.S3AddressingStyle? in
            guard let text = w.scalar(node, at: at) else { return nil }
            guard let style = AWSSigV4.S3AddressingStyle(rawValue: text.value) else {
                w.issue(at, "expected path or virtual, got \(text.shown)")
                return nil
            }
            return style
        }
        let lifetime = f.value("link_lifetime") { linkLifetime($0, at: $1, w) }
        let maximum = f.value("max_link_lifetime") { linkLifetime($0, at: $1, w) }
        guard let bucket else { return nil }
        var c = S3Config(bucket: bucket)
        if let extra { c.extraBuckets = extra }
        if let prefix { c.keyPrefix = prefix }
        if let addressing { c.addressing = addressing }
        if let maximum { c.maximumLifetime = maximum }
        if let lifetime { c.defaultLifetime = lifetime }
        if c.defaultLifetime > c.maximumLifetime {
            w.issue(
                path.key(lifetime != nil ? "link_lifetime" : "max_link_lifetime"),
                "link_lifetime (default 15m) may not be longer than max_link_lifetime")
        }
        return c
    }

    private static func bucketName(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> String? {
        guard let text = w.scalar(node, at: path) else { return nil }
        guard S3URI(validating: "s3://\(text.value)/k") != nil else {
            w.issue(
                path,
                "\(text.shown) is not an S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-')"
                    + (text.value.isEmpty && text.usedEnvironment ? "; set S3_BUCKET" : ""))
            return nil
        }
        return text.value
    }

    private static func linkLifetime(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Int? {
        guard let amount = w.duration(node, at: path) else { return nil }
        let seconds = Int(amount.nanoseconds / 1_000_000_000)
        guard (1...AWSSigV4.maximumPresignedLifetime).contains(seconds) else {
            w.issue(path, "a link lives 1s to 7d (S3's limit)")
            return nil
        }
        return seconds
    }

    /// What ties a listener's S3 pieces together: a route with an `aws_sigv4` credential needs `endpoints.s3` (the
    /// buckets it may reach) and an upstream that is a bare S3 endpoint; `endpoints.s3` needs such a route (its
    /// keys and endpoint); virtual-host addressing needs a bucket and endpoint that allow it.
    static func checkS3(
        _ listener: ListenerConfig, upstreams: [String: UpstreamConfig],
        credentials: [String: CredentialConfig], _ w: ConfigWalker
    ) {
        var signing: RouteConfig?
        for (i, route) in listener.routes.enumerated() {
            guard route.credentials.contains(where: { isAWS(credentials[$0]) }) else { continue }
            signing = signing ?? route
            let at = ConfigPath.root.key("routes").index(i)
            if listener.endpoints.s3 == nil {
                w.issue(
                    at.key("credentials"),
                    "an aws_sigv4 credential signs only for the buckets named in endpoints.s3: set endpoints.s3.bucket")
            }
            if route.credentials.count > 1 {
                w.issue(
                    at.key("credentials"),
                    "a route with an aws_sigv4 credential takes no other credential (the signature covers the request as sent)"
                )
            }
            if let upstream = upstreams[route.upstream], !upstream.url.basePath.isEmpty || !upstream.mount.isEmpty {
                w.issue(
                    ConfigPath.root.key("upstreams").key(route.upstream).key(
                        upstream.url.basePath.isEmpty ? "mount" : "url"),
                    "an S3 endpoint is http(s)://host[:port] with no path or mount: buckets are addressed path-style under it"
                )
            }
        }
        guard let s3 = listener.endpoints.s3 else { return }
        let at = ConfigPath.root.key("endpoints").key("s3")
        guard let signing else {
            w.issue(
                at,
                "needs a route with an aws_sigv4 credential (its keys sign the links, its upstream is the S3 endpoint)")
            return
        }
        if s3.addressing == .virtualHost, let upstream = upstreams[signing.upstream] {
            do throws(AWSSigV4.SigningError) {
                _ = try AWSSigV4.S3ObjectAddress(
                    endpoint: S3Config.endpoint(of: upstream.url), bucket: s3.bucket, key: "k", style: .virtualHost)
            } catch {
                w.issue(at.key("addressing"), error.description)
            }
        }
    }

    private static func isAWS(_ credential: CredentialConfig?) -> Bool {
        if case .awsSigV4? = credential?.kind { return true }
        return false
    }
}

extension S3Config {
    /// The S3 endpoint an upstream URL names (its scheme, host and port; it has no path).
    static func endpoint(of url: UpstreamURL) -> AWSSigV4.S3Endpoint {
        let host = url.host.utf8.contains(UInt8(ascii: ":")) ? "[\(url.host)]" : url.host
        return AWSSigV4.S3Endpoint(scheme: url.scheme.rawValue, host: host, port: url.port)
    }
}
