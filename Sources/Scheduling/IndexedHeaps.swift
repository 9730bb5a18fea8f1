/// A family of binary min-heaps over small integer handles, where each handle is in at most one heap at a time and
/// can be found, re-keyed or removed in O(log n) through a position table.
///
/// The scheduler keeps one heap per (lane, arch) whose handles are queue nodes and whose keys are the owners'
/// round-robin stamps, and one heap of background tasks keyed by age.
struct IndexedHeaps<Key: Comparable & Sendable>: Sendable {
    struct Entry: Sendable {
        var key: Key
        var handle: Int32
    }

    private var heaps: [[Entry]]
    /// By handle: index inside its heap, or -1.
    private var position: [Int32] = []
    /// By handle: which heap holds it (valid while `position >= 0`).
    private var heapOf: [Int32] = []

    init(heapCount: Int = 0) {
        self.heaps = Array(repeating: [], count: heapCount)
    }

    var heapCount: Int { self.heaps.count }

    mutating func addHeap() {
        self.heaps.append([])
    }

    func count(ofHeap heap: Int) -> Int { self.heaps[heap].count }

    func contains(_ handle: Int32) -> Bool {
        let index = Int(handle)
        return index < self.position.count && self.position[index] >= 0
    }

    func key(of handle: Int32) -> Key? {
        guard self.contains(handle) else { return nil }
        return self.heaps[Int(self.heapOf[Int(handle)])][Int(self.position[Int(handle)])].key
    }

    func heap(of handle: Int32) -> Int? {
        guard self.contains(handle) else { return nil }
        return Int(self.heapOf[Int(handle)])
    }

    func top(_ heap: Int) -> Entry? { self.heaps[heap].first }

    mutating func insert(_ handle: Int32, key: Key, heap: Int) {
        precondition(!self.contains(handle), "handle already in a heap")
        let index = Int(handle)
        if index >= self.position.count {
            let grown = Swift.max(index + 1, self.position.count * 2)
            self.position.append(contentsOf: repeatElement(-1, count: grown - self.position.count))
            self.heapOf.append(contentsOf: repeatElement(-1, count: grown - self.heapOf.count))
        }
        self.heapOf[index] = Int32(heap)
        self.heaps[heap].append(Entry(key: key, handle: handle))
        self.siftUp(heap, self.heaps[heap].count - 1)
    }

    mutating func remove(_ handle: Int32) {
        guard self.contains(handle) else { return }
        let heap = Int(self.heapOf[Int(handle)])
        let index = Int(self.position[Int(handle)])
        self.position[Int(handle)] = -1
        let last = self.heaps[heap].removeLast()
        if index < self.heaps[heap].count {
            self.heaps[heap][index] = last
            self.position[Int(last.handle)] = Int32(index)
            self.siftUp(heap, index)
            self.siftDown(heap, Int(self.position[Int(last.handle)]))
        }
    }

    mutating func update(_ handle: Int32, key: Key) {
        precondition(self.contains(handle), "handle not in a heap")
        let heap = Int(self.heapOf[Int(handle)])
        let index = Int(self.position[Int(handle)])
        let old = self.heaps[heap][index].key
        self.heaps[heap][index].key = key
        if key < old {
            self.siftUp(heap, index)
        } else {
            self.siftDown(heap, index)
        }
    }

    private mutating func siftUp(_ heap: Int, _ start: Int) {
        var index = start
        let entry = self.heaps[heap][index]
        while index > 0 {
            let parent = (index - 1) / 2
            let parentEntry = self.heaps[heap][parent]
            guard entry.key < parentEntry.key else { break }
            self.heaps[heap][index] = parentEntry
            self.position[Int(parentEntry.handle)] = Int32(index)
            index = parent
        }
        self.heaps[heap][index] = entry
        self.position[Int(entry.handle)] = Int32(index)
    }

    private mutating func siftDown(_ heap: Int, _ start: Int) {
        var index = start
        let count = self.heaps[heap].count
        let entry = self.heaps[heap][index]
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            var child = left
            let right = left + 1
            if right < count && self.heaps[heap][right].key < self.heaps[heap][left].key { child = right }
            let childEntry = self.heaps[heap][child]
            guard childEntry.key < entry.key else { break }
            self.heaps[heap][index] = childEntry
            self.position[Int(childEntry.handle)] = Int32(index)
            index = child
        }
        self.heaps[heap][index] = entry
        self.position[Int(entry.handle)] = Int32(index)
    }
}
