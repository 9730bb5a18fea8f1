/// The Backend dispatcher's decision core: which pending task to start next.
///
/// **Order.** Four lanes, served strictly in order: normal SRPM, normal RPM, background SRPM, background RPM. A
/// background task that has waited ``SchedulerConfiguration/backgroundAgeing`` seconds (`now - submitted`) moves to
/// the back of the matching normal lane. Inside a lane, owners take turns; inside an owner, architectures take
/// turns; inside an (owner, arch), sandboxes take turns; inside a sandbox, tasks are served in enqueue order, except
/// that a requeued task goes to the front.
///
/// **Turns** are least-recently-served: each owner (per lane) carries a stamp, set when it gains queued work there
/// and again each time it is served; the eligible owner with the oldest stamp is served. An owner that is capped,
/// blocked or waiting for an architecture keeps its stamp, so it loses no place and is next as soon as it can run.
/// Architectures inside an owner and sandboxes inside an (owner, arch) use the same rule. With owner A holding 3,000
/// queued tasks, owner B's newly queued task is therefore dispatched within the next two decisions.
///
/// **Eligibility.** A task can start when its owner is not blocked and below ``SchedulerConfiguration/maxPerOwner``,
/// its (owner, arch) is below ``SchedulerConfiguration/maxPerOwnerArch``, its arch is below
/// ``SchedulerConfiguration/maxPerArch``, and the caller's `isArchAvailable` says a builder can be had.
///
/// **Cost.** Strings are interned on enqueue. Per lane and arch, an indexed heap holds exactly the owners with
/// eligible-by-caps work there, keyed by their stamp, so capped and blocked owners are never scanned: a decision costs
/// O(lanes × arches + arches × log owners). Cancel is O(1) plus heap upkeep: the queue entry is left behind and skipped
/// when it reaches the front.
///
/// The type is a plain value: no I/O, no clocks, no randomness. The same calls give the same answers.
public struct Scheduler: Sendable {
    public let configuration: SchedulerConfiguration

    /// Number of lanes; lane = (background ? 2 : 0) + (rpm ? 1 : 0).
    static let laneCount = 4

    // MARK: Tasks
    var slots: [TaskSlot] = []
    var freeSlots: [Int32] = []
    var slotByID: [String: Int32] = [:]
    /// Tasks queued and not running.
    public private(set) var pendingCount = 0
    /// Tasks handed out by ``next(now:isArchAvailable:)`` and not yet finished, removed or requeued.
    public private(set) var runningCount = 0

    // MARK: Interned names
    var owners: [OwnerRecord] = []
    var freeOwners: [Int32] = []
    var ownerByName: [String: Int32] = [:]
    /// Architectures are few and never released.
    var archNames: [String] = []
    var archByName: [String: Int32] = [:]
    var archRunning: [Int32] = []
    var sandboxNames: [String] = []
    var sandboxReferences: [Int32] = []
    var freeSandboxNames: [Int32] = []
    var sandboxNameByName: [String: Int32] = [:]

    // MARK: Queue nodes
    /// (lane, owner, arch) nodes: the unit kept in the lane heaps.
    var archNodes: [ArchNode] = []
    var freeArchNodes: [Int32] = []
    /// (lane, owner, arch, sandbox) nodes: one FIFO each.
    var sandboxNodes: [SandboxNode] = []
    var freeSandboxNodes: [Int32] = []
    var sandboxNodeByKey: [SandboxKey: Int32] = [:]

    /// Heap `arch * laneCount + lane` holds the arch nodes whose owner can take work there by caps and block state,
    /// keyed by the owner's stamp in that lane.
    var laneHeaps = IndexedHeaps<UInt64>()
    /// Queued background tasks that have not been promoted, by (submitted, sequence); handle = slot.
    var ageing = IndexedHeaps<AgeKey>(heapCount: 1)
    /// Source of round-robin stamps.
    var clock: UInt64 = 0

    public init(configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        self.configuration = configuration
    }

    // MARK: - Public API

    /// Queues `task` at the back of its sandbox queue. A task whose id is already queued or running is ignored.
    /// - Returns: `false` when the id was already known.
    @discardableResult
    public mutating func enqueue(_ task: SchedulerTask) -> Bool {
        guard self.slotByID[task.id] == nil else { return false }
        let owner = self.internOwner(task.owner)
        let arch = self.internArch(task.arch)
        let sandbox = self.internSandboxName(task.sandbox)
        let slot = self.allocateSlot(
            TaskSlot(
                id: task.id,
                owner: owner,
                arch: arch,
                sandboxName: sandbox,
                submitted: task.submitted,
                sequence: task.sequence,
                kind: task.kind,
                background: task.background
            )
        )
        self.slotByID[task.id] = slot
        self.place(slot, atFront: false)
        return true
    }

    /// Cancels a task: a queued one leaves its queue, a running one is forgotten and frees its cap slots.
    /// - Returns: `false` when the id is unknown.
    @discardableResult
    public mutating func remove(id: String) -> Bool {
        guard let slot = self.slotByID[id] else { return false }
        let owner = self.slots[Int(slot)].owner
        switch self.slots[Int(slot)].state {
        case .queued:
            self.unplace(slot)
        case .running:
            self.stopRunning(slot)
        case .free:
            preconditionFailure("index points at a free slot")
        }
        self.releaseSlot(slot)
        self.releaseOwnerIfIdle(owner)
        return true
    }

    /// The next task to start, marked running; `nil` when nothing queued can start now.
    ///
    /// First moves background tasks that have aged by `now` to the normal lanes. `isArchAvailable` is asked at most
    /// once per architecture per call, and only about architectures that have startable work.
    public mutating func next(now: Int64, isArchAvailable: (String) -> Bool = { _ in true }) -> SchedulerTask? {
        self.promoteAged(now: now)
        guard self.pendingCount > 0 else { return nil }
        // Per arch: 0 not asked yet, 1 eligible, 2 not.
        var archVerdicts = [UInt8](repeating: 0, count: self.archNames.count)
        for lane in 0..<Self.laneCount {
            // The owner with the oldest stamp among the heads of the eligible architectures' heaps.
            var best: Int32 = -1
            var bestKey = UInt64.max
            for arch in 0..<self.archNames.count {
                guard let top = self.laneHeaps.top(arch * Self.laneCount + lane), top.key < bestKey else { continue }
                guard self.archIsEligible(arch, &archVerdicts, isArchAvailable) else { continue }
                best = top.handle
                bestKey = top.key
            }
            guard best >= 0 else { continue }
            // Inside that owner, the eligible architecture with the oldest stamp.
            let owner = Int(self.archNodes[Int(best)].owner)
            var chosen: Int32 = -1
            var chosenStamp = UInt64.max
            for node in self.owners[owner].lanes[lane].archNodes {
                let stamp = self.archNodes[Int(node)].stamp
                guard stamp < chosenStamp, self.laneHeaps.contains(node) else { continue }
                guard self.archIsEligible(Int(self.archNodes[Int(node)].arch), &archVerdicts, isArchAvailable) else {
                    continue
                }
                chosen = node
                chosenStamp = stamp
            }
            precondition(chosen >= 0, "heap head without an eligible arch node")
            return self.dispatch(from: chosen)
        }
        return nil
    }

    /// Forgets a running task and frees its cap slots.
    /// - Returns: `false` when the id is not running.
    @discardableResult
    public mutating func finished(id: String) -> Bool {
        guard let slot = self.slotByID[id], self.slots[Int(slot)].state == .running else { return false }
        let owner = self.slots[Int(slot)].owner
        self.stopRunning(slot)
        self.releaseSlot(slot)
        self.releaseOwnerIfIdle(owner)
        return true
    }

    /// Puts a running task back at the front of its sandbox queue (its builder died, or the claim failed) and frees
    /// its cap slots.
    /// - Returns: `false` when the id is not running.
    @discardableResult
    public mutating func requeue(id: String) -> Bool {
        guard let slot = self.slotByID[id], self.slots[Int(slot)].state == .running else { return false }
        self.stopRunning(slot)
        self.place(slot, atFront: true)
        return true
    }

    /// Blocks or unblocks an owner. A blocked owner's tasks stay queued (in place) and are never dispatched; running
    /// ones keep running.
    public mutating func setBlocked(owner name: String, _ blocked: Bool) {
        if blocked {
            let owner = self.internOwner(name)
            self.owners[Int(owner)].blocked = true
            self.refreshOwner(owner)
        } else if let owner = self.ownerByName[name] {
            self.owners[Int(owner)].blocked = false
            self.refreshOwner(owner)
            self.releaseOwnerIfIdle(owner)
        }
    }

    /// Whether `owner` is blocked.
    public func isBlocked(owner name: String) -> Bool {
        guard let owner = self.ownerByName[name] else { return false }
        return self.owners[Int(owner)].blocked
    }

    /// Tasks of `owner` running now.
    public func running(owner name: String) -> Int {
        guard let owner = self.ownerByName[name] else { return 0 }
        return Int(self.owners[Int(owner)].running)
    }

    /// Tasks of `owner` queued now, over all lanes.
    public func pending(owner name: String) -> Int {
        guard let owner = self.ownerByName[name] else { return 0 }
        return self.owners[Int(owner)].lanes.reduce(0) { $0 + Int($1.queued) }
    }

    /// Tasks running now on `arch`.
    public func running(arch name: String) -> Int {
        guard let arch = self.archByName[name] else { return 0 }
        return Int(self.archRunning[Int(arch)])
    }

    /// Whether `id` is queued or running; `nil` when unknown.
    public func status(id: String) -> SchedulerTaskStatus? {
        guard let slot = self.slotByID[id] else { return nil }
        return self.slots[Int(slot)].state == .running ? .running : .pending
    }

    /// The task `id` as it was enqueued, if queued or running.
    public func task(id: String) -> SchedulerTask? {
        guard let slot = self.slotByID[id] else { return nil }
        return self.makeTask(slot)
    }
}

// MARK: - Storage

/// One task, queued or running. Slots are recycled; `token` survives recycling so stale queue entries never match.
struct TaskSlot: Sendable {
    enum State: UInt8, Sendable {
        case free
        case queued
        case running
    }

    var id: String
    var owner: Int32
    var arch: Int32
    var sandboxName: Int32
    /// The sandbox node holding it while queued.
    var sandboxNode: Int32 = -1
    var submitted: Int64
    var sequence: UInt64
    /// Changes whenever the task is placed in or taken out of a queue; a queue entry is live only while it matches.
    var token: UInt32 = 0
    var state: State = .free
    var kind: SchedulerTask.Kind
    var background: Bool
    /// An aged background task, served as normal from now on.
    var promoted = false

    var lane: Int {
        (self.background && !self.promoted ? 2 : 0) + (self.kind == .rpm ? 1 : 0)
    }

    var waitsForAgeing: Bool { self.background && !self.promoted }
}

struct AgeKey: Comparable, Sendable {
    var submitted: Int64
    var sequence: UInt64

    static func < (lhs: AgeKey, rhs: AgeKey) -> Bool {
        (lhs.submitted, lhs.sequence) < (rhs.submitted, rhs.sequence)
    }
}

struct OwnerRecord: Sendable {
    struct Lane: Sendable {
        /// Round-robin stamp among the lane's owners; meaningful while `queued > 0`.
        var stamp: UInt64 = 0
        var queued: Int32 = 0
        /// This owner's (lane, owner, arch) nodes; at most one per arch.
        var archNodes: [Int32] = []
    }

    struct ArchCount: Sendable {
        var arch: Int32
        var count: Int32
    }

    var name: String
    var blocked = false
    var running: Int32 = 0
    /// Running per arch; entries with a zero count are dropped.
    var archRunning: [ArchCount] = []
    var lanes: [Lane] = Array(repeating: Lane(), count: Scheduler.laneCount)
    var inUse = true

    func running(arch: Int32) -> Int32 {
        for entry in self.archRunning where entry.arch == arch { return entry.count }
        return 0
    }

    mutating func addRunning(arch: Int32, _ delta: Int32) {
        self.running += delta
        if let index = self.archRunning.firstIndex(where: { $0.arch == arch }) {
            self.archRunning[index].count += delta
            if self.archRunning[index].count == 0 { self.archRunning.remove(at: index) }
        } else {
            precondition(delta > 0, "running count below zero")
            self.archRunning.append(ArchCount(arch: arch, count: delta))
        }
    }
}

struct ArchNode: Sendable {
    var owner: Int32
    var arch: Int32
    var lane: Int32
    /// Round-robin stamp among the owner's architectures in this lane.
    var stamp: UInt64
    var queued: Int32 = 0
    /// Sandbox nodes with queued tasks, as packed (node, generation); stale entries are skipped.
    var sandboxes = Ring()
}

struct SandboxNode: Sendable {
    var archNode: Int32
    var name: Int32
    /// Bumped when the node is released, so ring entries pointing at it go stale.
    var generation: UInt32 = 0
    /// Live entries in `tasks`.
    var live: Int32 = 0
    /// Packed (slot, token); stale entries are skipped.
    var tasks = Ring()
    var inUse = true
}

struct SandboxKey: Hashable, Sendable {
    var archNode: Int32
    var name: Int32
}

// MARK: - Queue mechanics

extension Scheduler {
    private mutating func tick() -> UInt64 {
        self.clock += 1
        return self.clock
    }

    /// Puts a slot (state free or running, counts already adjusted) into the queue of its lane.
    private mutating func place(_ slot: Int32, atFront: Bool) {
        let lane = self.slots[Int(slot)].lane
        let owner = self.slots[Int(slot)].owner
        let arch = self.slots[Int(slot)].arch
        let name = self.slots[Int(slot)].sandboxName

        if self.owners[Int(owner)].lanes[lane].queued == 0 {
            self.owners[Int(owner)].lanes[lane].stamp = self.tick()
        }
        self.owners[Int(owner)].lanes[lane].queued += 1

        let archNode = self.findArchNode(owner: owner, lane: lane, arch: arch) ?? self.makeArchNode(owner, lane, arch)
        self.archNodes[Int(archNode)].queued += 1

        let key = SandboxKey(archNode: archNode, name: name)
        let sandboxNode: Int32
        if let existing = self.sandboxNodeByKey[key] {
            sandboxNode = existing
        } else {
            sandboxNode = self.makeSandboxNode(archNode: archNode, name: name)
            self.sandboxNodeByKey[key] = sandboxNode
            let generation = self.sandboxNodes[Int(sandboxNode)].generation
            self.archNodes[Int(archNode)].sandboxes.pushBack(packReference(sandboxNode, generation))
        }

        self.slots[Int(slot)].token &+= 1
        let reference = packReference(slot, self.slots[Int(slot)].token)
        if atFront {
            self.sandboxNodes[Int(sandboxNode)].tasks.pushFront(reference)
        } else {
            self.sandboxNodes[Int(sandboxNode)].tasks.pushBack(reference)
        }
        self.sandboxNodes[Int(sandboxNode)].live += 1
        self.slots[Int(slot)].sandboxNode = sandboxNode
        self.slots[Int(slot)].state = .queued
        self.pendingCount += 1

        if self.slots[Int(slot)].waitsForAgeing {
            let slotValue = self.slots[Int(slot)]
            self.ageing.insert(slot, key: AgeKey(submitted: slotValue.submitted, sequence: slotValue.sequence), heap: 0)
        }
        // Caps and blocks are unchanged, and the owner's stamp only changed if this node is its only one in the lane.
        self.refreshNode(archNode)
    }

    /// Takes a queued slot out of its queue without dispatching it (cancel, promotion). Its queue entry stays behind,
    /// stale. The slot is left in state `.free`.
    private mutating func unplace(_ slot: Int32) {
        let sandboxNode = self.slots[Int(slot)].sandboxNode
        self.slots[Int(slot)].token &+= 1
        self.slots[Int(slot)].state = .free
        self.slots[Int(slot)].sandboxNode = -1
        self.sandboxNodes[Int(sandboxNode)].live -= 1
        let archNode = self.sandboxNodes[Int(sandboxNode)].archNode
        if self.sandboxNodes[Int(sandboxNode)].live == 0 {
            self.releaseSandboxNode(sandboxNode)
        }
        self.ageing.remove(slot)
        self.pendingCount -= 1
        self.leaveArchNode(archNode)
    }

    /// One task fewer queued under `archNode`; releases it when empty.
    private mutating func leaveArchNode(_ archNode: Int32) {
        let owner = self.archNodes[Int(archNode)].owner
        let lane = Int(self.archNodes[Int(archNode)].lane)
        self.archNodes[Int(archNode)].queued -= 1
        self.owners[Int(owner)].lanes[lane].queued -= 1
        if self.archNodes[Int(archNode)].queued == 0 {
            self.releaseArchNode(archNode)
        }
    }

    /// Pops the front task of the least recently served sandbox of `archNode` and marks it running.
    private mutating func dispatch(from archNode: Int32) -> SchedulerTask {
        let owner = self.archNodes[Int(archNode)].owner
        let arch = self.archNodes[Int(archNode)].arch
        let lane = Int(self.archNodes[Int(archNode)].lane)

        var sandboxNode: Int32 = -1
        while let reference = self.archNodes[Int(archNode)].sandboxes.popFront() {
            let (node, generation) = unpackReference(reference)
            if self.sandboxNodes[Int(node)].inUse && self.sandboxNodes[Int(node)].generation == generation {
                sandboxNode = node
                break
            }
        }
        precondition(sandboxNode >= 0, "arch node with queued work but no live sandbox")

        var slot: Int32 = -1
        while let reference = self.sandboxNodes[Int(sandboxNode)].tasks.popFront() {
            let (candidate, token) = unpackReference(reference)
            let candidateSlot = self.slots[Int(candidate)]
            if candidateSlot.state == .queued && candidateSlot.token == token
                && candidateSlot.sandboxNode == sandboxNode
            {
                slot = candidate
                break
            }
        }
        precondition(slot >= 0, "sandbox node with live count but no live task")

        self.slots[Int(slot)].token &+= 1
        self.slots[Int(slot)].sandboxNode = -1
        self.sandboxNodes[Int(sandboxNode)].live -= 1
        if self.sandboxNodes[Int(sandboxNode)].live == 0 {
            self.releaseSandboxNode(sandboxNode)
        } else {
            let generation = self.sandboxNodes[Int(sandboxNode)].generation
            self.archNodes[Int(archNode)].sandboxes.pushBack(packReference(sandboxNode, generation))
        }
        self.ageing.remove(slot)
        self.pendingCount -= 1

        // Served: to the back of the owner's architectures and of the lane's owners.
        let archNodeSurvives = self.archNodes[Int(archNode)].queued > 1
        self.leaveArchNode(archNode)
        if archNodeSurvives {
            self.archNodes[Int(archNode)].stamp = self.tick()
        }
        if self.owners[Int(owner)].lanes[lane].queued > 0 {
            self.owners[Int(owner)].lanes[lane].stamp = self.tick()
        }

        self.slots[Int(slot)].state = .running
        self.runningCount += 1
        self.owners[Int(owner)].addRunning(arch: arch, 1)
        self.archRunning[Int(arch)] += 1
        if self.ownerIsCapped(owner) || self.ownerArchIsCapped(owner, arch) {
            // A cap just filled: take the owner (or this arch of it) out of every lane.
            self.refreshOwner(owner)
        } else {
            // Only this lane's stamps moved.
            for node in self.owners[Int(owner)].lanes[lane].archNodes { self.refreshNode(node) }
        }
        return self.makeTask(slot)
    }

    /// Undoes the running bookkeeping of a running slot (finished, canceled or requeued); leaves it `.free`.
    private mutating func stopRunning(_ slot: Int32) {
        let owner = self.slots[Int(slot)].owner
        let arch = self.slots[Int(slot)].arch
        let wasCapped = self.ownerIsCapped(owner) || self.ownerArchIsCapped(owner, arch)
        self.slots[Int(slot)].state = .free
        self.runningCount -= 1
        self.owners[Int(owner)].addRunning(arch: arch, -1)
        self.archRunning[Int(arch)] -= 1
        if wasCapped { self.refreshOwner(owner) }
    }

    /// Moves every background task that has waited `backgroundAgeing` seconds to the back of its normal lane, oldest
    /// first. (A requeued background task that ages this way gives up its place at the front of its sandbox.)
    private mutating func promoteAged(now: Int64) {
        while let top = self.ageing.top(0) {
            let (age, overflow) = now.subtractingReportingOverflow(top.key.submitted)
            let aged = overflow ? now > top.key.submitted : age >= self.configuration.backgroundAgeing
            guard aged else { return }
            let slot = top.handle
            self.unplace(slot)
            self.slots[Int(slot)].promoted = true
            self.place(slot, atFront: false)
        }
    }

    // MARK: Eligibility

    private func ownerIsCapped(_ owner: Int32) -> Bool {
        let cap = self.configuration.maxPerOwner
        return cap > 0 && Int(self.owners[Int(owner)].running) >= cap
    }

    private func ownerArchIsCapped(_ owner: Int32, _ arch: Int32) -> Bool {
        let cap = self.configuration.maxPerOwnerArch
        return cap > 0 && Int(self.owners[Int(owner)].running(arch: arch)) >= cap
    }

    private func archIsEligible(
        _ arch: Int,
        _ verdicts: inout [UInt8],
        _ isArchAvailable: (String) -> Bool
    ) -> Bool {
        switch verdicts[arch] {
        case 1: return true
        case 2: return false
        default:
            let cap = self.configuration.maxPerArch
            let eligible =
                !(cap > 0 && Int(self.archRunning[arch]) >= cap) && isArchAvailable(self.archNames[arch])
            verdicts[arch] = eligible ? 1 : 2
            return eligible
        }
    }

    /// Brings every lane-heap entry of `owner` in line with its queued work, block state, caps and stamps.
    private mutating func refreshOwner(_ owner: Int32) {
        for lane in 0..<Self.laneCount {
            for node in self.owners[Int(owner)].lanes[lane].archNodes { self.refreshNode(node) }
        }
    }

    /// Puts an arch node in its lane heap, keyed by its owner's current stamp, exactly when its owner may start
    /// work there by block state and caps (a node exists only while it has queued work); takes it out otherwise.
    private mutating func refreshNode(_ node: Int32) {
        let owner = self.archNodes[Int(node)].owner
        let arch = self.archNodes[Int(node)].arch
        let lane = Int(self.archNodes[Int(node)].lane)
        let wanted =
            !self.owners[Int(owner)].blocked && !self.ownerIsCapped(owner) && !self.ownerArchIsCapped(owner, arch)
        let stamp = self.owners[Int(owner)].lanes[lane].stamp
        if let key = self.laneHeaps.key(of: node) {
            if !wanted {
                self.laneHeaps.remove(node)
            } else if key != stamp {
                self.laneHeaps.update(node, key: stamp)
            }
        } else if wanted {
            self.laneHeaps.insert(node, key: stamp, heap: Int(arch) * Self.laneCount + lane)
        }
    }

    // MARK: Node and name lifetimes

    private func findArchNode(owner: Int32, lane: Int, arch: Int32) -> Int32? {
        for node in self.owners[Int(owner)].lanes[lane].archNodes where self.archNodes[Int(node)].arch == arch {
            return node
        }
        return nil
    }

    private mutating func makeArchNode(_ owner: Int32, _ lane: Int, _ arch: Int32) -> Int32 {
        let node = ArchNode(owner: owner, arch: arch, lane: Int32(lane), stamp: self.tick())
        let index: Int32
        if let reused = self.freeArchNodes.popLast() {
            index = reused
            self.archNodes[Int(index)] = node
        } else {
            index = Int32(self.archNodes.count)
            self.archNodes.append(node)
        }
        self.owners[Int(owner)].lanes[lane].archNodes.append(index)
        return index
    }

    private mutating func releaseArchNode(_ node: Int32) {
        self.laneHeaps.remove(node)
        let owner = self.archNodes[Int(node)].owner
        let lane = Int(self.archNodes[Int(node)].lane)
        self.owners[Int(owner)].lanes[lane].archNodes.removeAll { $0 == node }
        self.archNodes[Int(node)].sandboxes.removeAll()
        self.archNodes[Int(node)].owner = -1
        self.freeArchNodes.append(node)
    }

    private mutating func makeSandboxNode(archNode: Int32, name: Int32) -> Int32 {
        if let reused = self.freeSandboxNodes.popLast() {
            self.sandboxNodes[Int(reused)].archNode = archNode
            self.sandboxNodes[Int(reused)].name = name
            self.sandboxNodes[Int(reused)].live = 0
            self.sandboxNodes[Int(reused)].inUse = true
            return reused
        }
        self.sandboxNodes.append(SandboxNode(archNode: archNode, name: name))
        return Int32(self.sandboxNodes.count - 1)
    }

    private mutating func releaseSandboxNode(_ node: Int32) {
        let key = SandboxKey(archNode: self.sandboxNodes[Int(node)].archNode, name: self.sandboxNodes[Int(node)].name)
        self.sandboxNodeByKey[key] = nil
        self.sandboxNodes[Int(node)].generation &+= 1
        self.sandboxNodes[Int(node)].inUse = false
        self.sandboxNodes[Int(node)].tasks.removeAll()
        self.freeSandboxNodes.append(node)
    }

    private mutating func allocateSlot(_ slot: TaskSlot) -> Int32 {
        if let reused = self.freeSlots.popLast() {
            let token = self.slots[Int(reused)].token
            self.slots[Int(reused)] = slot
            self.slots[Int(reused)].token = token
            return reused
        }
        self.slots.append(slot)
        return Int32(self.slots.count - 1)
    }

    /// Forgets a slot whose queue and running bookkeeping is already undone.
    private mutating func releaseSlot(_ slot: Int32) {
        precondition(self.slots[Int(slot)].state == .free)
        self.slotByID[self.slots[Int(slot)].id] = nil
        self.releaseSandboxName(self.slots[Int(slot)].sandboxName)
        self.slots[Int(slot)].id = ""
        self.slots[Int(slot)].token &+= 1
        self.freeSlots.append(slot)
    }

    private mutating func internOwner(_ name: String) -> Int32 {
        if let owner = self.ownerByName[name] { return owner }
        let owner: Int32
        if let reused = self.freeOwners.popLast() {
            owner = reused
            self.owners[Int(owner)] = OwnerRecord(name: name)
        } else {
            owner = Int32(self.owners.count)
            self.owners.append(OwnerRecord(name: name))
        }
        self.ownerByName[name] = owner
        return owner
    }

    /// Forgets an owner with nothing queued, nothing running and no block.
    private mutating func releaseOwnerIfIdle(_ owner: Int32) {
        let record = self.owners[Int(owner)]
        guard record.inUse, !record.blocked, record.running == 0, record.lanes.allSatisfy({ $0.queued == 0 }) else {
            return
        }
        self.ownerByName[record.name] = nil
        self.owners[Int(owner)] = OwnerRecord(name: "")
        self.owners[Int(owner)].inUse = false
        self.freeOwners.append(owner)
    }

    private mutating func internArch(_ name: String) -> Int32 {
        if let arch = self.archByName[name] { return arch }
        let arch = Int32(self.archNames.count)
        self.archNames.append(name)
        self.archRunning.append(0)
        self.archByName[name] = arch
        for _ in 0..<Self.laneCount { self.laneHeaps.addHeap() }
        return arch
    }

    private mutating func internSandboxName(_ name: String) -> Int32 {
        if let sandbox = self.sandboxNameByName[name] {
            self.sandboxReferences[Int(sandbox)] += 1
            return sandbox
        }
        let sandbox: Int32
        if let reused = self.freeSandboxNames.popLast() {
            sandbox = reused
            self.sandboxNames[Int(sandbox)] = name
            self.sandboxReferences[Int(sandbox)] = 1
        } else {
            sandbox = Int32(self.sandboxNames.count)
            self.sandboxNames.append(name)
            self.sandboxReferences.append(1)
        }
        self.sandboxNameByName[name] = sandbox
        return sandbox
    }

    private mutating func releaseSandboxName(_ sandbox: Int32) {
        self.sandboxReferences[Int(sandbox)] -= 1
        guard self.sandboxReferences[Int(sandbox)] == 0 else { return }
        self.sandboxNameByName[self.sandboxNames[Int(sandbox)]] = nil
        self.sandboxNames[Int(sandbox)] = ""
        self.freeSandboxNames.append(sandbox)
    }

    private func makeTask(_ slot: Int32) -> SchedulerTask {
        let value = self.slots[Int(slot)]
        return SchedulerTask(
            id: value.id,
            kind: value.kind,
            owner: self.owners[Int(value.owner)].name,
            arch: self.archNames[Int(value.arch)],
            sandbox: self.sandboxNames[Int(value.sandboxName)],
            background: value.background,
            submitted: value.submitted,
            sequence: value.sequence
        )
    }
}
