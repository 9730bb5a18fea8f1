import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the sshd test fixture (useradd, ssh-keygen, sshd).
public struct SSHDFixtureError: Error, CustomStringConvertible {
    public let description: String
}

/// A throw-away OpenSSH server on 127.0.0.1 (swift-toolchain.md §6).
///
/// Each fixture creates its own unprivileged system user `koper-sshtest-<hex>` whose home is inside the
/// fixture's directory, an ed25519 host key and client key, and an `sshd_config` on a free port, then runs
/// `/usr/sbin/sshd -D -e` as that user (`runuser`), so no root sshd, PAM or `/run/sshd` is involved. The server
/// can only log in that one user, with the client key. Needs root (for useradd/runuser) and openssh-server.
///
/// `stop()` ends every process of the fixture, deletes the user and the directory. A fixture whose test process
/// died is cleaned up by the next `start()` (the directory holds the owner's pid).
public final class SSHDFixture: Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    public let user: String
    /// The fixture's directory (keys, `sshd_config`, `sshd.log`). Owned by `user`.
    public let directory: String
    /// The user's home directory (`directory/home`), where remote commands start. Owned by `user`.
    public let homeDirectory: String
    /// The server's host public key, to pin.
    public let hostPublicKeyPath: String
    /// The private key that `user` may log in with.
    public let clientPrivateKeyPath: String
    /// sshd's own log (`-e`: everything it would send to syslog).
    public let logPath: String

    private let launcherPID: pid_t
    private let uid: uid_t
    private let isStopped = Mutex(false)

    static let userPrefix = "koper-sshtest-"
    static let directoryPrefix = "koper-sshd."

    private init(
        port: Int,
        user: String,
        uid: uid_t,
        directory: String,
        launcherPID: pid_t
    ) {
        self.port = port
        self.user = user
        self.uid = uid
        self.directory = directory
        self.homeDirectory = directory + "/home"
        self.hostPublicKeyPath = directory + "/host_ed25519.pub"
        self.clientPrivateKeyPath = directory + "/client_ed25519"
        self.logPath = directory + "/sshd.log"
        self.launcherPID = launcherPID
    }

    /// Creates the user and keys and starts sshd; returns once the port accepts connections. The blocking work
    /// runs on the fixture's own serial queue, off the Swift concurrency pool.
    public static func start() async throws -> SSHDFixture {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try startBlocking() })
            }
        }
    }

    private static let queue = DispatchQueue(label: "koper.tests.sshd-fixture")
    private static let live = Mutex<[ObjectIdentifier: SSHDFixture]>([:])
    private static let exitHandler: Void = {
        atexit {
            let fixtures = SSHDFixture.live.withLock { Array($0.values) }
            for fixture in fixtures {
                fixture.stop()
            }
            SSHDFixture.queue.sync {}
        }
    }()

    private static func startBlocking() throws -> SSHDFixture {
        guard geteuid() == 0 else {
            throw SSHDFixtureError(description: "the sshd fixture needs root (useradd, runuser)")
        }
        guard access("/usr/sbin/sshd", X_OK) == 0 else {
            throw SSHDFixtureError(description: "/usr/sbin/sshd is missing (apt-get install openssh-server)")
        }
        _ = exitHandler
        removeOrphans()

        var template = Array("/tmp/\(directoryPrefix)XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw SSHDFixtureError(description: "mkdtemp failed: errno \(errno)")
        }
        let directory = String(cString: created)
        let user = userPrefix + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var userCreated = false
        do {
            try "\(getpid())\n".write(toFile: directory + "/owner.pid", atomically: true, encoding: .utf8)
            try "\(user)\n".write(toFile: directory + "/user", atomically: true, encoding: .utf8)
            chmod(directory, 0o755)
            let home = directory + "/home"
            try Spawn.run(
                "/usr/sbin/useradd",
                ["--system", "--user-group", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh", user],
                log: directory + "/fixture.log"
            )
            userCreated = true
            guard let entry = getpwnam(user) else {
                throw SSHDFixtureError(description: "useradd did not create \(user)")
            }
            let uid = entry.pointee.pw_uid
            let gid = entry.pointee.pw_gid
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: false)

            for key in ["host_ed25519", "client_ed25519"] {
                try Spawn.run(
                    "/usr/bin/ssh-keygen",
                    ["-q", "-t", "ed25519", "-N", "", "-C", "koper-test", "-f", directory + "/" + key],
                    log: directory + "/fixture.log"
                )
            }
            try FileManager.default.copyItem(
                atPath: directory + "/client_ed25519.pub",
                toPath: directory + "/authorized_keys"
            )
            for path in [
                directory, home, directory + "/host_ed25519", directory + "/host_ed25519.pub",
                directory + "/authorized_keys",
            ] {
                guard chown(path, uid, gid) == 0 else {
                    throw SSHDFixtureError(description: "chown \(path) failed: errno \(errno)")
                }
            }

            var lastFailure = ""
            for _ in 0..<5 {
                let port = try FreePort.allocate()
                try config(directory: directory, user: user, port: port)
                    .write(toFile: directory + "/sshd_config", atomically: true, encoding: .utf8)
                let pid = try Spawn.start(
                    "/usr/sbin/runuser",
                    ["-u", user, "--", "/usr/sbin/sshd", "-D", "-e", "-f", directory + "/sshd_config"],
                    log: directory + "/sshd.log"
                )
                if try waitUntilListening(port: port, pid: pid) {
                    let fixture = SSHDFixture(
                        port: port,
                        user: user,
                        uid: uid,
                        directory: directory,
                        launcherPID: pid
                    )
                    live.withLock { $0[ObjectIdentifier(fixture)] = fixture }
                    return fixture
                }
                lastFailure = (try? String(contentsOfFile: directory + "/sshd.log", encoding: .utf8)) ?? ""
                if !lastFailure.contains("Address already in use") && !lastFailure.contains("Cannot bind") {
                    break
                }
            }
            throw SSHDFixtureError(description: "sshd did not start: \(lastFailure.suffix(2000))")
        } catch {
            if userCreated {
                _ = try? Spawn.run("/usr/sbin/userdel", ["--force", user], log: nil)
            }
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    private static func config(directory: String, user: String, port: Int) -> String {
        """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(directory)/host_ed25519
        PidFile \(directory)/sshd.pid
        AuthorizedKeysFile \(directory)/authorized_keys
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        AllowUsers \(user)
        PermitRootLogin no
        Subsystem sftp internal-sftp
        LogLevel VERBOSE

        """
    }

    /// Polls until 127.0.0.1:port accepts a connection (true) or sshd exits (false). At most 10 s.
    private static func waitUntilListening(port: Int, pid: pid_t) throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                return false
            }
            if canConnect(port: port) {
                return true
            }
            usleep(10_000)
        }
        Spawn.killAndReap(pid)
        throw SSHDFixtureError(description: "sshd did not listen on port \(port) within 10 s")
    }

    private static func canConnect(port: Int) -> Bool {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    // MARK: Faults

    /// SIGKILLs sshd (listener and every connection process) and every process of the user, as a crash or power
    /// loss would: clients see their TCP connections reset. Call `stop()` afterwards to clean up.
    public func killHard() {
        let victims = Set(Processes.descendants(of: self.launcherPID) + Processes.owned(by: self.uid))
        // Stop them all first, so that no sshd can report its command's death (exit-signal, EOF, close) to the
        // client before it is killed itself.
        for pid in victims {
            kill(pid, SIGSTOP)
        }
        for pid in victims {
            kill(pid, SIGKILL)
        }
    }

    /// SIGSTOPs sshd and the user's processes: the kernel still acknowledges TCP traffic, but nothing answers.
    public func freeze() {
        for pid in Set(Processes.descendants(of: self.launcherPID) + Processes.owned(by: self.uid)) {
            kill(pid, SIGSTOP)
        }
    }

    /// Undoes `freeze()`.
    public func thaw() {
        for pid in Set(Processes.descendants(of: self.launcherPID) + Processes.owned(by: self.uid)) {
            kill(pid, SIGCONT)
        }
    }

    /// Generates another ed25519 key pair in the fixture's directory (not authorised, not the host key) and
    /// returns the private key's path; the public key is at that path plus `.pub`.
    public func makeUnrelatedKey(named name: String) throws -> String {
        let path = self.directory + "/" + name
        try Spawn.run(
            "/usr/bin/ssh-keygen",
            ["-q", "-t", "ed25519", "-N", "", "-C", "koper-test", "-f", path],
            log: self.directory + "/fixture.log"
        )
        return path
    }

    /// Stops sshd and every process of the user, deletes the user and the directory. Idempotent and non-blocking
    /// (safe in a `defer` of an async test): the work runs on the fixture's queue, and process exit waits for it.
    public func stop() {
        let alreadyStopped = self.isStopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        guard !alreadyStopped else { return }
        Self.queue.async {
            self.cleanUp()
        }
    }

    /// `stop()`, then waits until the cleanup has finished.
    public func stopAndWait() async {
        self.stop()
        await withCheckedContinuation { continuation in
            Self.queue.async { continuation.resume() }
        }
    }

    private func cleanUp() {
        for pid in Processes.descendants(of: self.launcherPID) {
            kill(pid, SIGCONT)
            kill(pid, SIGTERM)
        }
        kill(self.launcherPID, SIGTERM)
        if !Spawn.reap(self.launcherPID, within: .seconds(5)) {
            for pid in Processes.descendants(of: self.launcherPID) {
                kill(pid, SIGKILL)
            }
            Spawn.killAndReap(self.launcherPID)
        }
        Self.killAll(uid: self.uid)
        _ = try? Spawn.run("/usr/sbin/userdel", ["--force", self.user], log: nil)
        try? FileManager.default.removeItem(atPath: self.directory)
        Self.live.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(self)) }
    }

    private static func killAll(uid: uid_t) {
        for _ in 0..<50 {
            let remaining = Processes.owned(by: uid)
            if remaining.isEmpty { return }
            for pid in remaining {
                kill(pid, SIGCONT)
                kill(pid, SIGKILL)
            }
            usleep(10_000)
        }
    }

    /// Deletes fixtures (users, processes, directories) left behind by test processes that no longer exist.
    private static func removeOrphans() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix(directoryPrefix) {
            let directory = "/tmp/" + name
            guard let text = try? String(contentsOfFile: directory + "/owner.pid", encoding: .utf8),
                let owner = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { continue }
            if kill(owner, 0) == 0 || errno != ESRCH { continue }
            if let user = try? String(contentsOfFile: directory + "/user", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines),
                user.hasPrefix(userPrefix), let entry = getpwnam(user)
            {
                killAll(uid: entry.pointee.pw_uid)
                _ = try? Spawn.run("/usr/sbin/userdel", ["--force", user], log: nil)
            }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}

/// Process-table queries through /proc.
private enum Processes {
    /// Every live process whose ancestry includes `root` (not `root` itself).
    static func descendants(of root: pid_t) -> [pid_t] {
        var children: [pid_t: [pid_t]] = [:]
        for pid in allPIDs() {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // Fields after "(comm)": state ppid ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, let parent = pid_t(fields[1]) else { continue }
            children[parent, default: []].append(pid)
        }
        var result: [pid_t] = []
        var pending = children[root] ?? []
        while let pid = pending.popLast() {
            result.append(pid)
            pending.append(contentsOf: children[pid] ?? [])
        }
        return result
    }

    /// Every live process whose effective uid is `uid`.
    static func owned(by uid: uid_t) -> [pid_t] {
        allPIDs().filter { pid in
            var info = stat()
            return stat("/proc/\(pid)", &info) == 0 && info.st_uid == uid
        }
    }

    private static func allPIDs() -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }
}

/// posix_spawn with stdin from /dev/null, stdout and stderr to a log file (never a pipe), and every descriptor
/// above 2 closed in the child, so that a daemon cannot hold our descriptors open. Waits use waitpid, never
/// Foundation's `Process`.
private enum Spawn {
    /// Starts a program in its own process group and returns its pid.
    static func start(_ executable: String, _ arguments: [String], log: String?) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = addCloseFrom {
            _ = closeFrom(&actions, 3)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGPIPE)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes,
            Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        )
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else {
            throw SSHDFixtureError(description: "cannot run \(executable): error \(spawned)")
        }
        return pid
    }

    /// Runs a program to completion (at most 60 s) and throws unless it exits with status 0.
    static func run(_ executable: String, _ arguments: [String], log: String?) throws {
        let pid = try start(executable, arguments, log: log)
        guard let status = wait(pid, within: .seconds(60)) else {
            killAndReap(pid)
            throw SSHDFixtureError(description: "\(executable) did not finish within 60 s")
        }
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            var tail = ""
            if let log, let text = try? String(contentsOfFile: log, encoding: .utf8) {
                tail = String(text.suffix(2000))
            }
            throw SSHDFixtureError(description: "\(executable) failed (status \(status)): \(tail)")
        }
    }

    /// The wait status, or nil if the process is still running after `timeout`.
    static func wait(_ pid: pid_t, within timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                return status
            }
            if result == -1 && errno != EINTR {
                return 0  // not our child any more (already reaped)
            }
            if ContinuousClock.now >= deadline {
                return nil
            }
            usleep(5_000)
        }
    }

    static func reap(_ pid: pid_t, within timeout: Duration) -> Bool {
        wait(pid, within: timeout) != nil
    }

    static func killAndReap(_ pid: pid_t) {
        kill(pid, SIGKILL)
        _ = wait(pid, within: .seconds(5))
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), declared only under `_GNU_SOURCE`.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    private static var addCloseFrom: CloseFrom? {
        guard let handle = dlopen(nil, RTLD_NOW),
            let symbol = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np")
        else { return nil }
        return unsafeBitCast(symbol, to: CloseFrom.self)
    }
}
