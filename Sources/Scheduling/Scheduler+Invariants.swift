extension Scheduler {
    /// Cross-checks every counter, index and heap against the task slots; returns the violations found (empty when
    /// consistent). O(everything): for tests only.
    func invariantViolations() -> [String] {
        var problems: [String] = []
        func check(_ condition: Bool, _ message: @autoclosure () -> String) {
            if !condition { problems.append(message()) }
        }

        // Tasks and the id index.
        var queued = 0
        var running = 0
        var ownerRunning: [Int32: Int32] = [:]
        var ownerArchRunning: [Int64: Int32] = [:]
        var archRunning = [Int32](repeating: 0, count: self.archNames.count)
        var laneQueued: [Int64: Int32] = [:]
        var sandboxLive: [Int32: Int32] = [:]
        for (index, slot) in self.slots.enumerated() {
            switch slot.state {
            case .free:
                continue
            case .queued:
                queued += 1
                let node = slot.sandboxNode
                check(node >= 0 && self.sandboxNodes[Int(node)].inUse, "queued slot \(index) without a sandbox node")
                guard node >= 0 else { continue }
                sandboxLive[node, default: 0] += 1
                let archNode = self.archNodes[Int(self.sandboxNodes[Int(node)].archNode)]
                check(
                    archNode.owner == slot.owner && archNode.arch == slot.arch && Int(archNode.lane) == slot.lane,
                    "slot \(index) sits under the wrong arch node"
                )
                check(self.sandboxNodes[Int(node)].name == slot.sandboxName, "slot \(index) in the wrong sandbox")
                let live = self.sandboxNodes[Int(node)].tasks.elements.filter {
                    let (candidate, token) = unpackReference($0)
                    return candidate == Int32(index) && token == slot.token
                }
                check(live.count == 1, "slot \(index) has \(live.count) live queue entries")
                laneQueued[Int64(slot.owner) << 8 | Int64(slot.lane), default: 0] += 1
                check(
                    self.ageing.contains(Int32(index)) == slot.waitsForAgeing,
                    "slot \(index) ageing membership is wrong"
                )
            case .running:
                running += 1
                ownerRunning[slot.owner, default: 0] += 1
                ownerArchRunning[Int64(slot.owner) << 32 | Int64(slot.arch), default: 0] += 1
                archRunning[Int(slot.arch)] += 1
                check(!self.ageing.contains(Int32(index)), "running slot \(index) in the ageing heap")
            }
            check(self.slotByID[slot.id] == Int32(index), "id index misses slot \(index)")
            check(self.owners[Int(slot.owner)].inUse, "slot \(index) refers to a released owner")
        }
        check(queued == self.pendingCount, "pendingCount \(self.pendingCount) but \(queued) queued")
        check(running == self.runningCount, "runningCount \(self.runningCount) but \(running) running")
        check(self.slotByID.count == queued + running, "id index has \(self.slotByID.count) entries")
        check(archRunning == self.archRunning, "per-arch running counts are wrong")

        // Sandbox nodes.
        var archNodeQueued: [Int32: Int32] = [:]
        for (index, node) in self.sandboxNodes.enumerated() where node.inUse {
            check(node.live == sandboxLive[Int32(index)] ?? 0, "sandbox node \(index) live count is wrong")
            check(node.live > 0, "empty sandbox node \(index) not released")
            check(
                self.sandboxNodeByKey[SandboxKey(archNode: node.archNode, name: node.name)] == Int32(index),
                "sandbox key index misses node \(index)"
            )
            archNodeQueued[node.archNode, default: 0] += node.live
            let entries = self.archNodes[Int(node.archNode)].sandboxes.elements.filter {
                let (candidate, generation) = unpackReference($0)
                return candidate == Int32(index) && generation == node.generation
            }
            check(entries.count == 1, "sandbox node \(index) has \(entries.count) ring entries")
        }
        check(self.sandboxNodeByKey.count == self.sandboxNodes.filter(\.inUse).count, "stale sandbox keys")

        // Owners, arch nodes and the lane heaps.
        for (index, owner) in self.owners.enumerated() where owner.inUse {
            check(self.ownerByName[owner.name] == Int32(index), "owner index misses \(owner.name)")
            check(owner.running == ownerRunning[Int32(index)] ?? 0, "owner \(owner.name) running count is wrong")
            check(
                owner.blocked || owner.running > 0 || owner.lanes.contains { $0.queued > 0 },
                "idle owner \(owner.name) not released"
            )
            for entry in owner.archRunning {
                check(
                    entry.count == ownerArchRunning[Int64(index) << 32 | Int64(entry.arch)] ?? -1,
                    "owner \(owner.name) per-arch running count is wrong"
                )
            }
            let ownerOpen =
                !owner.blocked
                && !(self.configuration.maxPerOwner > 0
                    && Int(owner.running) >= self.configuration.maxPerOwner)
            for lane in 0..<Self.laneCount {
                let expected = laneQueued[Int64(index) << 8 | Int64(lane)] ?? 0
                check(owner.lanes[lane].queued == expected, "owner \(owner.name) lane \(lane) queued count is wrong")
                var sum: Int32 = 0
                for node in owner.lanes[lane].archNodes {
                    let archNode = self.archNodes[Int(node)]
                    sum += archNode.queued
                    check(archNode.owner == Int32(index) && Int(archNode.lane) == lane, "arch node \(node) misfiled")
                    check(archNode.queued == archNodeQueued[node] ?? 0, "arch node \(node) queued count is wrong")
                    check(archNode.queued > 0, "empty arch node \(node) not released")
                    let wanted =
                        ownerOpen
                        && !(self.configuration.maxPerOwnerArch > 0
                            && Int(owner.running(arch: archNode.arch)) >= self.configuration.maxPerOwnerArch)
                    check(self.laneHeaps.contains(node) == wanted, "arch node \(node) heap membership is wrong")
                    if wanted {
                        check(self.laneHeaps.key(of: node) == owner.lanes[lane].stamp, "arch node \(node) stale key")
                        check(
                            self.laneHeaps.heap(of: node) == Int(archNode.arch) * Self.laneCount + lane,
                            "arch node \(node) in the wrong heap"
                        )
                    }
                }
                check(sum == owner.lanes[lane].queued, "owner \(owner.name) lane \(lane) arch nodes do not add up")
            }
        }
        let liveArchNodes = self.owners.filter(\.inUse).reduce(0) { total, owner in
            total + owner.lanes.reduce(0) { $0 + $1.archNodes.count }
        }
        check(
            liveArchNodes + self.freeArchNodes.count == self.archNodes.count,
            "arch nodes leaked: \(self.archNodes.count) allocated, \(liveArchNodes) live, \(self.freeArchNodes.count) free"
        )
        let heapEntries = (0..<self.laneHeaps.heapCount).reduce(0) { $0 + self.laneHeaps.count(ofHeap: $1) }
        check(heapEntries <= liveArchNodes, "lane heaps hold released nodes")
        return problems
    }
}
