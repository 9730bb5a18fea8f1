import Foundation
import KoperProtocol
import Logging
import Scheduling
import ServiceKit
import Tickets

/// Keeps the Backend's priority queue in step with the Frontend's pending tasks and starts a worker for each task
/// the scheduling core picks. Everything arrives over one long-poll (`/backend/poll`): the pending tasks (each
/// answer is the full set, so tasks that vanished leave the queue too), cancel requests (a queued task is dropped,
/// a running worker's Swift task is cancelled, which kills the remote build or abandons the lease at once) and
/// actions (handed to the ActionRunner). The Frontend holds the poll until something changes.
actor Dispatcher {
    let context: BackendContext
    let actions: ActionRunner
    var scheduler: Scheduler
    var queued: [TaskID: TaskSummary] = [:]
    var running: [TaskID: Task<Void, Never>] = [:]
    /// Cancel requests being carried out (not yet acknowledged): a poll answered meanwhile lists them again.
    var canceling: Set<TaskID> = []
    /// Running workers that wait for a builder and have not claimed their task yet (it is still `pending`).
    var unclaimed: Set<TaskID> = []
    /// The pending tasks of the last poll answer.
    var lastPending: [TaskID: TaskSummary] = [:]
    var loops: [Task<Void, Never>] = []
    var logger: Logger { self.context.logger }
    /// How long the Frontend may hold one poll.
    static let pollWait = 20

    init(context: BackendContext, actions: ActionRunner) {
        self.context = context
        self.actions = actions
        let c = context.config
        var s = Scheduler(
            configuration: SchedulerConfiguration(
                maxPerOwner: c.maxPerOwner,
                maxPerArch: c.maxPerArch,
                maxPerOwnerArch: c.maxPerOwnerArch
            )
        )
        for owner in c.blockedOwners { s.setBlocked(owner: owner, true) }
        self.scheduler = s
    }

    func start() async {
        let records = self.context.jobs.all()
        await self.closeOrphanedTickets(keeping: Set(records.compactMap(\.ticket)))
        // Builds that were in flight when the Backend stopped: reattach, requeue or report them first.
        for record in records {
            self.logger.info(
                "resuming in-flight build",
                metadata: ["task.id": "\(record.taskID)", "phase": "\(record.phase.rawValue)"]
            )
            self.launch(record)
        }
        // Claims no job file names go back first (waiting for the Frontend if it is away), then the one channel. The
        // resumed builds above do not wait for either.
        let keep = records.map(\.taskID)
        self.loops.append(
            Task {
                await self.releaseOrphanedClaims(keeping: keep)
                await self.pollLoop()
            }
        )
    }

    /// Tickets no job file names were opened by a Backend that stopped before it claimed their task (or before it
    /// saved the ticket): nobody will use them, and open they would hold a builder for good.
    func closeOrphanedTickets(keeping: Set<Int64>) async {
        do {
            for ticket in try await self.context.tickets.snapshot().tickets where !keeping.contains(ticket.id.rawValue)
            {
                self.logger.notice("closing a ticket no job uses", metadata: ["ticket.owner": "\(ticket.owner)"])
                try await self.context.tickets.close(ticket.id, reusable: true)
            }
        } catch {
            self.logger.warning("cannot look for orphaned tickets", metadata: ["error": "\(error)"])
        }
    }

    /// Tasks the Frontend shows as claimed by this Backend that no job file names: it was killed after the claim and
    /// before saving the job file. Nobody would ever finish them, so they go back to `pending` (they are queued again
    /// by the next poll). Retried until the Frontend answers; the poll loop starts after it, so no new claim can race
    /// with it.
    func releaseOrphanedClaims(keeping: [TaskID]) async {
        var delay: Duration = .seconds(1)
        while !Task.isCancelled {
            do {
                let released = try await self.context.frontend.releaseClaims(
                    worker: self.context.workerID,
                    keep: keeping
                )
                for id in released {
                    self.logger.notice("handed back a task claimed before a restart", metadata: ["task.id": "\(id)"])
                }
                return
            } catch {
                self.logger.warning("cannot release orphaned claims yet", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    func stop() {
        for l in self.loops { l.cancel() }
        // Workers are NOT cancelled: their builds keep running detached and are reattached after a restart.
    }

    /// The one channel. On failure it backs off (1 s doubling to 30 s) and says so once per streak, not per try.
    func pollLoop() async {
        var generation: String?
        var delay = Duration.seconds(1)
        var failures = 0
        while !Task.isCancelled {
            do {
                let poll = try await self.context.frontend.poll(after: generation, wait: Self.pollWait)
                if failures > 0 {
                    self.logger.notice("frontend reachable again", metadata: ["failed.polls": "\(failures)"])
                }
                failures = 0
                delay = .seconds(1)
                generation = poll.generation
                self.merge(poll.tasks)
                for id in poll.cancels where !self.canceling.contains(id) {
                    self.canceling.insert(id)
                    Task { await self.cancel(id) }
                }
                await self.actions.submit(poll.actions)
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                if failures == 1 {
                    self.logger.warning(
                        "polling the frontend failed; retrying with backoff",
                        metadata: ["error": "\(error)"]
                    )
                }
                generation = nil
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    func merge(_ tasks: [TaskSummary]) {
        var seen = Set<TaskID>()
        self.lastPending = [:]
        for task in tasks {
            seen.insert(task.taskID)
            self.lastPending[task.taskID] = task
            self.enqueue(task)
        }
        for id in self.queued.keys where !seen.contains(id) {
            self.queued[id] = nil
            _ = self.scheduler.remove(id: id.description)
        }
        // A task waiting for a builder before its claim that is no longer pending was canceled (or taken): its
        // worker lets go of the lease request.
        for id in self.unclaimed where !seen.contains(id) {
            self.unclaimed.remove(id)
            self.logger.info("task no longer pending; abandoning its lease request", metadata: ["task.id": "\(id)"])
            self.running[id]?.cancel()
        }
        self.dispatch()
    }

    func enqueue(_ task: TaskSummary) {
        if self.queued[task.taskID] != nil || self.running[task.taskID] != nil { return }
        self.queued[task.taskID] = task
        self.scheduler.enqueue(
            SchedulerTask(
                id: task.taskID.description,
                kind: task.kind == .srpm ? .srpm : .rpm,
                owner: task.projectOwner,
                arch: task.arch,
                sandbox: task.sandbox,
                background: task.background,
                submitted: task.submittedOn,
                sequence: UInt64(task.buildID)
            )
        )
    }

    func dispatch() {
        let now = Int64(Date().timeIntervalSince1970)
        while self.running.count < self.context.config.maxWorkers, let next = self.scheduler.next(now: now) {
            guard let id = TaskID(next.id), let summary = self.queued.removeValue(forKey: id) else {
                self.scheduler.finished(id: next.id)
                continue
            }
            self.claimAndRun(summary)
        }
    }

    /// Leases a builder for a queued task (the poll's summary names its tags and sandbox), then claims it (the
    /// answer carries its full description), saves the job record and runs it. Claiming only once a builder is
    /// leased keeps the build `pending` while it waits, and a task canceled meanwhile simply leaves the poll's
    /// task list (the lease request is abandoned, see `merge`).
    func claimAndRun(_ summary: TaskSummary) {
        let context = self.context
        let id = summary.taskID
        self.unclaimed.insert(id)
        self.running[id] = Task {
            defer { Task { self.workerFinished(id) } }
            let tickets = context.tickets
            let ticket: TicketID
            do {
                ticket = try await tickets.open(
                    tags: Set(summary.tags),
                    sandbox: summary.sandbox,
                    owner: "\(id)#1"
                )
                _ = try await tickets.wait(ticket)  // cancellation closes the ticket
            } catch {
                if !(error is CancellationError) && !Task.isCancelled {
                    context.logger.warning(
                        "leasing a builder failed",
                        metadata: ["task.id": "\(id)", "error": "\(error)"]
                    )
                }
                return
            }
            guard self.claiming(id) else {
                _ = try? await Task.detached { try await tickets.close(ticket, reusable: true) }.value
                return
            }
            guard let task = await self.claim(id) else {
                _ = try? await Task.detached { try await tickets.close(ticket, reusable: true) }.value
                return
            }
            do {
                try task.validate()
            } catch {
                context.logger.error(
                    "claimed task is invalid",
                    metadata: ["task.id": "\(id)", "error": "\(error)"]
                )
                try? await tickets.close(ticket, reusable: true)
                let failed = BackendUpdate(updateID: "\(id)#invalid", taskID: id, state: .failed)
                _ = try? await context.frontend.update(failed)
                return
            }
            let record = JobRecord(
                task: task,
                phase: .leasing,
                attempt: 1,
                ticket: ticket.rawValue,
                remoteDir: nil,
                workerID: context.workerID,
                claimID: String(UInt64.random(in: 0...UInt64.max), radix: 36)
            )
            do {
                try context.jobs.save(record)
            } catch {
                context.logger.error("cannot save the job file", metadata: ["task.id": "\(id)", "error": "\(error)"])
                try? await tickets.close(ticket, reusable: true)
                return
            }
            await Worker(context: context, task: task).run(record)
        }
    }

    /// The task leaves the set of unclaimed ones; false if it was abandoned meanwhile.
    func claiming(_ id: TaskID) -> Bool {
        self.unclaimed.remove(id) != nil && !Task.isCancelled
    }

    /// Claims a task, retrying with backoff (1 s doubling to 30 s) while the Frontend is away: claims are
    /// idempotent per worker id, so a claim whose answer was lost is answered again. Nil: not ours to run
    /// (canceled, taken, or this worker was cancelled).
    func claim(_ id: TaskID) async -> TaskDescription? {
        var delay = Duration.seconds(1)
        while !Task.isCancelled {
            do {
                let answer = try await self.context.frontend.claim(id, worker: self.context.workerID)
                return answer.claimed ? answer.task : nil
            } catch is CancellationError {
                return nil
            } catch let error as ServiceCallError where !error.isTransient {
                self.logger.error("claim refused", metadata: ["task.id": "\(id)", "error": "\(error)"])
                return nil
            } catch {
                self.logger.warning(
                    "claim failed; retrying with backoff",
                    metadata: ["task.id": "\(id)", "error": "\(error)"]
                )
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
        return nil
    }

    /// Runs a job found after a restart: its description was saved with the claim.
    func launch(_ record: JobRecord) {
        let context = self.context
        let id = record.taskID
        self.running[id] = Task {
            defer { Task { self.workerFinished(id) } }
            await Worker(context: context, task: record.task).run(record)
        }
    }

    func workerFinished(_ id: TaskID) {
        self.running[id] = nil
        self.unclaimed.remove(id)
        // Handed back (`pending`) and listed pending by the last poll while its worker still ran: queue it again
        // now rather than at the next poll answer (which may be held until something else changes). A task that
        // is not really pending any more is refused by the claim.
        self.scheduler.finished(id: id.description)
        if let summary = self.lastPending[id] { self.enqueue(summary) }
        self.dispatch()
    }

    /// A cancel request: a queued task is dropped, a running worker cancelled and awaited; then it is acknowledged.
    func cancel(_ id: TaskID) async {
        defer { self.canceling.remove(id) }
        if self.queued.removeValue(forKey: id) != nil { _ = self.scheduler.remove(id: id.description) }
        if let worker = self.running[id] {
            self.logger.info("canceling build", metadata: ["task.id": "\(id)"])
            worker.cancel()
            await worker.value
        }
        do {
            try await self.context.frontend.cancelRequestDone(id)
        } catch {
            self.logger.warning(
                "acknowledging a cancel request failed",
                metadata: ["task.id": "\(id)", "error": "\(error)"]
            )
        }
    }

    var status: (queued: Int, running: Int) { (self.queued.count, self.running.count) }
}
