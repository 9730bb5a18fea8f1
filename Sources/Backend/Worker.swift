import CoprModel
import Dispatch
import Foundation
import Gzip
import KoperJSON
import KoperProtocol
import Logging
import RPMSign
import RepoPublisher
import ServiceKit
import Tickets

#if canImport(Glibc)
import Glibc
#endif

/// Everything a worker needs, shared by all workers.
struct BackendContext: Sendable {
    let config: BackendConfig
    let frontend: FrontendClient
    let keygen: KeygenClient?
    let publisher: RepoPublisher
    let tickets: TicketService
    let jobs: JobStore
    /// How workers reach leased builders (SSH in production).
    let transport: any BuilderTransport
    let workerID: String
    let logger: Logger
}

/// Why a worker gave up on a builder (and the task should run elsewhere) rather than on the build.
struct BuilderLost: Error, CustomStringConvertible {
    let description: String
}

/// A failure that is neither the build's nor its builder's death: retried, bounded, never a failed build.
struct InfrastructureFailure: Error, CustomStringConvertible {
    let description: String
    /// The builder itself is fine (it reported the failure): it may serve the next build.
    var builderUsable = false
    /// The builder was retired (unreachable): the next attempt, on another builder, need not wait.
    var builderRetired = false
}

/// Runs one task on a leased builder: lease → upload the task → start `koper-builder` detached → tail the live log
/// into the results tree → collect results → report → release. Cancellation of the Swift task cancels the build
/// (a waiting lease is abandoned at once; a running build's process group is killed).
struct Worker: Sendable {
    let context: BackendContext
    let task: TaskDescription

    var config: BackendConfig { self.context.config }
    var logger: Logger {
        var l = self.context.logger
        l[metadataKey: "task.id"] = "\(self.task.taskID)"
        return l
    }

    var localResultDir: String { "\(self.config.resultsDir)/\(self.task.relativeResultPath)" }

    /// Runs the task to its end. `record` is the persisted state (a fresh claim, or one found after a restart).
    ///
    /// Failures are sorted by whose they are: the build's (status 1–3: reported `failed`), a builder that died
    /// under the build (retried elsewhere, at most `max_attempts` in all, then `failed`: a package can kill its
    /// builder), and the infrastructure's (retried with backoff, at most `max_infra_retries` times, then the task
    /// is handed back to the queue; never `failed`).
    func run(_ initial: JobRecord) async {
        var record = initial
        if record.phase == .reporting {
            await self.deliverOrKeep(record)
            return
        }
        while true {
            do {
                try await self.attempt(&record)
                return
            } catch is CancellationError {
                if record.phase == .reporting {
                    // The job file stays: the next start delivers.
                    self.logger.notice("final report left in the job file for the next start")
                    return
                }
                await self.cleanUpCanceled(record)
                return
            } catch let lost as BuilderLost {
                self.logger.warning(
                    "builder lost; retrying elsewhere",
                    metadata: ["reason": "\(lost)", "attempt": "\(record.attempt)"]
                )
                self.appendBackendLog("builder lost on attempt \(record.attempt): \(lost)")
                if let t = record.ticket {
                    // The lost attempt's lease must not hold the builder (a no-op if markBroken closed it already),
                    // also when this was the last attempt.
                    try? await self.context.tickets.close(TicketID(rawValue: t), reusable: false)
                }
                if record.attempt - record.infraFailures >= self.config.maxAttempts {
                    self.appendBackendLog("giving up after \(record.attempt) attempt(s)")
                    await self.finishBackendLog()
                    await self.finish(&record, state: .failed, packages: nil, srpm: nil)
                    return
                }
                self.nextAttempt(&record)
            } catch {
                // Everything else is the infrastructure's: a builder unreachable, an SRPM server down (status 5),
                // SSH, the results disk, publishing.
                if Task.isCancelled {
                    if record.phase == .reporting {
                        self.logger.notice("final report left in the job file for the next start")
                        return
                    }
                    await self.cleanUpCanceled(record)
                    return
                }
                let infra = error as? InfrastructureFailure
                self.logger.warning(
                    "infrastructure failure; the build will be retried",
                    metadata: ["reason": "\(error)", "attempt": "\(record.attempt)"]
                )
                self.appendBackendLog("infrastructure failure on attempt \(record.attempt): \(error)")
                if let t = record.ticket {
                    // A builder that did its part (it reported status 5) serves the next build; any other stays out.
                    try? await self.context.tickets.close(
                        TicketID(rawValue: t),
                        reusable: infra?.builderUsable ?? false
                    )
                }
                record.infraFailures += 1
                if record.infraFailures > self.config.maxInfraRetries {
                    self.appendBackendLog(
                        "\(record.infraFailures) infrastructure failure(s): handing the task back to the queue"
                    )
                    await self.finishBackendLog()
                    await self.finish(&record, state: .pending, packages: nil, srpm: nil)
                    return
                }
                let first = BackendConfig.duration(self.config.infraRetryDelay)
                let delay =
                    infra?.builderRetired == true
                    ? .zero
                    : min(
                        first * (1 << min(record.infraFailures - 1, 20)),
                        BackendConfig.duration(self.config.infraRetryMaxDelay)
                    )
                if delay > .zero { self.appendBackendLog("retrying in \(delay)") }
                self.nextAttempt(&record)
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    await self.cleanUpCanceled(record)
                    return
                }
            }
        }
    }

    func nextAttempt(_ record: inout JobRecord) {
        record.attempt += 1
        record.phase = .leasing
        record.ticket = nil
        record.remoteDir = nil
        try? self.context.jobs.save(record)
    }

    // MARK: One attempt

    func attempt(_ record: inout JobRecord) async throws {
        // 1. Lease a builder (cancellable at once).
        let ticket: TicketID
        if let t = record.ticket {
            ticket = TicketID(rawValue: t)
        } else {
            ticket = try await self.context.tickets.open(
                tags: Set(self.task.tags),
                sandbox: self.task.sandbox,
                owner: "\(self.task.taskID)#\(record.attempt)"
            )
            record.ticket = ticket.rawValue
            try self.context.jobs.save(record)
        }
        let resource: Resource
        do {
            resource = try await self.context.tickets.wait(ticket)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw error
        }
        try Task.checkCancellation()

        // 2. Start (or find) the build on it.
        let ssh: any BuilderConnection
        do {
            ssh = try await self.context.transport.connect(resource, logger: self.logger)
        } catch {
            try? await self.context.tickets.markBroken(resource)
            record.ticket = nil
            throw InfrastructureFailure(
                description: "cannot connect to \(resource.name): \(error)",
                builderRetired: true
            )
        }
        defer { ssh.close() }
        let remoteDir: String
        if let existing = record.remoteDir, record.phase != .leasing {
            remoteDir = existing
            self.logger.info("reattaching to a running build", metadata: ["builder": "\(resource.name)"])
            self.appendBackendLog("reattached to \(resource.name):\(remoteDir) after a backend restart")
        } else {
            remoteDir =
                "\(self.config.remoteWorkDir)/\(self.task.taskID)-a\(record.attempt)-\(UInt32.random(in: 0...UInt32.max))"
            try self.prepareLocalResultDir(fresh: true)
            self.appendBackendLog("attempt \(record.attempt) on \(resource.name) (pool \(resource.pool))")
            try await self.startBuild(ssh, remoteDir: remoteDir)
            record.remoteDir = remoteDir
            record.phase = .running
            try self.context.jobs.save(record)
            // Best effort: a Frontend that is away must not stop the build (the final report says how it ended).
            do {
                try await self.context.frontend.update(
                    BackendUpdate(
                        updateID: record.updateID("running"),
                        taskID: self.task.taskID,
                        state: .running,
                        resultDir: self.task.resultDir
                    ),
                    policy: RetryPolicy(attempts: 3, initialDelay: .milliseconds(200), maxDelay: .seconds(1))
                )
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                self.logger.warning(
                    "reporting the running state failed; the build goes on",
                    metadata: ["error": "\(error)"]
                )
            }
        }

        // 3. Watch it: tail the live log, enforce the timeout, notice cancellation and a dead builder.
        let status = try await self.watch(ssh, remoteDir: remoteDir, resource: resource)
        record.phase = .collecting
        try self.context.jobs.save(record)

        // 4. Collect results into the results tree, sign, publish; then the report, durable in the job file.
        let collected = try await self.collect(ssh, remoteDir: remoteDir, status: status)
        if status == Self.retryStatus {
            _ = try? await ssh.run("rm -rf \(shellQuote(remoteDir))", timeout: .seconds(60))
            throw InfrastructureFailure(
                description: "koper-builder on \(resource.name) ended with status 5 (transient: see builder-live.log)",
                builderUsable: true
            )
        }
        let state: BuildState = status == 0 && !collected.packages.isEmpty ? .succeeded : .failed
        if state == .succeeded {
            try await self.signAndPublish()
        }
        record.report = self.finalUpdate(state: state, packages: collected.packages, srpm: collected.srpm, record)
        record.phase = .reporting
        // The job file no longer names the ticket: a restart before the close below finds it orphaned and closes it.
        record.ticket = nil
        try self.context.jobs.save(record)
        _ = try? await ssh.run("rm -rf \(shellQuote(remoteDir))", timeout: .seconds(60))
        try? await self.context.tickets.close(ticket, reusable: true)
        try await self.deliverReport(record)
    }

    /// koper-builder's exit status for a transient infrastructure failure (docs/builder.md).
    static let retryStatus = 5

    func startBuild(_ ssh: any BuilderConnection, remoteDir: String) async throws {
        let dir = shellQuote(remoteDir)
        let mk = try await ssh.run("mkdir -p \(dir)/output", timeout: .seconds(30))
        guard mk.exitStatus == 0 else { throw BuilderLost(description: "cannot create the work directory") }
        try await ssh.upload(try Wire.encode(self.task), to: "\(remoteDir)/task.json")
        // setsid: the build is its own process group (killed as a whole on cancel) and survives our SSH session.
        // Leftovers of builders that were killed (their build directories, work directories, cgroups) go first.
        let cleanup =
            "\(shellQuote(self.config.builderCommand)) cleanup --quiet --builds-dir \(shellQuote(self.config.remoteWorkDir))"
            + self.cgroupArguments.map { " " + shellQuote($0) }.joined()
        let start = try await ssh.run(
            "(\(cleanup)) >/dev/null 2>&1 </dev/null; "
                + "cd \(dir) && setsid nohup \(shellQuote(self.config.builderCommand)) build --task task.json --output output"
                + self.config.builderArguments.map { " " + shellQuote($0) }.joined()
                + " >builder.out 2>&1 </dev/null & echo $!",
            timeout: .seconds(30)
        )
        guard start.exitStatus == 0,
            let pid = Int(String(decoding: start.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw BuilderLost(description: "cannot start koper-builder")
        }
        try await ssh.upload(Array("\(pid)\n".utf8), to: "\(remoteDir)/worker.pid")
    }

    /// Probes the builder (backing off from `probe_interval` to `probe_max_interval`) until `output/status` exists;
    /// returns the builder's exit status.
    func watch(_ ssh: any BuilderConnection, remoteDir: String, resource: Resource) async throws -> Int {
        let dir = shellQuote(remoteDir)
        let clock = ContinuousClock()
        let limit = min(self.task.timeoutSeconds, self.config.maxBuildTimeout)
        let deadline = clock.now.advanced(by: .seconds(limit))
        let liveLog = "\(self.localResultDir)/builder-live.log"
        var offset = fileSize(liveLog)
        var failures = 0
        var interval = BackendConfig.duration(self.config.probeInterval)
        let maxInterval = BackendConfig.duration(self.config.probeMaxInterval)
        while true {
            if Task.isCancelled {
                await self.killRemote(ssh, dir: dir)
                throw CancellationError()
            }
            if clock.now >= deadline {
                await self.killRemote(ssh, dir: dir, why: "timed out after \(limit) s")
                let note = "\n[koper] build timed out after \(limit) seconds\n"
                appendFile(liveLog, Array(note.utf8))
                // Also at the end of the builder's own copy: collect() publishes that one, and it must say why.
                _ = try? await ssh.run(
                    "printf '%s' \(shellQuote(note)) >> \(dir)/output/builder-live.log",
                    timeout: .seconds(30)
                )
                return 3
            }
            do {
                let probe = try await ssh.run(
                    // A zombie is dead: on a host whose PID 1 does not reap orphans (a container without an
                    // init), `kill -0` keeps succeeding for a builder that died.
                    "cat \(dir)/output/status 2>/dev/null; echo '|'; stat -c %s \(dir)/output/builder-live.log 2>/dev/null; echo '|'; "
                        + "s=$(ps -o stat= -p \"$(cat \(dir)/worker.pid 2>/dev/null)\" 2>/dev/null); case \"$s\" in ''|*Z*) ;; *) echo alive;; esac",
                    timeout: .seconds(30)
                )
                failures = 0
                let parts = String(decoding: probe.stdout, as: UTF8.self).split(
                    separator: "|",
                    omittingEmptySubsequences: false
                )
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                let remoteSize = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                while remoteSize > offset {
                    let chunk = try await ssh.readFile(
                        "\(remoteDir)/output/builder-live.log",
                        from: offset,
                        maxBytes: min(remoteSize - offset, 1 << 20)
                    )
                    if chunk.isEmpty { break }
                    appendFile(liveLog, chunk)
                    offset += chunk.count
                }
                if let status = Int(parts.first ?? "") { return status }
                if parts.count > 2 && parts[2] != "alive" {
                    // The builder process is gone without writing a status: it was killed (OOM, reboot).
                    throw BuilderLost(description: "koper-builder on \(resource.name) died without a status")
                }
            } catch let e as BuilderLost {
                throw e
            } catch {
                failures += 1
                if failures >= 10 {
                    try? await self.context.tickets.markBroken(resource)
                    throw InfrastructureFailure(
                        description: "builder \(resource.name) unreachable: \(error)",
                        builderRetired: true
                    )
                }
            }
            // Probes back off (1 s growing by half to `probe_max_interval`): a long build costs the builder's sshd
            // one command every few seconds, not one a second. Never past the deadline; a cancel ends the wait.
            let pause = min(interval, max(deadline - clock.now, .milliseconds(10)))
            interval = min(interval * 3 / 2, maxInterval)
            do {
                try await Task.sleep(for: pause)
            } catch {
                await self.killRemote(ssh, dir: dir)
                throw CancellationError()
            }
        }
    }

    /// Kills the build's process group on the builder (`setsid` made the builder its leader). Runs in a detached
    /// task: the worker's own task is cancelled by then, and the kill must still go out.
    func killRemote(_ ssh: any BuilderConnection, dir: String, why: String = "canceled") async {
        // The whole session, not only the process group: the builder may put rpmbuild in a group of its own.
        let command = """
            p=$(cat \(dir)/worker.pid); pkill -TERM -s "$p"; kill -TERM -- -"$p" 2>/dev/null; \
            for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -s "$p" >/dev/null || break; sleep 0.2; done; \
            pkill -KILL -s "$p"; kill -KILL -- -"$p" 2>/dev/null; true
            """
        _ = await Task.detached { try? await ssh.run(command, timeout: .seconds(15)) }.value
        self.appendBackendLog("\(why): the build's processes were killed on the builder")
    }

    struct Collected {
        var packages: [BuiltPackage]
        var srpm: SourcePackage?
    }

    /// The builder's `results.json`: `{"packages": [{name, epoch, version, release, arch}…]}`.
    struct BuilderResults: Decodable {
        var packages: [BuiltPackage]
    }

    /// Downloads the builder's output into a private temp dir, then moves the files into the result dir.
    func collect(_ ssh: any BuilderConnection, remoteDir: String, status: Int) async throws -> Collected {
        let listing = try await ssh.run("ls -1 \(shellQuote(remoteDir))/output", timeout: .seconds(30))
        let names = String(decoding: listing.stdout, as: UTF8.self).split(separator: "\n").map(String.init).filter {
            isSafeComponent($0)
                && ($0.hasSuffix(".rpm") || $0 == "results.json" || $0.hasSuffix(".log") || $0 == "status")
        }
        let tmp = "\(self.config.stateDir)/collect-\(self.task.taskID)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        for name in names {
            try await ssh.downloadFile("\(remoteDir)/output/\(name)", toLocalPath: "\(tmp)/\(name)", limit: 8 << 30)
        }
        // Reading, moving and gzipping whole files blocks: it runs on blockingQueue, not the cooperative pool.
        let found = try await runBlocking { () throws -> Collected in
            var packages: [BuiltPackage] = []
            var srpm: SourcePackage? = nil
            if let data = FileManager.default.contents(atPath: "\(tmp)/results.json"),
                let results = try? Wire.decode(BuilderResults.self, from: [UInt8](data))
            {
                packages = results.packages
                if let s = packages.first(where: { $0.arch == "src" }) {
                    let url = names.first { $0.hasSuffix(".src.rpm") }.map {
                        "\(self.config.resultsBase)/\(self.task.relativeResultPath)/\($0)"
                    }
                    srpm = SourcePackage(name: s.name, epoch: s.epoch, version: s.version, release: s.release, url: url)
                }
            }
            // Move into place. The live log already there is replaced by the builder's complete copy, gzipped.
            let fm = FileManager.default
            for name in names where name.hasSuffix(".rpm") || name == "results.json" {
                let dest = "\(self.localResultDir)/\(name)"
                try? fm.removeItem(atPath: dest)
                try fm.moveItem(atPath: "\(tmp)/\(name)", toPath: dest)
            }
            if let log = fm.contents(atPath: "\(tmp)/builder-live.log")
                ?? fm.contents(atPath: "\(self.localResultDir)/builder-live.log")
            {
                try writeAtomically(try Gzip.compress([UInt8](log)), to: "\(self.localResultDir)/builder-live.log.gz")
                unlink("\(self.localResultDir)/builder-live.log")
            }
            return Collected(packages: packages, srpm: srpm)
        }
        self.appendBackendLog("builder exited with status \(status); \(found.packages.count) package(s) collected")
        await self.finishBackendLog()
        return Collected(
            packages: found.packages.filter { self.task.kind == .srpm || $0.arch != "src" },
            srpm: found.srpm
        )
    }

    /// Signs every RPM of the result dir with the project's key (Keygen; waits while Keygen is down, never
    /// publishes unsigned RPMs), publishes `pubkey.gpg`, then updates the chroot's repodata.
    func signAndPublish() async throws {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: self.localResultDir)) ?? []).filter {
            $0.hasSuffix(".rpm")
        }.sorted()
        if self.context.keygen != nil {
            try await signRPMs(
                self.context,
                in: self.localResultDir,
                names: names,
                owner: self.task.projectOwner,
                project: self.task.projectName
            )
            self.appendBackendLog(
                "signed \(names.count) package(s) with the key of \(self.task.projectOwner)/\(self.task.projectName)"
            )
            try await publishPublicKey(self.context, owner: self.task.projectOwner, project: self.task.projectName)
        } else {
            self.appendBackendLog("no keygen configured: packages left unsigned")
        }
        if let chroot = self.task.chroot {
            let dir = "\(self.config.resultsDir)/\(self.task.projectOwner)/\(self.task.projectDirname)/\(chroot.raw)"
            let result = try await self.context.publisher.publish(directory: dir)
            self.logger.info(
                "repodata published",
                metadata: ["packages": "\(result.packageCount)", "seconds": "\(result.seconds)"]
            )
        }
        // The backend log was gzipped by collect(); the lines above went to a new backend.log: fold it in.
        await self.finishBackendLog()
    }

    /// `--cgroup PARENT` of `builder_arguments`, for `koper-builder cleanup`.
    var cgroupArguments: [String] {
        guard let i = self.config.builderArguments.firstIndex(of: "--cgroup"),
            i + 1 < self.config.builderArguments.count
        else { return [] }
        return ["--cgroup", self.config.builderArguments[i + 1]]
    }

    func finalUpdate(
        state: BuildState,
        packages: [BuiltPackage]?,
        srpm: SourcePackage?,
        _ record: JobRecord
    ) -> BackendUpdate {
        // An SRPM build that produced no SRPM failed, whatever the builder said.
        let final: BuildState = self.task.kind == .srpm && state == .succeeded && srpm == nil ? .failed : state
        return BackendUpdate(
            updateID: record.updateID(state.rawValue),
            taskID: self.task.taskID,
            state: final,
            resultDir: self.task.resultDir,
            builtPackages: self.task.kind == .rpm && final != .pending ? packages : nil,
            srpm: self.task.kind == .srpm && final == .succeeded ? srpm : nil
        )
    }

    /// Ends the task with `state` (`failed`, or `pending` to hand it back): the update goes into the job file
    /// first, then it is delivered.
    func finish(_ record: inout JobRecord, state: BuildState, packages: [BuiltPackage]?, srpm: SourcePackage?) async {
        record.report = self.finalUpdate(state: state, packages: packages, srpm: srpm, record)
        record.phase = .reporting
        record.ticket = nil
        do {
            try self.context.jobs.save(record)
        } catch {
            self.logger.error("cannot save the final report in the job file", metadata: ["error": "\(error)"])
        }
        await self.deliverOrKeep(record)
    }

    /// `deliverReport`, with cancellation leaving the job file for the next start.
    func deliverOrKeep(_ record: JobRecord) async {
        do {
            try await self.deliverReport(record)
        } catch {
            self.logger.notice("final report left in the job file for the next start")
        }
    }

    /// Sends the job file's final report until the Frontend answers it (applied, duplicate, final or canceled: all
    /// mean it is settled), however long that takes: retries back off from `report_retry_delay` to
    /// `report_retry_max_delay`. Only a refusal of the update itself (4xx other than 401/403/408/429) ends it
    /// unacknowledged. The job file goes once it is settled; a cancellation (the Backend stops) keeps it.
    func deliverReport(_ record: JobRecord) async throws {
        guard let update = record.report else {
            self.context.jobs.remove(record.taskID)
            return
        }
        var delay = BackendConfig.duration(self.config.reportRetryDelay)
        let maxDelay = BackendConfig.duration(self.config.reportRetryMaxDelay)
        var tries = 0
        while true {
            tries += 1
            do {
                try await self.context.frontend.update(update, policy: RetryPolicy(attempts: 1))
                self.logger.info(
                    "final state reported",
                    metadata: ["state": "\(update.state.rawValue)", "tries": "\(tries)"]
                )
                self.context.jobs.remove(record.taskID)
                return
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as ServiceCallError where !Self.worthRetrying(error) {
                self.logger.error(
                    "the frontend refused the final report",
                    metadata: ["error": "\(error)", "state": "\(update.state.rawValue)"]
                )
                self.context.jobs.remove(record.taskID)
                return
            } catch {
                self.logger.warning(
                    "reporting the final state failed; retrying with backoff",
                    metadata: ["error": "\(error)", "tries": "\(tries)"]
                )
                try await Task.sleep(for: delay)
                delay = min(delay * 2, maxDelay)
            }
        }
    }

    static func worthRetrying(_ error: ServiceCallError) -> Bool {
        error.isTransient || [401, 403, 408, 429].contains(error.status ?? 0)
    }

    func cleanUpCanceled(_ record: JobRecord) async {
        self.appendBackendLog("canceled")
        await self.finishBackendLog()
        if let t = record.ticket {
            // On a task of its own: this one is cancelled, and the ticket service refuses cancelled callers (the
            // lease would stay open and hold the builder for good).
            let tickets = self.context.tickets
            do {
                try await Task.detached { try await tickets.close(TicketID(rawValue: t), reusable: false) }.value
            } catch {
                self.logger.warning("closing the canceled build's ticket failed", metadata: ["error": "\(error)"])
            }
        }
        self.context.jobs.remove(record.taskID)
    }

    // MARK: Local files

    func prepareLocalResultDir(fresh: Bool) throws {
        let fm = FileManager.default
        if fresh, fm.fileExists(atPath: self.localResultDir) {
            // Never let two attempts write one result dir: the previous attempt's files go first. The backend log
            // stays: it tells why there was another attempt.
            for name in try fm.contentsOfDirectory(atPath: self.localResultDir)
            where name != "backend.log" && name != "backend.log.gz" {
                try fm.removeItem(atPath: "\(self.localResultDir)/\(name)")
            }
        }
        try fm.createDirectory(atPath: self.localResultDir, withIntermediateDirectories: true)
    }

    func appendBackendLog(_ line: String) {
        try? FileManager.default.createDirectory(atPath: self.localResultDir, withIntermediateDirectories: true)
        appendFile("\(self.localResultDir)/backend.log", Array("[\(isoNow())] \(line)\n".utf8))
    }

    /// Gzips `backend.log` into `backend.log.gz` (on blockingQueue: it reads and compresses whole files).
    func finishBackendLog() async {
        let path = "\(self.localResultDir)/backend.log"
        _ = try? await runBlocking {
            guard let data = FileManager.default.contents(atPath: path) else { return }
            // Append to an existing .gz as a further gzip member (readers see one concatenated log).
            var previous: [UInt8] = []
            if let old = FileManager.default.contents(atPath: path + ".gz") { previous = [UInt8](old) }
            guard let gz = try? Gzip.compress([UInt8](data)) else { return }
            try? writeAtomically(previous + gz, to: path + ".gz")
            unlink(path)
        }
    }
}

func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
}

func appendFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return }
    defer { close(fd) }
    bytes.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = write(fd, raw.baseAddress! + off, raw.count - off)
            if n <= 0 { return }
            off += n
        }
    }
}

func isoNow() -> String {
    var t = time(nil)
    var tm = tm()
    gmtime_r(&t, &tm)
    return String(
        format: "%04d-%02d-%02dT%02d:%02d:%02dZ",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Blocking file work (signing rewrites whole RPMs, logs are gzipped whole, forks copy result directories) runs
/// here, never on the Swift concurrency pool.
let blockingQueue = DispatchQueue(label: "koper.backend.blocking", attributes: .concurrent)

func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        blockingQueue.async { c.resume(with: Result { try body() }) }
    }
}

/// Signs `names` (RPM files in `dir`) in place with the key of OWNER/PROJECT through Keygen; waits while Keygen is
/// down. Nothing to do without a Keygen.
func signRPMs(_ context: BackendContext, in dir: String, names: [String], owner: String, project: String) async throws {
    guard let keygen = context.keygen else { return }
    for name in names {
        let path = "\(dir)/\(name)"
        let prepared = try await runBlocking { try RPMFileSigner.prepare(path: path) }
        let signature = try await keygen.sign(owner: owner, project: project, bytes: prepared.mainHeader)
        _ = try await runBlocking { try RPMFileSigner.finish(prepared, signaturePacket: signature) }
    }
}

/// Writes `results/OWNER/PROJECT/pubkey.gpg` (the `gpgkey=` of the .repo file) from Keygen, atomically.
func publishPublicKey(_ context: BackendContext, owner: String, project: String) async throws {
    guard let keygen = context.keygen else { return }
    let path = "\(context.config.resultsDir)/\(owner)/\(project)/pubkey.gpg"
    let key = try await keygen.publicKey(owner: owner, project: project)
    if let existing = FileManager.default.contents(atPath: path), [UInt8](existing) == key { return }
    try FileManager.default.createDirectory(
        atPath: "\(context.config.resultsDir)/\(owner)/\(project)",
        withIntermediateDirectories: true
    )
    try writeAtomically(key, to: path)
}
