import NIOHTTP1

/// Parts of pipelined requests that arrived while an earlier request was still being answered, in the order they
/// came. Reading from the client is paused while any wait (``ProxyStateMachine`` decides), so the queue holds at
/// most what one read delivered.
struct PipelineQueue {
    private var parts: [HTTPServerRequestPart] = []
    private var head = 0
    /// A drain is running: a drain started from inside it (an answer finished synchronously) leaves the parts to
    /// the outer one, which keeps them in order and the stack flat.
    private(set) var isDraining = false

    var isEmpty: Bool { head == parts.count }
    var count: Int { parts.count - head }
    var first: HTTPServerRequestPart? { isEmpty ? nil : parts[head] }

    mutating func append(_ part: HTTPServerRequestPart) {
        parts.append(part)
    }

    mutating func removeFirst() -> HTTPServerRequestPart {
        let part = parts[head]
        head += 1
        if head == parts.count { removeAll() }
        return part
    }

    mutating func removeAll() {
        parts.removeAll(keepingCapacity: true)
        head = 0
    }

    /// Starts a drain; false when one is already running or there is nothing to drain.
    mutating func beginDrain() -> Bool {
        guard !isDraining, !isEmpty else { return false }
        isDraining = true
        return true
    }

    mutating func endDrain() {
        isDraining = false
    }
}
