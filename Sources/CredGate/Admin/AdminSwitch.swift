import NIOConcurrencyHelpers

/// An admin endpoint that runs an action the command line hands in, off unless the configuration turns it on:
/// anyone who can reach credgate could otherwise use it. The action survives a reload, which may turn the
/// endpoint on or off (``with(enabled:)``).
public final class AdminSwitch<Action: Sendable>: Sendable {
    let enabled: Bool
    private let handler: NIOLockedValueBox<Action?>

    init(enabled: Bool = false) {
        self.enabled = enabled
        self.handler = NIOLockedValueBox(nil)
    }

    private init(enabled: Bool, handler: NIOLockedValueBox<Action?>) {
        self.enabled = enabled
        self.handler = handler
    }

    /// The switch after a reload that may have turned it on or off: the same action.
    func with(enabled: Bool) -> AdminSwitch { AdminSwitch(enabled: enabled, handler: handler) }

    /// What a request to the endpoint does.
    public func onRequest(_ action: Action) {
        handler.withLockedValue { $0 = action }
    }

    /// The action to run for a request; nil when the endpoint is off or nothing listens for it.
    func action() -> Action? {
        guard enabled else { return nil }
        return handler.withLockedValue { $0 }
    }
}

/// `POST /credgate/quitquitquit` (Envoy's and cloud-sql-proxy's name): drains and stops the gateway (the same
/// drain as SIGTERM), for a Kubernetes Job whose app has finished and must not wait for its sidecar.
/// `admin.quit_endpoint: true` turns it on.
public typealias QuitSwitch = AdminSwitch<@Sendable () -> Void>

/// `POST /credgate/reload`: re-reads the configuration as SIGHUP does and answers with the outcome, so
/// `credgate reload` can say whether it worked without access to the process (another container of the pod).
/// `admin.reload_endpoint: true` turns it on.
public typealias ReloadSwitch = AdminSwitch<@Sendable () async -> ReloadOutcome>
