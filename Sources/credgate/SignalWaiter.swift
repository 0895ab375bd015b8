import Dispatch
import Foundation

/// Waits for SIGINT or SIGTERM (what `docker stop` and Kubernetes send) so the gateway can drain and close
/// cleanly. A second SIGINT or SIGTERM, while the drain runs, ends the process at once with status 128 + the
/// signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a process killed by it.
///
/// SIGHUP, whose default action would end the process silently, is handed to ``onHangUp(_:)`` (the caller
/// reloads the configuration: ``Reloader``).
enum SignalWaiter {
    /// From now on SIGHUP runs `action` (on a queue of its own) instead of ending the process. Called before the
    /// start line, so that a reload asked for as soon as credgate says it listens is neither fatal nor lost.
    static func onHangUp(_ action: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "credgate.hangup"))
        source.setEventHandler(handler: action)
        source.resume()
        Retainer.keep([source])
    }

    static func waitForTermination() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "credgate.signals")
            let once = Once(continuation)
            if Retainer.setOnce(once) { _ = once.fire() } // a quit request came first
            var sources: [any DispatchSourceSignal] = []
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler {
                    if !once.fire() {
                        let name = sig == SIGINT ? "SIGINT" : "SIGTERM"
                        FileHandle.standardError.write(
                            Data("credgate: second \(name) during the drain, exiting at once\n".utf8))
                        _exit(128 + sig)
                    }
                }
                source.resume()
                sources.append(source)
            }
            Retainer.keep(sources)
        }
    }

    /// Ends the wait as SIGTERM would (`POST /credgate/quitquitquit`): the drain follows, and a signal after it
    /// still exits at once.
    static func requestTermination() {
        _ = Retainer.currentOnce()?.fire()
    }

    private final class Once: @unchecked Sendable {
        private var continuation: CheckedContinuation<Void, Never>?
        private var fired = false
        private let lock = NSLock()
        init(_ c: CheckedContinuation<Void, Never>) { continuation = c }
        /// Resumes the waiter the first time; false on every later call.
        func fire() -> Bool {
            lock.lock()
            let first = !fired
            fired = true
            let c = continuation
            continuation = nil
            lock.unlock()
            c?.resume()
            return first
        }
    }

    /// Keeps the signal sources alive for the life of the process.
    private enum Retainer {
        nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
        nonisolated(unsafe) static var once: Once?
        /// A termination asked for before the wait began.
        nonisolated(unsafe) static var requestedEarly = false
        static let lock = NSLock()
        static func keep(_ s: [any DispatchSourceSignal]) { lock.withLock { sources.append(contentsOf: s) } }
        /// Records the waiter; true when a termination was already asked for.
        static func setOnce(_ o: Once) -> Bool {
            lock.withLock {
                once = o
                return requestedEarly
            }
        }
        /// The waiter, or nil (then the request is remembered for it).
        static func currentOnce() -> Once? {
            lock.withLock {
                if once == nil { requestedEarly = true }
                return once
            }
        }
    }
}
