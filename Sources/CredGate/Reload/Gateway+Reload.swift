import NIOConcurrencyHelpers

/// A session replaced by a reload, held weakly until shutdown (its old runtime usually stops it first).
struct WeakSession: Sendable {
    weak var session: JWTSession?
}

extension Gateway {
    /// Makes `config` the one new requests use, or keeps the running one if it cannot be applied.
    ///
    /// Refused (the old configuration keeps serving, nothing changed) when a listener would move
    /// (``ReloadCheck``), when the new runtime cannot be built, or while draining. Otherwise the new runtime is
    /// swapped in at once: the next request on every connection, keep-alive ones included, takes the new routes,
    /// while requests in flight finish on the old ones. Sessions whose settings (secrets included) did not change
    /// are carried over with their tokens; the others start now and log in, and the sessions they replace stop once
    /// the last request that started before the reload is done. The caller logs and counts the outcome
    /// (``Reloader``).
    func reload(to config: GatewayConfig) -> ReloadOutcome {
        reloading.withLock {
            let old = runtimes.runtime
            guard !old.admin.drain.isDraining else { return ReloadOutcome(result: .draining) }
            let (refused, needsRestart) = ReloadCheck.compare(old.config, config)
            guard refused.isEmpty else { return ReloadOutcome(result: .failed, problems: refused) }
            let new: GatewayRuntime
            do {
                new = try GatewayRuntime(
                    config: config, logger: old.logger, sessionTransport: sessionTransport,
                    extraFilters: nil, metrics: old.metrics, previous: old, keys: upstreamKeys)
            } catch let error as ConfigError {
                return ReloadOutcome(result: .failed, problems: error.issues)
            } catch {
                // A TLS context that cannot be built (a CA file that is no longer PEM): no secret in it.
                return ReloadOutcome(result: .failed, problems: [ConfigIssue(path: "upstreams", message: "\(error)")])
            }
            var outcome = ReloadOutcome(result: .reloaded)
            outcome.needsRestart = needsRestart
            for (name, session) in new.sessions.sorted(by: { $0.key < $1.key }) {
                if old.sessions[name] === session {
                    outcome.sessionsKept.append(name)
                } else {
                    outcome.sessionsNew.append(name)
                    session.start()
                }
            }
            runtimes.swap(to: new)
            let replaced = old.sessions.filter { name, session in new.sessions[name] !== session }.map(\.value)
            if !replaced.isEmpty {
                old.retired.withLockedValue { $0 += replaced }
                retiredSessions.withLockedValue { list in
                    list.removeAll { $0.session == nil }
                    list += replaced.map { WeakSession(session: $0) }
                }
            }
            return outcome
        }
    }
}
