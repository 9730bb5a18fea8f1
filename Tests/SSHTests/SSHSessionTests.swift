import Foundation
import Logging
import SSH
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// These tests talk to a real OpenSSH server run by `SSHDFixture`, which needs root and openssh-server.
enum SSHTestEnvironment {
    static let requirements: [IntegrationRequirement] = [.root, .tool("/usr/sbin/sshd")]
}

let testLogger = Logger(label: "koper.tests.ssh", factory: { _ in SwiftLogNoOpLogHandler() })

extension SSHDFixture {
    func target(
        privateKeyPath: String? = nil,
        hostPublicKeyPath: String? = nil,
        port: Int? = nil,
        ioTimeout: Duration = .seconds(60)
    ) -> SSHTarget {
        SSHTarget(
            host: self.host,
            port: port ?? self.port,
            user: self.user,
            hostPublicKeyPath: hostPublicKeyPath ?? self.hostPublicKeyPath,
            privateKeyPath: privateKeyPath ?? self.clientPrivateKeyPath,
            connectTimeout: .seconds(10),
            keepaliveInterval: .seconds(1),
            ioTimeout: ioTimeout
        )
    }

    func connect(ioTimeout: Duration = .seconds(60)) async throws -> SSHSession {
        try await SSHSession.connect(self.target(ioTimeout: ioTimeout), logger: testLogger)
    }

    var log: String {
        (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? ""
    }
}

/// The `SSHError` that `body` throws, or nil if it succeeds (any other error is recorded as an issue).
func sshError<T>(_ body: () async throws -> T) async -> SSHError? {
    do {
        _ = try await body()
        return nil
    } catch let error as SSHError {
        return error
    } catch {
        Issue.record("unexpected error: \(error)")
        return nil
    }
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

func elapsed(since start: ContinuousClock.Instant) -> Duration {
    ContinuousClock.now - start
}

/// How many of this process's descriptors are TCP sockets connected to 127.0.0.1:`port` (via /proc).
func ownSockets(connectedTo port: Int) -> Int {
    var inodes = Set<Substring>()
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
        var buffer = [CChar](repeating: 0, count: 256)
        let length = readlink("/proc/self/fd/" + name, &buffer, buffer.count - 1)
        guard length > 0 else { continue }
        let target = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix("socket:[") {
            inodes.insert(target.dropFirst(8).dropLast())
        }
    }
    let remote = String(format: "0100007F:%04X", port)
    let table = readProcFile("/proc/self/net/tcp")
    return table.split(separator: "\n").dropFirst().filter { line in
        let fields = line.split(separator: " ")
        return fields.count > 9 && fields[2] == remote && inodes.contains(fields[9])
    }.count
}

/// The whole of a procfs file (which reports size 0, so it is read until EOF).
func readProcFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Polls `condition` for up to `limit`.
func eventually(within limit: Duration = .seconds(3), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

@Suite("SSH session against a real sshd", .requires(SSHTestEnvironment.requirements))
struct SSHSessionTests {
    @Test("run returns stdout, stderr and the exit status separately")
    func runCollectsOutputAndStatus() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        let result = try await session.run("echo hi; echo oops >&2; exit 3", timeout: .seconds(10))
        #expect(text(result.stdout) == "hi\n")
        #expect(text(result.stderr) == "oops\n")
        #expect(result.exitStatus == 3)

        let whoami = try await session.run("id -un; pwd", timeout: .seconds(10))
        #expect(text(whoami.stdout) == "\(sshd.user)\n\(sshd.homeDirectory)\n")
        #expect(whoami.exitStatus == 0)
    }

    @Test("a server whose host key is not the pinned key is refused before any authentication")
    func wrongHostKeyIsRefused() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let otherKey = try sshd.makeUnrelatedKey(named: "other_host_ed25519")

        let error = await sshError {
            try await SSHSession.connect(sshd.target(hostPublicKeyPath: otherKey + ".pub"), logger: testLogger)
        }
        #expect(error?.code == .hostKeyMismatch)
        #expect(error.map { !$0.description.contains("AAAA") } == true, "no key material in the error")
        // sshd logs every public-key attempt ("Accepted publickey" / "Failed publickey"); none was made.
        #expect(!sshd.log.contains("publickey"))

        // Control: a correctly pinned connection does show up in the same log.
        let session = try await sshd.connect()
        session.close()
        #expect(sshd.log.contains("Accepted publickey for \(sshd.user)"))
    }

    @Test("a client key that is not authorised is rejected")
    func wrongClientKeyIsRejected() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let intruder = try sshd.makeUnrelatedKey(named: "intruder_ed25519")

        let error = await sshError {
            try await SSHSession.connect(sshd.target(privateKeyPath: intruder), logger: testLogger)
        }
        #expect(error?.code == .authenticationFailed)
        #expect(error.map { !$0.description.contains("PRIVATE") } == true)
    }

    @Test("a closed port is reported as connectionRefused at once; a missing key as invalidArgument")
    func closedPortIsRefusedQuickly() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let closedPort = try FreePort.allocate()

        let start = ContinuousClock.now
        let error = await sshError {
            try await SSHSession.connect(sshd.target(port: closedPort), logger: testLogger)
        }
        #expect(error?.code == .connectionRefused)
        #expect(error?.underlyingStatus == ECONNREFUSED)
        #expect(elapsed(since: start) < .seconds(1))

        let missingKey = await sshError {
            try await SSHSession.connect(sshd.target(privateKeyPath: sshd.directory + "/nope"), logger: testLogger)
        }
        #expect(missingKey?.code == .invalidArgument)
    }

    @Test("5 MB on stderr followed by 5 MB on stdout completes without stalling")
    func largeOutputOnBothStreams() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        // stderr first: a reader that waited for stdout alone would stall once stderr filled the channel window.
        let start = ContinuousClock.now
        let result = try await session.run(
            "head -c 5000000 /dev/zero | tr '\\0' e >&2; head -c 5000000 /dev/zero | tr '\\0' o; echo -n x >&2",
            timeout: .seconds(60)
        )
        #expect(result.exitStatus == 0)
        #expect(result.stdout.count == 5_000_000)
        #expect(result.stderr.count == 5_000_001)
        #expect(result.stdout.allSatisfy { $0 == UInt8(ascii: "o") })
        #expect(result.stderr.dropLast().allSatisfy { $0 == UInt8(ascii: "e") })
        #expect(result.stderr.last == UInt8(ascii: "x"))
        #expect(elapsed(since: start) < .seconds(30))
    }

    @Test("output beyond the limit throws outputLimitExceeded and the session stays usable")
    func outputLimitExceeded() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        let error = await sshError {
            try await session.run("head -c 1000000 /dev/zero; sleep 5", timeout: .seconds(10), outputLimit: 100_000)
        }
        #expect(error?.code == .outputLimitExceeded)

        let exact = try await session.run("head -c 100000 /dev/zero", timeout: .seconds(10), outputLimit: 100_000)
        #expect(exact.stdout.count == 100_000)
    }

    @Test("a command that outlives its timeout is stopped and throws timeout within about a second")
    func commandTimeout() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        let start = ContinuousClock.now
        let error = await sshError {
            try await session.run("echo started; sleep 31", timeout: .seconds(1))
        }
        let took = elapsed(since: start)
        #expect(error?.code == .timeout)
        #expect(took >= .seconds(1))
        #expect(took < .seconds(2))

        // The session is still usable, and the remote command got SIGTERM (sshd signals the process group).
        try await Task.sleep(for: .milliseconds(300))
        let check = try await session.run("pgrep -u $(id -u) -f '[s]leep 31' || echo gone", timeout: .seconds(10))
        #expect(text(check.stdout) == "gone\n")
    }

    @Test("cancelling the task stops a running command")
    func cancellation() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        let start = ContinuousClock.now
        let task = Task {
            await sshError { try await session.run("sleep 30", timeout: .seconds(60)) }
        }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let error = await task.value
        #expect(error?.code == .cancelled)
        #expect(elapsed(since: start) < .seconds(3))
    }

    @Test("SFTP round trip of 1 MB of random data; remote sha256sum agrees; atomic replace; limits")
    func sftpRoundTrip() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        var generator = SystemRandomNumberGenerator()
        let data = (0..<131_072).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64) { Array($0) } }
        #expect(data.count == 1 << 20)
        let remote = sshd.homeDirectory + "/blob.bin"
        try await session.upload(Array(repeating: 7, count: 10), to: remote)
        try await session.upload(data, to: remote, mode: 0o640)  // replaces the existing file

        let local = try makeTemporaryDirectory(prefix: "koper-ssh-test")
        defer { try? FileManager.default.removeItem(atPath: local) }
        try Data(data).write(to: URL(fileURLWithPath: local + "/blob.bin"))
        let localSum = try await Command.run("/usr/bin/sha256sum", [local + "/blob.bin"])
        let remoteSum = try await session.run("sha256sum blob.bin; stat -c %a blob.bin; ls -a", timeout: .seconds(10))
        let lines = text(remoteSum.stdout).split(separator: "\n")
        #expect(lines.first?.prefix(64) == localSum.output.prefix(64))
        #expect(lines.count > 1 && lines[1] == "640")
        #expect(!lines.contains { $0.contains(".tmp-") }, "no temporary file left behind")

        let downloaded = try await session.download(remote, limit: 2 << 20)
        #expect(downloaded == data)

        try await session.downloadFile(remote, toLocalPath: local + "/copy.bin", limit: 2 << 20)
        #expect(try Data(contentsOf: URL(fileURLWithPath: local + "/copy.bin")) == Data(data))

        try await session.uploadFile(localPath: local + "/copy.bin", to: sshd.homeDirectory + "/again.bin")
        let again = try await session.run("cmp blob.bin again.bin && echo same", timeout: .seconds(10))
        #expect(text(again.stdout) == "same\n")

        let tooBig = await sshError { try await session.download(remote, limit: 1_000_000) }
        #expect(tooBig?.code == .outputLimitExceeded)
        let tooBigFile = await sshError {
            try await session.downloadFile(remote, toLocalPath: local + "/partial.bin", limit: 1_000)
        }
        #expect(tooBigFile?.code == .outputLimitExceeded)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: local).sorted()
        #expect(leftovers == ["blob.bin", "copy.bin"])

        let missing = await sshError { try await session.download(sshd.homeDirectory + "/nope", limit: 10) }
        #expect(missing?.code == .fileNotFound)
    }

    @Test("readFile returns the bytes after an offset, for tailing a growing log")
    func readFileForTailing() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }
        let log = sshd.homeDirectory + "/build.log"

        let notYet = await sshError { try await session.readFile(log, from: 0, maxBytes: 100) }
        #expect(notYet?.code == .fileNotFound)

        _ = try await session.run("printf 'hello ' > build.log", timeout: .seconds(10))
        var offset = 0
        let first = try await session.readFile(log, from: offset, maxBytes: 100)
        #expect(text(first) == "hello ")
        offset += first.count

        #expect(try await session.readFile(log, from: offset, maxBytes: 100).isEmpty)

        _ = try await session.run("printf 'world, and more' >> build.log", timeout: .seconds(10))
        let second = try await session.readFile(log, from: offset, maxBytes: 5)
        #expect(text(second) == "world")
        offset += second.count
        let third = try await session.readFile(log, from: offset, maxBytes: 100)
        #expect(text(third) == ", and more")

        let bigger = [UInt8](repeating: 65, count: 200_000)
        try await session.upload(bigger, to: log)
        let middle = try await session.readFile(log, from: 100_000, maxBytes: 150_000)
        #expect(middle.count == 100_000)
    }

    @Test("sshd killed hard mid-command: the call fails promptly, later calls fail at once")
    func peerKilledMidCommand() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()
        defer { session.close() }

        let start = ContinuousClock.now
        let running = Task {
            await sshError { try await session.run("echo started; sleep 30", timeout: .seconds(60)) }
        }
        try await Task.sleep(for: .milliseconds(500))
        sshd.killHard()
        let error = await running.value
        #expect(error?.code == .disconnected || error?.code == .timeout, "\(String(describing: error))")
        #expect(elapsed(since: start) < .seconds(5))

        let after = await sshError { try await session.run("true", timeout: .seconds(5)) }
        #expect(after?.code == .disconnected)
    }

    @Test("a frozen sshd (kernel still acknowledging) is caught by the I/O watchdog")
    func frozenPeerDuringSFTP() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect(ioTimeout: .seconds(2))
        defer { session.close() }
        let other = try await sshd.connect()
        defer { other.close() }
        try await session.upload([1, 2, 3], to: sshd.homeDirectory + "/small")

        sshd.freeze()
        defer { sshd.thaw() }
        let start = ContinuousClock.now
        let error = await sshError { try await session.download(sshd.homeDirectory + "/small", limit: 10) }
        let took = elapsed(since: start)
        #expect(error?.code == .timeout)
        #expect(took >= .seconds(2) && took < .seconds(5), "\(took) \(String(describing: error))")

        let after = await sshError { try await session.readFile(sshd.homeDirectory + "/small", from: 0, maxBytes: 1) }
        #expect(after?.code == .disconnected)

        // run() on a frozen server is bounded by its own timeout, even before the command could start.
        let runStart = ContinuousClock.now
        let runError = await sshError { try await other.run("true", timeout: .seconds(1)) }
        #expect(runError?.code == .timeout)
        #expect(elapsed(since: runStart) < .seconds(3), "\(elapsed(since: runStart))")
    }

    @Test("two sessions run commands concurrently")
    func concurrentSessions() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let first = try await sshd.connect()
        defer { first.close() }
        let second = try await sshd.connect()
        defer { second.close() }

        // Each command prints when it started and ended (remote clock, ns); the two intervals must overlap.
        let command = "date +%s%N; sleep 1; date +%s%N"
        async let a = first.run(command, timeout: .seconds(10))
        async let b = second.run(command, timeout: .seconds(10))
        let (resultA, resultB) = try await (a, b)
        let spanA = text(resultA.stdout).split(separator: "\n").compactMap { Int($0) }
        let spanB = text(resultB.stdout).split(separator: "\n").compactMap { Int($0) }
        try #require(spanA.count == 2 && spanB.count == 2)
        #expect(spanA[0] < spanB[1] && spanB[0] < spanA[1], "the commands ran at the same time")
    }

    @Test("close() aborts a call in flight, is idempotent, and later calls throw disconnected")
    func closeAbortsAndRejects() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let session = try await sshd.connect()

        let start = ContinuousClock.now
        let running = Task {
            await sshError { try await session.run("sleep 30", timeout: .seconds(60)) }
        }
        try await Task.sleep(for: .milliseconds(300))
        session.close()
        session.close()
        let inFlight = await running.value
        #expect(inFlight?.code == .disconnected)
        #expect(elapsed(since: start) < .seconds(3))

        let later = await sshError { try await session.run("true", timeout: .seconds(5)) }
        #expect(later?.code == .disconnected)
    }

    @Test("no socket is left open after sessions close, after failed connects, or after the peer dies")
    func noDescriptorLeaks() async throws {
        let sshd = try await SSHDFixture.start()
        defer { sshd.stop() }
        let otherKey = try sshd.makeUnrelatedKey(named: "other_ed25519")

        var sessions: [SSHSession] = []
        for _ in 0..<4 {
            let session = try await sshd.connect()
            _ = try await session.upload([1], to: sshd.homeDirectory + "/one")
            sessions.append(session)
        }
        #expect(ownSockets(connectedTo: sshd.port) == 4)
        for session in sessions {
            session.close()
        }
        sessions.removeAll()
        #expect(await eventually { ownSockets(connectedTo: sshd.port) == 0 })

        let mismatch = await sshError {
            try await SSHSession.connect(sshd.target(hostPublicKeyPath: otherKey + ".pub"), logger: testLogger)
        }
        #expect(mismatch?.code == .hostKeyMismatch)
        let denied = await sshError {
            try await SSHSession.connect(sshd.target(privateKeyPath: otherKey), logger: testLogger)
        }
        #expect(denied?.code == .authenticationFailed)
        #expect(await eventually { ownSockets(connectedTo: sshd.port) == 0 })

        let doomed = try await sshd.connect()
        sshd.killHard()
        let lost = await sshError { try await doomed.run("true", timeout: .seconds(5)) }
        #expect(lost?.code == .disconnected)
        doomed.close()
        #expect(await eventually { ownSockets(connectedTo: sshd.port) == 0 })
    }
}
