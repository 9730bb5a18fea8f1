import Foundation
import Glibc
import KoperJSON
import LibCrypto
import TestSupport

@testable import BuilderAgent

/// Fixtures for the koper-builder tests: the throw-away build user, the built binary, a loopback HTTP file
/// server (python3 -m http.server), SRPMs made with the host's rpmbuild, and running the builder as the user.
enum BuilderFixture {
    static let user = "koperbuild"

    /// Tools the integration tests run (Debian packages: bubblewrap, rpm, curl, python3, util-linux, gcc,
    /// git, elfutils, cpio, xz-utils).
    static let requiredTools = [
        "/usr/bin/bwrap", "/usr/bin/rpmbuild", "/usr/bin/curl", "/usr/bin/python3", "/usr/bin/setpriv",
        "/usr/bin/gcc", "/usr/bin/git", "/usr/bin/eu-strip", "/usr/bin/cpio", "/usr/bin/xz",
    ]

    /// Integration tests need root (to create the user and switch to it) and ``requiredTools``.
    static var integrationRequirements: [IntegrationRequirement] {
        [.root] + self.requiredTools.map { IntegrationRequirement.tool($0) }
    }

    /// Creates the unprivileged build user when missing (a system user without a home).
    static func ensureUser() throws {
        if getpwnam(self.user) != nil {
            return
        }
        let r = try self.run(
            "/usr/sbin/useradd",
            ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", self.user]
        )
        guard r.status == 0 || getpwnam(self.user) != nil else {
            throw FixtureError("useradd failed: \(r.output)")
        }
    }

    static var userID: uid_t {
        getpwnam(BuilderFixture.user)!.pointee.pw_uid
    }

    /// The `koper-builder` binary next to the test bundle, copied (once per test process, replacing the previous
    /// copy) into a world-readable directory so the build user can run it whatever the checkout's permissions.
    static let binary: String = {
        let env = ProcessInfo.processInfo.environment["KOPER_BUILDER_BINARY"]
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let source = env ?? bundleDir + "/koper-builder"
        let dir = "/tmp/koper-builder-test-bin"
        mkdir(dir, 0o755)
        chmod(dir, 0o755)
        let temporary = dir + "/koper-builder.\(getpid())"
        unlink(temporary)
        _ = try! Results.copy(from: source, to: temporary)  // retries EINTR, unlike FileManager.copyItem
        chmod(temporary, 0o755)
        rename(temporary, dir + "/koper-builder")
        return dir + "/koper-builder"
    }()

    /// A new directory under /tmp that the build user can read (0755).
    static func makeSharedDirectory(prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw FixtureError("mkdtemp failed")
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        chmod(path, 0o755)
        return path
    }

    /// A new empty output directory under `parent`, owned by the build user.
    static func makeOutputDirectory(in parent: String) throws -> String {
        let dir = parent + "/out-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        chown(dir, self.userID, gid_t(getpwnam(self.user)!.pointee.pw_gid))
        return dir
    }

    struct RunResult {
        var status: Int32
        var output: String
    }

    /// Runs a command to completion, collecting stdout and stderr together.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], cwd: String? = nil) throws -> RunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let cwd {
            process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return RunResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Starts `koper-builder build` as the build user (setpriv execs, so the process is the builder itself).
    static func startBuilder(task: String, output: String, extra: [String] = []) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments =
            [
                "--reuid", self.user, "--regid", self.user, "--init-groups", "--reset-env", "--",
                self.binary, "build", "--task", task, "--output", output, "--quiet",
            ] + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs `koper-builder build` as the build user and returns its exit code.
    static func runBuilder(task: String, output: String, extra: [String] = []) throws -> Int32 {
        let process = try self.startBuilder(task: task, output: output, extra: extra)
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Writes a task description (readable by the build user) and returns its path.
    static func writeTask(_ task: JSON, in dir: String) throws -> String {
        let path = dir + "/task-\(UInt32.random(in: 0...UInt32.max)).json"
        try Data(task.serialized()).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
        return path
    }

    /// A task for `fedora-41-x86_64`, build 42 of alice/tools, downloading `srpmURL`.
    static func rpmTask(srpmURL: String, timeout: Int = 600, enableNet: Bool = false, sha256: String? = nil) -> JSON {
        [
            "task_id": "42-fedora-41-x86_64", "build_id": 42, "chroot": "fedora-41-x86_64", "arch": "x86_64",
            "project_owner": "alice", "project_name": "tools", "project_dirname": "tools", "submitter": "alice",
            "timeout": .int(timeout), "enable_net": .bool(enableNet), "source_type": "upload", "source_json": [:],
            "srpm_url": .string(srpmURL), "srpm_sha256": JSON(sha256), "package_name": "hello",
            "repos": [], "buildroot_pkgs": [], "with_opts": [], "without_opts": [],
        ]
    }

    static func readString(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    static func readJSON(_ path: String) throws -> JSON {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError("missing \(path)")
        }
        return try JSONParser.parse(Array(data))
    }

    static func sha256(_ path: String) -> String {
        Crypto.sha256Hex(Array(FileManager.default.contents(atPath: path) ?? Data()))
    }

    /// The processes of the build user, as `pid comm` lines (zombies excluded).
    static func userProcesses() -> [String] {
        let r = try? self.run("/usr/bin/ps", ["-u", self.user, "-o", "pid=,stat=,comm="])
        return (r?.output ?? "").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter {
                !$0.isEmpty
                    && !$0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first!.hasPrefix("Z")
            }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Python's `http.server` (the module `python3 -m http.server` runs) on a free loopback port, serving one
/// directory.
///
/// Foundation's `Process` starts children with most signals blocked (the mask of the spawning Dispatch
/// thread), so SIGTERM would not stop the server: ``stop()`` uses SIGKILL, and the server also exits by itself
/// when its parent (the test process) is gone or after 15 minutes, so a crashed test run leaves nothing behind.
final class LoopbackFileServer {
    let directory: String
    let port: Int
    private let process: Process

    private static let script = """
        import functools, http.server, os, sys, threading, time
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        print("port", server.server_address[1], flush=True)
        parent, started = os.getppid(), time.monotonic()
        def watchdog():
            while os.getppid() == parent and time.monotonic() - started < 900:
                time.sleep(1)
            os._exit(0)
        threading.Thread(target=watchdog, daemon=True).start()
        server.serve_forever()
        """

    init(directory: String) throws {
        self.directory = directory
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-u", "-c", Self.script, directory]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        var text = ""
        let handle = pipe.fileHandleForReading
        while !text.contains("\n") {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard text.hasPrefix("port "), let port = Int(text.dropFirst(5).prefix { $0.isNumber }) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw FixtureError("the HTTP server did not report its port: \(text)")
        }
        self.process = process
        self.port = port
    }

    func url(_ name: String) -> String { "http://127.0.0.1:\(self.port)/\(name)" }

    func stop() {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
        self.process.waitUntilExit()
    }

    deinit {
        self.stop()
    }
}

/// Source RPMs for the tests, made with the host's `rpmbuild -bs` (as root; only the builder must not be).
enum TestSRPM {
    /// Builds an SRPM from `spec` and `sources` (file name → content) and copies it into `directory`.
    static func make(
        name: String,
        spec: String,
        sources: [String: String] = [:],
        into directory: String
    ) throws -> String {
        let work = try BuilderFixture.makeSharedDirectory(prefix: "koper-srpm-src")
        defer { try? FileManager.default.removeItem(atPath: work) }
        try spec.write(toFile: work + "/\(name).spec", atomically: true, encoding: .utf8)
        for (file, content) in sources {
            try content.write(toFile: work + "/" + file, atomically: true, encoding: .utf8)
        }
        let r = try BuilderFixture.run(
            "/usr/bin/rpmbuild",
            ["--define", "_topdir \(work)/top", "--define", "_sourcedir \(work)", "-bs", "\(work)/\(name).spec"]
        )
        guard r.status == 0 else {
            throw FixtureError("rpmbuild -bs failed: \(r.output)")
        }
        let srpms = try FileManager.default.contentsOfDirectory(atPath: work + "/top/SRPMS")
        guard let srpm = srpms.first else {
            throw FixtureError("no SRPM written")
        }
        try? FileManager.default.removeItem(atPath: directory + "/" + srpm)
        try FileManager.default.copyItem(atPath: work + "/top/SRPMS/" + srpm, toPath: directory + "/" + srpm)
        chmod(directory + "/" + srpm, 0o644)
        return srpm
    }

    /// noarch, installs a script and a man page; `%build` probes the loopback HTTP server on `probePort`
    /// (printing NET-REACHABLE or NET-BLOCKED) and runs `buildScript`. Release uses `%{?dist}%{?buildtag}`.
    static func probeSpec(name: String = "hello-koper", probePort: Int, buildScript: String = "") -> String {
        """
        Name: \(name)
        Version: 1.0
        Release: 1%{?dist}%{?buildtag}
        Summary: Koper builder test package
        License: MIT
        BuildArch: noarch
        BuildRequires: a-build-requirement-that-no-debian-host-has

        %description
        Test package.

        %prep

        %build
        if curl -s -m 5 -o /dev/null http://127.0.0.1:\(probePort)/; then echo NET-REACHABLE; else echo NET-BLOCKED; fi
        \(buildScript)

        %install
        mkdir -p %{buildroot}%{_bindir} %{buildroot}%{_mandir}/man1
        printf '#!/bin/sh\\necho hello\\n' > %{buildroot}%{_bindir}/\(name)
        chmod 755 %{buildroot}%{_bindir}/\(name)
        printf '.TH HELLO 1\\n.SH NAME\\nhello\\n' > %{buildroot}%{_mandir}/man1/\(name).1

        %files
        %{_bindir}/\(name)
        %{_mandir}/man1/\(name).1*

        """
    }

    /// An arch-specific C program built with `-g`, so Fedora-style debuginfo/debugsource subpackages appear.
    static let cSpec = """
        Name: hello-c
        Version: 2.0
        Release: 3%{?dist}
        Summary: Koper builder C test package
        License: MIT
        Source0: hello.c

        %description
        C test package.

        %prep
        %setup -q -c -T
        cp %{SOURCE0} .

        %build
        gcc -g -O2 -o hello-c hello.c

        %install
        install -D -m 755 hello-c %{buildroot}%{_bindir}/hello-c

        %files
        %{_bindir}/hello-c

        """

    static let cSource = "#include <stdio.h>\nint main(void) { puts(\"hello from C\"); return 0; }\n"
}
