import Foundation
import KoperProtocol
import Logging
import Scheduling

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

    func start() {
        // Builds that were in flight when the Backend stopped: reattach or requeue them first.
        for record in self.context.jobs.all() {
            self.logger.info(
                "resuming in-flight build",
                metadata: ["task.id": "\(record.taskID)", "phase": "\(record.phase.rawValue)"]
            )
            self.launch(record)
        }
        self.loops.append(Task { await self.pollLoop() })
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
        for task in tasks {
            seen.insert(task.taskID)
            if self.queued[task.taskID] != nil || self.running[task.taskID] != nil { continue }
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
        for id in self.queued.keys where !seen.contains(id) {
            self.queued[id] = nil
            _ = self.scheduler.remove(id: id.description)
        }
        self.dispatch()
    }

    func dispatch() {
        let now = Int64(Date().timeIntervalSince1970)
        while self.running.count < self.context.config.maxWorkers, let next = self.scheduler.next(now: now) {
            guard let id = TaskID(next.id), self.queued.removeValue(forKey: id) != nil else {
                self.scheduler.finished(id: next.id)
                continue
            }
            self.claimAndRun(id)
        }
    }

    /// Claims a queued task (the answer carries its full description), saves the job record, then runs it.
    func claimAndRun(_ id: TaskID) {
        let context = self.context
        self.running[id] = Task {
            defer { Task { self.workerFinished(id) } }
            do {
                let answer = try await context.frontend.claim(id, worker: context.workerID)
                guard answer.claimed, let task = answer.task else { return }
                do {
                    try task.validate()
                } catch {
                    context.logger.error(
                        "claimed task is invalid",
                        metadata: ["task.id": "\(id)", "error": "\(error)"]
                    )
                    let failed = BackendUpdate(updateID: "\(id)#invalid", taskID: id, state: .failed)
                    _ = try? await context.frontend.update(failed)
                    return
                }
                let record = JobRecord(
                    task: task,
                    phase: .leasing,
                    attempt: 1,
                    ticket: nil,
                    remoteDir: nil,
                    workerID: context.workerID
                )
                try context.jobs.save(record)
                await Worker(context: context, task: task).run(record)
            } catch {
                context.logger.error("claim failed", metadata: ["task.id": "\(id)", "error": "\(error)"])
            }
        }
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
        self.scheduler.finished(id: id.description)
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
