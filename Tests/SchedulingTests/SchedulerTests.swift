import Testing

@testable import Scheduling

@Suite struct LaneTests {
    @Test func lanesAreServedInStrictOrder() {
        var scheduler = Scheduler()
        scheduler.enqueue(.make("bg-rpm", owner: "a", kind: .rpm, background: true))
        scheduler.enqueue(.make("bg-srpm", owner: "b", kind: .srpm, background: true))
        scheduler.enqueue(.make("rpm", owner: "c", kind: .rpm))
        scheduler.enqueue(.make("srpm", owner: "d", kind: .srpm))
        let served = scheduler.drain(10)
        #expect(served == ["srpm", "rpm", "bg-srpm", "bg-rpm"])
        #expect(scheduler.pendingCount == 0)
        #expect(scheduler.runningCount == 4)
    }

    @Test func srpmTasksGoBeforeRPMTasksWhateverTheRotation() {
        var scheduler = Scheduler()
        for index in 0..<5 { scheduler.enqueue(.make("a-rpm-\(index)", owner: "a")) }
        scheduler.enqueue(.make("a-srpm", owner: "a", kind: .srpm))
        scheduler.enqueue(.make("b-srpm", owner: "b", kind: .srpm))
        let order = scheduler.drain(3)
        #expect(order == ["a-srpm", "b-srpm", "a-rpm-0"])
    }

    @Test func aBackgroundTaskWaitsBehindNormalWork() {
        var scheduler = Scheduler()
        scheduler.enqueue(.make("bg", owner: "a", background: true, submitted: 1_000))
        for index in 0..<50 { scheduler.enqueue(.make("n\(index)", owner: "b", submitted: 1_000)) }
        let order = scheduler.drain(50, now: 1_000 + 60)
        #expect(!order.contains("bg"))
        let served = scheduler.drain(1, now: 1_000 + 60)
        #expect(served == ["bg"])
    }
}

@Suite struct RoundRobinTests {
    @Test(arguments: [200, 3_000])
    func aLateOwnerIsServedWithinTwoDecisions(batch: Int) {
        var scheduler = Scheduler()
        for index in 0..<batch { scheduler.enqueue(.make("a\(index)", owner: "a")) }
        let served = scheduler.drain(3)
        #expect(served == ["a0", "a1", "a2"])
        scheduler.enqueue(.make("b0", owner: "b"))
        let order = scheduler.drain(2)
        #expect(order.contains("b0"))
        #expect(order == ["a3", "b0"], "a was served before b arrived, so a goes once more, then b")
        let served2 = scheduler.drain(2)
        #expect(served2 == ["a4", "a5"])
    }

    @Test func ownersAlternateEvenly() {
        var scheduler = Scheduler()
        for owner in ["a", "b", "c"] {
            for index in 0..<100 { scheduler.enqueue(.make("\(owner)\(index)", owner: owner)) }
        }
        let order = scheduler.drain(30)
        #expect(Array(order.prefix(6)) == ["a0", "b0", "c0", "a1", "b1", "c1"])
        for owner in ["a", "b", "c"] {
            #expect(order.filter { $0.hasPrefix(owner) }.count == 10)
            #expect(scheduler.running(owner: owner) == 10)
        }
    }

    @Test func archesTakeTurnsInsideAnOwner() {
        var scheduler = Scheduler()
        for index in 0..<3 { scheduler.enqueue(.make("x\(index)", arch: "x86_64")) }
        for index in 0..<3 { scheduler.enqueue(.make("r\(index)", arch: "aarch64")) }
        scheduler.enqueue(.make("i0", arch: "i386"))
        let served = scheduler.drain(10)
        #expect(served == ["x0", "r0", "i0", "x1", "r1", "x2", "r2"])
    }

    @Test func sandboxesTakeTurnsInsideAnOwnerArch() {
        var scheduler = Scheduler()
        for index in 0..<3 { scheduler.enqueue(.make("p\(index)", sandbox: "a/p--a")) }
        for index in 0..<3 { scheduler.enqueue(.make("q\(index)", sandbox: "a/q--a")) }
        scheduler.enqueue(.make("r0", sandbox: "a/p--bob"))
        let served = scheduler.drain(10)
        #expect(served == ["p0", "q0", "r0", "p1", "q1", "p2", "q2"])
    }

    @Test func tasksInsideOneSandboxAreFIFO() {
        var scheduler = Scheduler()
        let ids = (0..<20).map { "t\($0)" }
        for id in ids { scheduler.enqueue(.make(id)) }
        let served = scheduler.drain(100)
        #expect(served == ids)
    }

    @Test func duplicatesAreIgnored() {
        var scheduler = Scheduler()
        let accepted = scheduler.enqueue(.make("t1"))
        #expect(accepted)
        let accepted2 = scheduler.enqueue(.make("t1", owner: "someone-else"))
        #expect(!accepted2)
        #expect(scheduler.pendingCount == 1)
        let decision = scheduler.next(now: 1_000)
        #expect(decision?.owner == "a")
        let accepted3 = scheduler.enqueue(.make("t1"))
        #expect(!accepted3, "a running id is known too")
        #expect(scheduler.pendingCount == 0)
        let decision2 = scheduler.next(now: 1_000)
        #expect(decision2 == nil)
    }

    @Test func theReturnedTaskIsTheEnqueuedOne() {
        var scheduler = Scheduler()
        let task = SchedulerTask(
            id: "42-fedora-41-aarch64",
            kind: .rpm,
            owner: "alice",
            arch: "aarch64",
            sandbox: "alice/tools--alice",
            background: true,
            submitted: 1_795_000_000,
            sequence: 7
        )
        scheduler.enqueue(task)
        #expect(scheduler.task(id: task.id) == task)
        #expect(scheduler.status(id: task.id) == .pending)
        let decision = scheduler.next(now: 1_795_000_001)
        #expect(decision == task)
        #expect(scheduler.status(id: task.id) == .running)
        #expect(scheduler.running(arch: "aarch64") == 1)
    }
}

@Suite struct CapTests {
    @Test func ownerCapHoldsAnOwnerBackUntilASlotFrees() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(maxPerOwner: 2))
        for index in 0..<5 {
            scheduler.enqueue(.make("a\(index)", owner: "a"))
            scheduler.enqueue(.make("b\(index)", owner: "b"))
        }
        let served = scheduler.drain(10)
        #expect(served == ["a0", "b0", "a1", "b1"])
        #expect(scheduler.running(owner: "a") == 2)
        #expect(scheduler.pendingCount == 6)
        let wasRunning = scheduler.finished(id: "a0")
        #expect(wasRunning)
        let served2 = scheduler.drain(10)
        #expect(served2 == ["a2"])
        let wasRunning2 = scheduler.finished(id: "a0")
        #expect(!wasRunning2, "already finished")
        let wasRunning3 = scheduler.finished(id: "a3")
        #expect(!wasRunning3, "queued, not running")
    }

    @Test func aCappedOwnerKeepsItsPlaceInTheRotation() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(maxPerOwner: 1))
        for owner in ["a", "b", "c"] {
            for index in 0..<3 { scheduler.enqueue(.make("\(owner)\(index)", owner: owner)) }
        }
        let served = scheduler.drain(10)
        #expect(served == ["a0", "b0", "c0"])
        scheduler.finished(id: "c0")
        scheduler.finished(id: "b0")
        scheduler.finished(id: "a0")
        // a was served longest ago, so it comes first however the slots were freed.
        let served2 = scheduler.drain(10)
        #expect(served2 == ["a1", "b1", "c1"])
    }

    @Test func archCapLetsOtherArchesThrough() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(maxPerArch: 1))
        scheduler.enqueue(.make("a-x", owner: "a", arch: "x86_64"))
        scheduler.enqueue(.make("b-x", owner: "b", arch: "x86_64"))
        scheduler.enqueue(.make("c-r", owner: "c", arch: "aarch64"))
        scheduler.enqueue(.make("c-r2", owner: "c", arch: "aarch64"))
        let served = scheduler.drain(10)
        #expect(served == ["a-x", "c-r"])
        #expect(scheduler.running(arch: "x86_64") == 1)
        scheduler.finished(id: "c-r")
        let served2 = scheduler.drain(10)
        #expect(served2 == ["c-r2"])
        scheduler.finished(id: "a-x")
        let served3 = scheduler.drain(10)
        #expect(served3 == ["b-x"])
    }

    @Test func ownerArchCapIsPerArch() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(maxPerOwnerArch: 1))
        for index in 0..<3 {
            scheduler.enqueue(.make("x\(index)", arch: "x86_64"))
            scheduler.enqueue(.make("r\(index)", arch: "aarch64"))
        }
        scheduler.enqueue(.make("b0", owner: "b", arch: "x86_64"))
        let served = scheduler.drain(10)
        #expect(served == ["x0", "b0", "r0"])
        scheduler.finished(id: "x0")
        let served2 = scheduler.drain(10)
        #expect(served2 == ["x1"])
        #expect(scheduler.running(owner: "a") == 2)
    }

    @Test func blockedOwnersAreSkippedButKeepTheirTasks() {
        var scheduler = Scheduler()
        for index in 0..<3 {
            scheduler.enqueue(.make("a\(index)", owner: "a"))
            scheduler.enqueue(.make("b\(index)", owner: "b"))
        }
        let served = scheduler.drain(1)
        #expect(served == ["a0"])
        scheduler.setBlocked(owner: "a", true)
        #expect(scheduler.isBlocked(owner: "a"))
        let served2 = scheduler.drain(10)
        #expect(served2 == ["b0", "b1", "b2"])
        #expect(scheduler.pending(owner: "a") == 2)
        #expect(scheduler.running(owner: "a") == 1, "running tasks keep running")
        scheduler.enqueue(.make("a3", owner: "a"))
        let decision = scheduler.next(now: 1_000)
        #expect(decision == nil)
        scheduler.setBlocked(owner: "a", false)
        let served3 = scheduler.drain(10)
        #expect(served3 == ["a1", "a2", "a3"])
    }

    @Test func blockingAnUnknownOwnerAppliesToItsFutureTasks() {
        var scheduler = Scheduler()
        scheduler.setBlocked(owner: "spammer", true)
        scheduler.enqueue(.make("s0", owner: "spammer"))
        let decision = scheduler.next(now: 1_000)
        #expect(decision == nil)
        scheduler.setBlocked(owner: "spammer", false)
        let served = scheduler.drain(1)
        #expect(served == ["s0"])
    }
}

@Suite struct CancelAndRequeueTests {
    @Test func removingAQueuedTaskKeepsTheOrderOfTheRest() {
        var scheduler = Scheduler()
        for index in 0..<5 { scheduler.enqueue(.make("t\(index)")) }
        let removed = scheduler.remove(id: "t2")
        #expect(removed)
        let removed2 = scheduler.remove(id: "t0")
        #expect(removed2)
        let removed3 = scheduler.remove(id: "t2")
        #expect(!removed3)
        let removed4 = scheduler.remove(id: "unknown")
        #expect(!removed4)
        #expect(scheduler.pendingCount == 3)
        let served = scheduler.drain(10)
        #expect(served == ["t1", "t3", "t4"])
        #expect(scheduler.invariantViolations() == [])
    }

    @Test func removingTheLastTaskOfAnOwnerTakesItOutOfTheRotation() {
        var scheduler = Scheduler()
        scheduler.enqueue(.make("a0", owner: "a"))
        scheduler.enqueue(.make("b0", owner: "b"))
        scheduler.enqueue(.make("b1", owner: "b"))
        scheduler.remove(id: "a0")
        let served = scheduler.drain(10)
        #expect(served == ["b0", "b1"])
        #expect(scheduler.pending(owner: "a") == 0)
        #expect(scheduler.invariantViolations() == [])
    }

    @Test func removingARunningTaskFreesItsCapSlot() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(maxPerOwner: 1))
        scheduler.enqueue(.make("t0"))
        scheduler.enqueue(.make("t1"))
        let served = scheduler.drain(10)
        #expect(served == ["t0"])
        let removed = scheduler.remove(id: "t0")
        #expect(removed)
        #expect(scheduler.runningCount == 0)
        #expect(scheduler.status(id: "t0") == nil)
        let served2 = scheduler.drain(10)
        #expect(served2 == ["t1"])
    }

    @Test func aRequeuedTaskGoesFirst() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(maxPerOwner: 1))
        for index in 0..<3 { scheduler.enqueue(.make("t\(index)")) }
        let served = scheduler.drain(10)
        #expect(served == ["t0"])
        let requeued = scheduler.requeue(id: "t0")
        #expect(requeued)
        let requeued2 = scheduler.requeue(id: "t0")
        #expect(!requeued2, "no longer running")
        #expect(scheduler.status(id: "t0") == .pending)
        #expect(scheduler.running(owner: "a") == 0)
        let served2 = scheduler.drain(10)
        #expect(served2 == ["t0"])
        scheduler.finished(id: "t0")
        let served3 = scheduler.drain(10)
        #expect(served3 == ["t1"])
    }

    @Test func everythingIsForgottenOnceDone() {
        var scheduler = Scheduler()
        for index in 0..<100 {
            scheduler.enqueue(.make("t\(index)", owner: "o\(index % 7)", arch: index % 2 == 0 ? "x86_64" : "aarch64"))
        }
        for index in stride(from: 0, to: 100, by: 3) { scheduler.remove(id: "t\(index)") }
        while let task = scheduler.next(now: 1_000) { scheduler.finished(id: task.id) }
        #expect(scheduler.pendingCount == 0 && scheduler.runningCount == 0)
        #expect(scheduler.ownerByName.isEmpty)
        #expect(scheduler.sandboxNameByName.isEmpty)
        #expect(scheduler.sandboxNodeByKey.isEmpty)
        #expect(scheduler.slotByID.isEmpty)
        #expect(scheduler.invariantViolations() == [])
    }
}

@Suite struct AgeingTests {
    @Test func anAgedBackgroundTaskJoinsTheNormalRotation() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(backgroundAgeing: 1_800))
        scheduler.enqueue(.make("bg", owner: "a", background: true, submitted: 0))
        for index in 0..<100 { scheduler.enqueue(.make("n\(index)", owner: "b", submitted: 0)) }
        let served = scheduler.drain(10, now: 1_799)
        #expect(!served.contains("bg"))
        let order = scheduler.drain(2, now: 1_800)
        #expect(order.contains("bg"))
        #expect(scheduler.task(id: "bg")?.background == true, "the task itself is returned unchanged")
    }

    @Test func agedTasksArePromotedOldestFirst() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(backgroundAgeing: 100))
        scheduler.enqueue(.make("late", owner: "a", background: true, submitted: 50, sequence: 1))
        scheduler.enqueue(.make("early", owner: "b", background: true, submitted: 10, sequence: 2))
        scheduler.enqueue(.make("fresh", owner: "c", background: true, submitted: 500, sequence: 3))
        scheduler.enqueue(.make("normal", owner: "d", submitted: 500, sequence: 4))
        let served = scheduler.drain(4, now: 200)
        #expect(served == ["normal", "early", "late", "fresh"])
    }

    @Test func backgroundSRPMsAgeIntoTheSRPMLane() {
        var scheduler = Scheduler(configuration: SchedulerConfiguration(backgroundAgeing: 100))
        scheduler.enqueue(.make("rpm", owner: "a", kind: .rpm, submitted: 0))
        scheduler.enqueue(.make("bg-srpm", owner: "b", kind: .srpm, background: true, submitted: 0))
        let served = scheduler.drain(2, now: 100)
        #expect(served == ["bg-srpm", "rpm"])
    }
}

@Suite struct ArchAvailabilityTests {
    @Test func anUnavailableArchIsSkippedWithoutLosingOrder() {
        var scheduler = Scheduler()
        scheduler.enqueue(.make("a1", owner: "a", arch: "aarch64"))
        scheduler.enqueue(.make("a2", owner: "a", arch: "aarch64"))
        scheduler.enqueue(.make("b1", owner: "b", arch: "x86_64"))
        scheduler.enqueue(.make("b2", owner: "b", arch: "x86_64"))
        scheduler.enqueue(.make("c1", owner: "c", arch: "aarch64"))
        var asked: [String] = []
        let noARM: (String) -> Bool = { $0 != "aarch64" }
        let served = scheduler.drain(10, isArchAvailable: noARM)
        #expect(served == ["b1", "b2"])
        let task = scheduler.next(now: 1_000) { arch in
            asked.append(arch)
            return arch != "aarch64"
        }
        #expect(task == nil)
        #expect(asked == ["aarch64"], "asked once per arch, and only about archs with work")
        let served2 = scheduler.drain(10)
        #expect(served2 == ["a1", "c1", "a2"])
    }
}
