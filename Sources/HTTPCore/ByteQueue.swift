/// A growable FIFO of bytes with a moving read index; compacts itself so memory stays proportional to what is unread.
public struct ByteQueue: Sendable {
    @usableFromInline var storage: [UInt8] = []
    @usableFromInline var readIndex: Int = 0

    public init() {}

    public init(_ bytes: [UInt8]) { self.storage = bytes }

    public var readableCount: Int { self.storage.count - self.readIndex }
    public var isEmpty: Bool { self.readableCount == 0 }

    public var readable: ArraySlice<UInt8> { self.storage[self.readIndex...] }

    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        self.compactIfWorthwhile()
        self.storage.append(contentsOf: bytes)
    }

    public mutating func append(_ pointer: UnsafeRawBufferPointer) {
        self.compactIfWorthwhile()
        self.storage.append(contentsOf: pointer)
    }

    /// Drops `n` bytes from the front.
    public mutating func consume(_ n: Int) {
        precondition(n >= 0 && n <= self.readableCount)
        self.readIndex += n
        if self.readIndex == self.storage.count {
            self.storage.removeAll(keepingCapacity: self.storage.capacity <= 256 * 1024)
            self.readIndex = 0
        }
    }

    /// Removes and returns up to `n` bytes from the front.
    public mutating func read(upTo n: Int) -> ArraySlice<UInt8> {
        let k = min(n, self.readableCount)
        let slice = self.storage[self.readIndex..<(self.readIndex + k)]
        self.consume(k)
        return slice
    }

    mutating func compactIfWorthwhile() {
        if self.readIndex > 4096 && self.readIndex * 2 > self.storage.count {
            self.storage.removeSubrange(0..<self.readIndex)
            self.readIndex = 0
        }
    }
}
