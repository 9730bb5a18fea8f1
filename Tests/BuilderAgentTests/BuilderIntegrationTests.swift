import Foundation
import Glibc
import KoperJSON
import TestSupport
import Testing

/// End-to-end runs of the built `koper-builder` binary as an unprivileged user, with the real rpmbuild and
/// bubblewrap, sources served by a loopback HTTP server. Needs root (the tests create the `koperbuild` user
/// and switch to it with setpriv) and the tools of `BuilderFixture.requiredTools`.
@Suite(.serialized, .requires(BuilderFixture.integrationRequirements))
final class BuilderIntegrationTests {
    /// Everything one test makes (served files, tasks, output directories); removed afterwards.
    let root: String
    let served: String
    let server: LoopbackFileServer

    init() throws {
        try BuilderFixture.ensureUser()
        self.root = try BuilderFixture.makeSharedDirectory(prefix: "koper-builder-test")
        self.served = self.root + "/srv"
        try FileManager.default.createDirectory(atPath: self.served, withIntermediateDirectories: false)
        chmod(self.served, 0o755)
        self.server = try LoopbackFileServer(directory: self.served)
    }

    deinit {
        self.server.stop()
        try? FileManager.default.removeItem(atPath: self.root)
    }

    private func makeOutput() throws -> String {
        try BuilderFixture.makeOutputDirectory(in: self.root)
    }

    /// An RPM task for `TestSRPM.probeSpec(name:buildScript:)`, served here, and a fresh output directory.
    private func probeTask(
        _ name: String,
        buildScript: String = "",
        timeout: Int = 600
    ) throws -> (task: String, output: String) {
        let spec = TestSRPM.probeSpec(name: name, probePort: self.server.port, buildScript: buildScript)
        let srpm = try TestSRPM.make(name: name, spec: spec, into: self.served)
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url(srpm), timeout: timeout),
            in: self.served
        )
        return (task, output)
    }

    private func packages(_ output: String) throws -> [[String: String]] {
        let results = try BuilderFixture.readJSON(output + "/results.json")
        return (results["packages"]?.arrayValue ?? []).map { p in
            var d: [String: String] = [:]
            for key in ["name", "version", "release", "arch"] {
                d[key] = p[key]?.stringValue
            }
            d["epoch"] = p["epoch"]?.isNull == true ? "null" : p["epoch"]?.intValue.map(String.init)
            return d
        }
    }

    @Test func noarchBuildYieldsResultsWithDistAndBuildtag() throws {
        let srpm = try TestSRPM.make(
            name: "hello-koper",
            spec: TestSRPM.probeSpec(probePort: self.server.port),
            into: self.served
        )
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(BuilderFixture.rpmTask(srpmURL: self.server.url(srpm)), in: self.served)

        let code = try BuilderFixture.runBuilder(task: task, output: output)
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(code == 0, "log:\n\(log)")
        #expect(BuilderFixture.readString(output + "/status") == "0\n")
        #expect(
            Int(
                (BuilderFixture.readString(output + "/builder.pid") ?? "").trimmingCharacters(
                    in: .whitespacesAndNewlines
                )
            ) != nil
        )

        let packages = try self.packages(output)
        #expect(
            packages == [
                [
                    "name": "hello-koper", "epoch": "null", "version": "1.0", "release": "1.fc41.copr42",
                    "arch": "noarch",
                ],
                ["name": "hello-koper", "epoch": "null", "version": "1.0", "release": "1.fc41.copr42", "arch": "src"],
            ]
        )
        let checksums = try BuilderFixture.readJSON(output + "/results.json")["checksums"]?.objectValue
        for file in ["hello-koper-1.0-1.fc41.copr42.noarch.rpm", "hello-koper-1.0-1.fc41.copr42.src.rpm"] {
            #expect(FileManager.default.fileExists(atPath: output + "/" + file))
            #expect(checksums?[file]?.stringValue == BuilderFixture.sha256(output + "/" + file))
        }

        // brp-compress ran with bash: the man page is gzipped. Vendor and build host come from our macros.
        let files = try BuilderFixture.run(
            "/usr/bin/rpm",
            ["-qlp", output + "/hello-koper-1.0-1.fc41.copr42.noarch.rpm"]
        )
        #expect(files.output.contains("/usr/share/man/man1/hello-koper.1.gz"), "\(files.output)")
        let tags = try BuilderFixture.run(
            "/usr/bin/rpm",
            ["-qp", "--qf", "%{VENDOR}|%{BUILDHOST}", output + "/hello-koper-1.0-1.fc41.copr42.noarch.rpm"]
        )
        #expect(tags.output.hasPrefix("Koper (alice/tools)|"))

        #expect(log.contains("NOTE: no buildroot dependency resolution happened"))
        #expect(log.contains("NET-BLOCKED"), "network access inside %build must fail without enable_net")
        #expect(!log.contains("NET-REACHABLE"))
    }

    @Test func networkIsReachableWhenEnabled() throws {
        let srpm = try TestSRPM.make(
            name: "hello-net",
            spec: TestSRPM.probeSpec(name: "hello-net", probePort: self.server.port),
            into: self.served
        )
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url(srpm), enableNet: true),
            in: self.served
        )
        #expect(try BuilderFixture.runBuilder(task: task, output: output) == 0)
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(log.contains("NET-REACHABLE"), "log:\n\(log)")
    }

    @Test func archSpecificPackageGetsDebuginfo() throws {
        let srpm = try TestSRPM.make(
            name: "hello-c",
            spec: TestSRPM.cSpec,
            sources: ["hello.c": TestSRPM.cSource],
            into: self.served
        )
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(BuilderFixture.rpmTask(srpmURL: self.server.url(srpm)), in: self.served)

        let code = try BuilderFixture.runBuilder(task: task, output: output)
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(code == 0, "log:\n\(log)")
        let arch = try BuilderFixture.run("/usr/bin/uname", ["-m"]).output.trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        let names = try self.packages(output).map { "\($0["name"]!).\($0["arch"]!)" }
        #expect(
            names == ["hello-c.src", "hello-c.\(arch)", "hello-c-debuginfo.\(arch)", "hello-c-debugsource.\(arch)"]
        )
        let debugFiles = try BuilderFixture.run(
            "/usr/bin/rpm",
            ["-qlp", output + "/hello-c-debuginfo-2.0-3.fc41.\(arch).rpm"]
        )
        #expect(
            debugFiles.output.contains("/usr/lib/debug/usr/bin/hello-c-2.0-3.fc41.\(arch).debug"),
            "\(debugFiles.output)"
        )
    }

    @Test func failingBuildExitsOneAndTheDirectoryIsNotReused() throws {
        let (task, output) = try self.probeTask("hello-fail", buildScript: "echo failing on purpose; exit 3")

        // Work directories: one left by a killed builder (removed), one whose builder still holds its lock (kept).
        let work = self.root + "/work"
        let uid = BuilderFixture.userID
        let gid = getpwnam(BuilderFixture.user)!.pointee.pw_gid
        for dir in [work, work + "/koper-build.stale1", work + "/koper-build.alive1"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
            chown(dir, uid, gid)
        }
        let heldLock = open(work + "/koper-build.alive1/.koper-builder.lock", O_RDWR | O_CREAT, 0o644)
        defer { close(heldLock) }
        #expect(flock(heldLock, LOCK_EX | LOCK_NB) == 0)
        for dir in [work + "/koper-build.stale1", work + "/koper-build.alive1"] {
            var old = [timeval(tv_sec: time(nil) - 3600, tv_usec: 0), timeval(tv_sec: time(nil) - 3600, tv_usec: 0)]
            utimes(dir, &old)
        }

        #expect(try BuilderFixture.runBuilder(task: task, output: output, extra: ["--work-dir", work]) == 1)
        #expect(BuilderFixture.readString(output + "/status") == "1\n")
        #expect(try self.packages(output).isEmpty)
        #expect(BuilderFixture.readString(output + "/builder-live.log")?.contains("failing on purpose") == true)
        #expect(!FileManager.default.fileExists(atPath: work + "/koper-build.stale1"))
        #expect(FileManager.default.fileExists(atPath: work + "/koper-build.alive1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: work) == ["koper-build.alive1"])

        // A second run into the same directory is refused and leaves everything as it was.
        #expect(try BuilderFixture.runBuilder(task: task, output: output) == 2)
        #expect(BuilderFixture.readString(output + "/status") == "1\n")
    }

    /// Per-build cgroups (--cgroup): below a parent root delegated to the build user as sandbox-and-hosts.md
    /// describes, a fork bomb and a memory hog fail the build (and the log says which limit), a normal build
    /// succeeds, nothing is left running, and every per-build cgroup is removed.
    @Test(.requires(.writable("/sys/fs/cgroup/pids"), .writable("/sys/fs/cgroup/memory")))
    func cgroupLimitsStopForkAndMemoryAbuse() throws {
        let parent = "koper-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let uid = BuilderFixture.userID
        let gid = getpwnam(BuilderFixture.user)!.pointee.pw_gid
        for c in ["memory", "pids"] {
            let dir = "/sys/fs/cgroup/\(c)/\(parent)"
            try #require(mkdir(dir, 0o755) == 0, "mkdir \(dir): errno \(errno)")
            chown(dir, uid, gid)
            chown(dir + "/cgroup.procs", uid, gid)
        }
        defer { for c in ["memory", "pids"] { rmdir("/sys/fs/cgroup/\(c)/\(parent)") } }
        let limits = ["--cgroup", parent, "--cgroup-pids", "64", "--cgroup-memory", String(256 << 20)]

        func build(_ name: String, _ script: String) throws -> (Int32, String) {
            let (task, output) = try self.probeTask(name, buildScript: script)
            let status = try BuilderFixture.runBuilder(task: task, output: output, extra: limits)
            return (status, BuilderFixture.readString(output + "/builder-live.log") ?? "")
        }
        func leftovers() -> [String] {
            ["memory", "pids"].flatMap { c in
                (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/\(c)/\(parent)"))?.filter {
                    $0.hasPrefix("koper-")
                } ?? []
            }
        }

        var (status, log) = try build("hello-forks", "for i in $(seq 1 200); do sleep 60 & done; wait")
        #expect(status == 1, "\(log.suffix(2000))")
        #expect(log.contains("the build reached its process limit"), "\(log.suffix(2000))")
        #expect(log.contains("build cgroup \(parent)/koper-"))
        (status, log) = try build("hello-memory", "python3 -c 'b = bytearray(768 * 1024 * 1024); print(len(b))'")
        #expect(status == 1, "\(log.suffix(2000))")
        #expect(log.contains("the build reached its memory limit"), "\(log.suffix(2000))")
        (status, log) = try build("hello-limited", "echo within limits")
        #expect(status == 0, "\(log.suffix(2000))")
        #expect(!log.contains("reached its"))
        usleep(300_000)
        #expect(leftovers().isEmpty, "\(leftovers())")
        #expect(BuilderFixture.userProcesses().filter { $0.hasSuffix(" sleep") || $0.hasSuffix(" python3") }.isEmpty)
        #expect(BuildCgroupProbe.procs("/sys/fs/cgroup/pids/\(parent)").isEmpty)

        // An unusable parent is an infrastructure error (exit 2), never a build without the limits asked for.
        let (task, output) = try self.probeTask("hello-noparent")
        #expect(
            try BuilderFixture.runBuilder(task: task, output: output, extra: ["--cgroup", "no-such-parent-\(parent)"])
                == 2
        )
        #expect(
            BuilderFixture.readString(output + "/builder-live.log")?.contains("cannot create the build cgroup") == true
        )
    }

    @Test func timeoutExitsThreeAndKillsTheBuild() throws {
        let (task, output) = try self.probeTask("hello-slow", buildScript: "sleep 300", timeout: 3)

        let started = Date()
        #expect(try BuilderFixture.runBuilder(task: task, output: output) == 3)
        #expect(Date().timeIntervalSince(started) < 60)
        #expect(BuilderFixture.readString(output + "/status") == "3\n")
        usleep(500_000)
        #expect(BuilderFixture.userProcesses().filter { $0.hasSuffix(" sleep") || $0.hasSuffix(" rpmbuild") }.isEmpty)
    }

    @Test func liveLogGrowsDuringTheBuildAndSIGTERMCancels() throws {
        let (task, output) = try self.probeTask(
            "hello-ticks",
            buildScript: "for i in $(seq 1 300); do echo tick $i; sleep 1; done"
        )

        let process = try BuilderFixture.startBuilder(task: task, output: output)
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        // The log shows tick 1, then later tick 2, while the builder is still running.
        var sizes: [Int] = []
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
            if log.contains("tick 1\n") && sizes.isEmpty {
                sizes.append(log.utf8.count)
            }
            if log.contains("tick 3\n") {
                sizes.append(log.utf8.count)
                break
            }
            usleep(100_000)
        }
        #expect(process.isRunning)
        #expect(sizes.count == 2 && sizes[0] < sizes[1], "the live log must grow while the build runs: \(sizes)")

        // Cancel through the pid file, as the Backend does.
        let pid = pid_t(
            (BuilderFixture.readString(output + "/builder.pid") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        )
        #expect(pid == process.processIdentifier)
        kill(pid ?? process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 4)
        #expect(BuilderFixture.readString(output + "/status") == "4\n")
        #expect(BuilderFixture.readString(output + "/builder-live.log")?.contains("received SIGTERM") == true)
        usleep(500_000)
        let leftovers = BuilderFixture.userProcesses().filter {
            $0.hasSuffix(" rpmbuild") || $0.hasSuffix(" sleep") || $0.hasSuffix(" bash")
        }
        #expect(leftovers.isEmpty, "no build process may survive a cancel: \(leftovers)")
    }

    @Test func downloadThatIsNotAnSRPMExitsTwo() throws {
        try "this is not an RPM\n".write(toFile: self.served + "/not-an.src.rpm", atomically: true, encoding: .utf8)
        chmod(self.served + "/not-an.src.rpm", 0o644)
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url("not-an.src.rpm")),
            in: self.served
        )
        #expect(try BuilderFixture.runBuilder(task: task, output: output) == 2)
        #expect(BuilderFixture.readString(output + "/status") == "2\n")
        #expect(BuilderFixture.readString(output + "/builder-live.log")?.contains("is not an RPM file") == true)

        let missing = try self.makeOutput()
        let task404 = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url("missing.src.rpm")),
            in: self.served
        )
        #expect(try BuilderFixture.runBuilder(task: task404, output: missing) == 2)
        #expect(BuilderFixture.readString(missing + "/builder-live.log")?.contains("HTTP status 404") == true)
    }

    /// A download the server refuses (connection refused: nothing listens) or answers 503 is retried with backoff,
    /// then the build ends with status 5 (transient: the Backend runs it again), not 2.
    @Test func unreachableSRPMServerIsRetriedThenExitsFive() throws {
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: "http://127.0.0.1:1/hello-1.0-1.src.rpm"),
            in: self.served
        )
        let extra = ["--download-retries", "2", "--download-retry-delay", "0.1"]
        #expect(try BuilderFixture.runBuilder(task: task, output: output, extra: extra) == 5)
        #expect(BuilderFixture.readString(output + "/status") == "5\n")
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(log.components(separatedBy: "cannot connect to the server); trying again").count - 1 == 2, "\(log)")
        #expect(log.contains("try 3 of 3"), "\(log)")
        #expect(
            log.contains("build finished: transient infrastructure failure (to be retried) (exit code 5)"),
            "\(log)"
        )
    }

    @Test func checksumMismatchAndOversizeExitTwo() throws {
        let srpm = try TestSRPM.make(
            name: "hello-koper",
            spec: TestSRPM.probeSpec(probePort: self.server.port),
            into: self.served
        )
        let wrong = String(repeating: "ab", count: 32)
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url(srpm), sha256: wrong),
            in: self.served
        )
        #expect(try BuilderFixture.runBuilder(task: task, output: output) == 2)
        #expect(BuilderFixture.readString(output + "/builder-live.log")?.contains("SHA-256 mismatch") == true)

        let small = try self.makeOutput()
        let plain = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url(srpm)),
            in: self.served
        )
        #expect(try BuilderFixture.runBuilder(task: plain, output: small, extra: ["--max-srpm-bytes", "1000"]) == 2)
        #expect(BuilderFixture.readString(small + "/builder-live.log")?.contains("larger than 1000 bytes") == true)
    }

    @Test func refusesToBuildAsRoot() throws {
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url("x.src.rpm")),
            in: self.served
        )
        let r = try BuilderFixture.run(BuilderFixture.binary, ["build", "--task", task, "--output", output, "--quiet"])
        #expect(r.status == 2)
        #expect(BuilderFixture.readString(output + "/builder-live.log")?.contains("refusing to build as root") == true)
    }

    @Test func unsandboxedBuildStillBuildsButIsNotIsolated() throws {
        let srpm = try TestSRPM.make(
            name: "hello-none",
            spec: TestSRPM.probeSpec(name: "hello-none", probePort: self.server.port),
            into: self.served
        )
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(BuilderFixture.rpmTask(srpmURL: self.server.url(srpm)), in: self.served)
        let code = try BuilderFixture.runBuilder(task: task, output: output, extra: ["--sandbox", "none"])
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(code == 0, "log:\n\(log)")
        #expect(log.contains("WARNING: --sandbox none"))
        #expect(log.contains("NET-REACHABLE"))
        #expect(try self.packages(output).map { $0["release"]! } == ["1.fc41.copr42", "1.fc41.copr42"])
    }

    @Test func mockMethodWithoutMockIsAnInfrastructureError() throws {
        let output = try self.makeOutput()
        let task = try BuilderFixture.writeTask(
            BuilderFixture.rpmTask(srpmURL: self.server.url("x.src.rpm")),
            in: self.served
        )
        #expect(try BuilderFixture.runBuilder(task: task, output: output, extra: ["--method", "mock"]) == 2)
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(log.contains("mock is not installed"), "log:\n\(log)")
    }

    @Test func srpmTaskFromLink() throws {
        let srpm = try TestSRPM.make(
            name: "hello-koper",
            spec: TestSRPM.probeSpec(probePort: self.server.port),
            into: self.served
        )
        let output = try self.makeOutput()
        let task: JSON = [
            "task_id": "43", "build_id": 43, "chroot": nil, "project_owner": "alice", "project_name": "tools",
            "timeout": 600, "enable_net": false, "source_type": "link",
            "source_json": ["url": .string(self.server.url(srpm))], "srpm_url": .string(self.server.url(srpm)),
        ]
        let path = try BuilderFixture.writeTask(task, in: self.served)
        #expect(try BuilderFixture.runBuilder(task: path, output: output) == 0)
        #expect(
            try self.packages(output) == [
                ["name": "hello-koper", "epoch": "null", "version": "1.0", "release": "1", "arch": "src"]
            ]
        )
        #expect(FileManager.default.fileExists(atPath: output + "/hello-koper-1.0-1.src.rpm"))
    }

    @Test func srpmTaskFromGit() throws {
        // A git repository with the package in pkg/, served over git's "dumb" HTTP protocol.
        let work = try BuilderFixture.makeSharedDirectory(prefix: "koper-builder-git")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let checkout = work + "/checkout"
        try FileManager.default.createDirectory(atPath: checkout + "/pkg", withIntermediateDirectories: true)
        try TestSRPM.cSpec.write(toFile: checkout + "/pkg/hello-c.spec", atomically: true, encoding: .utf8)
        try TestSRPM.cSource.write(toFile: checkout + "/pkg/hello.c", atomically: true, encoding: .utf8)
        let git = "/usr/bin/git"
        let id = ["-c", "user.name=Koper Test", "-c", "user.email=test@koper.invalid"]
        for args in [
            ["init", "-q", "-b", "main", "."], ["add", "."], id + ["commit", "-q", "-m", "hello-c"], ["tag", "v2.0"],
        ] {
            let r = try BuilderFixture.run(git, args, cwd: checkout)
            try #require(r.status == 0, "git \(args): \(r.output)")
        }
        let bare = self.served + "/hello-c.git"
        try? FileManager.default.removeItem(atPath: bare)
        try #require(try BuilderFixture.run(git, ["clone", "-q", "--bare", checkout, bare]).status == 0)
        try #require(try BuilderFixture.run(git, ["update-server-info"], cwd: bare).status == 0)
        _ = try BuilderFixture.run("/usr/bin/chmod", ["-R", "a+rX", bare])

        let output = try self.makeOutput()
        let task: JSON = [
            "task_id": "44", "build_id": 44, "chroot": nil, "project_owner": "alice", "project_name": "tools",
            "timeout": 600, "enable_net": false, "source_type": "scm",
            "source_json": [
                "clone_url": .string(self.server.url("hello-c.git")), "committish": "v2.0", "subdirectory": "pkg",
                "spec": "", "type": "git", "source_build_method": "rpkg",
            ],
        ]
        let path = try BuilderFixture.writeTask(task, in: self.served)
        let code = try BuilderFixture.runBuilder(task: path, output: output)
        let log = BuilderFixture.readString(output + "/builder-live.log") ?? ""
        #expect(code == 0, "log:\n\(log)")
        #expect(
            try self.packages(output) == [
                ["name": "hello-c", "epoch": "null", "version": "2.0", "release": "3", "arch": "src"]
            ]
        )
        #expect(log.contains("checked out commit"))

        // A missing spec is a source error (2), not a build failure.
        let bad = try self.makeOutput()
        var badTask = task
        if case .object(var o) = badTask {
            o["source_json"] = ["clone_url": .string(self.server.url("hello-c.git")), "subdirectory": "nonexistent"]
            badTask = .object(o)
        }
        #expect(
            try BuilderFixture.runBuilder(task: try BuilderFixture.writeTask(badTask, in: self.served), output: bad)
                == 2
        )
    }
}

enum BuildCgroupProbe {
    static func procs(_ dir: String) -> [String] {
        ((try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? "").split(separator: "\n").map(
            String.init
        )
    }
}
