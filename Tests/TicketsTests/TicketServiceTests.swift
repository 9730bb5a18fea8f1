import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing

@testable import Tickets

/// The ticket service against a real PostgreSQL database and real hook processes.
@Suite("TicketService", .serialized)
struct TicketServiceTests {
    // MARK: Static hosts

    @Test("static host pools work without hooks")
    func staticHosts() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let hosts = [ResourceData(host: "10.0.0.1", user: "builder"), ResourceData(host: "10.0.0.2", port: 2200)]
        let pool = PoolConfig(name: "static", tags: ["arch_x86_64"], max: 5, staticHosts: hosts)
        let service = try await makeService(conninfo, [pool])

        let t1 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-1")
        let t2 = try await service.open(tags: ["arch_x86_64"], sandbox: "bob/p", owner: "task-2")
        let t3 = try await service.open(tags: ["arch_x86_64"], sandbox: "carol/p", owner: "task-3")
        let r1 = try await service.wait(t1)
        let r2 = try await service.wait(t2)
        #expect(Set([r1.data, r2.data]) == Set(hosts))
        #expect(r1.name.hasPrefix("static_"))

        // Two hosts, so the third ticket waits.
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await service.assignedResource(t3) == nil)
        #expect(try await service.liveResources().count == 2)

        // Released, the host is free again: the third ticket gets a new resource on it.
        try await service.close(t1, reusable: false)
        let r3 = try await service.wait(t3)
        #expect(r3.data == r1.data)
        #expect(r3.id != r1.id)
        #expect(try await service.liveResources().map(\.id).sorted() == [r2.id, r3.id].sorted())
        await service.shutdown()
    }

    // MARK: Order and tags

    @Test("tickets are served in order of creation")
    func servedInOrder() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pool = PoolConfig(
            name: "one",
            tags: ["arch_x86_64"],
            max: 1,
            staticHosts: [ResourceData(host: "builder1")],
            reuseMaxCount: 100
        )
        let service = try await makeService(conninfo, [pool])
        var tickets: [TicketID] = []
        for index in 1...4 {
            tickets.append(try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-\(index)"))
        }
        let first = try await service.wait(tickets[0])

        // Start the waits in reverse order: the order of creation still decides.
        let served = Recorder<TicketID>()
        var waits: [Task<Resource, any Error>] = []
        for ticket in tickets.dropFirst().reversed() {
            waits.append(
                Task {
                    let resource = try await service.wait(ticket)
                    served.append(ticket)
                    return resource
                }
            )
            try await Task.sleep(for: .milliseconds(50))
        }
        var holder = tickets[0]
        for expected in 1...3 {
            try await service.close(holder, reusable: true)
            #expect(try await eventually { served.values.count == expected })
            try await Task.sleep(for: .milliseconds(300))
            #expect(served.values.count == expected)
            holder = served.values[expected - 1]
        }
        #expect(served.values == Array(tickets.dropFirst()))
        for wait in waits {
            #expect(try await wait.value.id == first.id)  // one sandbox: the resource is reused throughout
        }
        await service.shutdown()
    }

    @Test("a ticket is served by a pool that has all its tags")
    func tagMatching() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let x86 = PoolConfig(name: "x86", tags: ["arch_x86_64"], max: 1, staticHosts: [ResourceData(host: "x86-1")])
        let arm = PoolConfig(
            name: "arm",
            tags: ["arch_aarch64", "fast"],
            max: 1,
            staticHosts: [ResourceData(host: "arm-1")]
        )
        let service = try await makeService(conninfo, [x86, arm])

        let a = try await service.open(tags: ["arch_aarch64"], sandbox: "s", owner: "a")
        let b = try await service.open(tags: ["arch_x86_64"], sandbox: "s", owner: "b")
        let c = try await service.open(tags: ["arch_aarch64", "fast"], sandbox: "s2", owner: "c")
        #expect(try await service.wait(a).pool == "arm")
        #expect(try await service.wait(b).pool == "x86")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await service.assignedResource(c) == nil)  // only "arm" has both tags, and it is busy

        await #expect(throws: TicketError.self) {
            _ = try await service.open(tags: ["arch_ppc64le"], sandbox: "s", owner: "d")
        }
        do {
            _ = try await service.open(tags: ["arch_x86_64", "fast"], sandbox: "s", owner: "e")
            Issue.record("no pool has both tags")
        } catch let error as TicketError {
            #expect(error.code == .noMatchingPool)
        }
        do {
            _ = try await service.open(tags: ["bad tag"], sandbox: "s", owner: "f")
            Issue.record("invalid tag accepted")
        } catch let error as TicketError {
            #expect(error.code == .invalidArgument)
        }
        await service.shutdown()
    }

    @Test("opening twice for one owner returns the same ticket; other tags are refused")
    func openIsIdempotentPerOwner() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pool = PoolConfig(name: "p", tags: ["a", "b"], max: 1, staticHosts: [ResourceData(host: "h")])
        let service = try await makeService(conninfo, [pool])
        let first = try await service.open(tags: ["a"], sandbox: "s", owner: "task-1")
        #expect(try await service.open(tags: ["a"], sandbox: "s", owner: "task-1") == first)
        do {
            _ = try await service.open(tags: ["b"], sandbox: "s", owner: "task-1")
            Issue.record("second ticket for one owner")
        } catch let error as TicketError {
            #expect(error.code == .ownerHasOpenTicket)
        }
        try await service.close(first, reusable: true)
        #expect(try await service.open(tags: ["b"], sandbox: "s", owner: "task-1") != first)
        await service.shutdown()
    }

    // MARK: Limits

    @Test("max is respected")
    func maxRespected() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 2)])
        var tickets: [TicketID] = []
        for index in 1...4 {
            tickets.append(try await service.open(tags: ["arch_x86_64"], sandbox: "user\(index)/p", owner: "t\(index)"))
        }
        #expect(
            try await eventually { try await service.snapshot().tickets.filter { $0.resourceID != nil }.count == 2 }
        )
        try await Task.sleep(for: .milliseconds(500))
        #expect(scripts.calls("allocate").count == 2)
        let snapshot = try await service.snapshot()
        #expect(snapshot.resources.count == 2)
        #expect(snapshot.tickets.map(\.id) == tickets)
        #expect(snapshot.tickets.prefix(2).allSatisfy { $0.resourceID != nil })
        #expect(snapshot.tickets.suffix(2).allSatisfy { $0.resourceID == nil })
        await service.shutdown()
    }

    @Test("max_prealloc keeps spares ready")
    func preallocKeepsSpares() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 3, maxPrealloc: 2)])

        #expect(try await eventually { try await service.liveResources(state: .ready).count == 2 })
        try await Task.sleep(for: .milliseconds(400))
        #expect(scripts.calls("allocate").count == 2)

        let spares = Set(try await service.liveResources(state: .ready).map(\.id))
        let ticket = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        let resource = try await service.wait(ticket)
        #expect(spares.contains(resource.id))  // a spare was ready
        #expect(resource.data.host == resource.name + ".builders.test")
        #expect(resource.data.port == 2222)
        #expect(resource.data.user == "builder")
        #expect(resource.data.hostPublicKey == "/keys/\(resource.name).pub")
        #expect(resource.data.extra == ["key": "/keys/id"])

        // A new spare replaces the one taken (3 = max).
        #expect(try await eventually { scripts.calls("allocate").count == 3 })
        #expect(try await eventually { try await service.liveResources(state: .ready).count == 3 })
        let second = try await service.open(tags: ["arch_x86_64"], sandbox: "bob/p", owner: "t2")
        _ = try await service.wait(second)
        try await Task.sleep(for: .milliseconds(500))
        #expect(scripts.calls("allocate").count == 3)  // full
        await service.shutdown()
    }

    // MARK: Reuse

    @Test("a resource is reused only in its sandbox, up to the reuse count")
    func reuseCount() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 2, reuseMaxCount: 1)])

        let t1 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        let r1 = try await service.wait(t1)
        try await service.close(t1, reusable: true)
        let t2 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t2")
        #expect(try await service.wait(t2) == r1)  // reused once
        #expect(try await service.liveResources().first { $0.id == r1.id }?.useCount == 2)

        try await service.close(t2, reusable: true)  // count exhausted: released
        #expect(try await eventually { scripts.names("release") == [r1.name] })
        let t3 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t3")
        let r3 = try await service.wait(t3)
        #expect(r3.id != r1.id)

        // Another sandbox never gets alice's resource.
        try await service.close(t3, reusable: true)
        let t4 = try await service.open(tags: ["arch_x86_64"], sandbox: "bob/p", owner: "t4")
        let r4 = try await service.wait(t4)
        #expect(r4.id != r3.id)
        let kept = try await service.liveResources().first { $0.id == r3.id }
        #expect(kept?.state == .ready)
        #expect(kept?.sandbox == "alice/p")
        #expect(kept?.ticket == nil)
        await service.shutdown()
    }

    @Test("a resource is reused only within the reuse time")
    func reuseTime() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 2, reuseMaxSeconds: 1)])

        let t1 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        let r1 = try await service.wait(t1)
        try await service.close(t1, reusable: true)
        #expect(try await eventually { scripts.names("release") == [r1.name] })
        let t2 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t2")
        #expect(try await service.wait(t2).id != r1.id)
        await service.shutdown()
    }

    @Test("a different sandbox gets another resource, making room if the pool is full")
    func otherSandboxMakesRoom() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 1)])

        let t1 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        let r1 = try await service.wait(t1)
        try await service.close(t1, reusable: true)
        let t2 = try await service.open(tags: ["arch_x86_64"], sandbox: "bob/p", owner: "t2")
        let r2 = try await service.wait(t2)
        #expect(r2.id != r1.id)
        #expect(scripts.names("release") == [r1.name])
        #expect(scripts.names("allocate") == [r1.name, r2.name])
        await service.shutdown()
    }

    // MARK: Cancellation

    @Test("cancelling a waiting ticket returns at once, closes it and frees its place")
    func cancelWait() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 1, reuseMaxCount: 0)])

        let t1 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        let r1 = try await service.wait(t1)
        let t2 = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t2")
        let waiting = Task { try await service.wait(t2) }
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = ContinuousClock.now
        waiting.cancel()
        let result = await waiting.result
        #expect(ContinuousClock.now - cancelled < .milliseconds(500))
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(try await !service.snapshot().tickets.contains { $0.id == t2 })
        await #expect(throws: TicketError.self) { _ = try await service.wait(t2) }

        // The next ticket gets the builder, not the cancelled one.
        let t3 = try await service.open(tags: ["arch_x86_64"], sandbox: "bob/p", owner: "t3")
        try await service.close(t1, reusable: false)
        #expect(try await service.wait(t3).id != r1.id)
        await service.shutdown()
    }

    @Test("cancelling does not wait for a slow allocation")
    func cancelDuringAllocation() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        scripts.setFlag("alloc-delay", "2")
        let service = try await makeService(conninfo, [hookPool(scripts, max: 1)])

        let ticket = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        let waiting = Task { try await service.wait(ticket) }
        #expect(try await eventually { scripts.calls("allocate").count == 1 })
        let cancelled = ContinuousClock.now
        waiting.cancel()
        _ = await waiting.result
        #expect(ContinuousClock.now - cancelled < .milliseconds(500))
        #expect(try await service.snapshot().tickets.isEmpty)

        // The allocation finishes in the background and leaves a fresh spare.
        #expect(try await eventually { try await service.liveResources(state: .ready).count == 1 })
        let spare = try #require(try await service.liveResources().first)
        #expect(spare.useCount == 0)
        #expect(spare.sandbox == nil)
        await service.shutdown()
    }

    // MARK: Broken resources

    @Test("a broken resource is released and replaced; the ticket holding it is closed")
    func brokenResource() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(conninfo, [hookPool(scripts, max: 1, maxPrealloc: 1)])

        let ticket = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-1#1")
        let broken = try await service.wait(ticket)
        try await service.markBroken(broken)
        do {
            _ = try await service.wait(ticket)
            Issue.record("the ticket of a broken resource stayed open")
        } catch let error as TicketError {
            #expect(error.code == .ticketClosed)
        }
        #expect(try await eventually { scripts.calls("release").count == 1 })
        let release = try #require(scripts.calls("release").first)
        #expect(release.hasPrefix("release \(broken.name) \(broken.id) cloud {\"host\":\"\(broken.data.host)\""))

        // A replacement is allocated (a spare here), and the worker's next ticket gets it.
        #expect(try await eventually { try await service.liveResources(state: .ready).count == 1 })
        let retry = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-1#2")
        let replacement = try await service.wait(retry)
        #expect(replacement.id != broken.id)
        #expect(scripts.names("allocate") == [broken.name, replacement.name])

        // Reporting it again (or a resource already gone) changes nothing.
        try await service.markBroken(broken)
        #expect(try await service.assignedResource(retry) == replacement.id)
        await service.shutdown()
    }

    @Test("a resource that fails its health check is retired and replaced")
    func failedHealthCheck() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let service = try await makeService(
            conninfo,
            [hookPool(scripts, max: 1, maxPrealloc: 1, check: true, checkInterval: 1)]
        )
        #expect(try await eventually { try await service.liveResources(state: .ready).count == 1 })
        let first = try #require(try await service.liveResources().first)
        #expect(try await eventually { scripts.names("check").contains(first.name) })
        #expect(try await service.liveResources(state: .ready).map(\.id) == [first.id])  // healthy: kept

        scripts.setFlag("bad", first.name + "\n")
        #expect(try await eventually { scripts.names("release") == [first.name] })
        #expect(try await eventually { try await service.liveResources(state: .ready).count == 1 })
        #expect(try await service.liveResources().map(\.id) != [first.id])
        await service.shutdown()
    }

    @Test("a failed allocation is released and retried")
    func failedAllocation() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        scripts.setFlag("alloc-fail")
        let service = try await makeService(conninfo, [hookPool(scripts, max: 1)])
        let ticket = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        #expect(try await eventually { scripts.calls("release").count == 1 })
        scripts.clearFlag("alloc-fail")
        let resource = try await service.wait(ticket)
        #expect(scripts.names("allocate").last == resource.name)
        #expect(scripts.names("release") == [scripts.names("allocate")[0]])
        await service.shutdown()
    }

    @Test("a hook that outlives its time limit is killed with its children and fails")
    func hookTimeout() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        scripts.setFlag("alloc-delay", "30")
        let service = try await makeService(conninfo, [hookPool(scripts, max: 1, allocateTimeout: 1)])
        let ticket = try await service.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "t1")
        #expect(try await eventually { scripts.sleepPID != nil })
        let sleeper = try #require(scripts.sleepPID)
        #expect(kill(sleeper, 0) == 0)
        scripts.clearFlag("alloc-delay")
        #expect(try await eventually(timeout: .seconds(8)) { scripts.calls("release").count == 1 })
        #expect(try await eventually(timeout: .seconds(5)) { kill(sleeper, 0) != 0 })  // the hook's child is gone too
        let resource = try await service.wait(ticket)  // retried after the backoff
        #expect(scripts.names("allocate") == [scripts.names("release")[0], resource.name])
        await service.shutdown()
    }

    // MARK: Restart

    @Test("after a restart assigned tickets keep their resource and interrupted allocations are released")
    func restart() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let pools = [hookPool(scripts, max: 2, reuseMaxCount: 0)]
        let first = try await makeService(conninfo, pools)
        let t1 = try await first.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-1")
        let r1 = try await first.wait(t1)
        let t2 = try await first.open(tags: ["arch_x86_64"], sandbox: "bob/p", owner: "task-2")
        let r2 = try await first.wait(t2)
        try await first.close(t1, reusable: false)
        #expect(try await eventually { scripts.names("release") == [r1.name] })

        // An allocation in flight when the process goes away.
        scripts.setFlag("alloc-delay", "30")
        let t3 = try await first.open(tags: ["arch_x86_64"], sandbox: "carol/p", owner: "task-3")
        #expect(try await eventually { scripts.calls("allocate").count == 3 })
        let stuck = scripts.names("allocate")[2]
        let waiting = Task { try await first.wait(t3) }
        try await Task.sleep(for: .milliseconds(100))
        let stopped = ContinuousClock.now
        await first.shutdown()
        #expect(ContinuousClock.now - stopped < .seconds(5))
        let sleeper = try #require(scripts.sleepPID)
        #expect(try await eventually(timeout: .seconds(5)) { kill(sleeper, 0) != 0 })  // the hook was killed
        do {
            _ = try await waiting.value
            Issue.record("wait returned after shutdown")
        } catch let error as TicketError {
            #expect(error.code == .shutDown)  // and the ticket stays open for the next process
        }
        let states = try await withDatabase(conninfo) { c in
            try c.query("SELECT name, state FROM resources ORDER BY id").rows.map {
                "\(try $0.decode("name", as: String.self))=\(try $0.decode("state", as: String.self))"
            }
        }
        #expect(states == ["\(r1.name)=deleted", "\(r2.name)=ready", "\(stuck)=allocating"])

        scripts.clearFlag("alloc-delay")
        let second = try await makeService(conninfo, pools)

        // The worker reattaches: same ticket, same resource.
        let found = try #require(try await second.find(owner: "task-2"))
        #expect(found.0 == t2)
        #expect(found.1 == r2)
        #expect(try await second.wait(t2) == r2)
        #expect(try await second.find(owner: "task-1") == nil)

        // The interrupted allocation was released, and the waiting ticket is served.
        #expect(try await eventually { scripts.names("release").contains(stuck) })
        let r3 = try await second.wait(t3)
        #expect(r3.name != stuck && r3 != r2)
        #expect(scripts.names("allocate").filter { $0 == stuck }.count == 1)
        let doubles = try await withDatabase(conninfo) { c in
            try c.query(
                """
                SELECT resource_id FROM tickets WHERE state = 'open' AND resource_id IS NOT NULL
                GROUP BY resource_id HAVING count(*) > 1
                """
            ).rows.count
        }
        #expect(doubles == 0)
        await second.shutdown()
    }

    @Test("the database refuses a second open ticket on one resource")
    func uniqueLease() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pool = PoolConfig(name: "p", tags: ["a"], max: 1, staticHosts: [ResourceData(host: "h")])
        let service = try await makeService(conninfo, [pool])
        let t1 = try await service.open(tags: ["a"], sandbox: "s", owner: "o1")
        let resource = try await service.wait(t1)
        let t2 = try await service.open(tags: ["a"], sandbox: "s", owner: "o2")
        await service.shutdown()
        do {
            _ = try await withDatabase(conninfo) { c in
                try c.execute(
                    "UPDATE tickets SET resource_id = \(resource.id), assigned_at = now() WHERE id = \(t2.rawValue)"
                )
            }
            Issue.record("double lease accepted")
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
            #expect(error.constraintName == "tickets_one_open_per_resource")
        }
    }

    @Test("many concurrent tickets never share a resource, across a restart")
    func concurrentTickets() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let pools = [hookPool(scripts, max: 3, maxPrealloc: 1, reuseMaxCount: 100)]
        let leases = LeaseTracker()
        do {
            // Dropped without shutdown, as when the Backend goes away.
            let first = try await makeService(conninfo, pools)
            try await leases.run(first, 1...20)
        }
        let second = try await makeService(conninfo, pools)
        try await leases.run(second, 21...40)
        #expect(leases.violations.values.isEmpty)
        #expect(leases.served.values.count == 40)
        #expect(try await second.liveResources().count <= 3)
        await second.shutdown()
    }

    // MARK: Snapshot and configuration changes

    @Test("snapshot lists pools, resources and tickets; removed pools are drained")
    func snapshot() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let scripts = try HookScripts()
        defer { scripts.remove() }
        let cloud = hookPool(scripts, max: 1)
        let old = hookPool(scripts, name: "old", tags: ["arch_ppc64le"], max: 1, maxPrealloc: 1)
        let first = try await makeService(conninfo, [cloud, old])
        let t1 = try await first.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-1")
        let r1 = try await first.wait(t1)
        #expect(try await eventually { try await first.liveResources(state: .ready).count == 2 })
        await first.shutdown()

        let second = try await makeService(conninfo, [cloud])
        let t2 = try await second.open(tags: ["arch_x86_64"], sandbox: "alice/p", owner: "task-2")
        let snapshot = try await second.snapshot()
        #expect(snapshot.pools.map(\.name) == ["cloud", "old"])
        #expect(snapshot.pools[0].tags == ["arch_x86_64"] && snapshot.pools[0].max == 1 && snapshot.pools[0].isActive)
        #expect(!snapshot.pools[1].isActive)
        let listed = try #require(snapshot.resources.first { $0.id == r1.id })
        #expect(listed.state == .ready && listed.sandbox == "alice/p" && listed.useCount == 1)
        #expect(listed.ticket == t1 && listed.data == r1.data)
        #expect(snapshot.tickets.map(\.id) == [t1, t2])
        #expect(snapshot.tickets[0].owner == "task-1" && snapshot.tickets[0].resourceID == r1.id)
        #expect(snapshot.tickets[1].tags == ["arch_x86_64"] && snapshot.tickets[1].sandbox == "alice/p")

        let listing = try await TicketService.inspect(conninfo: conninfo, logger: testLogger)
        #expect(listing.tickets == snapshot.tickets && listing.resources.contains(listed))
        let text = listing.description
        #expect(text.contains("POOLS") && text.contains("RESOURCES") && text.contains("TICKETS"))
        #expect(text.contains(r1.name) && text.contains("task-2") && text.contains("waiting"))

        // The spare of the removed pool is released with that pool's hook.
        #expect(try await eventually { try await second.liveResources().allSatisfy { $0.pool == "cloud" } })
        #expect(scripts.calls("release").contains { $0.contains(" old ") })
        await second.shutdown()
    }

    @Test("closed tickets and deleted resources are pruned once older than the retention time")
    func historyPruning() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pool = PoolConfig(name: "p", tags: ["a"], max: 1, staticHosts: [ResourceData(host: "h")])
        let first = try await makeService(conninfo, [pool])
        let t1 = try await first.open(tags: ["a"], sandbox: "s", owner: "o1")
        _ = try await first.wait(t1)
        try await first.close(t1, reusable: false)
        let t2 = try await first.open(tags: ["a"], sandbox: "s", owner: "o2")
        _ = try await first.wait(t2)  // the host's first resource was deleted before its second one was added
        await first.shutdown()
        let history: @Sendable (PGConnection) throws -> [String] = { c in
            let tickets = try c.query("SELECT id, state FROM tickets ORDER BY id").rows.map {
                "ticket \(try $0.decode("id", as: Int64.self)) \(try $0.decode("state", as: String.self))"
            }
            let resources = try c.query("SELECT state FROM resources ORDER BY id").rows.map {
                "resource \(try $0.decode("state", as: String.self))"
            }
            return tickets + resources
        }
        let before = try await withDatabase(conninfo, history)
        #expect(before == ["ticket \(t1) closed", "ticket \(t2) open", "resource deleted", "resource ready"])

        // The first manager pass of a service prunes: within the retention time nothing goes.
        func restart(retentionSeconds: Int) async throws {
            var options = testOptions
            options.historyRetentionSeconds = retentionSeconds
            let service = try await TicketService(
                conninfo: conninfo,
                pools: [pool],
                options: options,
                logger: testLogger
            )
            await service.shutdown()
        }
        try await restart(retentionSeconds: 3600)
        #expect(try await withDatabase(conninfo, history) == before)
        try await Task.sleep(for: .milliseconds(20))
        try await restart(retentionSeconds: 0)
        #expect(try await withDatabase(conninfo, history) == ["ticket \(t2) open", "resource ready"])
    }

    @Test("invalid pool configurations are refused")
    func invalidConfiguration() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let bad: [[PoolConfig]] = [
            [PoolConfig(name: "no source", tags: [], max: 1)],
            [PoolConfig(name: "nohosts", tags: [], max: 1)],
            [PoolConfig(name: "p", tags: [], max: 1, maxPrealloc: 2, allocateCommand: "true")],
            [
                PoolConfig(name: "p", tags: [], max: 1, allocateCommand: "true"),
                PoolConfig(name: "p", tags: [], max: 1, allocateCommand: "true"),
            ],
        ]
        for pools in bad {
            do {
                _ = try await TicketService(conninfo: conninfo, pools: pools, logger: testLogger)
                Issue.record("accepted \(pools)")
            } catch let error as TicketError {
                #expect(error.code == .invalidConfiguration)
            }
        }
    }
}
