import CoprModel
import Dispatch
import Foundation
import Gzip
import KoperJSON
import KoperProtocol
import Logging
import RPMSign
import RepoPublisher
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
    func run(_ initial: JobRecord) async {
        var record = initial
        while true {
            do {
                try await self.attempt(&record)
                return
            } catch is CancellationError {
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
                if record.attempt >= self.config.maxAttempts {
                    self.appendBackendLog("giving up after \(record.attempt) attempt(s)")
                    await self.finishBackendLog()
                    await self.report(state: .failed, packages: nil, srpm: nil, record: record)
                    self.context.jobs.remove(record.taskID)
                    return
                }
                record.attempt += 1
                record.phase = .leasing
                record.ticket = nil
                record.remoteDir = nil
                try? self.context.jobs.save(record)
            } catch {
                self.logger.error("worker failed", metadata: ["error": "\(error)"])
                self.appendBackendLog("worker error: \(error)")
                if Task.isCancelled {
                    await self.cleanUpCanceled(record)
                    return
                }
                await self.finishBackendLog()
                await self.report(state: .failed, packages: nil, srpm: nil, record: record)
                if let t = record.ticket {
                    try? await self.context.tickets.close(TicketID(rawValue: t), reusable: false)
                }
                self.context.jobs.remove(record.taskID)
                return
            }
        }
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
            throw BuilderLost(description: "cannot connect to \(resource.name): \(error)")
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
            try await self.context.frontend.update(
                BackendUpdate(
                    updateID: "\(self.task.taskID)#\(record.attempt)#running",
                    taskID: self.task.taskID,
                    state: .running,
                    resultDir: self.task.resultDir
                )
            )
        }

        // 3. Watch it: tail the live log, enforce the timeout, notice cancellation and a dead builder.
        let status = try await self.watch(ssh, remoteDir: remoteDir, resource: resource)
        record.phase = .collecting
        try self.context.jobs.save(record)

        // 4. Collect results into the results tree, sign, publish, report.
        let collected = try await self.collect(ssh, remoteDir: remoteDir, status: status)
        let state: BuildState = status == 0 && !collected.packages.isEmpty ? .succeeded : .failed
        if state == .succeeded {
            try await self.signAndPublish()
        }
        await self.report(state: state, packages: collected.packages, srpm: collected.srpm, record: record)
        _ = try? await ssh.run("rm -rf \(shellQuote(remoteDir))", timeout: .seconds(60))
        try? await self.context.tickets.close(ticket, reusable: true)
        self.context.jobs.remove(record.taskID)
    }

    func startBuild(_ ssh: any BuilderConnection, remoteDir: String) async throws {
        let dir = shellQuote(remoteDir)
        let mk = try await ssh.run("mkdir -p \(dir)/output", timeout: .seconds(30))
        guard mk.exitStatus == 0 else { throw BuilderLost(description: "cannot create the work directory") }
        try await ssh.upload(try Wire.encode(self.task), to: "\(remoteDir)/task.json")
        // setsid: the build is its own process group (killed as a whole on cancel) and survives our SSH session.
        let start = try await ssh.run(
            "cd \(dir) && setsid nohup \(shellQuote(self.config.builderCommand)) build --task task.json --output output"
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

    /// Polls the builder once a second until `output/status` exists; returns the builder's exit status.
    func watch(_ ssh: any BuilderConnection, remoteDir: String, resource: Resource) async throws -> Int {
        let dir = shellQuote(remoteDir)
        let clock = ContinuousClock()
        let limit = min(self.task.timeoutSeconds, self.config.maxBuildTimeout)
        let deadline = clock.now.advanced(by: .seconds(limit))
        let liveLog = "\(self.localResultDir)/builder-live.log"
        var offset = fileSize(liveLog)
        var failures = 0
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
                    throw BuilderLost(description: "builder \(resource.name) unreachable: \(error)")
                }
            }
            do {
                try await Task.sleep(for: .seconds(1))
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

    func report(state: BuildState, packages: [BuiltPackage]?, srpm: SourcePackage?, record: JobRecord) async {
        // An SRPM build that produced no SRPM failed, whatever the builder said.
        let final: BuildState = self.task.kind == .srpm && state == .succeeded && srpm == nil ? .failed : state
        let update = BackendUpdate(
            updateID: "\(self.task.taskID)#\(record.attempt)#\(state.rawValue)",
            taskID: self.task.taskID,
            state: final,
            resultDir: self.task.resultDir,
            builtPackages: self.task.kind == .rpm ? packages : nil,
            srpm: self.task.kind == .srpm && final == .succeeded ? srpm : nil
        )
        do {
            try await self.context.frontend.update(update)
        } catch {
            self.logger.error("cannot report the final state", metadata: ["error": "\(error)"])
        }
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
