import Scheduling

extension SchedulerTask {
    /// A task with test defaults: an RPM task of owner `a` on x86_64, in the owner's `p` sandbox.
    static func make(
        _ id: String,
        owner: String = "a",
        arch: String = "x86_64",
        sandbox: String? = nil,
        kind: Kind = .rpm,
        background: Bool = false,
        submitted: Int64 = 1_000,
        sequence: UInt64 = 0
    ) -> SchedulerTask {
        SchedulerTask(
            id: id,
            kind: kind,
            owner: owner,
            arch: arch,
            sandbox: sandbox ?? "\(owner)/p--\(owner)",
            background: background,
            submitted: submitted,
            sequence: sequence
        )
    }
}

extension Scheduler {
    /// Ids of the next `count` decisions (fewer when the scheduler runs dry).
    mutating func drain(
        _ count: Int,
        now: Int64 = 1_000,
        isArchAvailable: (String) -> Bool = { _ in true }
    ) -> [String] {
        var ids: [String] = []
        for _ in 0..<count {
            guard let task = self.next(now: now, isArchAvailable: isArchAvailable) else { break }
            ids.append(task.id)
        }
        return ids
    }
}

/// SplitMix64: a tiny seeded generator, so randomized tests replay exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
