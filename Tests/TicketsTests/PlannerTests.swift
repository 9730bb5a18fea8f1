import Testing

@testable import Tickets

/// The planner is a pure function of the state; these cases pin its policy without a database.
@Suite("Planner")
struct PlannerTests {
    let pool = PoolConfig(
        name: "p",
        tags: ["arch_x86_64"],
        max: 2,
        allocateCommand: "alloc",
        reuseMaxCount: 1,
        reuseMaxSeconds: 100,
        reuseOpportunitySeconds: 50
    )

    func planner(_ pools: [PoolConfig]? = nil, now: Double = 1000) -> Planner {
        Planner(pools: (pools ?? [self.pool]).map { Planner.Pool(config: $0) }, now: now)
    }

    func ready(
        _ id: Int64,
        sandbox: String? = nil,
        uses: Int = 0,
        firstUsed: Double? = nil,
        idleSince: Double? = nil,
        ticket: Int64? = nil
    ) -> Planner.ResourceRow {
        Planner.ResourceRow(
            id: id,
            pool: "p",
            name: "p_\(id)",
            state: .ready,
            data: "{}",
            sandbox: sandbox,
            useCount: uses,
            firstUsedAt: firstUsed,
            idleSince: idleSince,
            readyAt: 990,
            createdAt: 980,
            ticket: ticket
        )
    }

    func ticket(_ id: Int64, _ sandbox: String, resource: Int64? = nil) -> Planner.TicketRow {
        Planner.TicketRow(id: id, tags: ["arch_x86_64"], sandbox: sandbox, resourceID: resource)
    }

    @Test("the oldest ticket gets the idle resource; the next one causes an allocation")
    func order() {
        let plan = self.planner().plan(
            resources: [self.ready(1)],
            tickets: [self.ticket(5, "a"), self.ticket(7, "b"), self.ticket(9, "c")],
            running: []
        )
        #expect(plan.assignments == [Planner.Assignment(ticket: 5, resource: 1, sandbox: "a")])
        #expect(plan.allocations == [Planner.Allocation(pool: "p", staticHost: nil)])  // max 2: one more
    }

    @Test("a ticket prefers a resource of its own sandbox; others are never reused across sandboxes")
    func reusePreference() {
        let plan = self.planner().plan(
            resources: [self.ready(1), self.ready(2, sandbox: "b", uses: 1, firstUsed: 990, idleSince: 995)],
            tickets: [self.ticket(5, "b"), self.ticket(6, "c")],
            running: []
        )
        #expect(plan.assignments.map(\.resource) == [2, 1])
    }

    @Test("reuse limits retire idle resources")
    func reuseLimits() {
        let plan = self.planner(now: 1000).plan(
            resources: [
                self.ready(1, sandbox: "a", uses: 2, firstUsed: 990, idleSince: 999),  // count
                self.ready(2, sandbox: "a", uses: 1, firstUsed: 900, idleSince: 999),  // time
                self.ready(3, sandbox: "a", uses: 1, firstUsed: 990, idleSince: 940),  // opportunity
                self.ready(4, sandbox: "a", uses: 1, firstUsed: 990, idleSince: 999),  // fine
            ],
            tickets: [],
            running: []
        )
        #expect(plan.releases.map(\.resource) == [1, 2, 3])
        #expect(plan.releases.map(\.reason) == ["reuse count exhausted", "reuse time exhausted", "not reused in time"])
    }

    @Test("a full pool makes room for another sandbox once, not once per pass")
    func makeRoom() {
        let idle = self.ready(1, sandbox: "a", uses: 1, firstUsed: 990, idleSince: 999)
        let busy = self.ready(2, sandbox: "a", uses: 1, firstUsed: 990, ticket: 8)
        let plan = self.planner().plan(resources: [idle, busy], tickets: [self.ticket(9, "b")], running: [])
        #expect(plan.releases == [Planner.Release(resource: 1, reason: "making room for another sandbox")])
        #expect(plan.allocations.isEmpty)

        var releasing = idle
        releasing.state = .releasing
        let next = self.planner().plan(resources: [releasing, busy], tickets: [self.ticket(9, "b")], running: [1])
        #expect(next.releases.isEmpty && next.allocations.isEmpty)
    }

    @Test("spares are kept within max, allocations in flight count, orphans are released")
    func prealloc() {
        var pool = self.pool
        pool.max = 3
        pool.maxPrealloc = 2
        let allocating = Planner.ResourceRow(id: 1, pool: "p", name: "p_1", state: .allocating)
        let orphan = Planner.ResourceRow(id: 2, pool: "p", name: "p_2", state: .allocating)
        let plan = self.planner([pool]).plan(resources: [allocating, orphan], tickets: [], running: [1])
        #expect(plan.orphanedAllocations == [2])
        #expect(plan.releaseRuns.isEmpty)
        #expect(plan.allocations.count == 1)  // 1 in flight + 1 new = 2 spares; 3 live = max
    }

    @Test("a pool over its max sheds idle resources once")
    func overMax() {
        var pool = self.pool
        pool.max = 1
        let busy = self.ready(1, sandbox: "a", uses: 1, firstUsed: 990, ticket: 7)
        let plan = self.planner([pool]).plan(resources: [busy, self.ready(2), self.ready(3)], tickets: [], running: [])
        #expect(plan.releases.map(\.resource) == [3, 2])

        var releasing = [self.ready(2), self.ready(3)]
        releasing[0].state = .releasing
        let next = self.planner([pool]).plan(resources: [busy] + releasing, tickets: [], running: [2])
        #expect(next.releases.map(\.resource) == [3])
    }

    @Test("static hosts back one resource each")
    func staticHosts() {
        let hosts = [ResourceData(host: "a"), ResourceData(host: "b")]
        let pool = PoolConfig(name: "p", tags: ["arch_x86_64"], max: 5, maxPrealloc: 5, staticHosts: hosts)
        var used = self.ready(1)
        used.staticKey = hosts[0].identity
        let plan = self.planner([pool]).plan(resources: [used], tickets: [], running: [])
        #expect(plan.allocations == [Planner.Allocation(pool: "p", staticHost: hosts[1])])
    }

    @Test("idle resources are checked when due")
    func checks() {
        var pool = self.pool
        pool.checkCommand = "check"
        pool.checkInterval = 30
        var due = self.ready(1)
        due.lastCheckAt = 960
        var recent = self.ready(2)
        recent.lastCheckAt = 990
        let busy = self.ready(3, sandbox: "a", uses: 1, firstUsed: 990, ticket: 4)
        let plan = self.planner([pool]).plan(resources: [due, recent, busy], tickets: [], running: [])
        #expect(plan.checks == [1])
    }
}
