import NIOCore

/// A timer for a deadline that keeps moving later (a request head's, an exchange's response or idle deadline):
/// scheduled at most once at a time and never cancelled for a later deadline. What it calls when it fires checks the
/// deadline then in force and arms it again while that is still ahead. Scheduling and cancelling a task for every
/// request costs several allocations; on a kept-alive connection this schedules about one per timeout period.
/// Used on its channel's event loop only.
struct ReArmingTimer {
    private var task: Scheduled<Void>?
    private var due: NIODeadline = .distantFuture

    /// Makes sure `fire` runs no later than `deadline`; nothing changes when the timer is already due by then.
    /// `fire` must call ``fired()`` first.
    mutating func arm(at deadline: NIODeadline, on loop: any EventLoop, _ fire: @escaping () -> Void) {
        if let task {
            if due <= deadline { return }
            task.cancel()
        }
        due = deadline
        task = loop.assumeIsolated().scheduleTask(deadline: deadline, fire)
    }

    /// Whether the timer already fires by `deadline` (``arm(at:on:_:)`` would do nothing): callers check this
    /// first on the per-request path, so that no closure is made for nothing.
    func isDue(by deadline: NIODeadline) -> Bool {
        task != nil && due <= deadline
    }

    /// The scheduled task has run: the next ``arm(at:on:_:)`` schedules anew.
    mutating func fired() {
        task = nil
        due = .distantFuture
    }

    /// When the channel goes: nothing may keep its handler alive until a deadline far ahead.
    mutating func cancel() {
        task?.cancel()
        fired()
    }
}
