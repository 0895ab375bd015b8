import NIOConcurrencyHelpers

@testable import CredGate

/// A clock that moves only when the test says so: ``advance(by:)`` sets a new "now" and wakes, earliest deadline
/// first, every sleeper whose deadline has come. Nothing else ever wakes a sleeper but cancellation, so a test of
/// refresh-ahead, expiry or backoff checks exact instants and never waits on the real clock (which, on a loaded
/// 2-core machine running the whole suite, can stall for seconds).
///
/// Its instants are `ContinuousClock`'s, starting from the real "now" when the clock is made (``SessionClock``
/// wants them so; the real clock is never read again).
final class ManualClock: SessionClock {
    private struct Sleeper {
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: ContinuousClock.Instant
        var sleepers: [UInt64: Sleeper] = [:]
        /// Sleeps cancelled before they were registered: they throw as soon as they are.
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
    }

    private let state: NIOLockedValueBox<State>

    init(now: ContinuousClock.Instant = ContinuousClock.now) {
        state = NIOLockedValueBox(State(now: now))
    }

    var now: ContinuousClock.Instant { state.withLockedValue { $0.now } }

    var minimumResolution: Duration { .zero }

    /// Returns at once when `deadline` has come; otherwise suspends until an ``advance(by:)`` reaches it. Throws
    /// `CancellationError` when the task is cancelled, as `Task.sleep` does.
    func sleep(until deadline: ContinuousClock.Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLockedValue { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLockedValue { s in
                    if s.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if deadline <= s.now { return .success(()) }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper = state.withLockedValue { s -> Sleeper? in
                if let sleeper = s.sleepers.removeValue(forKey: id) { return sleeper }
                s.cancelledEarly.insert(id)
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves "now" forward by `duration` and wakes the sleepers whose deadline it reaches, earliest first. The woken
    /// tasks run afterwards, on their own; see ``sleeperCount`` to know when they have gone back to sleep.
    func advance(by duration: Duration) {
        advance(to: now + duration)
    }

    /// Moves "now" to `instant` (never backwards) and wakes the sleepers whose deadline has come, earliest first.
    func advance(to instant: ContinuousClock.Instant) {
        let due = state.withLockedValue { s -> [Sleeper] in
            s.now = max(s.now, instant)
            let now = s.now
            let due = s.sleepers.filter { $0.value.deadline <= now }.sorted { $0.value.deadline < $1.value.deadline }
            for (id, _) in due { s.sleepers[id] = nil }
            return due.map(\.value)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// How many tasks are asleep on this clock now.
    var sleeperCount: Int { state.withLockedValue { $0.sleepers.count } }

    /// The earliest instant a sleeper waits for, or nil when none sleeps.
    var nextDeadline: ContinuousClock.Instant? { state.withLockedValue { $0.sleepers.values.map(\.deadline).min() } }
}
