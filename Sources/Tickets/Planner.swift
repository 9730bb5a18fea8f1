/// The ticket service's decisions, as a pure function of the database state: which open tickets get which idle
/// resources, which resources are retired, how many are allocated, and which hooks are due.
///
/// Policy (resalloc's, plus making room):
/// - Open tickets are served in id order (creation order). A ticket prefers an idle resource already bound to its
///   own sandbox (reuse), then a fresh one; pools are tried in configuration order.
/// - A used resource serves only its sandbox, at most `1 + reuseMaxCount` tickets, for at most `reuseMaxSeconds`
///   after its first ticket; idle for `reuseOpportunitySeconds` it is released.
/// - An unserved ticket is covered by an allocation in flight, else by a new allocation if a matching pool has
///   room, else by a resource being released, else by releasing an idle resource bound to another sandbox.
/// - Each pool keeps `maxPrealloc` fresh spares (idle or allocating), never exceeding `max`; a pool over its
///   `max` (lowered in the configuration) releases idle resources.
struct Planner {
    /// A static host whose resource was reported broken is not given out again for this long while another
    /// host of its pool is free, and never within it when none is (so a dead host is not retried in a loop).
    static let brokenQuarantineSeconds: Double = 60

    struct Pool: Sendable {
        var config: PoolConfig
        /// Allocation is paused after failures (backoff).
        var isAllocationBlocked: Bool = false
    }

    struct ResourceRow: Sendable, Equatable {
        var id: Int64
        var pool: String
        var name: String
        var state: ResourceState
        var data: String?
        var staticKey: String?
        var sandbox: String?
        var useCount: Int = 0
        var firstUsedAt: Double?
        var idleSince: Double?
        var readyAt: Double?
        var lastCheckAt: Double?
        var checkFailures: Int = 0
        var nextReleaseAt: Double?
        var releaseReason: String?
        var createdAt: Double = 0
        /// The open ticket holding it (from the tickets table).
        var ticket: Int64?
    }

    struct TicketRow: Sendable, Equatable {
        var id: Int64
        var tags: Set<String>
        var sandbox: String
        var resourceID: Int64?
    }

    struct Allocation: Sendable, Equatable {
        var pool: String
        var staticHost: ResourceData?
    }

    struct Plan: Sendable, Equatable {
        var assignments: [Assignment] = []
        var releases: [Release] = []
        var allocations: [Allocation] = []
        /// Allocating resources whose allocate hook is not running in this process (it was running when an
        /// earlier process died): they are released, as resalloc does.
        var orphanedAllocations: [Int64] = []
        /// Releasing resources whose release hook is due and not running.
        var releaseRuns: [Int64] = []
        /// Idle resources whose health check is due and not running.
        var checks: [Int64] = []

    }

    struct Assignment: Sendable, Equatable {
        var ticket: Int64
        var resource: Int64
        var sandbox: String
    }

    struct Release: Sendable, Equatable {
        var resource: Int64
        var reason: String
    }

    /// Active pools in priority (configuration) order.
    var pools: [Pool]
    var now: Double
    /// pool → static host identity → when its last resource was reported broken (unix seconds).
    var recentlyBroken: [String: [String: Double]] = [:]

    func plan(resources: [ResourceRow], tickets: [TicketRow], running: Set<Int64>) -> Plan {
        var plan = Plan()
        let poolByName = Dictionary(self.pools.map { ($0.config.name, $0) }, uniquingKeysWith: { first, _ in first })

        var live: [String: Int] = [:]
        var allocatingSpare: [String: Int] = [:]
        var releasingCount: [String: Int] = [:]
        var usedStaticKeys: [String: Set<String>] = [:]
        for resource in resources where resource.state != .deleted {
            live[resource.pool, default: 0] += 1
            if let key = resource.staticKey { usedStaticKeys[resource.pool, default: []].insert(key) }
            switch resource.state {
            case .allocating:
                if running.contains(resource.id) {
                    allocatingSpare[resource.pool, default: 0] += 1
                } else {
                    // Its hook is not running here: this process started after it was begun. Release it.
                    plan.orphanedAllocations.append(resource.id)
                    releasingCount[resource.pool, default: 0] += 1
                }
            case .releasing:
                releasingCount[resource.pool, default: 0] += 1
                if !running.contains(resource.id), (resource.nextReleaseAt ?? 0) <= self.now {
                    plan.releaseRuns.append(resource.id)
                }
            case .ready, .deleted:
                break
            }
        }

        // 1. Idle resources; retire those past their limits or no longer matching the configuration.
        var idle: [ResourceRow] = []
        for resource in resources where resource.state == .ready && resource.ticket == nil {
            if let reason = self.retirementReason(resource, pool: poolByName[resource.pool]?.config) {
                plan.releases.append(Release(resource: resource.id, reason: reason))
                releasingCount[resource.pool, default: 0] += 1
            } else {
                idle.append(resource)
            }
        }

        // A pool whose max was lowered sheds idle resources (those being released already count as gone).
        for pool in self.pools {
            let name = pool.config.name
            var excess = live[name, default: 0] - releasingCount[name, default: 0] - pool.config.capacity
            while excess > 0, let index = idle.lastIndex(where: { $0.pool == name }) {
                let resource = idle.remove(at: index)
                plan.releases.append(Release(resource: resource.id, reason: "pool is over its max"))
                releasingCount[name, default: 0] += 1
                excess -= 1
            }
        }

        // 2. Serve open tickets in creation order.
        var unserved: [(ticket: TicketRow, pools: [Pool])] = []
        for ticket in tickets where ticket.resourceID == nil {
            let candidates = self.pools.filter { $0.config.serves(ticket.tags) }
            let names = Set(candidates.map(\.config.name))
            var chosen = idle.firstIndex { names.contains($0.pool) && $0.useCount > 0 && $0.sandbox == ticket.sandbox }
            if chosen == nil {
                for pool in candidates {
                    chosen = idle.firstIndex { $0.pool == pool.config.name && $0.useCount == 0 }
                    if chosen != nil { break }
                }
            }
            if let index = chosen {
                let resource = idle.remove(at: index)
                plan.assignments.append(Assignment(ticket: ticket.id, resource: resource.id, sandbox: ticket.sandbox))
            } else {
                unserved.append((ticket, candidates))
            }
        }

        // 3. Cover the unserved tickets, in order.
        var planned: [String: Int] = [:]
        func canAllocate(_ pool: Pool) -> Bool {
            let name = pool.config.name
            guard !pool.isAllocationBlocked else { return false }
            guard live[name, default: 0] + planned[name, default: 0] < pool.config.capacity else { return false }
            return pool.config.staticHosts == nil
                || self.freeStaticHost(pool.config, used: usedStaticKeys[name] ?? []) != nil
        }
        func allocate(_ pool: Pool) {
            let name = pool.config.name
            var staticHost: ResourceData?
            if pool.config.staticHosts != nil {
                staticHost = self.freeStaticHost(pool.config, used: usedStaticKeys[name] ?? [])
                if let staticHost { usedStaticKeys[name, default: []].insert(staticHost.identity) }
            }
            planned[name, default: 0] += 1
            plan.allocations.append(Allocation(pool: name, staticHost: staticHost))
        }
        for (ticket, candidates) in unserved {
            if let pool = candidates.first(where: { allocatingSpare[$0.config.name, default: 0] > 0 }) {
                allocatingSpare[pool.config.name, default: 0] -= 1
            } else if let pool = candidates.first(where: canAllocate) {
                allocate(pool)
            } else if let pool = candidates.first(where: { releasingCount[$0.config.name, default: 0] > 0 }) {
                releasingCount[pool.config.name, default: 0] -= 1  // its slot frees up soon
            } else if let index = idle.firstIndex(where: { resource in
                candidates.contains { $0.config.name == resource.pool } && resource.sandbox != ticket.sandbox
            }) {
                let resource = idle.remove(at: index)
                plan.releases.append(Release(resource: resource.id, reason: "making room for another sandbox"))
            }
        }

        // 4. Keep the spares.
        for pool in self.pools {
            let name = pool.config.name
            let spares = idle.filter { $0.pool == name && $0.useCount == 0 }.count + allocatingSpare[name, default: 0]
            var missing = pool.config.maxPrealloc - spares
            while missing > 0, canAllocate(pool) {
                allocate(pool)
                missing -= 1
            }
        }

        // 5. Health checks of idle resources.
        for resource in idle where !running.contains(resource.id) {
            guard let config = poolByName[resource.pool]?.config, config.checkCommand != nil else { continue }
            let last = resource.lastCheckAt ?? resource.readyAt ?? resource.createdAt
            if last + Double(config.checkInterval) <= self.now {
                plan.checks.append(resource.id)
            }
        }
        return plan
    }

    /// Why an idle resource must go, or nil if it may stay.
    func retirementReason(_ resource: ResourceRow, pool: PoolConfig?) -> String? {
        guard let pool else { return "pool is no longer configured" }
        if let staticHosts = pool.staticHosts {
            guard let key = resource.staticKey, staticHosts.contains(where: { $0.identity == key }) else {
                return "static host is no longer configured"
            }
        } else if resource.staticKey != nil {
            return "pool no longer has static hosts"
        }
        guard resource.useCount > 0 else { return nil }
        if resource.useCount > pool.reuseMaxCount {
            return "reuse count exhausted"
        }
        if let first = resource.firstUsedAt, self.now - first >= Double(pool.reuseMaxSeconds) {
            return "reuse time exhausted"
        }
        if let idleSince = resource.idleSince, self.now - idleSince >= Double(pool.reuseOpportunitySeconds) {
            return "not reused in time"
        }
        return nil
    }

    /// The free static host to allocate next: never-broken hosts first, then the one broken longest ago, and
    /// none broken within the quarantine.
    private func freeStaticHost(_ pool: PoolConfig, used: Set<String>) -> ResourceData? {
        let free = (pool.staticHosts ?? []).filter { !used.contains($0.identity) }
        let brokenAt = self.recentlyBroken[pool.name] ?? [:]
        let eligible = free.filter { host in
            guard let at = brokenAt[host.identity] else { return true }
            return self.now - at >= Self.brokenQuarantineSeconds
        }
        return eligible.min { (brokenAt[$0.identity] ?? -1) < (brokenAt[$1.identity] ?? -1) }
    }
}
