import NIOCore
import NIOSSL

/// An upstream ready for the data path: its config, the TLS context built once at start-up, and a small integer
/// key for the per-loop pools.
final class UpstreamTarget: Sendable {
    let name: String
    let key: Int
    let config: UpstreamConfig
    let sslContext: NIOSSLContext?

    /// The `Host` header and the path prefix, computed once: the data path reads them on every request.
    let hostHeader: String
    let basePath: String
    /// The client-side path of the base URL (``UpstreamConfig/mount``), "" for none.
    let mount: String
    /// Rewrites this upstream's own absolute links to the gateway's address.
    let links: LinkRewriter
    /// Connect failures and stale retries for `/credgate/metrics`.
    let metrics: UpstreamMetrics?
    /// Where `key` is held while this target lives (nil for a target outside a gateway).
    private let keys: UpstreamKeys?

    init(key: Int, config: UpstreamConfig, metrics: UpstreamMetrics? = nil, keys: UpstreamKeys? = nil) throws {
        self.metrics = metrics
        self.keys = keys
        self.hostHeader = config.url.hostHeader
        self.basePath = config.url.basePath
        self.mount = config.mount
        self.links = LinkRewriter(upstream: config.url, mount: config.mount)
        self.name = config.name
        self.key = key
        self.config = config
        if config.url.scheme == .https {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.applicationProtocols = ["http/1.1"] // HTTP/2 is much slower for bulk bodies here
            tls.certificateVerification = .fullVerification
            if let caFile = config.caFile {
                tls.trustRoots = .file(caFile)
            }
            self.sslContext = try NIOSSLContext(configuration: tls)
        } else {
            self.sslContext = nil
        }
        keys?.hold(key)
    }

    deinit {
        keys?.release(key)
    }

    /// The path sent upstream for a client's path (with its query): the mount taken off when the path is under it,
    /// then the base path put in front.
    func upstreamURI(_ uri: String) -> String {
        var rest = Substring(uri)
        if !mount.isEmpty, rest.hasPrefix(mount) {
            let after = rest.dropFirst(mount.utf8.count)
            if after.isEmpty || after.first == "/" || after.first == "?" {
                rest = after.first == "?" || after.isEmpty ? "/" + after : after
            }
        }
        if basePath.isEmpty { return String(rest) }
        return basePath + rest
    }

    /// The SNI / verification host name: `nil` for IP literals, which carry no SNI (the certificate is still
    /// checked against the IP address).
    var tlsServerHostname: String? {
        let host = config.url.host
        if host.contains(":") { return nil }
        if host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." }) { return nil }
        return host
    }
}
