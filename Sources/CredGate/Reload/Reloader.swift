import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Reloads a running ``Gateway`` from its ``ConfigSource``: on SIGHUP, on `credgate reload`, and when a `*_FILE`
/// secret the configuration read changes (a rotated Kubernetes Secret).
///
/// Every reload is logged and counted (`credgate_config_reloads_total{result}`,
/// `credgate_config_last_reload_success`). A configuration with any problem is not applied: each problem is
/// logged at its YAML path, as `credgate check-config` prints it, and the old configuration keeps serving. Log
/// lines name files, paths and credentials, never a value.
public final class Reloader: Sendable {
    let gateway: Gateway
    let source: ConfigSource
    private let logger: Logger
    /// The secret files to watch and what they held at the last load (successful or not: a file that was missing
    /// during a rotation is watched until it is back).
    private let watched: NIOLockedValueBox<[SecretFileState]>
    private let watcher = NIOLockedValueBox<Task<Void, Never>?>(nil)
    /// One reload at a time, in order.
    private let serial = NIOLock()

    /// `secretFiles`: what the load that started `gateway` read (``ConfigSource/Loaded/secretFiles``).
    public init(gateway: Gateway, source: ConfigSource, secretFiles: [SecretFileState], logger: Logger) {
        self.gateway = gateway
        self.source = source
        self.logger = logger
        self.watched = NIOLockedValueBox(secretFiles)
    }

    /// The secret files watched now, with what they held when last read.
    var secretFiles: [SecretFileState] { watched.withLockedValue { $0 } }

    /// Reads the configuration again and applies it if it has no problem; `trigger` says why, for the log.
    @discardableResult
    public func reload(trigger: String) async -> ReloadOutcome {
        // File reads and route compilation are blocking work: off the caller's executor.
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: self.reloadNow(trigger: trigger))
            }
        }
    }

    private func reloadNow(trigger: String) -> ReloadOutcome {
        serial.withLock {
            let loaded = source.load()
            watched.withLockedValue { $0 = loaded.secretFiles }
            let outcome: ReloadOutcome
            switch loaded.result {
            case .failure(let error):
                outcome = ReloadOutcome(result: .failed, problems: error.issues)
            case .success(let config):
                outcome = gateway.reload(to: config)
            }
            report(outcome, trigger: trigger)
            return outcome
        }
    }

    private func report(_ outcome: ReloadOutcome, trigger: String) {
        let metrics = gateway.runtime.metrics
        switch outcome.result {
        case .draining:
            logger.notice("configuration reload skipped: credgate is draining", metadata: ["trigger": "\(trigger)"])
        case .failed:
            metrics.reloads.record(success: false)
            logger.error(
                "configuration reload failed: the previous configuration keeps serving",
                metadata: [
                    "trigger": "\(trigger)", "problems": "\(outcome.problems.count)",
                ])
            for issue in outcome.problems {
                logger.error("configuration reload problem: \(issue)")
            }
        case .reloaded:
            metrics.reloads.record(success: true)
            let runtime = gateway.runtime
            logger.notice(
                "configuration reloaded",
                metadata: [
                    "trigger": "\(trigger)",
                    "routes": "\(runtime.config.allRoutes.count)",
                    "sessions_kept": "\(outcome.sessionsKept.joined(separator: ","))",
                    "sessions_new": "\(outcome.sessionsNew.joined(separator: ","))",
                ])
            for issue in outcome.needsRestart {
                logger.warning("configuration reload: not applied until a restart: \(issue)")
            }
        }
    }

    // MARK: - Secret files

    /// Starts polling the secret files every `reload.secret_files_interval` (read again after each reload, so a
    /// reload can change or turn off the polling). A change, a file that appears or one that can no longer be
    /// read, reloads.
    public func startWatchingSecretFiles() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                let interval = self.gateway.runtime.config.reload.secretFilesInterval
                try? await Task.sleep(nanoseconds: UInt64((interval ?? .seconds(1)).nanoseconds))
                guard !Task.isCancelled, interval != nil else { continue }
                if let changed = self.changedSecretFiles() {
                    await self.reload(trigger: "secret file changed: \(changed.joined(separator: ", "))")
                }
            }
        }
        watcher.withLockedValue { $0 = task }
    }

    /// Stops the polling (at shutdown).
    public func stop() {
        watcher.withLockedValue { task in
            task?.cancel()
            task = nil
        }
    }

    /// The paths of the watched files whose content is not what the last load read; nil when none changed.
    func changedSecretFiles() -> [String]? {
        let files = watched.withLockedValue { $0 }
        let changed = files.filter { SecretFileState.current($0.path) != $0 }.map(\.path)
        return changed.isEmpty ? nil : changed
    }
}
