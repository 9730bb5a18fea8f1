import Foundation
import TestSupport
import Testing

@testable import Frontend

/// The whole build path with real parts: Frontend (in-process) + `koper-backend` (a real process that can be
/// killed) + builder hosts (unprivileged sshd) running the real `koper-builder` with rpmbuild.
final class BuildStack: @unchecked Sendable {
    let frontend: FrontendHarness
    let builders: [SSHDFixture]
    let dir: String
    let backendPort: Int
    let configPath: String
    let lock = NSLock()
    var backend: Process?

    static var binDir: String { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path }
    static var requirements: [IntegrationRequirement] {
        [.tool(binDir + "/koper-backend"), .tool(binDir + "/koper-builder"), .root, .tool("/usr/sbin/sshd")]
    }

    var resultsDir: String { "\(self.dir)/results" }
    var resultsURL: String { "http://127.0.0.1:\(self.backendPort)/results" }

    init(builders count: Int = 1, maxPerPool: Int? = nil, extraConfig: [String: Any] = [:]) async throws {
        self.backendPort = try FreePort.allocate()
        let resultsURL = "http://127.0.0.1:\(self.backendPort)/results"
        self.frontend = try await FrontendHarness { $0.resultsURL = resultsURL }
        self.dir = try makeTemporaryDirectory(prefix: "koper-flow")
        chmod(self.dir, 0o755)
        var builders: [SSHDFixture] = []
        for _ in 0..<count { builders.append(try await SSHDFixture.start()) }
        self.builders = builders
        let tickets = try await PostgresFixture.makeDatabaseAsync()
        // The builder hosts share this machine's filesystem: the backend's key must be readable by us only.
        let key = "\(self.dir)/id_ed25519"
        try FileManager.default.copyItem(atPath: builders[0].clientPrivateKeyPath, toPath: key)
        chmod(key, 0o600)
        for b in builders.dropFirst() {
            // Every fixture authorises its own client key; install ours too.
            let pub = try String(contentsOfFile: builders[0].clientPrivateKeyPath + ".pub", encoding: .utf8)
            let auth = b.directory + "/authorized_keys"
            let existing = (try? String(contentsOfFile: auth, encoding: .utf8)) ?? ""
            try (existing + pub).write(toFile: auth, atomically: false, encoding: .utf8)
        }
        let hosts: [[String: Any]] = builders.map {
            ["host": $0.host, "port": $0.port, "user": $0.user, "host_key": $0.hostPublicKeyPath]
        }
        var config: [String: Any] = [
            "frontend_url": self.frontend.url, "backend_secret": FrontendHarness.backendSecret,
            "listen_port": self.backendPort,
            "results_url": resultsURL, "results_dir": "\(self.dir)/results", "state_dir": "\(self.dir)/state",
            "tickets_database": tickets, "ssh_private_key": key, "builder_command": "\(Self.binDir)/koper-builder",
            "remote_work_dir": "koper-builds", "log_level": "debug",
            "pools": [
                [
                    "name": "local", "tags": ["arch_x86_64", "arch_noarch"], "max": maxPerPool ?? count,
                    "max_prealloc": 0, "static_hosts": hosts,
                ]
            ],
        ]
        for (k, v) in extraConfig { config[k] = v }
        self.configPath = "\(self.dir)/backend.json"
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(
            to: URL(fileURLWithPath: self.configPath)
        )
        try self.startBackend()
    }

    func startBackend() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binDir + "/koper-backend")
        p.arguments = ["serve", "--config", self.configPath]
        let log = "\(self.dir)/backend.log"
        if !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
        }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        h.seekToEndOfFile()
        p.standardOutput = h
        p.standardError = h
        try p.run()
        self.lock.withLock { self.backend = p }
    }

    func killBackendHard() async {
        guard let p = self.lock.withLock({ self.backend }) else { return }
        kill(p.processIdentifier, SIGKILL)
        for _ in 0..<100 where p.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
    }

    func stop() async {
        if let p = self.lock.withLock({ self.backend }) {
            kill(p.processIdentifier, SIGTERM)
            for _ in 0..<100 where p.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        for b in self.builders { b.stop() }
        await self.frontend.stop()
    }

    var backendLog: String { (try? String(contentsOfFile: "\(self.dir)/backend.log", encoding: .utf8)) ?? "" }

    func state(_ id: Int) async throws -> String {
        try await self.frontend.get("/api_3/build/\(id)").json?["state"] as? String ?? "?"
    }

    /// Polls until the build reaches one of `states` (or the time runs out); returns the last state seen.
    func wait(_ id: Int, for states: Set<String>, timeout: Duration = .seconds(120)) async throws -> String {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        var last = ""
        while clock.now < end {
            last = try await self.state(id)
            if states.contains(last) { return last }
            try await Task.sleep(for: .milliseconds(200))
        }
        return last
    }

    func upload(
        _ user: FrontendHarness.Credentials,
        project: String,
        srpm: String,
        timeout: Int? = nil
    ) async throws -> Int {
        let d = try makeTemporaryDirectory()
        let json =
            timeout.map { #"{"ownername": "\#(user.user)", "projectname": "\#(project)", "timeout": \#($0)}"# }
            ?? #"{"ownername": "\#(user.user)", "projectname": "\#(project)"}"#
        try json.write(toFile: "\(d)/json", atomically: true, encoding: .utf8)
        let r = try await curl([
            "-u", "\(user.login):\(user.token)", "-F", "pkgs=@\(srpm)", "-F", "json=@\(d)/json",
            "\(self.frontend.url)/api_3/build/create/upload",
        ])
        guard let id = r.json?["id"] as? Int else { throw SRPMFixture.Failure(description: "upload failed: \(r.body)") }
        return id
    }

    /// Processes of the builder users running rpmbuild (left-over builds).
    func remoteBuildProcesses() async throws -> Int {
        var total = 0
        for b in self.builders {
            let r = try await Command.run("/usr/bin/pgrep", ["-u", b.user, "-f", "rpmbuild|koper-builder"])
            total += r.output.split(separator: "\n").count
        }
        return total
    }
}

/// A real `koper-keygen` process (RSA-2048 keys to keep the test short; the key size changes nothing here).
final class KeygenProcess: @unchecked Sendable {
    let process = Process()
    let root: String
    let secret = "flow-keygen-secret"
    private(set) var url = ""

    init() throws {
        self.root = try makeTemporaryDirectory(prefix: "koper-kg")
    }

    static func start(port: Int = 0) async throws -> KeygenProcess {
        let k = try KeygenProcess()
        let config: [String: Any] = [
            "listen_host": "127.0.0.1", "listen_port": port, "secret": k.secret, "gnupg_home": k.root + "/gnupg",
            "key_type": "rsa2048", "pool_size": 1, "sign_domain": "example.net", "state_dir": k.root + "/state",
            "port_file": k.root + "/port",
        ]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: k.root + "/keygen.json"))
        k.process.executableURL = URL(fileURLWithPath: BuildStack.binDir + "/koper-keygen")
        k.process.arguments = ["serve", "--config", k.root + "/keygen.json"]
        k.process.standardOutput = FileHandle.nullDevice
        k.process.standardError = FileHandle.nullDevice
        try k.process.run()
        let clock = ContinuousClock()
        let t0 = clock.now
        while clock.now - t0 < .seconds(60), k.process.isRunning {
            if let port = (try? String(contentsOfFile: k.root + "/port", encoding: .utf8)).flatMap({
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }) {
                k.url = "http://127.0.0.1:\(port)"
                return k
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        await k.stop()
        throw SRPMFixture.Failure(description: "koper-keygen did not start")
    }

    func stop() async {
        if self.process.isRunning { kill(self.process.processIdentifier, SIGTERM) }
        for _ in 0..<100 where self.process.isRunning { try? await Task.sleep(for: .milliseconds(50)) }
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        _ = try? await Command.run(
            "/usr/bin/gpgconf",
            ["--homedir", self.root + "/gnupg", "--kill", "gpg-agent"],
            timeout: 30
        )
    }
}

/// An SRPM with a subpackage (two binary RPMs per build).
func twoPackageSRPM(name: String) async throws -> String {
    let spec = """
        Name: \(name)
        Version: 2.0
        Release: 1
        Summary: signed
        License: MIT
        BuildArch: noarch
        AutoReqProv: no

        %description
        Signed.

        %package extra
        Summary: the subpackage

        %description extra
        Extra.

        %install
        mkdir -p %{buildroot}/usr/share/\(name)
        echo main > %{buildroot}/usr/share/\(name)/main
        echo extra > %{buildroot}/usr/share/\(name)/extra

        %files
        /usr/share/\(name)/main

        %files extra
        /usr/share/\(name)/extra

        """
    return try await SRPMFixture.fromSpec(spec, name: name)
}

@Suite(.serialized, .requires(BuildStack.requirements))
struct BuildFlowTests {
    func project(_ s: BuildStack, _ name: String) async throws -> FrontendHarness.Credentials {
        let u = try await s.frontend.makeUser("u\(UInt16.random(in: 0...UInt16.max))")
        let r = try await s.frontend.send(
            "POST",
            "/api_3/project/add/\(u.user)",
            json: #"{"name": "\#(name)", "chroots": ["fedora-39-x86_64"]}"#,
            auth: u
        )
        #expect(r.status == 200, "\(r.body)")
        return u
    }

    @Test func uploadBuildsOnALeasedBuilderAndDownloads() async throws {
        let s = try await BuildStack()
        let u = try await project(s, "flow")
        let srpm = try await SRPMFixture.slow(name: "flowpkg", seconds: 4)
        // Submitted through the real copr-cli when it is there (CI), else through the same API call.
        let id: Int
        if let cli = coprCLI {
            let home = try makeTemporaryDirectory(prefix: "koper-home")
            let r = try await Command.run(
                cli,
                ["--config", try s.frontend.coprConfig(u), "build", "flow", srpm, "--nowait"],
                environment: ["HOME": home]
            )
            #expect(r.status == 0, "\(r)")
            id = try #require(
                r.output.split(separator: "\n").first { $0.hasPrefix("Created builds:") }.flatMap {
                    Int($0.split(separator: " ").last!)
                }
            )
        } else {
            id = try await s.upload(u, project: "flow", srpm: srpm)
        }
        // While it runs, the live log is readable over HTTP.
        #expect(
            try await s.wait(id, for: ["running"], timeout: .seconds(60)) == "running",
            "\(s.backendLog.suffix(3000))"
        )
        let dir = String(format: "%08d-flowpkg", id)
        let live = "\(s.resultsURL)/\(u.user)/flow/fedora-39-x86_64/\(dir)/builder-live.log"
        var sawLive = false
        for _ in 0..<40 {
            let r = try await curl([live])
            if r.status == 200 && r.body.contains("tick") {
                sawLive = true
                break
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(sawLive, "the live log was not readable during the build")
        #expect(try await s.wait(id, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(3000))")
        let files = try FileManager.default.contentsOfDirectory(
            atPath: "\(s.resultsDir)/\(u.user)/flow/fedora-39-x86_64/\(dir)"
        )
        #expect(files.contains { $0.hasPrefix("flowpkg-1.0-1") && $0.hasSuffix(".noarch.rpm") }, "\(files)")
        #expect(files.contains("builder-live.log.gz"))
        #expect(files.contains("backend.log.gz"))
        #expect(files.contains("results.json"))
        let built = try await s.frontend.get("/api_3/build/built-packages/\(id)")
        #expect(
            ((built.json?["fedora-39-x86_64"] as? [String: Any])?["packages"] as? [[String: Any]])?.contains {
                $0["name"] as? String == "flowpkg"
            } == true
        )
        // copr-cli download-build (wget --cut-dirs 6) fetches the RPMs.
        if let cli = coprCLI {
            let dest = try makeTemporaryDirectory(prefix: "koper-dl")
            let home = try makeTemporaryDirectory(prefix: "koper-home")
            let r = try await Command.run(
                cli,
                ["--config", try s.frontend.coprConfig(u), "download-build", String(id), "--dest", dest],
                environment: ["HOME": home]
            )
            #expect(r.status == 0, "\(r)")
            let got = (try? FileManager.default.contentsOfDirectory(atPath: "\(dest)/fedora-39-x86_64")) ?? []
            #expect(got.contains { $0.hasPrefix("flowpkg-1.0-1") && $0.hasSuffix(".noarch.rpm") }, "\(got) \(r.output)")
        }
        await s.stop()
    }

    @Test func urlBuildRunsTheSRPMStageThenTheRPMStage() async throws {
        let s = try await BuildStack()
        let u = try await project(s, "url")
        // Serve an SRPM over HTTP on loopback.
        let srpm = try await SRPMFixture.make(name: "fromurl", version: "3.1", release: "2")
        let dir = URL(fileURLWithPath: srpm).deletingLastPathComponent().path
        let port = try FreePort.allocate()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, String(port)]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL) }
        try await Task.sleep(for: .milliseconds(500))
        let url = "http://127.0.0.1:\(port)/\(URL(fileURLWithPath: srpm).lastPathComponent)"
        let r = try await s.frontend.send(
            "POST",
            "/api_3/build/create/url",
            json: #"{"ownername": "\#(u.user)", "projectname": "url", "pkgs": ["\#(url)"]}"#,
            auth: u
        )
        let id = try #require((r.json?["items"] as? [[String: Any]])?.first?["id"] as? Int, "\(r.body)")
        #expect(try await s.wait(id, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(3000))")
        let b = try await s.frontend.get("/api_3/build/\(id)")
        #expect((b.json?["source_package"] as? [String: Any])?["name"] as? String == "fromurl")
        #expect(((b.json?["source_package"] as? [String: Any])?["version"] as? String)?.hasPrefix("3.1-2") == true)
        let files = try FileManager.default.contentsOfDirectory(
            atPath: "\(s.resultsDir)/\(u.user)/url/fedora-39-x86_64/\(String(format: "%08d-fromurl", id))"
        )
        #expect(files.contains { $0.hasPrefix("fromurl-3.1-2") && $0.hasSuffix(".noarch.rpm") }, "\(files)")
        // The SRPM stage's result sits under srpm-builds/.
        #expect(
            FileManager.default.fileExists(
                atPath: "\(s.resultsDir)/\(u.user)/url/srpm-builds/\(String(format: "%08d", id))"
            )
        )
        // The operator's view of the ticket service lists the pool and its resource.
        let t = try await Command.run(BuildStack.binDir + "/koper-backend", ["tickets", "--config", s.configPath])
        #expect(t.status == 0, "\(t)")
        #expect(t.output.contains("local"), "\(t)")
        await s.stop()
    }

    /// The primary.xml named by the chroot's current repomd.xml (older metadata files stay for a grace period).
    func currentPrimary(_ chrootDir: String) async throws -> String {
        let repomd = try String(contentsOfFile: "\(chrootDir)/repodata/repomd.xml", encoding: .utf8)
        guard let type = repomd.range(of: #"<data type="primary">"#),
            let href = repomd.range(of: #"href=""#, range: type.upperBound..<repomd.endIndex),
            let end = repomd.range(of: #"""#, range: href.upperBound..<repomd.endIndex)
        else { throw SRPMFixture.Failure(description: "no primary in repomd.xml") }
        let r = try await Command.run("/bin/zcat", ["\(chrootDir)/\(repomd[href.upperBound..<end.lowerBound])"])
        return r.output
    }

    /// Retention end to end: with keep_builds = 1 the second successful build of a package deletes the first; the
    /// Backend removes its directory and republishes the chroot without it.
    @Test func retentionPrunesOldBuildsAndRepublishes() async throws {
        let s = try await BuildStack()
        let u = try await project(s, "ret")
        #expect(
            try await s.frontend.send(
                "POST",
                "/api_3/project/edit/\(u.user)/ret",
                json: #"{"keep_builds": 1}"#,
                auth: u
            ).status == 200
        )
        let chrootDir = "\(s.resultsDir)/\(u.user)/ret/fedora-39-x86_64"
        let first = try await s.upload(
            u,
            project: "ret",
            srpm: try await SRPMFixture.make(name: "pruned", release: "1")
        )
        #expect(try await s.wait(first, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(3000))")
        #expect(try await currentPrimary(chrootDir).contains(#"rel="1""#))
        let second = try await s.upload(
            u,
            project: "ret",
            srpm: try await SRPMFixture.make(name: "pruned", release: "2")
        )
        #expect(try await s.wait(second, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(3000))")
        #expect(try await s.frontend.get("/api_3/build/\(first)").status == 404)
        let firstDir = "\(chrootDir)/\(String(format: "%08d-pruned", first))"
        let clock = ContinuousClock()
        let t0 = clock.now
        while FileManager.default.fileExists(atPath: firstDir), clock.now - t0 < .seconds(30) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(!FileManager.default.fileExists(atPath: firstDir), "\(s.backendLog.suffix(3000))")
        // The delete action republishes after removing the files: only release 2 is listed.
        var primary = ""
        while clock.now - t0 < .seconds(30) {
            primary = try await currentPrimary(chrootDir)
            if !primary.contains(#"rel="1""#) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(primary.contains(#"rel="2""#) && !primary.contains(#"rel="1""#), "\(primary)")
        #expect(FileManager.default.fileExists(atPath: "\(chrootDir)/\(String(format: "%08d-pruned", second))"))
        let done = try await s.frontend.sql(
            "SELECT state FROM actions WHERE action_type = 'delete' AND ownername = \(u.user)"
        ).rows.map { $0["state"] ?? "" }
        #expect(done == ["success"], "\(done)")
        // regenerate-repos rebuilds the chroot's metadata from the packages, even with the repodata and its index gone.
        try FileManager.default.removeItem(atPath: "\(chrootDir)/repodata")
        try FileManager.default.removeItem(atPath: "\(chrootDir)/.koper-repodata")
        #expect(
            try await s.frontend.send("PUT", "/api_3/project/regenerate-repos/\(u.user)/ret", auth: u).status == 200
        )
        let t1 = clock.now
        while !FileManager.default.fileExists(atPath: "\(chrootDir)/repodata/repomd.xml"), clock.now - t1 < .seconds(30)
        {
            try await Task.sleep(for: .milliseconds(200))
        }
        primary = try await currentPrimary(chrootDir)
        #expect(primary.contains(#"rel="2""#) && primary.contains(#"<package type="rpm">"#), "\(primary)")
        await s.stop()
    }

    /// The whole user path with signing: the Backend signs every RPM through a real Keygen before publishing;
    /// `rpmkeys --checksig -v` (an rpmdb made for the test, holding the published pubkey.gpg) shows a valid
    /// `Header V4 RSA/SHA256` signature on every published RPM, and `dnf copr enable` + `dnf install` with
    /// gpgcheck=1 installs both packages (dnf imports the project key from the .repo file's gpgkey=).
    @Test(.requires(dnfWithCoprPlugin))
    func signedBuildIsPublishedAndInstallsWithGpgcheck() async throws {
        let keygen = try await KeygenProcess.start()
        let s = try await BuildStack(extraConfig: ["keygen_url": keygen.url, "keygen_secret": keygen.secret])
        let u = try await project(s, "signed")
        let id = try await s.upload(u, project: "signed", srpm: try await twoPackageSRPM(name: "signedpkg"))
        #expect(
            try await s.wait(id, for: ["succeeded", "failed"], timeout: .seconds(90)) == "succeeded",
            "\(s.backendLog.suffix(3000))"
        )
        let projectDir = "\(s.resultsDir)/\(u.user)/signed"
        let buildDir = "\(projectDir)/fedora-39-x86_64/\(String(format: "%08d-signedpkg", id))"
        let rpms = try FileManager.default.contentsOfDirectory(atPath: buildDir).filter { $0.hasSuffix(".rpm") }
            .sorted()
        #expect(rpms.count == 3, "\(rpms)")  // two binary RPMs and the SRPM

        let db = try makeTemporaryDirectory(prefix: "koper-rpmdb")
        // Before the key is known the signature is there but cannot be checked (NOKEY): it was not skipped.
        var r = try await Command.run(
            "/usr/bin/rpmkeys",
            ["--dbpath", db, "--checksig", "-v", "\(buildDir)/\(rpms[0])"]
        )
        #expect(r.output.contains("Header V4 RSA/SHA256 Signature") && r.output.contains("NOKEY"), "\(r)")
        r = try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--import", "\(projectDir)/pubkey.gpg"])
        #expect(r.status == 0, "\(r)")
        for rpm in rpms {
            r = try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--checksig", "-v", "\(buildDir)/\(rpm)"])
            #expect(r.status == 0, "\(rpm): \(r)")
            #expect(
                r.output.range(
                    of: #"Header V4 RSA/SHA256 Signature, key ID [0-9a-f]{8}: OK"#,
                    options: .regularExpression
                ) != nil,
                "\(rpm): \(r.output)"
            )
            let verdicts = r.output.split(separator: "\n").dropFirst().joined(separator: "\n")  // not the path line
            #expect(!verdicts.contains("BAD") && !verdicts.contains("NOKEY"), "\(rpm): \(r.output)")
        }

        // The operator command `koper-backend sign --config backend.json --project O/P RPM...` re-signs in place
        // through the Keygen named in the backend's config: an unsigned RPM comes out valid.
        let loose = try makeTemporaryDirectory(prefix: "koper-resign")
        let unsigned = "\(loose)/unsigned.src.rpm"
        try FileManager.default.copyItem(atPath: try await SRPMFixture.make(name: "resigned"), toPath: unsigned)
        r = try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--checksig", "-v", unsigned])
        #expect(!r.output.contains("Signature"), "\(r.output)")
        r = try await Command.run(
            BuildStack.binDir + "/koper-backend",
            ["sign", "--config", s.configPath, "--project", "\(u.user)/signed", unsigned]
        )
        #expect(r.status == 0, "\(r)")
        r = try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--checksig", "-v", unsigned])
        #expect(
            r.output.range(of: #"Header V4 RSA/SHA256 Signature, key ID [0-9a-f]{8}: OK"#, options: .regularExpression)
                != nil,
            "\(r.output)"
        )
        // `koper-backend createrepo DIR` (no config) writes the same metadata as the service did.
        let copy = "\(loose)/chroot"
        // cp -a: the metadata records each file's mtime (`<time file=…>`), so the copy keeps them.
        let cp = try await Command.run("/bin/cp", ["-a", "\(projectDir)/fedora-39-x86_64", copy])
        #expect(cp.status == 0, "\(cp)")
        try FileManager.default.removeItem(atPath: "\(copy)/repodata")
        try FileManager.default.removeItem(atPath: "\(copy)/.koper-repodata")
        r = try await Command.run(BuildStack.binDir + "/koper-backend", ["createrepo", copy])
        #expect(r.status == 0, "\(r)")
        let servicePrimary = try await currentPrimary("\(projectDir)/fedora-39-x86_64")
        #expect(try await currentPrimary(copy) == servicePrimary)
        #expect(servicePrimary.contains("signedpkg-extra"))

        let box = try DnfBox.make(gpgcheck: true)
        r = try await box.run(["copr", "enable", "--hub", s.frontend.url, "\(u.user)/signed", "fedora-39-x86_64"])
        #expect(r.status == 0, "\(r)")
        r = try await box.run(["--releasever=39", "install", "signedpkg", "signedpkg-extra"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("Importing GPG key") && r.output.contains("Key imported successfully"), "\(r.output)")
        #expect(r.output.contains("Complete!"), "\(r.output)")
        // Debian's rpm keeps its database under $HOME (_dbpath ~/.rpmdb): query with dnf's HOME.
        r = try await Command.run(
            "/usr/bin/rpm",
            ["--root", box.root, "-q", "signedpkg", "signedpkg-extra"],
            environment: ["HOME": box.dir]
        )
        #expect(
            r.status == 0 && r.output.contains("signedpkg-2.0-1") && r.output.contains("signedpkg-extra-2.0-1"),
            "\(r)"
        )
        await s.stop()
        await keygen.stop()
    }

    /// Keygen down when a build finishes: the build waits (retrying with backoff) instead of failing, publishes no
    /// repodata with unsigned RPMs, and finishes signed once Keygen answers.
    @Test func aBuildWaitsForKeygenAndNeverPublishesUnsigned() async throws {
        let port = try FreePort.allocate()
        let s = try await BuildStack(extraConfig: [
            "keygen_url": "http://127.0.0.1:\(port)", "keygen_secret": "flow-keygen-secret",
        ])
        let u = try await project(s, "waits")
        let id = try await s.upload(u, project: "waits", srpm: try await SRPMFixture.make(name: "patient"))
        let clock = ContinuousClock()
        let t0 = clock.now
        // ServiceKit's JSON client logs each retry of the keygen call.
        func waiting() -> Bool {
            s.backendLog.contains("service=keygen") && s.backendLog.contains("service call failed; retrying")
        }
        while !waiting(), clock.now - t0 < .seconds(90) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(waiting(), "\(s.backendLog.suffix(3000))")
        try await Task.sleep(for: .seconds(3))
        #expect(["running", "starting"].contains(try await s.state(id)), "the build waits instead of failing")
        let chrootDir = "\(s.resultsDir)/\(u.user)/waits/fedora-39-x86_64"
        #expect(
            !FileManager.default.fileExists(atPath: "\(chrootDir)/repodata/repomd.xml"),
            "nothing published unsigned"
        )

        let keygen = try await KeygenProcess.start(port: port)
        #expect(try await s.wait(id, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(3000))")
        let dir = "\(chrootDir)/\(String(format: "%08d-patient", id))"
        let rpm = try #require(
            try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".noarch.rpm") }
        )
        let db = try makeTemporaryDirectory(prefix: "koper-rpmdb")
        _ = try await Command.run(
            "/usr/bin/rpmkeys",
            ["--dbpath", db, "--import", "\(s.resultsDir)/\(u.user)/waits/pubkey.gpg"]
        )
        let check = try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--checksig", "-v", "\(dir)/\(rpm)"])
        #expect(
            check.output.range(
                of: #"Header V4 RSA/SHA256 Signature, key ID [0-9a-f]{8}: OK"#,
                options: .regularExpression
            ) != nil,
            "\(check.output)"
        )
        #expect(try await currentPrimary(chrootDir).contains("<name>patient</name>"))
        await s.stop()
        await keygen.stop()
    }

    /// `builder_arguments` in the backend's config reach `koper-builder build`: here an unusable `--cgroup` parent,
    /// which the builder refuses (it never builds without the limits asked for), so the build fails and says why.
    @Test func builderArgumentsReachTheBuilder() async throws {
        let s = try await BuildStack(extraConfig: ["builder_arguments": ["--cgroup", "koper-no-such-parent"]])
        let u = try await project(s, "args")
        let id = try await s.upload(u, project: "args", srpm: try await SRPMFixture.make(name: "argued"))
        #expect(try await s.wait(id, for: ["succeeded", "failed"]) == "failed", "\(s.backendLog.suffix(3000))")
        let dir = "\(s.resultsDir)/\(u.user)/args/fedora-39-x86_64/\(String(format: "%08d-argued", id))"
        let log = try await Command.run("/bin/zcat", ["\(dir)/builder-live.log.gz"])
        #expect(
            log.output.contains("cannot create the build cgroup") && log.output.contains("koper-no-such-parent"),
            "\(log)"
        )
        await s.stop()
    }

    /// Forking copies the newest succeeded build of each package into the fork (state `forked`), and the Backend
    /// copies its results, re-signs them with the fork's own key and publishes the fork's repository; the source
    /// project's files are untouched. Forking again with confirm copies nothing twice.
    @Test func forkCopiesBuildsAndResignsThemWithTheForksKey() async throws {
        let keygen = try await KeygenProcess.start()
        let s = try await BuildStack(extraConfig: ["keygen_url": keygen.url, "keygen_secret": keygen.secret])
        let u = try await project(s, "orig")
        let id = try await s.upload(u, project: "orig", srpm: try await SRPMFixture.make(name: "forkme"))
        #expect(try await s.wait(id, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(3000))")
        var r = try await s.frontend.send(
            "PUT",
            "/api_3/project/fork/\(u.user)/orig",
            json: #"{"name": "copy"}"#,
            auth: u
        )
        #expect(r.status == 200, "\(r.body)")
        var state = ""
        let clock = ContinuousClock()
        let t0 = clock.now
        while clock.now - t0 < .seconds(60) {
            state =
                try await s.frontend.sql("SELECT state FROM actions WHERE action_type = 'fork'").first?["state"] ?? ""
            if state != "pending" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(state == "success", "\(s.backendLog.suffix(3000))")
        r = try await s.frontend.get("/api_3/build/list?ownername=\(u.user)&projectname=copy")
        let items = try #require(r.json?["items"] as? [[String: Any]], "\(r.body)")
        #expect(items.count == 1)
        let forked = try #require(items.first?["id"] as? Int)
        #expect(items.first?["state"] as? String == "forked")
        #expect((items.first?["source_package"] as? [String: Any])?["name"] as? String == "forkme")

        let copyChroot = "\(s.resultsDir)/\(u.user)/copy/fedora-39-x86_64"
        let copyDir = "\(copyChroot)/\(String(format: "%08d-forkme", forked))"
        let origDir = "\(s.resultsDir)/\(u.user)/orig/fedora-39-x86_64/\(String(format: "%08d-forkme", id))"
        let rpm = try #require(
            try FileManager.default.contentsOfDirectory(atPath: copyDir).first { $0.hasSuffix(".noarch.rpm") }
        )
        let origKey = "\(s.resultsDir)/\(u.user)/orig/pubkey.gpg"
        let copyKey = "\(s.resultsDir)/\(u.user)/copy/pubkey.gpg"
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: origKey)) != Data(contentsOf: URL(fileURLWithPath: copyKey)),
            "a fork has its own key"
        )
        func check(_ file: String, withKey key: String) async throws -> String {
            let db = try makeTemporaryDirectory(prefix: "koper-rpmdb")
            _ = try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--import", key])
            return try await Command.run("/usr/bin/rpmkeys", ["--dbpath", db, "--checksig", "-v", file]).output
        }
        let ok = #"Header V4 RSA/SHA256 Signature, key ID [0-9a-f]{8}: OK"#
        #expect(
            try await check("\(copyDir)/\(rpm)", withKey: copyKey).range(of: ok, options: .regularExpression) != nil
        )
        #expect(
            try await check("\(copyDir)/\(rpm)", withKey: origKey).contains("NOKEY"),
            "re-signed with the fork's key"
        )
        #expect(
            try await check("\(origDir)/\(rpm)", withKey: origKey).range(of: ok, options: .regularExpression) != nil,
            "the source is untouched"
        )
        #expect(try await currentPrimary(copyChroot).contains("<name>forkme</name>"))
        #expect(
            !FileManager.default.fileExists(
                atPath:
                    "\(s.resultsDir)/\(u.user)/copy/.fork-staging/fedora-39-x86_64-\(String(format: "%08d-forkme", forked))"
            )
        )

        // Forking again onto the same project (with confirm) adds no second copy of that build.
        r = try await s.frontend.send(
            "PUT",
            "/api_3/project/fork/\(u.user)/orig",
            json: #"{"name": "copy", "confirm": true}"#,
            auth: u
        )
        #expect(r.status == 200, "\(r.body)")
        #expect(
            try await s.frontend.count(
                "SELECT count(*) FROM builds b JOIN projects p ON p.id = b.project_id WHERE p.name = 'copy'"
            ) == 1
        )
        await s.stop()
        await keygen.stop()
    }

    @Test func cancelWhileWaitingForABuilderAndWhileBuilding() async throws {
        // One builder: the first build occupies it, the second waits for a lease.
        let s = try await BuildStack(builders: 1)
        let u = try await project(s, "cx")
        let first = try await s.upload(u, project: "cx", srpm: try await SRPMFixture.slow(name: "busy", seconds: 120))
        #expect(
            try await s.wait(first, for: ["running"], timeout: .seconds(60)) == "running",
            "\(s.backendLog.suffix(3000))"
        )
        let second = try await s.upload(u, project: "cx", srpm: try await SRPMFixture.slow(name: "waiter", seconds: 1))
        try await Task.sleep(for: .seconds(2))
        // Queued, waiting for a builder: a worker leases before it claims, so the build stays pending (issue 10).
        #expect(try await s.state(second) == "pending")
        // Cancel while waiting: the backend lets go of the lease request within a second.
        let clock = ContinuousClock()
        var t0 = clock.now
        #expect(try await s.frontend.send("PUT", "/api_3/build/cancel/\(second)", auth: u).status == 200)
        var released = false
        while clock.now - t0 < .seconds(3) {
            // The Backend acknowledges a cancel request once the worker has let go of its lease.
            let open = try await s.frontend.count(
                "SELECT count(*) FROM cancel_requests WHERE task_id = \("\(second)-fedora-39-x86_64")"
            )
            if open == 0 {
                released = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(released)
        #expect(clock.now - t0 <= .seconds(1), "cancel of a waiting build took \(clock.now - t0)")
        // Cancel while building: the remote rpmbuild is gone within 5 s.
        #expect(try await s.remoteBuildProcesses() > 0)
        t0 = clock.now
        #expect(try await s.frontend.send("PUT", "/api_3/build/cancel/\(first)", auth: u).status == 200)
        var gone = false
        while clock.now - t0 < .seconds(8) {
            if try await s.remoteBuildProcesses() == 0 {
                gone = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(gone)
        #expect(clock.now - t0 <= .seconds(5), "cancel of a running build took \(clock.now - t0)")
        #expect(try await s.state(first) == "canceled")
        await s.stop()
    }

    @Test func timeoutFailsTheBuild() async throws {
        let s = try await BuildStack()
        let u = try await project(s, "to")
        let id = try await s.upload(
            u,
            project: "to",
            srpm: try await SRPMFixture.slow(name: "sleepy", seconds: 120),
            timeout: 5
        )
        #expect(
            try await s.wait(id, for: ["succeeded", "failed"], timeout: .seconds(60)) == "failed",
            "\(s.backendLog.suffix(3000))"
        )
        #expect(try await s.remoteBuildProcesses() == 0)
        await s.stop()
    }

    @Test func backendKilledMidBuildReattachesAndFinishesOnce() async throws {
        let s = try await BuildStack()
        let u = try await project(s, "k9")
        let id = try await s.upload(u, project: "k9", srpm: try await SRPMFixture.slow(name: "survivor", seconds: 8))
        #expect(try await s.wait(id, for: ["running"], timeout: .seconds(60)) == "running")
        try await Task.sleep(for: .seconds(2))
        await s.killBackendHard()
        try await Task.sleep(for: .seconds(1))
        try s.startBackend()
        #expect(try await s.wait(id, for: ["succeeded", "failed"]) == "succeeded", "\(s.backendLog.suffix(4000))")
        let log = s.backendLog
        #expect(log.contains("resuming in-flight build"))
        // Finished once: one success update applied, one builder run.
        #expect(
            try await s.frontend.count(
                "SELECT count(*) FROM backend_updates WHERE update_id LIKE \("\(id)-fedora-39-x86_64#%#succeeded")"
            ) == 1
        )
        let dir = String(format: "%08d-survivor", id)
        let gz = "\(s.resultsDir)/\(u.user)/k9/fedora-39-x86_64/\(dir)/builder-live.log.gz"
        let r = try await Command.run("/bin/sh", ["-c", "zcat '\(gz)' | grep -c '^tick\\|tick [0-9]'"])
        #expect(r.output.trimmingCharacters(in: .whitespacesAndNewlines) != "0")
        await s.stop()
    }

    @Test func deadBuilderIsRetiredAndTheBuildRetriedElsewhere() async throws {
        let s = try await BuildStack(builders: 2, maxPerPool: 2)
        let u = try await project(s, "dead")
        let id = try await s.upload(u, project: "dead", srpm: try await SRPMFixture.slow(name: "phoenix", seconds: 10))
        #expect(try await s.wait(id, for: ["running"], timeout: .seconds(60)) == "running")
        // Find the builder running it and kill its sshd (and the build with it).
        var victim: SSHDFixture? = nil
        for b in s.builders {
            let r = try await Command.run("/usr/bin/pgrep", ["-u", b.user, "-f", "koper-builder"])
            if !r.output.isEmpty { victim = b }
        }
        let dead = try #require(victim)
        dead.killHard()
        _ = try await Command.run("/usr/bin/pkill", ["-KILL", "-u", dead.user])
        #expect(
            try await s.wait(id, for: ["succeeded", "failed"], timeout: .seconds(180)) == "succeeded",
            "\(s.backendLog.suffix(4000))"
        )
        // The lost builder is an infrastructure failure (its session drops) or a lost builder (its status is gone):
        // either way the build is retried, never failed.
        let log = s.backendLog
        #expect(
            log.contains("builder lost; retrying elsewhere")
                || log.contains("infrastructure failure; the build will be retried")
        )
        await s.stop()
    }
}

@Suite(.serialized, .requires(BuildStack.requirements))
struct BuilderProcessLossTests {
    /// The builder host stays up but the build's processes die (OOM killer, a reboot of the build): the attempt's
    /// lease is released and the build runs again, on the same single host.
    @Test func killedBuildProcessesAreRetriedOnTheSameHost() async throws {
        let s = try await BuildStack(builders: 1)
        let u = try await s.frontend.makeUser("loss")
        #expect(
            try await s.frontend.send(
                "POST",
                "/api_3/project/add/loss",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let id = try await s.upload(u, project: "p", srpm: try await SRPMFixture.slow(name: "lazarus", seconds: 6))
        #expect(try await s.wait(id, for: ["running"], timeout: .seconds(60)) == "running")
        try await Task.sleep(for: .seconds(1))
        let user = s.builders[0].user
        _ = try await Command.run("/usr/bin/pkill", ["-KILL", "-u", user, "-f", "koper-builder|bwrap|rpmbuild"])
        #expect(
            try await s.wait(id, for: ["succeeded", "failed"], timeout: .seconds(120)) == "succeeded",
            "\(s.backendLog.suffix(3000))"
        )
        // The lost builder is an infrastructure failure (its session drops) or a lost builder (its status is gone):
        // either way the build is retried, never failed.
        let log = s.backendLog
        #expect(
            log.contains("builder lost; retrying elsewhere")
                || log.contains("infrastructure failure; the build will be retried")
        )
        await s.stop()
    }
}
