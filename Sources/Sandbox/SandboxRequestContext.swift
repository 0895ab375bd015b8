import Hummingbird

/// Request context that also knows which local port the connection arrived on, so links can name the
/// sandbox even when a request carries no `Host`.
struct SandboxRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Local port of the connection, nil when unknown.
    let localPort: Int?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.localPort = source.channel.localAddress?.port
    }
}
