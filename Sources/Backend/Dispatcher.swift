import Foundation
import KoperJSON
import Logging
import Scheduling

/// Keeps the Backend's priority queue in step with the Frontend's pending tasks and starts a worker for each
/// task the scheduling core picks. Also relays cancel requests to queued tasks (dropped) and running workers
/// (their Swift task is cancelled, which kills the remote build or abandons the lease at once).
actor Dispatcher {
    let context: BackendContext
    var scheduler: Scheduler
    var queued: [String: BuildTask] = [:]
    var running: [String: Task<Void, Never>] = [:]
    var loops: [Task<Void, Never>] = []
    var logger: Logger { self.context.logger }

    init(context: BackendContext) {
        self.context = context
        let c = context.config
        var s = Scheduler(
            configuration: SchedulerConfiguration(maxPerOwner: c.maxPerOwner, maxPerArch: c.maxPerArch, maxPerOwnerArch: c.maxPerOwnerArch)
        )
        for owner in c.blockedOwners { s.setBlocked(owner: owner, true) }
        self.scheduler = s
    }

    func start() {
        // Builds that were in flight when the Backend stopped: reattach or requeue them first.
        for record in self.context.jobs.all() {
            guard let task = try? BuildTask(record.task) else {
                self.context.jobs.remove(record.taskID)
                continue
            }
            self.logger.info("resuming in-flight build", metadata: ["task.id": "\(task.id)", "phase": "\(record.phase.rawValue)"])
            self.launch(task, record: record)
        }
        self.loops.append(Task { await self.pollLoop() })
        self.loops.append(Task { await self.cancelLoop() })
    }

    func stop() {
        for l in self.loops { l.cancel() }
        // Workers are NOT cancelled: their builds keep running detached and are reattached after a restart.
    }

    /// Long-polls the Frontend; every answer is the full set of pending tasks, so tasks that vanished
    /// (canceled, taken) leave the queue too.
    func pollLoop() async {
        while !Task.isCancelled {
            do {
                let tasks = try await self.context.frontend.pendingJobs(wait: 20)
                self.merge(tasks)
            } catch is CancellationError {
                return
            } catch {
                self.logger.warning("polling the frontend failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    func merge(_ raw: [JSON]) {
        var seen = Set<String>()
        for value in raw {
            guard let task = try? BuildTask(value) else { continue }
            seen.insert(task.id)
            if self.queued[task.id] != nil || self.running[task.id] != nil { continue }
            self.queued[task.id] = task
            self.scheduler.enqueue(
                SchedulerTask(
                    id: task.id, kind: task.kind == .srpm ? .srpm : .rpm, owner: task.owner, arch: task.arch, sandbox: task.sandbox,
                    background: task.background, submitted: task.submitted, sequence: UInt64(task.buildID)
                )
            )
        }
        for id in self.queued.keys where !seen.contains(id) {
            self.queued[id] = nil
            _ = self.scheduler.remove(id: id)
        }
        self.dispatch()
    }

    func dispatch() {
        let now = Int64(Date().timeIntervalSince1970)
        while self.running.count < self.context.config.maxWorkers, let next = self.scheduler.next(now: now) {
            guard let task = self.queued.removeValue(forKey: next.id) else {
                self.scheduler.finished(id: next.id)
                continue
            }
            let record = JobRecord(task: task.raw, taskID: task.id, phase: .leasing, attempt: 1, ticket: nil, remoteDir: nil, workerID: self.context.workerID)
            self.launch(task, record: record, claim: true)
        }
    }

    func launch(_ task: BuildTask, record: JobRecord, claim: Bool = false) {
        let context = self.context
        self.running[task.id] = Task {
            defer { Task { self.workerFinished(task.id) } }
            if claim {
                do {
                    switch try await context.frontend.claim(task.id, worker: context.workerID) {
                    case .claimed(let full):
                        guard let fresh = try? BuildTask(full) else { return }
                        var r = record
                        r.task = fresh.raw
                        try context.jobs.save(r)
                        await Worker(context: context, task: fresh).run(r)
                    case .canceled, .taken:
                        return
                    }
                } catch {
                    context.logger.error("claim failed", metadata: ["task.id": "\(task.id)", "error": "\(error)"])
                }
            } else {
                await Worker(context: context, task: task).run(record)
            }
        }
    }

    func workerFinished(_ id: String) {
        self.running[id] = nil
        self.scheduler.finished(id: id)
        self.dispatch()
    }

    /// Cancel requests from the Frontend, four times a second: a queued task is dropped, a running worker
    /// cancelled (a worker waiting for a builder lets go of its ticket at once).
    func cancelLoop() async {
        while !Task.isCancelled {
            do {
                for id in try await self.context.frontend.cancelRequests() {
                    await self.cancel(id)
                    try await self.context.frontend.cancelRequestDone(id)
                }
            } catch is CancellationError {
                return
            } catch {
                self.logger.warning("reading cancel requests failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    func cancel(_ id: String) async {
        if self.queued.removeValue(forKey: id) != nil { _ = self.scheduler.remove(id: id) }
        if let worker = self.running[id] {
            self.logger.info("canceling build", metadata: ["task.id": "\(id)"])
            worker.cancel()
            await worker.value
        }
    }

    var status: (queued: Int, running: Int) { (self.queued.count, self.running.count) }
}
