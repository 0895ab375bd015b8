import NIOConcurrencyHelpers

/// Hands out the small integer keys (``UpstreamTarget/key``) that index each event loop's ``UpstreamPool``.
///
/// The pools are sized once, at start-up, with ``capacity``. A reload keeps the ``UpstreamTarget`` of every
/// unchanged upstream (same key, so its pooled keep-alive connections stay warm) and gives a changed or new one a
/// key no target still alive holds: the old target's idle connections sit in the pools under the old key, and a
/// request in flight on the old configuration may still put one back there, so the key is free again only once
/// nothing refers to the old target (no route, no pooled connection): a target holds its key from its `init` to its
/// `deinit`. (Not a weak reference to the target: that would move its reference count to a side table, and the
/// data path retains and releases a target on every request.)
final class UpstreamKeys: Sendable {
    /// Slots per pool: every upstream several times over, so that many reloads that change upstreams in a row
    /// find a free key while the old connections close (each empty slot is an empty array per event loop).
    let capacity: Int
    /// How many live targets hold each key.
    private let holders: NIOLockedValueBox<[Int]>

    init(upstreams: Int) {
        capacity = max(64, upstreams * 8)
        holders = NIOLockedValueBox(Array(repeating: 0, count: capacity))
    }

    /// A target made with ``next(excluding:)``'s key (or at start-up with keys 0..<n) holds it.
    func hold(_ key: Int) {
        holders.withLockedValue { $0[key] += 1 }
    }

    /// The target holding `key` is gone.
    func release(_ key: Int) {
        holders.withLockedValue { $0[key] -= 1 }
    }

    /// A key held by no live target and not in `taken` (keys handed out for the runtime being built), or nil when
    /// every slot is still in use (too many upstream changes in a short time).
    func next(excluding taken: Set<Int>) -> Int? {
        holders.withLockedValue { slots in
            slots.indices.first { slots[$0] == 0 && !taken.contains($0) }
        }
    }
}
