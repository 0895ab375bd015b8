import Atomics

/// Whether the gateway is draining: about to stop, so `GET /credgate/readiness` answers 503 and Kubernetes sends
/// no new traffic while requests in flight finish.
///
/// Graceful drain itself (issue 12, item 3: readiness 503 at SIGTERM, `shutdown.delay`, `shutdown.grace`) is not
/// built yet, so nothing sets this flag today; it is the hook that work sets (``startDraining()``) and the admin
/// endpoints read.
public final class DrainState: Sendable {
    private let draining = ManagedAtomic<Bool>(false)

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// From now on readiness answers 503. There is no way back: a draining gateway stops.
    public func startDraining() {
        draining.store(true, ordering: .releasing)
    }
}
