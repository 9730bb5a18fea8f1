internal import Synchronization

/// A value handed to `DispatchQueue.concurrentPerform` workers that only read it.
/// `@unchecked Sendable` invariant: the workers never mutate `value`, and it outlives the call.
struct UnsafeSendable<Value>: @unchecked Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}

/// One result slot per index, each written by exactly one worker and read after all workers finished.
/// `@unchecked Sendable` invariant: slot `i` is written once, by one thread, before `concurrentPerform`
/// returns; `take` runs only afterwards on the calling thread.
final class UnsafeResults<Value>: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Value?>
    private let count: Int

    init(count: Int) {
        self.count = count
        self.slots = .allocate(capacity: max(count, 1))
        self.slots.initialize(repeating: nil, count: max(count, 1))
    }

    deinit {
        self.slots.deinitialize(count: max(self.count, 1))
        self.slots.deallocate()
    }

    func set(_ index: Int, _ value: Value) {
        precondition(index >= 0 && index < self.count)
        self.slots[index] = value
    }

    func take(_ index: Int) -> Value {
        precondition(index >= 0 && index < self.count)
        guard let value = self.slots[index] else { preconditionFailure("result \(index) was never set") }
        return value
    }
}

/// A shared work counter for `concurrentPerform` workers.
final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)

    /// Returns the value before the increment.
    func increment() -> Int {
        self.value.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}
