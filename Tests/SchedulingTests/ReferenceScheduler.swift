import Scheduling

/// The scheduling rules written as directly as possible, for the model test: one flat list of queued tasks, and
/// each decision is the minimum over all eligible tasks of (owner stamp, arch stamp, sandbox stamp, queue order)
/// in the first lane that has one. Every operation is O(n) or worse.
struct ReferenceScheduler {
    struct Queued {
        var task: SchedulerTask
        var lane: Int
        /// Position inside its sandbox queue: smaller is earlier; requeued tasks get ever smaller values.
        var order: Int64
    }

    let configuration: SchedulerConfiguration
    var queued: [Queued] = []
    var running: [String: SchedulerTask] = [:]
    var promoted: Set<String> = []
    var blocked: Set<String> = []
    /// A stamp exists exactly while its group has queued tasks; set on entry and whenever the group is served.
    var ownerStamps: [[String]: UInt64] = [:]
    var archStamps: [[String]: UInt64] = [:]
    var sandboxStamps: [[String]: UInt64] = [:]
    var clock: UInt64 = 0
    var backOrder: Int64 = 0
    var frontOrder: Int64 = 0
    /// Background tasks promoted so far (test coverage statistics).
    var promotions = 0

    init(configuration: SchedulerConfiguration) {
        self.configuration = configuration
    }

    var pendingCount: Int { self.queued.count }
    var runningCount: Int { self.running.count }

    func running(owner: String) -> Int { self.running.values.filter { $0.owner == owner }.count }
    func pending(owner: String) -> Int { self.queued.filter { $0.task.owner == owner }.count }

    func status(id: String) -> SchedulerTaskStatus? {
        if self.running[id] != nil { return .running }
        return self.queued.contains { $0.task.id == id } ? .pending : nil
    }

    func lane(of task: SchedulerTask) -> Int {
        (task.background && !self.promoted.contains(task.id) ? 2 : 0) + (task.kind == .rpm ? 1 : 0)
    }

    static func groups(_ lane: Int, _ task: SchedulerTask) -> (owner: [String], arch: [String], sandbox: [String]) {
        let owner = ["\(lane)", task.owner]
        return (owner, owner + [task.arch], owner + [task.arch, task.sandbox])
    }

    mutating func tick() -> UInt64 {
        self.clock += 1
        return self.clock
    }

    mutating func add(_ task: SchedulerTask, atFront: Bool) {
        let lane = self.lane(of: task)
        let (owner, arch, sandbox) = Self.groups(lane, task)
        if self.ownerStamps[owner] == nil { self.ownerStamps[owner] = self.tick() }
        if self.archStamps[arch] == nil { self.archStamps[arch] = self.tick() }
        if self.sandboxStamps[sandbox] == nil { self.sandboxStamps[sandbox] = self.tick() }
        let order: Int64
        if atFront {
            self.frontOrder -= 1
            order = self.frontOrder
        } else {
            self.backOrder += 1
            order = self.backOrder
        }
        self.queued.append(Queued(task: task, lane: lane, order: order))
    }

    /// Takes a queued task out; a group left empty loses its stamp, one still queued is re-stamped if `served`.
    mutating func take(_ id: String, served: Bool) -> Queued {
        let index = self.queued.firstIndex { $0.task.id == id }!
        let entry = self.queued.remove(at: index)
        let (owner, arch, sandbox) = Self.groups(entry.lane, entry.task)
        let sameLane = self.queued.filter { $0.lane == entry.lane }.map(\.task)
        let ownerQueued = sameLane.contains { $0.owner == entry.task.owner }
        let archQueued = sameLane.contains { $0.owner == entry.task.owner && $0.arch == entry.task.arch }
        let sandboxQueued = sameLane.contains {
            $0.owner == entry.task.owner && $0.arch == entry.task.arch && $0.sandbox == entry.task.sandbox
        }
        if !ownerQueued {
            self.ownerStamps[owner] = nil
        } else if served {
            self.ownerStamps[owner] = self.tick()
        }
        if !archQueued {
            self.archStamps[arch] = nil
        } else if served {
            self.archStamps[arch] = self.tick()
        }
        if !sandboxQueued {
            self.sandboxStamps[sandbox] = nil
        } else if served {
            self.sandboxStamps[sandbox] = self.tick()
        }
        return entry
    }

    mutating func enqueue(_ task: SchedulerTask) -> Bool {
        guard self.status(id: task.id) == nil else { return false }
        self.add(task, atFront: false)
        return true
    }

    mutating func remove(id: String) -> Bool {
        if self.running.removeValue(forKey: id) != nil {
            self.promoted.remove(id)
            return true
        }
        guard self.queued.contains(where: { $0.task.id == id }) else { return false }
        _ = self.take(id, served: false)
        self.promoted.remove(id)
        return true
    }

    mutating func finished(id: String) -> Bool {
        guard self.running.removeValue(forKey: id) != nil else { return false }
        self.promoted.remove(id)
        return true
    }

    mutating func requeue(id: String) -> Bool {
        guard let task = self.running.removeValue(forKey: id) else { return false }
        self.add(task, atFront: true)
        return true
    }

    mutating func setBlocked(owner: String, _ isBlocked: Bool) {
        if isBlocked {
            self.blocked.insert(owner)
        } else {
            self.blocked.remove(owner)
        }
    }

    func isEligible(_ task: SchedulerTask, _ runningTasks: [SchedulerTask], _ isArchAvailable: (String) -> Bool) -> Bool
    {
        let config = self.configuration
        let ownerRunning = runningTasks.filter { $0.owner == task.owner }.count
        let archRunning = runningTasks.filter { $0.arch == task.arch }.count
        let ownerArchRunning = runningTasks.filter { $0.owner == task.owner && $0.arch == task.arch }.count
        return !self.blocked.contains(task.owner)
            && (config.maxPerOwner == 0 || ownerRunning < config.maxPerOwner)
            && (config.maxPerArch == 0 || archRunning < config.maxPerArch)
            && (config.maxPerOwnerArch == 0 || ownerArchRunning < config.maxPerOwnerArch)
            && isArchAvailable(task.arch)
    }

    mutating func next(now: Int64, isArchAvailable: (String) -> Bool) -> SchedulerTask? {
        let aged = self.queued
            .filter {
                $0.lane >= 2 && Int128(now) - Int128($0.task.submitted) >= Int128(self.configuration.backgroundAgeing)
            }
            .sorted { ($0.task.submitted, $0.task.sequence) < ($1.task.submitted, $1.task.sequence) }
        self.promotions += aged.count
        for entry in aged {
            _ = self.take(entry.task.id, served: false)
            self.promoted.insert(entry.task.id)
            self.add(entry.task, atFront: false)
        }
        let runningTasks = Array(self.running.values)
        for lane in 0..<4 {
            let candidates = self.queued.filter {
                $0.lane == lane && self.isEligible($0.task, runningTasks, isArchAvailable)
            }
            let best = candidates.min { lhs, rhs in
                let (lo, la, ls) = Self.groups(lane, lhs.task)
                let (ro, ra, rs) = Self.groups(lane, rhs.task)
                return (self.ownerStamps[lo]!, self.archStamps[la]!, self.sandboxStamps[ls]!, lhs.order)
                    < (self.ownerStamps[ro]!, self.archStamps[ra]!, self.sandboxStamps[rs]!, rhs.order)
            }
            guard let best else { continue }
            _ = self.take(best.task.id, served: true)
            self.running[best.task.id] = best.task
            return best.task
        }
        return nil
    }
}
