import NIOConcurrencyHelpers

/// Hands out the small integer keys (``UpstreamTarget/key``) that index each event loop's ``UpstreamPool``.
///
/// The pools are sized once, at start-up, with ``capacity``. A reload keeps the ``UpstreamTarget`` of every
/// unchanged upstream (same key, so its pooled keep-alive connections stay warm) and gives a changed or new one a
/// key no target still alive holds: the old target's idle connections sit in the pools under the old key, and a
/// request in flight on the old configuration may still put one back there, so the key is free again only once
/// nothing refers to the old target (no route, no pooled connection). That is tracked with weak references.
final class UpstreamKeys: Sendable {
    /// Slots per pool: every upstream several times over, so that many reloads that change upstreams in a row
    /// find a free key while the old connections close (each empty slot is an empty array per event loop).
    let capacity: Int
    private let holders: NIOLockedValueBox<[Weak]>

    private struct Weak: @unchecked Sendable {
        weak var target: UpstreamTarget?
    }

    init(upstreams: Int) {
        capacity = max(64, upstreams * 8)
        holders = NIOLockedValueBox(Array(repeating: Weak(), count: capacity))
    }

    /// Records a target made with ``next(excluding:)``'s key (or at start-up with keys 0..<n).
    func hold(_ target: UpstreamTarget) {
        holders.withLockedValue { $0[target.key].target = target }
    }

    /// A key held by no live target and not in `taken` (keys handed out for the runtime being built), or nil when
    /// every slot is still in use (too many upstream changes in a short time).
    func next(excluding taken: Set<Int>) -> Int? {
        holders.withLockedValue { slots in
            slots.indices.first { slots[$0].target == nil && !taken.contains($0) }
        }
    }
}
