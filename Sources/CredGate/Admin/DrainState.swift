import Atomics

/// Whether the gateway is draining: about to stop, so `GET /credgate/readiness` answers 503 and Kubernetes sends
/// no new traffic while requests in flight finish.
///
/// ``Gateway/drain(delay:grace:)`` sets it (``startDraining()``) on SIGTERM or SIGINT; the admin endpoints read it.
final class DrainState: Sendable {
    private let draining = ManagedAtomic<Bool>(false)

    init() {}

    var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// From now on readiness answers 503. There is no way back: a draining gateway stops.
    func startDraining() {
        draining.store(true, ordering: .releasing)
    }
}
