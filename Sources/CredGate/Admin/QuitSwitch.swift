import NIOConcurrencyHelpers

/// `POST /credgate/quitquitquit` (Envoy's and cloud-sql-proxy's name): drains and stops the gateway, for a
/// Kubernetes Job whose app has finished and must not wait for its sidecar. Off unless `admin.quit_endpoint:
/// true`: anyone who can reach credgate could otherwise stop it.
public final class QuitSwitch: Sendable {
    public let enabled: Bool
    private let handler: NIOLockedValueBox<(@Sendable () -> Void)?>

    public init(enabled: Bool = false) {
        self.enabled = enabled
        self.handler = NIOLockedValueBox(nil)
    }

    private init(enabled: Bool, handler: NIOLockedValueBox<(@Sendable () -> Void)?>) {
        self.enabled = enabled
        self.handler = handler
    }

    /// The switch after a reload that may have turned it on or off: the same action.
    func with(enabled: Bool) -> QuitSwitch { QuitSwitch(enabled: enabled, handler: handler) }

    /// What a quit request does (the command line: the same drain as SIGTERM).
    public func onRequest(_ action: @escaping @Sendable () -> Void) {
        handler.withLockedValue { $0 = action }
    }

    /// Asks for the drain; false when the endpoint is off or nothing listens for it.
    func request() -> Bool {
        guard enabled, let action = handler.withLockedValue({ $0 }) else { return false }
        action()
        return true
    }
}
