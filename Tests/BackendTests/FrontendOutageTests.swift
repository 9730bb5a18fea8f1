import Foundation
import TestSupport
import Testing
import Tickets

@testable import Backend

/// Issue 10: the Frontend away at the two moments that used to lose builds, against a real `koper-frontend`
/// (stopped and started again on its port) and the real `koper-builder`.
@Suite(.serialized, .requires(BackendStack.requirements))
struct FrontendOutageTests {
    /// The old give-up window of a final report: `RetryPolicy.default`, 30 tries.
    static let oldTries = 30

    /// Packages named in the chroot's repodata (primary.xml).
    static func repodataNames(_ stack: BackendStack) async -> String {
        let repodata = "\(stack.chrootDir)/repodata"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: repodata)) ?? []
        guard let primary = names.first(where: { $0.hasSuffix("primary.xml.gz") }) else { return "" }
        return (try? await Command.run("/bin/zcat", ["\(repodata)/\(primary)"]).output) ?? ""
    }

    static func waitForTicks(_ stack: BackendStack, _ id: Int, _ name: String) async throws {
        let liveLog = "\(stack.resultDir(id, name))/builder-live.log"
        try await stack.waitUntil("the build prints ticks", within: .seconds(60)) {
            ((try? String(contentsOfFile: liveLog, encoding: .utf8)) ?? "").contains("tick 1")
        }
    }

    static func triesOfFinalReport(_ stack: BackendStack) -> [Int] {
        stack.logs.entries.filter { $0.message.description == "final state reported" }.compactMap {
            $0.metadata["tries"].flatMap { Int("\($0)") }
        }
    }

    /// The Frontend goes away while a build runs and stays away well past the old give-up window (more than 30
    /// tries of the report): the RPMs are published meanwhile, the report waits in the job file, and once the
    /// Frontend is back the build is `succeeded`.
    @Test func finalReportOutlastsALongFrontendOutage() async throws {
        try await BackendStack.run { stack in
            let backend = try await stack.startBackend()
            let id = try await stack.frontend.upload(
                try await SRPMFixture.slow(name: "patient", seconds: 4),
                project: stack.project
            )
            _ = try await backend.transport.events.first("build start", within: .seconds(60)) { $0.startedPid != nil }
            try await Self.waitForTicks(stack, id, "patient")
            await stack.frontend.stop()

            try await stack.waitUntil("the report waits in the job file", within: .seconds(60)) {
                backend.context.jobs.all().map(\.phase) == [.reporting]
            }
            let record = try #require(backend.context.jobs.all().first)
            #expect(record.report?.state == .succeeded)
            #expect(record.ticket == nil, "the builder is given back while the report waits")
            // Published while the Frontend is away.
            #expect(await Self.repodataNames(stack).contains("<name>patient</name>"))
            // Well past the old window: 30 tries at 0.1 s doubling to 0.5 s take about 14 s.
            try await Task.sleep(for: .seconds(18))
            #expect(backend.context.jobs.all().map(\.phase) == [.reporting], "still kept after the old window")

            try await stack.frontend.restart()
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(30))
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")
            let tries = Self.triesOfFinalReport(stack)
            #expect(tries.count == 1 && tries[0] > Self.oldTries, "tries: \(tries)")
            print("BackendTests: final report delivered after \(tries) tries across the outage")
            try await stack.waitUntil("the job file goes", within: .seconds(5)) { backend.context.jobs.all().isEmpty }
            #expect(try await stack.openTickets(backend).isEmpty)
        }
    }

    /// As above, and the Backend is killed while the report waits: the next Backend finds it in the job file and
    /// delivers it once the Frontend is back; nothing is built again.
    @Test func pendingReportSurvivesABackendRestart() async throws {
        try await BackendStack.run { stack in
            let first = try await stack.startBackend()
            let id = try await stack.frontend.upload(
                try await SRPMFixture.slow(name: "relay", seconds: 4),
                project: stack.project
            )
            _ = try await first.transport.events.first("build start", within: .seconds(60)) { $0.startedPid != nil }
            try await Self.waitForTicks(stack, id, "relay")
            await stack.frontend.stop()
            try await stack.waitUntil("the report waits in the job file", within: .seconds(60)) {
                first.context.jobs.all().map(\.phase) == [.reporting]
            }
            await first.kill()
            try await stack.waitUntil("the killed Backend lets go of its report", within: .seconds(5)) {
                stack.logged("final report left in the job file for the next start")
            }
            #expect(first.context.jobs.all().map(\.phase) == [.reporting])

            let second = try await stack.startBackend()
            try await Task.sleep(for: .seconds(3))
            try await stack.frontend.restart()
            try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(30))
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")
            #expect(stack.logged("resuming in-flight build"))
            #expect(second.transport.startedPids.isEmpty, "nothing built again: \(second.transport.events.all)")
            #expect(first.transport.startedPids.count == 1)
            #expect(await Self.repodataNames(stack).contains("<name>relay</name>"))
            try await stack.waitUntil("the job file goes", within: .seconds(5)) { second.context.jobs.all().isEmpty }
        }
    }

    /// The Frontend goes away just before a build starts: the builder cannot download the SRPM (connection
    /// refused), retries, and ends with status 5; the Backend retries the build with backoff instead of failing
    /// it, and once the Frontend is back the build succeeds. It is never `failed`.
    @Test func buildStartingWhileTheFrontendIsAwayIsRetried() async throws {
        try await BackendStack.run(configure: {
            $0.builderArguments = ["--download-retries", "1", "--download-retry-delay", "0.2"]
            $0.maxInfraRetries = 30
        }) { stack in
            let backend = try await stack.startBackend()
            let frontend = stack.frontend
            backend.transport.beforeNextStart { await frontend.stop() }
            let id = try await stack.frontend.upload(try await SRPMFixture.make(name: "early"), project: stack.project)
            // Two attempts end in status 5 while the Frontend is away.
            try await stack.waitUntil("a second attempt", within: .seconds(60)) {
                backend.transport.startedPids.count >= 2
            }
            try await stack.frontend.restart()
            var seen: Set<String> = []
            let clock = ContinuousClock()
            let end = clock.now.advanced(by: .seconds(90))
            while clock.now < end {
                let state = try await stack.frontend.state(id)
                seen.insert(state)
                if state == "succeeded" || state == "failed" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")
            #expect(!seen.contains("failed"), "\(seen)")
            let dir = stack.resultDir(id, "early")
            let log = await stack.readLog("\(dir)/backend.log")
            #expect(log.contains("infrastructure failure on attempt 1") && log.contains("status 5"), "\(log)")
            #expect(stack.logged("infrastructure failure; the build will be retried"))
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            #expect(files.contains { $0.hasPrefix("early-1.0-1") && $0.hasSuffix(".noarch.rpm") }, "\(files)")
            #expect(await Self.repodataNames(stack).contains("<name>early</name>"))
            try await stack.waitUntil("the lease is given back", within: .seconds(5)) {
                try await stack.openTickets(backend).isEmpty
            }
            #expect(backend.context.jobs.all().isEmpty)
        }
    }

    /// More infrastructure failures than `max_infra_retries` (here: two builders that cannot be reached, limit 1):
    /// the task is handed back to the queue (`pending`), claimed again with a new claim id, and succeeds on the third
    /// builder. It is never `failed`.
    @Test func infrastructureFailuresPastTheLimitHandTheTaskBack() async throws {
        try await BackendStack.run(
            hosts: ["builder-a", "builder-b", "builder-c"],
            configure: { $0.maxInfraRetries = 1 }
        ) {
            stack in
            let backend = try await stack.startBackend()
            backend.transport.refuseConnections(2)
            let id = try await stack.frontend.upload(
                try await SRPMFixture.make(name: "boomerang"),
                project: stack.project
            )
            var seen: Set<String> = []
            let clock = ContinuousClock()
            let end = clock.now.advanced(by: .seconds(60))
            while clock.now < end {
                let state = try await stack.frontend.state(id)
                seen.insert(state)
                if state == "succeeded" || state == "failed" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await stack.frontend.state(id) == "succeeded", "\(stack.logTail)")
            #expect(!seen.contains("failed"), "\(seen)")
            let refused = backend.transport.events.all.filter { if case .refused = $0 { true } else { false } }
            #expect(refused.count == 2)
            let log = await stack.readLog("\(stack.resultDir(id, "boomerang"))/backend.log")
            #expect(log.contains("2 infrastructure failure(s): handing the task back to the queue"), "\(log)")
            let tries = Self.triesOfFinalReport(stack)
            #expect(tries.count == 2, "the hand-back and the success were both reported: \(tries)")
            #expect(backend.context.jobs.all().isEmpty)
        }
    }
}
