/// What one reload did, for the log, `/credgate/metrics` and the answer of `POST /credgate/reload`. Names and
/// YAML paths only: never a value.
public struct ReloadOutcome: Sendable, Equatable {
    enum Result: String, Sendable, Equatable {
        /// New requests use the new configuration.
        case reloaded
        /// The new configuration has problems: the old one keeps serving.
        case failed
        /// The gateway is draining: nothing is reloaded any more.
        case draining
    }

    var result: Result
    /// Why the reload failed, each at its YAML path (as `credgate check-config` prints them).
    var problems: [ConfigIssue] = []
    /// Changes the reload could not apply: they take effect at the next restart.
    var needsRestart: [ConfigIssue] = []
    /// Session credentials carried over with their tokens (no new login).
    var sessionsKept: [String] = []
    /// Session credentials that are new or whose settings changed: they log in again.
    var sessionsNew: [String] = []

    init(result: Result, problems: [ConfigIssue] = []) {
        self.result = result
        self.problems = problems
    }
}
