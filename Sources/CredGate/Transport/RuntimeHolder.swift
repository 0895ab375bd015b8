import Atomics
import NIOConcurrencyHelpers

/// The gateway's current ``GatewayRuntime``, swapped whole by a reload (``Gateway/reload(to:)``).
///
/// Each connection reads it once per request, at the request's head, and keeps what it read for the whole
/// exchange: new requests take the new routes at once, requests in flight finish on the ones they started with.
/// The read is one atomic load of a generation number; only when it moved (after a reload) does a connection
/// take the lock to fetch the new runtime, so the data path takes no lock in the common case.
final class RuntimeHolder: Sendable {
    private let generation = ManagedAtomic<Int>(0)
    private let current: NIOLockedValueBox<(runtime: GatewayRuntime, generation: Int)>

    init(_ runtime: GatewayRuntime) {
        current = NIOLockedValueBox((runtime, 0))
    }

    /// The runtime now serving new requests.
    var runtime: GatewayRuntime { current.withLockedValue { $0.runtime } }

    /// The current runtime and its generation, or nil when `seen` is still current (the common case: no lock).
    func newer(than seen: Int) -> (runtime: GatewayRuntime, generation: Int)? {
        guard generation.load(ordering: .acquiring) != seen else { return nil }
        return current.withLockedValue { $0 }
    }

    /// The runtime and generation a new connection starts with.
    func snapshot() -> (runtime: GatewayRuntime, generation: Int) {
        current.withLockedValue { $0 }
    }

    /// Makes `runtime` the one new requests see; returns the one it replaces.
    @discardableResult
    func swap(to runtime: GatewayRuntime) -> GatewayRuntime {
        current.withLockedValue { value in
            let old = value.runtime
            value = (runtime, value.generation + 1)
            // Published under the lock, after the new pair: a reader that sees the new number finds the new runtime.
            generation.store(value.generation, ordering: .releasing)
            return old
        }
    }
}
