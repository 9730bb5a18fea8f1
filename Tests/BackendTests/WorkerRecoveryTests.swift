import Foundation
import TestSupport
import Testing
import Tickets

@testable import Backend

/// Retry, reattach, cancel and timeout of the Backend's workers, against a real `koper-frontend` and the real
/// `koper-builder`, with builders reached through `FaultInjectingTransport` (no sshd): each test awaits the
/// transport's events (build started, kill sent) rather than sleeping.
@Suite(.serialized, .requires(BackendStack.requirements))
struct WorkerRecoveryTests {
    static let chroot = FrontendProcess.chroot

    /// The first builder leased cannot be reached: the worker retires it (markBroken) and the second attempt runs
    /// on the other builder at once (an infrastructure failure, not counted against `max_attempts`). One build, one
    /// result dir, attempt 2 in backend.log.
    @Test func unreachableBuilderIsRetiredAndTheBuildRetriedOnAnother() async throws {
        try await BackendStack.run(hosts: ["builder-a", "builder-b"]) { stack in
            let backend = try await stack.startBackend()
            backend.transport.refuseConnections(1)
            let id = try await stack.frontend.upload(
                try await SRPMFixture.make(name: "retried"),
                project: stack.project
            )
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(60))
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")

            let events = backend.transport.events.all
            let refused = events.compactMap { e -> String? in
                if case .refused(let h) = e { return h } else { return nil }
            }
            let started = events.compactMap(\.startedHost)
            let resource = events.compactMap(\.startedResource).first ?? "?"
            #expect(refused.count == 1, "\(events)")
            #expect(
                started.count == 1 && started.first != refused.first,
                "the retry ran on the other builder: \(events)"
            )
            #expect(stack.logged("resource reported broken; retiring it"), "\(stack.logTail)")

            #expect(stack.buildDirs == [String(format: "%08d-retried", id)], "\(stack.buildDirs)")
            let dir = stack.resultDir(id, "retried")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            #expect(files.contains { $0.hasPrefix("retried-1.0-1") && $0.hasSuffix(".noarch.rpm") }, "\(files)")
            let log = await stack.readLog("\(dir)/backend.log")
            // An unreachable builder is the infrastructure's failure, not the build's: retried at once elsewhere.
            #expect(log.contains("infrastructure failure on attempt 1: cannot connect"), "\(log)")
            #expect(log.contains("attempt 2 on \(resource) "), "\(log)")
            #expect(!log.contains("attempt 1 on"), "\(log)")
            #expect(backend.context.jobs.all().isEmpty)
        }
    }

    /// The Backend dies mid-build (its transport freezes: it never touches the builder or the Frontend again). A
    /// new Backend on the same state dir reattaches to the running build through the job file; the build ends
    /// succeeded and no second build is started.
    @Test func restartedBackendReattachesToTheRunningBuild() async throws {
        try await BackendStack.run { stack in
            let first = try await stack.startBackend()
            let id = try await stack.frontend.upload(
                try await SRPMFixture.slow(name: "survivor", seconds: 4),
                project: stack.project
            )
            let start = try await first.transport.events.first("build start", within: .seconds(60)) {
                $0.startedPid != nil
            }
            let resource = try #require(start.startedResource)
            let liveLog = "\(stack.resultDir(id, "survivor"))/builder-live.log"
            try await stack.waitUntil("the build prints ticks", within: .seconds(60)) {
                ((try? String(contentsOfFile: liveLog, encoding: .utf8)) ?? "").contains("tick 1")
            }
            #expect(try await stack.frontend.state(id) == "running")
            await first.kill()
            #expect(first.context.jobs.all().map(\.phase) == [.running], "the job file survives the Backend")

            let second = try await stack.startBackend()
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(60))
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")
            #expect(stack.logged("resuming in-flight build"))
            #expect(first.transport.startedPids.count == 1)
            #expect(second.transport.startedPids.isEmpty, "no second build: \(second.transport.events.all)")

            let dir = stack.resultDir(id, "survivor")
            let log = await stack.readLog("\(dir)/backend.log")
            #expect(log.contains("reattached to \(resource):"), "\(log)")
            #expect(!log.contains("attempt 2"), "\(log)")
            let live = await stack.readLog(liveLog)
            #expect(live.contains("tick 1") && live.contains("tick 4"), "\(live)")
            #expect(stack.buildDirs.count == 1, "\(stack.buildDirs)")
            #expect(second.context.jobs.all().isEmpty)
            try await stack.waitUntil("the lease is given back", within: .seconds(5)) {
                try await stack.openTickets(second).isEmpty
            }
        }
    }

    /// One builder: the first build runs on it, the second waits for a lease.
    /// - Cancel the waiting build: the worker lets go of its lease request at once (the ticket closes), and the
    ///   cancel request is acknowledged.
    /// - Cancel the running build: the builder's whole session is gone within 1 s of the cancel request reaching
    ///   the Frontend (issue 9 item 4).
    @Test func cancelWhileWaitingForABuilderAndWhileBuilding() async throws {
        try await BackendStack.run { stack in
            let backend = try await stack.startBackend()
            let busy = try await stack.frontend.upload(
                try await SRPMFixture.slow(name: "busy", seconds: 120),
                project: stack.project
            )
            let start = try await backend.transport.events.first("build start", within: .seconds(60)) {
                $0.startedPid != nil
            }
            let pid = try #require(start.startedPid)
            let liveLog = "\(stack.resultDir(busy, "busy"))/builder-live.log"
            try await stack.waitUntil("the build prints ticks", within: .seconds(60)) {
                ((try? String(contentsOfFile: liveLog, encoding: .utf8)) ?? "").contains("tick 1")
            }

            let waiter = try await stack.frontend.upload(
                try await SRPMFixture.make(name: "waiter"),
                project: stack.project
            )
            let owner = "\(waiter)-\(Self.chroot)#1"
            try await stack.waitUntil("the second build waits for a builder", within: .seconds(30)) {
                try await stack.openTickets(backend).contains { $0.owner == owner && $0.resourceID == nil }
            }
            // Not claimed before a builder is leased for it: the queued build stays pending, not starting.
            #expect(try await stack.frontend.state(waiter) == "pending")
            let clock = ContinuousClock()
            var t0 = clock.now
            #expect(try await stack.frontend.cancel(waiter) == 200)
            try await stack.waitUntil(
                "the waiting build's ticket closes",
                within: .seconds(5),
                every: .milliseconds(10)
            ) {
                try await !stack.openTickets(backend).contains { $0.owner == owner }
            }
            let leaseReleased = clock.now - t0
            try await stack.waitUntil(
                "the cancel request is acknowledged",
                within: .seconds(5),
                every: .milliseconds(20)
            ) {
                try await !stack.frontend.openCancelRequests().contains("\(waiter)-\(Self.chroot)")
            }
            #expect(leaseReleased <= .seconds(1), "the waiting build let go of its lease after \(leaseReleased)")
            #expect(try await stack.frontend.state(waiter) == "canceled")
            #expect(backend.transport.startedPids == [pid], "the canceled build never started")

            #expect(!sessionMembers(pid).isEmpty, "the first build runs")
            t0 = clock.now
            #expect(try await stack.frontend.cancel(busy) == 200)
            let kill = try await backend.transport.events.first("kill command", within: .seconds(5)) {
                if case .killSent = $0 { return true } else { return false }
            }
            try await stack.waitUntil("the build's session is gone", within: .seconds(5), every: .milliseconds(5)) {
                sessionMembers(pid).isEmpty
            }
            let gone = clock.now - t0
            guard case .killSent(_, let killedAt) = kill else {
                Issue.record("not a kill event")
                return
            }
            let killSent = killedAt - t0
            print(
                "BackendTests: cancel latency: lease released \(leaseReleased); kill sent \(killSent), session gone \(gone)"
            )
            #expect(
                gone <= .seconds(1),
                "a cancel reached the running build after \(gone) (kill sent after \(killSent))"
            )
            try await stack.waitForState(busy, ["canceled"], within: .seconds(10))
            try await stack.waitUntil("the running build's lease is closed", within: .seconds(10)) {
                try await stack.openTickets(backend).isEmpty
            }
            try await stack.waitUntil("the cancel request is acknowledged", within: .seconds(10)) {
                try await stack.frontend.openCancelRequests().isEmpty
            }
            #expect(backend.context.jobs.all().isEmpty)
        }
    }

    /// A builder that never finishes is killed when the task's timeout passes; the build fails and its live log
    /// says it timed out.
    @Test func buildThatNeverFinishesTimesOut() async throws {
        try await BackendStack.run(builder: .hanging) { stack in
            let backend = try await stack.startBackend()
            let clock = ContinuousClock()
            let t0 = clock.now
            let id = try await stack.frontend.upload(
                try await SRPMFixture.make(name: "sleepy"),
                project: stack.project,
                timeout: 2
            )
            let start = try await backend.transport.events.first("build start", within: .seconds(30)) {
                $0.startedPid != nil
            }
            let pid = try #require(start.startedPid)
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(30))
            let elapsed = clock.now - t0
            #expect(try await stack.frontend.state(id) == "failed")
            #expect(elapsed >= .seconds(2), "failed after \(elapsed), before its timeout")
            #expect(backend.transport.events.all.contains { if case .killSent = $0 { true } else { false } })
            try await stack.waitUntil("the hanging builder is gone", within: .seconds(5)) {
                sessionMembers(pid).isEmpty
            }

            let dir = stack.resultDir(id, "sleepy")
            let live = await stack.readLog("\(dir)/builder-live.log")
            #expect(live.contains("fake builder: working forever"), "\(live)")
            #expect(live.contains("[koper] build timed out after 2 seconds"), "\(live)")
            let log = await stack.readLog("\(dir)/backend.log")
            #expect(log.contains("timed out after 2 s: the build's processes were killed"), "\(log)")
            try await stack.waitUntil("the lease is given back", within: .seconds(5)) {
                try await stack.openTickets(backend).isEmpty
            }
            #expect(backend.context.jobs.all().isEmpty)
        }
    }

    /// The build's processes die without writing a status (OOM killer, a reboot of the build): BuilderLost, the
    /// lease of that attempt is closed, and the build runs again and succeeds.
    @Test func lostBuilderIsRetried() async throws {
        try await BackendStack.run { stack in
            let backend = try await stack.startBackend()
            let id = try await stack.frontend.upload(
                try await SRPMFixture.slow(name: "lazarus", seconds: 3),
                project: stack.project
            )
            let start = try await backend.transport.events.first("build start", within: .seconds(60)) {
                $0.startedPid != nil
            }
            let pid = try #require(start.startedPid)
            let liveLog = "\(stack.resultDir(id, "lazarus"))/builder-live.log"
            try await stack.waitUntil("the build prints ticks", within: .seconds(60)) {
                ((try? String(contentsOfFile: liveLog, encoding: .utf8)) ?? "").contains("tick 1")
            }
            killSession(pid)
            let restart = try await backend.transport.events.first("second build start", within: .seconds(30)) {
                $0.startedPid != nil && $0.startedPid != pid
            }
            let resource = try #require(restart.startedResource)
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(90))
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")
            #expect(backend.transport.startedPids.count == 2, "\(backend.transport.events.all)")
            #expect(stack.logged("builder lost; retrying elsewhere"))

            let dir = stack.resultDir(id, "lazarus")
            let log = await stack.readLog("\(dir)/backend.log")
            #expect(log.contains("builder lost on attempt 1") && log.contains("died without a status"), "\(log)")
            #expect(log.contains("attempt 2 on \(resource) "), "\(log)")
            #expect(stack.buildDirs.count == 1, "\(stack.buildDirs)")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            #expect(files.contains { $0.hasPrefix("lazarus-1.0-1") && $0.hasSuffix(".noarch.rpm") }, "\(files)")
        }
    }

    /// A builder that dies on every attempt: after `max_attempts` the build fails, and no lease is left open.
    @Test func builderThatKeepsDyingFailsAfterMaxAttempts() async throws {
        try await BackendStack.run(builder: .dying, configure: { $0.maxAttempts = 2 }) { stack in
            let backend = try await stack.startBackend()
            let id = try await stack.frontend.upload(try await SRPMFixture.make(name: "doomed"), project: stack.project)
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(60))
            #expect(try await stack.frontend.state(id) == "failed")
            #expect(backend.transport.startedPids.count == 2, "\(backend.transport.events.all)")
            let log = await stack.readLog("\(stack.resultDir(id, "doomed"))/backend.log")
            #expect(log.contains("builder lost on attempt 2") && log.contains("giving up after 2 attempt(s)"), "\(log)")
            // The last attempt's lease is closed too (it used to stay open, holding the builder for good).
            let open = try await stack.openTickets(backend)
            #expect(open.isEmpty, "\(open)")
            #expect(backend.context.jobs.all().isEmpty)
        }
    }
}
