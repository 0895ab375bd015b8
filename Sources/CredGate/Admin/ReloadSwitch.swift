import NIOConcurrencyHelpers

/// `POST /credgate/reload`: re-reads the configuration as SIGHUP does and answers with the outcome, so
/// `credgate reload` can say whether it worked without access to the process (another container of the pod).
/// Off unless `admin.reload_endpoint: true`.
public final class ReloadSwitch: Sendable {
    public let enabled: Bool
    private let handler: NIOLockedValueBox<(@Sendable () async -> ReloadOutcome)?>

    public init(enabled: Bool = false) {
        self.enabled = enabled
        self.handler = NIOLockedValueBox(nil)
    }

    private init(enabled: Bool, handler: NIOLockedValueBox<(@Sendable () async -> ReloadOutcome)?>) {
        self.enabled = enabled
        self.handler = handler
    }

    /// The switch after a reload that may have turned it on or off: the same action.
    func with(enabled: Bool) -> ReloadSwitch { ReloadSwitch(enabled: enabled, handler: handler) }

    /// What a reload request does (the command line: the same reload as SIGHUP).
    public func onRequest(_ action: @escaping @Sendable () async -> ReloadOutcome) {
        handler.withLockedValue { $0 = action }
    }

    /// The reload to run for a request; nil when the endpoint is off or nothing listens for it.
    func action() -> (@Sendable () async -> ReloadOutcome)? {
        guard enabled else { return nil }
        return handler.withLockedValue { $0 }
    }
}
