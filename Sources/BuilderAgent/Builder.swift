import Foundation
import Glibc
import KoperJSON
import KoperProtocol
import RPM
import Synchronization
import SystemPackage

/// How RPM tasks are built (`--method`).
enum BuildMethod: String, Sendable, CaseIterable {
    /// `rpmbuild -ra` in a sandbox, with the host's tools (dev, CI on Debian).
    case rpmbuild
    /// `mock -r <generated config> --rebuild` (Fedora builders). Untested here: Debian has no mock.
    case mock
}

/// Everything `koper-builder build` was told on its command line.
struct BuilderOptions: Sendable {
    var taskPath: String
    var outputDirectory: String
    /// `nil`: `mock` when it is on PATH, else `rpmbuild`.
    var method: BuildMethod?
    var sandbox: SandboxKind = .bwrap
    /// Parent of the temporary work directory (default: `$TMPDIR`, else `/tmp`).
    var workParent: String?
    var maxSRPMBytes: Int = 2 << 30
    /// Size of each sandbox tmpfs, and the cap on all result files of one build.
    var diskLimitBytes: Int = 4 << 30
    var memoryLimitBytes: Int?
    var maxProcesses: Int = 1024
    var downloadTimeoutSeconds: Int = 1800
    /// Further tries of an SRPM download that failed transiently (connection refused, 5xx, timeout), with a delay
    /// doubling from `downloadRetryDelay` up to 30 s; then the build ends with status 5 (retry).
    var downloadRetries: Int = 5
    var downloadRetryDelay: Duration = .seconds(2)
    var maxLogBytes: Int = 1 << 30
    var maxLogLineBytes: Int = 32 << 10
    var echoLog: Bool = true
    /// Per-build cgroups below this delegated parent (BuildCgroup); nil: none.
    var cgroupParent: String?
    /// The per-build cgroup's `memory.limit_in_bytes` and `pids.max`; nil: the parent's limits apply.
    var cgroupMemoryBytes: Int?
    var cgroupMaxProcesses: Int?
}

/// Runs one build task from start to `DIR/status` (docs/builder.md).
///
/// Output directory protocol, in this order: `builder.pid` (created exclusively and `flock`ed while the
/// builder lives), `builder-live.log` (grows during the build), the result RPMs, `results.json`, and last
/// `status` (the exit code, written atomically). A directory that already has a `builder.pid` or a `status`
/// is never built into again.
final class Builder: Sendable {
    static let pidFileName = "builder.pid"
    static let liveLogName = "builder-live.log"
    static let resultsFileName = "results.json"
    static let statusFileName = "status"

    let options: BuilderOptions
    let host: HostEnvironment
    let supervisor = BuildSupervisor()

    init(options: BuilderOptions, host: HostEnvironment = .current()) {
        self.options = options
        self.host = host
    }

    /// Runs the build; returns the status that was written to `DIR/status` (or, if the directory could not be
    /// claimed, `.infrastructureError` without touching it).
    func run() async -> BuildStatus {
        // Signals first: a SIGTERM that arrives while the directory is being claimed still ends in status 4.
        let logBox = LogBox()
        self.supervisor.installSignalHandlers { signo in
            logBox.current?.info("received \(signo == SIGINT ? "SIGINT" : "SIGTERM"): canceling the build")
        }
        let dir = self.options.outputDirectory
        let pidFD: Int32
        do throws(BuilderError) {
            pidFD = try self.claimOutputDirectory()
        } catch {
            Self.printError(error.message)
            return .infrastructureError
        }
        defer { _ = close(pidFD) }

        let log: LiveLog
        do throws(BuilderError) {
            log = try LiveLog(
                path: dir + "/" + Self.liveLogName,
                maxLineBytes: self.options.maxLogLineBytes,
                maxTotalBytes: self.options.maxLogBytes,
                echoToStandardError: self.options.echoLog
            )
        } catch {
            Self.printError(error.message)
            self.writeStatus(.infrastructureError)
            return .infrastructureError
        }
        logBox.current = log
        if self.supervisor.isCanceled {
            log.info("received a cancel signal before the build started")
        }

        var packages: [BuiltPackage] = []
        var status: BuildStatus
        var cgroup: BuildCgroup?
        var cgroupError: BuilderError?
        if let parent = self.options.cgroupParent {
            Leftovers.removeOrphanedCgroups(parent: parent) { log.info($0) }
            do throws(BuilderError) {
                let group = try BuildCgroup.enter(
                    parent: parent,
                    memoryLimit: self.options.cgroupMemoryBytes,
                    maxProcesses: self.options.cgroupMaxProcesses
                )
                cgroup = group
                log.info(
                    "build cgroup \(parent)/\(group.name): memory limit \(self.options.cgroupMemoryBytes.map(String.init) ?? "of the parent"), "
                        + "process limit \(self.options.cgroupMaxProcesses.map(String.init) ?? "of the parent")"
                )
            } catch {
                cgroupError = error
            }
        }
        let workDirectory = self.makeWorkDirectory(log: log)
        do throws(BuilderError) {
            if let cgroupError { throw cgroupError }
            guard let workDirectory else {
                throw BuilderError.infrastructure("cannot create a work directory")
            }
            packages = try await self.perform(log: log, workDirectory: workDirectory)
            status = .succeeded
        } catch {
            status = error.status
            log.info("error: \(error.message)")
            // Anything that died because of the cancel reports as canceled.
            packages = []
        }
        if self.supervisor.isCanceled {
            status = .canceled
            packages = []
        }
        if let workDirectory {
            Self.removeTree(workDirectory, log: log)
        }
        if let cgroup {
            let hits = cgroup.limitHits()
            if hits.memory > 0 { log.info("the build reached its memory limit (\(hits.memory) times)") }
            if hits.processes > 0 { log.info("the build reached its process limit: \(hits.processes) forks refused") }
            cgroup.leave()
        }

        do throws(BuilderError) {
            let json = Results.resultsJSON(status == .succeeded ? packages : [])
            try Results.writeAtomically(json.serialized() + [0x0A], to: dir + "/" + Self.resultsFileName)
        } catch {
            log.info("error: \(error.message)")
            status = .infrastructureError
        }
        log.info("build finished: \(status) (exit code \(status.rawValue))")
        log.close()
        self.writeStatus(status)
        return status
    }

    // MARK: - The build

    private func perform(log: LiveLog, workDirectory: String) async throws(BuilderError) -> [BuiltPackage] {
        log.info("koper-builder started: pid \(getpid()), uid \(self.host.userID), host \(self.host.hostName)")
        let task = try self.readTask()
        log.info(
            "task \(task.taskID): build \(task.buildID) of \(task.projectOwner)/\(task.projectName), "
                + (task.chroot.map { "chroot \($0.raw)" } ?? "SRPM build (\(task.sourceType))")
                + ", timeout \(task.timeoutSeconds) s, network \(task.enableNet ? "enabled" : "disabled")"
        )
        guard self.host.userID != 0 else {
            throw .infrastructure(
                "refusing to build as root: run koper-builder as the unprivileged builder user (e.g. runuser -u koperbuild)"
            )
        }
        let context = BuildContext(
            task: task,
            options: self.options,
            host: self.host,
            log: log,
            runner: ProcessRunner(log: log, supervisor: self.supervisor),
            workDirectory: workDirectory
        )
        if task.isSRPMTask {
            return try await SRPMTaskBuilder(context: context).build()
        }
        let method = self.options.method ?? (self.host.find("mock") != nil ? .mock : .rpmbuild)
        log.info(
            "method: \(method.rawValue)" + (method == .rpmbuild ? ", sandbox: \(self.options.sandbox.rawValue)" : "")
        )
        switch method {
        case .rpmbuild:
            return try await RPMBuildMethodBuilder(context: context).build()
        case .mock:
            return try await MockMethodBuilder(context: context).build()
        }
    }

    private func readTask() throws(BuilderError) -> TaskDescription {
        let fd = open(self.options.taskPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .infrastructure(
                "cannot open the task file \(self.options.taskPath): \(String(cString: strerror(errno)))"
            )
        }
        defer { _ = close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count <= TaskDescription.maxTaskBytes {
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes { try FileDescriptor(rawValue: fd).read(into: $0) }
            } catch {
                throw .infrastructure("cannot read the task file: \(error)")
            }
            if n == 0 {
                break
            }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return try TaskDescription.parse(bytes)
    }

    // MARK: - Output directory

    /// Creates `DIR` if needed and `DIR/builder.pid` exclusively; locks it and writes our pid.
    private func claimOutputDirectory() throws(BuilderError) -> Int32 {
        let dir = self.options.outputDirectory
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw .infrastructure("cannot create the output directory \(dir): \(error)")
        }
        if access(dir + "/" + Self.statusFileName, F_OK) == 0 {
            throw .infrastructure(
                "\(dir) already holds a finished build (status file present); refusing to build into it again"
            )
        }
        let path = dir + "/" + Self.pidFileName
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            if errno == EEXIST {
                throw .infrastructure(
                    "\(path) exists: a builder already ran or runs in \(dir); refusing to build into it again"
                )
            }
            throw .infrastructure("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            _ = close(fd)
            throw .infrastructure("cannot lock \(path)")
        }
        LiveLog.writeAll(fd, Array("\(getpid())\n".utf8))
        return fd
    }

    private func writeStatus(_ status: BuildStatus) {
        do throws(BuilderError) {
            try Results.writeAtomically(
                Array("\(status.rawValue)\n".utf8),
                to: self.options.outputDirectory + "/" + Self.statusFileName
            )
        } catch {
            Self.printError(error.message)
        }
    }

    static let workDirectoryPrefix = "koper-build."
    static let workLockName = ".koper-builder.lock"

    /// Creates `PARENT/koper-build.XXXXXX` and holds an exclusive `flock` on a lock file in it until the process
    /// ends (the descriptor is never closed), so a later builder can tell a dead builder's leftovers from a live
    /// one's. Work directories of builders that were killed (SIGKILL leaves no chance to clean up) are removed
    /// first.
    private func makeWorkDirectory(log: LiveLog) -> String? {
        let parent = self.options.workParent ?? (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
        Self.removeStaleWorkDirectories(in: parent, log: log)
        var template = Array((parent + "/" + Self.workDirectoryPrefix + "XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            log.info("error: cannot create a work directory under \(parent): \(String(cString: strerror(errno)))")
            return nil
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let lock = open(path + "/" + Self.workLockName, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            log.info("error: cannot lock the work directory \(path)")
            return nil
        }
        // `lock` stays open (and locked) for the rest of the process on purpose.
        return path
    }

    /// Removes `koper-build.*` directories in `parent` that belong to this user, are older than a minute and
    /// whose lock file nobody holds.
    static func removeStaleWorkDirectories(in parent: String, log: LiveLog) {
        self.removeStaleWorkDirectories(in: parent) { log.info($0) }
    }

    static func removeStaleWorkDirectories(in parent: String, note: (String) -> Void) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else {
            return
        }
        let now = time(nil)
        for name in entries where name.hasPrefix(self.workDirectoryPrefix) {
            let path = parent + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid(),
                now - st.st_mtim.tv_sec > 60
            else {
                continue
            }
            let lock = open(path + "/" + self.workLockName, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            if lock >= 0 {
                let free = flock(lock, LOCK_EX | LOCK_NB) == 0
                _ = close(lock)
                guard free else {
                    continue
                }
            }
            note("removing the work directory of an earlier builder that did not finish: \(path)")
            self.removeTree(path, note: note)
        }
    }

    /// Removes the work directory (making read-only directories writable first, as rpmbuild trees can be).
    static func removeTree(_ path: String, log: LiveLog) {
        self.removeTree(path) { log.info($0) }
    }

    static func removeTree(_ path: String, note: (String) -> Void) {
        let fm = FileManager.default
        if let enumerator = fm.enumerator(atPath: path) {
            for case let relative as String in enumerator {
                let full = path + "/" + relative
                var st = stat()
                if lstat(full, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                    _ = chmod(full, 0o700)
                }
            }
        }
        do {
            try fm.removeItem(atPath: path)
        } catch {
            note("warning: could not remove the directory \(path): \(error)")
        }
    }

    static func printError(_ message: String) {
        LiveLog.writeAll(2, Array("koper-builder: \(message)\n".utf8))
    }
}

/// What every step of one build needs.
struct BuildContext: Sendable {
    var task: TaskDescription
    var options: BuilderOptions
    var host: HostEnvironment
    var log: LiveLog
    var runner: ProcessRunner
    var workDirectory: String

    var outputDirectory: String { self.options.outputDirectory }

    func makeDirectory(_ path: String) throws(BuilderError) {
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw .infrastructure("cannot create \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Downloads an SRPM into `WORK/in/`, checks its size, its SHA-256 (when known) and that it is a source
    /// RPM, and renames it to the name its header gives. Returns the path and the parsed header.
    func fetchSourceRPM(url: String, sha256: String?) async throws(BuilderError) -> (path: String, package: RPMPackage)
    {
        let directory = self.workDirectory + "/in"
        try self.makeDirectory(directory)
        let downloadPath = directory + "/download.rpm"
        let downloader = CurlProcessDownloader(
            runner: self.runner,
            curl: try self.host.require("curl", package: "curl"),
            prlimit: try self.host.require("prlimit", package: "util-linux"),
            environment: self.host.childEnvironment(home: self.workDirectory, tmpdir: self.workDirectory)
        )
        self.log.info("downloading the source RPM (at most \(self.options.maxSRPMBytes) bytes)")
        let started = ContinuousClock.now
        var delay = self.options.downloadRetryDelay
        var tries = 0
        while true {
            tries += 1
            do {
                let result = try await downloader.download(
                    url: url,
                    toFile: downloadPath,
                    timeout: .seconds(self.options.downloadTimeoutSeconds),
                    maxBytes: self.options.maxSRPMBytes
                )
                self.log.info("downloaded \(result.bytes) bytes (HTTP \(result.status))")
                break
            } catch let error as BuilderError {
                // Transient (the server is down or overloaded): try again with backoff, within the download's time
                // limit; after the last try the build ends with status 5 and the Backend runs it again later.
                guard error.status == .retry, tries <= self.options.downloadRetries,
                    ContinuousClock.now - started + delay < .seconds(self.options.downloadTimeoutSeconds)
                else { throw error }
                self.log.info(
                    "\(error.message); trying again in \(delay) (try \(tries + 1) of \(self.options.downloadRetries + 1))"
                )
                _ = unlink(downloadPath)
                try await self.runner.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            } catch {
                throw .infrastructure("download failed: \(error)")
            }
        }
        if let expected = self.task.srpmSHA256 {
            let actual = try Results.sha256Hex(path: downloadPath)
            guard actual == expected else {
                throw .infrastructure("SHA-256 mismatch for the downloaded SRPM: expected \(expected), got \(actual)")
            }
            self.log.info("SHA-256 verified: \(actual)")
        }
        let package: RPMPackage
        do throws(BuilderError) {
            package = try Results.readHeader(path: downloadPath)
        } catch {
            throw .infrastructure("the download is not an RPM file (\(error.message))")
        }
        guard package.isSourcePackage else {
            throw .infrastructure("the download is a binary RPM (\(package.canonicalFilename)), not a source RPM")
        }
        let fileName = package.canonicalFilename
        guard ResultStreamReceiver.isSafeFileName(fileName) else {
            throw .infrastructure("the SRPM's name-version-release gives an unusable file name")
        }
        let path = directory + "/" + fileName
        guard rename(downloadPath, path) == 0 else {
            throw .infrastructure("cannot rename the download: \(String(cString: strerror(errno)))")
        }
        self.log.info("source RPM: \(fileName) (\(package.evr))")
        return (path, package)
    }

    /// Runs a sandboxed step and returns the names of the files it handed out in `stagingDirectory`.
    ///
    /// Status: canceled (4) and timed out (3) first; then 2 if the sandbox never started our script; then
    /// `classify(exitCode)` for a non-zero exit; then 2 if the result stream is broken.
    func runSandboxed(
        _ plan: SandboxPlan,
        stagingDirectory: String,
        stepName: String,
        classify: (Int32) -> BuilderError
    ) async throws(BuilderError) -> [String] {
        let tools = try SandboxTools.locate(self.host, kind: plan.kind)
        let environment = self.host.childEnvironment(home: plan.topDirectory, tmpdir: self.workDirectory + "/tmp")
        let spec = plan.processSpec(tools: tools, hostEnvironment: environment)
        let receiver = ResultStreamReceiver(directory: stagingDirectory, maxTotalBytes: plan.limits.diskBytes)
        let started = ContinuousClock.now
        let limit = plan.limits.timeoutSeconds
        let outcome = try await self.runner.run(
            spec,
            deadline: started + .seconds(limit + plan.limits.killAfterSeconds + 30),
            resultStream: receiver
        )
        let elapsed = ContinuousClock.now - started
        let stream = receiver.result
        if outcome.canceled {
            throw BuilderError(.canceled, "\(stepName) canceled")
        }
        if outcome.timedOut || outcome.exitCode == 124 || (outcome.exitCode == 137 && elapsed >= .seconds(limit)) {
            throw BuilderError(.timedOut, "\(stepName) exceeded the time limit of \(limit) s")
        }
        guard stream.started else {
            let how = outcome.exitCode.map { "exit code \($0)" } ?? "signal \(outcome.signal ?? 0)"
            throw .infrastructure("the sandbox did not start (\(how)); see the messages above")
        }
        if let code = outcome.exitCode, code != 0 {
            throw classify(code)
        }
        guard outcome.exitCode == 0 else {
            throw .infrastructure("\(stepName) was killed by signal \(outcome.signal ?? 0)")
        }
        if let error = stream.error {
            throw .infrastructure("the build's result stream is broken: \(error)")
        }
        guard stream.ended else {
            throw .infrastructure("the build's result stream ended early")
        }
        return stream.files
    }

    var sandboxLimits: SandboxLimits {
        SandboxLimits(
            timeoutSeconds: self.task.timeoutSeconds,
            maxProcesses: self.options.maxProcesses,
            addressSpaceBytes: self.options.memoryLimitBytes,
            diskBytes: self.options.diskLimitBytes
        )
    }
}

/// RPM task, `rpmbuild` method.
struct RPMBuildMethodBuilder: Sendable {
    let context: BuildContext

    func build() async throws(BuilderError) -> [BuiltPackage] {
        let c = self.context
        guard let chroot = c.task.chroot else {
            throw .infrastructure("not an RPM task")
        }
        guard let url = c.task.srpmURL else {
            throw .infrastructure("task: srpm_url is required for an RPM build")
        }
        let rpmbuild = try c.host.require("rpmbuild", package: "rpm")
        let srpm = try await c.fetchSourceRPM(url: url, sha256: c.task.srpmSHA256)

        c.log.info(
            "NOTE: no buildroot dependency resolution happened: the rpmbuild method builds with this host's own tools and "
                + "rpm, not in a \(chroot.raw) chroot; BuildRequires are neither installed nor checked (--nodeps). "
                + "Only the chroot's macros are imitated (dist \(chroot.distTag ?? "unknown"))."
        )
        if chroot.distTag == nil {
            c.log.info("warning: no %dist is known for \(chroot.raw); %{?dist} expands to nothing")
        }
        let macrosHostPath = c.workDirectory + "/koper.macros"
        try Self.writeFile(RPMBuildRecipe.macrosFile, to: macrosHostPath)
        let staging = c.workDirectory + "/results"
        try c.makeDirectory(staging)
        try c.makeDirectory(c.workDirectory + "/tmp")

        let plan: SandboxPlan
        switch c.options.sandbox {
        case .bwrap:
            let srpmInside = "/build/in/" + Results.baseName(srpm.path)
            plan = SandboxPlan(
                kind: .bwrap,
                shareNetwork: c.task.enableNet,
                hostName: c.host.hostName,
                binds: [
                    SandboxBind(hostPath: srpm.path, sandboxPath: srpmInside),
                    SandboxBind(hostPath: macrosHostPath, sandboxPath: "/build/koper.macros"),
                ],
                topDirectory: "/build/top",
                environment: [:],
                limits: c.sandboxLimits,
                command: RPMBuildRecipe.arguments(
                    rpmbuild: rpmbuild,
                    task: c.task,
                    chroot: chroot,
                    srpmPath: srpmInside,
                    topDirectory: "/build/top",
                    temporaryDirectory: "/tmp",
                    macrosPath: "/build/koper.macros",
                    buildHost: c.host.hostName
                )
            )
            c.log.info(
                "sandbox: bubblewrap, network \(c.task.enableNet ? "shared with the host" : "none (loopback only)")"
            )
        case .none:
            let top = c.workDirectory + "/top"
            try c.makeDirectory(top)
            plan = SandboxPlan(
                kind: .none,
                shareNetwork: true,
                hostName: c.host.hostName,
                binds: [],
                topDirectory: top,
                environment: ["HOME": top, "TMPDIR": c.workDirectory + "/tmp"],
                limits: c.sandboxLimits,
                command: RPMBuildRecipe.arguments(
                    rpmbuild: rpmbuild,
                    task: c.task,
                    chroot: chroot,
                    srpmPath: srpm.path,
                    topDirectory: top,
                    temporaryDirectory: c.workDirectory + "/tmp",
                    macrosPath: macrosHostPath,
                    buildHost: c.host.hostName
                )
            )
            c.log.info("WARNING: --sandbox none: the build runs unisolated (it sees the network and the host's files)")
        }
        let files = try await c.runSandboxed(plan, stagingDirectory: staging, stepName: "rpmbuild") { code in
            .buildFailed("rpmbuild failed (exit code \(code))")
        }
        let packages = try Results.collect(names: files, from: staging, into: c.outputDirectory, log: c.log)
        guard packages.contains(where: { $0.nevra.arch != "src" }) else {
            throw .infrastructure("rpmbuild succeeded but produced no binary package")
        }
        return packages
    }

    static func writeFile(_ text: String, to path: String) throws(BuilderError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            throw .infrastructure("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        LiveLog.writeAll(fd, Array(text.utf8))
        _ = close(fd)
    }
}

/// RPM task, `mock` method. Untested against a real mock (Debian has none); see ``MockConfig``.
struct MockMethodBuilder: Sendable {
    let context: BuildContext

    func build() async throws(BuilderError) -> [BuiltPackage] {
        let c = self.context
        guard let chroot = c.task.chroot else {
            throw .infrastructure("not an RPM task")
        }
        guard let url = c.task.srpmURL else {
            throw .infrastructure("task: srpm_url is required for an RPM build")
        }
        let mock = try c.host.require("mock", package: "mock (Fedora)")
        let srpm = try await c.fetchSourceRPM(url: url, sha256: c.task.srpmSHA256)
        let config = MockConfig.render(task: c.task, chroot: chroot)
        let configPath = c.workDirectory + "/koper-\(chroot.raw).cfg"
        try RPMBuildMethodBuilder.writeFile(config, to: configPath)
        c.log.info("mock config \(configPath):\n" + config)
        let resultDirectory = c.outputDirectory + "/mock"
        try c.makeDirectory(resultDirectory)
        let argv = MockConfig.command(
            mock: mock,
            configPath: configPath,
            srpmPath: srpm.path,
            resultDirectory: resultDirectory,
            task: c.task
        )
        let home = getenv("HOME").map { String(cString: $0) } ?? c.workDirectory
        let spec = ProcessSpec(
            executable: argv[0],
            arguments: Array(argv.dropFirst()),
            environment: c.host.childEnvironment(home: home, tmpdir: c.workDirectory),
            workingDirectory: c.workDirectory
        )
        let outcome = try await c.runner.run(spec, deadline: .now + .seconds(c.task.timeoutSeconds))
        if outcome.canceled {
            throw BuilderError(.canceled, "mock canceled")
        }
        if outcome.timedOut {
            throw BuilderError(.timedOut, "mock exceeded the time limit of \(c.task.timeoutSeconds) s")
        }
        guard outcome.exitCode == 0 else {
            throw .buildFailed(
                "mock failed (\(outcome.exitCode.map { "exit code \($0)" } ?? "signal \(outcome.signal ?? 0)"))"
            )
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: resultDirectory)) ?? []
        let packages = try Results.collect(
            names: names.filter { $0.hasSuffix(".rpm") }.sorted(),
            from: resultDirectory,
            into: c.outputDirectory,
            log: c.log
        )
        for p in packages {
            _ = unlink(resultDirectory + "/" + p.fileName)
        }
        return packages
    }
}

/// SRPM build task (`chroot` null): `link` downloads an SRPM, `scm` clones and runs `rpmbuild -bs`.
struct SRPMTaskBuilder: Sendable {
    let context: BuildContext

    func build() async throws(BuilderError) -> [BuiltPackage] {
        let c = self.context
        switch c.task.sourceType {
        case "link", "url":
            return try await self.buildFromLink()
        case "scm":
            return try await self.buildFromSCM()
        default:
            throw .infrastructure(
                "source type '\(c.task.sourceType)' is not supported for an SRPM build by koper-builder"
            )
        }
    }

    private func buildFromLink() async throws(BuilderError) -> [BuiltPackage] {
        let c = self.context
        guard let url = c.task.sourceJSON["url"]?.stringValue ?? c.task.srpmURL else {
            throw .infrastructure("task: source_json.url is required for a link build")
        }
        let srpm = try await c.fetchSourceRPM(url: url, sha256: c.task.srpmSHA256)
        return try Results.collect(
            names: [Results.baseName(srpm.path)],
            from: c.workDirectory + "/in",
            into: c.outputDirectory,
            log: c.log
        )
    }

    private func buildFromSCM() async throws(BuilderError) -> [BuiltPackage] {
        let c = self.context
        let source = c.task.sourceJSON
        guard let url = source["clone_url"]?.stringValue,
            url.hasPrefix("https://") || url.hasPrefix("http://") || url.hasPrefix("git://"),
            FieldRules.isURL(url)
        else {
            throw .infrastructure(
                "source_json.clone_url must be an http, https or git URL (the builder has no SSH keys)"
            )
        }
        let type = source["type"]?.stringValue ?? "git"
        guard type == "git" else {
            throw .infrastructure("SCM type '\(type)' is not supported by koper-builder (only git)")
        }
        let method = source["source_build_method"]?.stringValue ?? "rpkg"
        guard method == "rpkg" || method.isEmpty else {
            throw .infrastructure(
                "source build method '\(method)' is not supported by koper-builder (only rpkg-style: a spec and its sources in git)"
            )
        }
        let committish = source["committish"]?.stringValue ?? ""
        let subdirectory = source["subdirectory"]?.stringValue ?? ""
        let spec = source["spec"]?.stringValue ?? ""
        guard committish.isEmpty || FieldRules.isCommittish(committish) else {
            throw .infrastructure("source_json.committish is not a usable branch, tag or commit")
        }
        guard subdirectory.isEmpty || FieldRules.isRelativePath(subdirectory) else {
            throw .infrastructure("source_json.subdirectory must be a relative path inside the repository")
        }
        guard spec.isEmpty || FieldRules.isRelativePath(spec) else {
            throw .infrastructure("source_json.spec must be a relative path inside the subdirectory")
        }
        // Both run inside the sandbox, which sees the host's /usr.
        _ = try c.host.require("git", package: "git")
        _ = try c.host.require("rpmbuild", package: "rpm")
        let staging = c.workDirectory + "/results"
        try c.makeDirectory(staging)
        try c.makeDirectory(c.workDirectory + "/tmp")
        c.log.info(
            "SCM source build: git clone \(url)" + (committish.isEmpty ? "" : " at \(committish)")
                + ", then rpmbuild -bs with the sources present in the checkout (no spectool: remote Source URLs are not fetched)"
        )
        let top: String
        let kind = c.options.sandbox
        switch kind {
        case .bwrap:
            top = "/build/top"
            c.log.info("sandbox: bubblewrap, network shared with the host (cloning needs it)")
        case .none:
            top = c.workDirectory + "/top"
            try c.makeDirectory(top)
            c.log.info("WARNING: --sandbox none: the SRPM build runs unisolated")
        }
        let plan = SandboxPlan(
            kind: kind,
            shareNetwork: true,
            hostName: c.host.hostName,
            binds: [],
            topDirectory: top,
            environment: ["HOME": top],
            limits: c.sandboxLimits,
            command: [
                "/bin/sh", "-c", SandboxScripts.scmSourceBuild, "koper-scm",
                url, committish, subdirectory, spec, c.host.hostName, top,
            ]
        )
        let files = try await c.runSandboxed(plan, stagingDirectory: staging, stepName: "SRPM build") { code in
            switch code {
            case SandboxScripts.scmCloneFailed:
                return .infrastructure("git clone or checkout failed")
            case SandboxScripts.scmSpecNotFound:
                return .infrastructure("no usable spec file in the checkout")
            default:
                return .buildFailed("rpmbuild -bs failed (exit code \(code))")
            }
        }
        let packages = try Results.collect(names: files, from: staging, into: c.outputDirectory, log: c.log)
        guard packages.count == 1, packages[0].nevra.arch == "src" else {
            throw .infrastructure("the SRPM build produced \(packages.count) packages instead of one source RPM")
        }
        return packages
    }
}

/// The live log once it exists, for the signal handler installed before it.
final class LogBox: Sendable {
    private let value = Mutex<LiveLog?>(nil)

    var current: LiveLog? {
        get { self.value.withLock { $0 } }
        set { self.value.withLock { $0 = newValue } }
    }
}
