import Dispatch
import Foundation

/// Waits for SIGINT or SIGTERM (what `docker stop` and Kubernetes send) so the gateway can close cleanly.
///
/// SIGHUP, whose default action would end the process silently, is caught too and handed to `onHangUp`
/// (reload is not built yet: the caller logs that it ignored it).
enum SignalWaiter {
    static func waitForTermination(onHangUp: @escaping @Sendable () -> Void = {}) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "credgate.signals")
            let once = Once(continuation)
            var sources: [any DispatchSourceSignal] = []
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler { sig == SIGHUP ? onHangUp() : once.fire() }
                source.resume()
                sources.append(source)
            }
            Retainer.keep(sources)
        }
    }

    private final class Once: @unchecked Sendable {
        private var continuation: CheckedContinuation<Void, Never>?
        private let lock = NSLock()
        init(_ c: CheckedContinuation<Void, Never>) { continuation = c }
        func fire() {
            lock.lock()
            let c = continuation
            continuation = nil
            lock.unlock()
            c?.resume()
        }
    }

    /// Keeps the signal sources alive for the life of the process.
    private enum Retainer {
        nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
        static func keep(_ s: [any DispatchSourceSignal]) { sources.append(contentsOf: s) }
    }
}
