/// A growable double-ended queue of packed 64-bit references (index in the high half, generation in the low half).
///
/// Scheduler queues hold references, never values, so that a canceled entry can be left in place and skipped when
/// it reaches the front (its generation no longer matches).
struct Ring: Sendable {
    private var storage: [UInt64] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { self.count == 0 }

    var first: UInt64? { self.count == 0 ? nil : self.storage[self.head] }

    mutating func pushBack(_ value: UInt64) {
        if self.count == self.storage.count { self.grow() }
        var index = self.head + self.count
        if index >= self.storage.count { index -= self.storage.count }
        self.storage[index] = value
        self.count += 1
    }

    mutating func pushFront(_ value: UInt64) {
        if self.count == self.storage.count { self.grow() }
        self.head = self.head == 0 ? self.storage.count - 1 : self.head - 1
        self.storage[self.head] = value
        self.count += 1
    }

    mutating func popFront() -> UInt64? {
        guard self.count > 0 else { return nil }
        let value = self.storage[self.head]
        self.head += 1
        if self.head == self.storage.count { self.head = 0 }
        self.count -= 1
        return value
    }

    /// Drops everything and the storage.
    mutating func removeAll() {
        self.storage = []
        self.head = 0
        self.count = 0
    }

    /// The elements front to back (tests and invariant checks).
    var elements: [UInt64] {
        (0..<self.count).map { self.storage[(self.head + $0) % self.storage.count] }
    }

    private mutating func grow() {
        let capacity = Swift.max(4, self.storage.count * 2)
        var grown: [UInt64] = []
        grown.reserveCapacity(capacity)
        for offset in 0..<self.count {
            var index = self.head + offset
            if index >= self.storage.count { index -= self.storage.count }
            grown.append(self.storage[index])
        }
        grown.append(contentsOf: repeatElement(0, count: capacity - self.count))
        self.storage = grown
        self.head = 0
    }
}

/// Packs an index and a generation into one ``Ring`` element.
@inline(__always)
func packReference(_ index: Int32, _ generation: UInt32) -> UInt64 {
    UInt64(UInt32(bitPattern: index)) << 32 | UInt64(generation)
}

@inline(__always)
func unpackReference(_ value: UInt64) -> (index: Int32, generation: UInt32) {
    (Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32)), UInt32(truncatingIfNeeded: value))
}
