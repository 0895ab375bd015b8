/// A dictionary with a fixed capacity that forgets its least recently used entry when full.
///
/// Hand-written because the package does not depend on swift-collections directly (it only arrives through
/// SwiftNIO), and its `OrderedDictionary` would not do anyway: moving a key to the end or dropping the first one
/// costs O(n) there. Here every operation is O(1): a doubly linked list threaded through one array by index (no
/// class per node, so no reference counting or allocation per entry), kept dense by moving the last node into the
/// hole a removal leaves.
///
/// Not thread-safe: its owner (``PresignCache``) keeps it under a lock.
struct LRUTable<Key: Hashable, Value> {
    fileprivate struct Node {
        var key: Key
        var value: Value
        /// Neighbour towards the most recently used end, or -1.
        var newer: Int
        /// Neighbour towards the least recently used end, or -1.
        var older: Int
    }

    /// At most this many entries are kept; 0 keeps none.
    let capacity: Int
    private var nodes: [Node] = []
    private var slots: [Key: Int] = [:]
    private var newest = -1
    private var oldest = -1

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { nodes.count }
    var isEmpty: Bool { nodes.isEmpty }

    /// The value for `key`, which becomes the most recently used.
    mutating func value(forKey key: Key) -> Value? {
        guard let slot = slots[key] else { return nil }
        touch(slot)
        return nodes[slot].value
    }

    /// The value for `key`, leaving the order alone.
    func peek(_ key: Key) -> Value? {
        slots[key].map { nodes[$0].value }
    }

    /// Stores `value` as the most recently used and returns the entry that had to go to make room: the least
    /// recently used one, or the new one itself when the capacity is 0.
    @discardableResult
    mutating func set(_ value: Value, forKey key: Key) -> (key: Key, value: Value)? {
        if let slot = slots[key] {
            nodes[slot].value = value
            touch(slot)
            return nil
        }
        guard capacity > 0 else { return (key, value) }
        var evicted: (key: Key, value: Value)?
        if nodes.count >= capacity {
            let victim = nodes[oldest]
            remove(at: oldest)
            evicted = (victim.key, victim.value)
        }
        nodes.append(Node(key: key, value: value, newer: -1, older: -1))
        slots[key] = nodes.count - 1
        linkAsNewest(nodes.count - 1)
        return evicted
    }

    @discardableResult
    mutating func removeValue(forKey key: Key) -> Value? {
        guard let slot = slots[key] else { return nil }
        let value = nodes[slot].value
        remove(at: slot)
        return value
    }

    mutating func removeAll() {
        nodes.removeAll()
        slots.removeAll()
        newest = -1
        oldest = -1
    }

    /// The keys from most to least recently used (for tests and diagnostics: O(n)).
    var keysByRecency: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(nodes.count)
        var slot = newest
        while slot >= 0 {
            keys.append(nodes[slot].key)
            slot = nodes[slot].older
        }
        return keys
    }

    // MARK: - The list

    private mutating func touch(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        linkAsNewest(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let node = nodes[slot]
        if node.newer >= 0 { nodes[node.newer].older = node.older } else { newest = node.older }
        if node.older >= 0 { nodes[node.older].newer = node.newer } else { oldest = node.newer }
    }

    private mutating func linkAsNewest(_ slot: Int) {
        nodes[slot].newer = -1
        nodes[slot].older = newest
        if newest >= 0 { nodes[newest].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }

    /// Unlinks the node at `slot` and fills the hole with the last node, so the array stays dense.
    private mutating func remove(at slot: Int) {
        let key = nodes[slot].key
        unlink(slot)
        let last = nodes.count - 1
        if slot != last {
            let moved = nodes[last]
            nodes[slot] = moved
            if moved.newer >= 0 { nodes[moved.newer].older = slot } else { newest = slot }
            if moved.older >= 0 { nodes[moved.older].newer = slot } else { oldest = slot }
            slots[moved.key] = slot
        }
        nodes.removeLast()
        slots.removeValue(forKey: key)
    }
}

extension LRUTable: Sendable where Key: Sendable, Value: Sendable {}
extension LRUTable.Node: Sendable where Key: Sendable, Value: Sendable {}
