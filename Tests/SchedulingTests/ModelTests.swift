import Testing

@testable import Scheduling

/// Drives ``Scheduler`` and ``ReferenceScheduler`` with the same seeded random operations and requires identical
/// answers after every step, plus consistent internal bookkeeping.
@Suite struct ModelTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        var seed: UInt64
        var owners: Int
        var operations: Int
        var testDescription: String { "seed \(self.seed), \(self.owners) owners" }
    }

    @Test(arguments: [
        Shape(seed: 1, owners: 3, operations: 3_000),
        Shape(seed: 2, owners: 5, operations: 3_000),
        Shape(seed: 3, owners: 8, operations: 3_000),
        Shape(seed: 4, owners: 5, operations: 3_000),
        Shape(seed: 5, owners: 20, operations: 3_000),
        Shape(seed: 6, owners: 2, operations: 3_000),
    ])
    func matchesTheReference(shape: Shape) throws {
        var random = SplitMix64(seed: shape.seed)
        let caps = [0, 0, 1, 2, 3, 5]
        let configuration = SchedulerConfiguration(
            backgroundAgeing: [0, 300, 900, 1_800][Int.random(in: 0..<4, using: &random)],
            maxPerOwner: caps.randomElement(using: &random)!,
            maxPerArch: caps.randomElement(using: &random)!,
            maxPerOwnerArch: caps.randomElement(using: &random)!
        )
        var fast = Scheduler(configuration: configuration)
        var reference = ReferenceScheduler(configuration: configuration)
        let owners = (0..<shape.owners).map { "o\($0)" }
        let arches = ["x86_64", "aarch64", "i386"]
        var now: Int64 = 1_000_000
        var sequence: UInt64 = 0
        var ids: [String] = []
        var dispatched = 0
        var heldBack = 0  // decisions that returned nothing although tasks were pending
        var requeued = 0
        var canceledRunning = 0

        for step in 0..<shape.operations {
            let roll = Int.random(in: 0..<100, using: &random)
            let context = Comment(rawValue: "seed \(shape.seed) step \(step) roll \(roll)")
            switch roll {
            case 0..<36:  // enqueue, sometimes a duplicate id
                let owner = owners.randomElement(using: &random)!
                let id =
                    !ids.isEmpty && Int.random(in: 0..<20, using: &random) == 0
                    ? ids.randomElement(using: &random)! : "t\(ids.count)"
                sequence += 1
                let task = SchedulerTask(
                    id: id,
                    kind: Bool.random(using: &random) ? .rpm : .srpm,
                    owner: owner,
                    arch: arches.randomElement(using: &random)!,
                    sandbox: "\(owner)/p\(Int.random(in: 0..<3, using: &random))--\(owner)",
                    background: Int.random(in: 0..<3, using: &random) == 0,
                    submitted: now - 30 * Int64.random(in: -2...80, using: &random),
                    sequence: sequence
                )
                if id == "t\(ids.count)" { ids.append(id) }
                let acceptedFast = fast.enqueue(task)
                let acceptedReference = reference.enqueue(task)
                try #require(acceptedFast == acceptedReference, context)
            case 36..<68:  // decide
                now += 30 * Int64.random(in: 0...3, using: &random)
                let down = Set(arches.filter { _ in Int.random(in: 0..<5, using: &random) == 0 })
                let available: (String) -> Bool = { !down.contains($0) }
                let expected = reference.next(now: now, isArchAvailable: available)
                let actual = fast.next(now: now, isArchAvailable: available)
                try #require(actual == expected, context)
                if actual != nil {
                    dispatched += 1
                } else if reference.pendingCount > 0 {
                    heldBack += 1
                }
            case 68..<82:  // finish a running task, or try one that is not running
                let id = Self.pick(reference.running.keys.sorted(), ids, &random)
                let wasRunningFast = fast.finished(id: id)
                let wasRunningReference = reference.finished(id: id)
                try #require(wasRunningFast == wasRunningReference, context)
            case 82..<87:  // requeue
                let id = Self.pick(reference.running.keys.sorted(), ids, &random)
                let requeuedFast = fast.requeue(id: id)
                let requeuedReference = reference.requeue(id: id)
                try #require(requeuedFast == requeuedReference, context)
                if requeuedFast { requeued += 1 }
            case 87..<95:  // cancel anything, known or not
                let id = ids.isEmpty ? "none" : ids.randomElement(using: &random)!
                if reference.running[id] != nil { canceledRunning += 1 }
                let removedFast = fast.remove(id: id)
                let removedReference = reference.remove(id: id)
                try #require(removedFast == removedReference, context)
            default:  // block or unblock
                let owner = owners.randomElement(using: &random)!
                let blocked = Int.random(in: 0..<3, using: &random) != 0 ? !reference.blocked.contains(owner) : true
                fast.setBlocked(owner: owner, blocked)
                reference.setBlocked(owner: owner, blocked)
            }

            try #require(fast.pendingCount == reference.pendingCount, context)
            try #require(fast.runningCount == reference.runningCount, context)
            for owner in owners {
                try #require(fast.running(owner: owner) == reference.running(owner: owner), context)
                try #require(fast.pending(owner: owner) == reference.pending(owner: owner), context)
                try #require(fast.isBlocked(owner: owner) == reference.blocked.contains(owner), context)
            }
            if let id = ids.randomElement(using: &random) {
                try #require(fast.status(id: id) == reference.status(id: id), context)
            }
            if step % 50 == 0 || step == shape.operations - 1 {
                let problems = fast.invariantViolations()
                try #require(problems.isEmpty, "\(context): \(problems.prefix(5))")
            }
        }
        // The run exercised what it is meant to compare.
        #expect(dispatched > shape.operations / 20)
        #expect(heldBack > 0)
        #expect(requeued > 0)
        #expect(canceledRunning > 0)
        #expect(reference.promotions > 0)
    }

    /// A running id most of the time, otherwise any id (which may be queued or gone).
    static func pick(_ running: [String], _ ids: [String], _ random: inout SplitMix64) -> String {
        if !running.isEmpty && Int.random(in: 0..<5, using: &random) != 0 {
            return running.randomElement(using: &random)!
        }
        return ids.randomElement(using: &random) ?? "none"
    }
}

@Suite struct StructureTests {
    @Test func ringKeepsOrderAcrossGrowthAndWrapAround() {
        var ring = Ring()
        var model: [UInt64] = []
        var random = SplitMix64(seed: 42)
        for step in 0..<5_000 {
            switch Int.random(in: 0..<3, using: &random) {
            case 0:
                ring.pushBack(UInt64(step))
                model.append(UInt64(step))
            case 1:
                ring.pushFront(UInt64(step))
                model.insert(UInt64(step), at: 0)
            default:
                let popped = ring.popFront()
                #expect(popped == (model.isEmpty ? nil : model.removeFirst()))
            }
            #expect(ring.count == model.count)
            #expect(ring.first == model.first)
        }
        #expect(ring.elements == model)
    }

    @Test func indexedHeapsAgreeWithSorting() {
        var heaps = IndexedHeaps<UInt64>(heapCount: 3)
        var model: [Int32: (heap: Int, key: UInt64)] = [:]
        var random = SplitMix64(seed: 7)
        for _ in 0..<5_000 {
            let handle = Int32.random(in: 0..<200, using: &random)
            let key = UInt64.random(in: 0..<1_000_000, using: &random)
            if let entry = model[handle] {
                if Bool.random(using: &random) {
                    heaps.remove(handle)
                    model[handle] = nil
                } else {
                    heaps.update(handle, key: key)
                    model[handle] = (entry.heap, key)
                }
            } else {
                let heap = Int.random(in: 0..<3, using: &random)
                heaps.insert(handle, key: key, heap: heap)
                model[handle] = (heap, key)
            }
            for heap in 0..<3 {
                let expected = model.filter { $0.value.heap == heap }.map(\.value.key).min()
                #expect(heaps.top(heap)?.key == expected)
            }
        }
        for (handle, entry) in model {
            #expect(heaps.key(of: handle) == entry.key)
            #expect(heaps.heap(of: handle) == entry.heap)
        }
    }
}
