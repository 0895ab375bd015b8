/// What a reload may change in a running gateway, decided from the old and the new configuration alone (a pure
/// function, tested without a socket).
///
/// - The listening sockets are bound once: a reload that adds or removes a listener, or moves one to another
///   host or port, is refused as a whole (the old configuration keeps serving), because serving the new routes
///   on the old address would be a surprise. Put the address back, or restart.
/// - Settings applied when a connection is accepted or when the process starts (connection caps, the header and
///   idle timeouts, the thread count, the access log) do not change a running gateway: the reload goes ahead
///   with everything else, and each of these is reported as needing a restart.
/// - Everything else takes effect for new requests: routes, upstreams, credentials and secrets, transforms,
///   endpoints, `max_header_bytes`, `trust_forwarded_headers`, `spool`, `presign_cache` (a changed one starts
///   empty), `shutdown`, `admin`, `reload`.
enum ReloadCheck {
    static func compare(_ old: GatewayConfig, _ new: GatewayConfig) -> (
        refused: [ConfigIssue], needsRestart: [ConfigIssue]
    ) {
        var refused: [ConfigIssue] = []
        var restart: [ConfigIssue] = []
        let oldNames = old.listeners.map(\.name)
        let newNames = new.listeners.map(\.name)
        guard oldNames == newNames else {
            let shown = { (names: [String]) in names.map { "'\($0)'" }.joined(separator: ", ") }
            refused.append(
                ConfigIssue(
                    path: "(file)",
                    message:
                        "the listeners changed (running: \(shown(oldNames)); new: \(shown(newNames))): adding, removing or "
                        + "reordering configuration files with routes needs a restart"))
            return (refused, restart)
        }
        let several = old.listeners.count > 1
        for (a, b) in zip(old.listeners, new.listeners) {
            func path(_ key: String) -> String { several ? "\(a.name) listen.\(key)" : "listen.\(key)" }
            if a.listen.host != b.listen.host {
                refused.append(
                    ConfigIssue(
                        path: path("host"),
                        message:
                            "changed from '\(a.listen.host)' to '\(b.listen.host)': the listening socket cannot move without a restart (put it back, or restart credgate)"
                    ))
            }
            if a.listen.port != b.listen.port {
                refused.append(
                    ConfigIssue(
                        path: path("port"),
                        message:
                            "changed from \(a.listen.port) to \(b.listen.port): the listening socket cannot move without a restart (put it back, or restart credgate)"
                    ))
            }
            func fixed<T: Equatable>(_ key: String, _ value: (ListenConfig) -> T) {
                if value(a.listen) != value(b.listen) {
                    restart.append(
                        ConfigIssue(
                            path: path(key),
                            message:
                                "changed from \(value(a.listen)) to \(value(b.listen)): applies from the next restart"))
                }
            }
            fixed("max_connections") { $0.maxConnections }
            fixed("max_connections_per_peer") { $0.maxConnectionsPerPeer }
            fixed("header_timeout") { $0.headerTimeout }
            fixed("idle_timeout") { $0.idleTimeout }
            fixed("threads") { $0.threads }
        }
        if old.log != new.log {
            restart.append(
                ConfigIssue(
                    path: "log", message: "changed: the access log is set up at start and applies from the next restart"
                ))
        }
        return (refused, restart)
    }
}
