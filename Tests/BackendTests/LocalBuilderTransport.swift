import Foundation
import Logging
import Subprocess
import Synchronization
import TestSupport
import Tickets

@testable import Backend

#if canImport(Glibc)
import Glibc
#endif

/// The unprivileged user local builders run as (`koper-builder` refuses to build as root), created once.
struct BuilderUser: Sendable {
    static let name = "koper-backendtest"
    let uid: uid_t
    let gid: gid_t

    static func ensure() async throws -> BuilderUser {
        if getpwnam(Self.name) == nil {
            let r = try await Command.run(
                "/usr/sbin/useradd",
                [
                    "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
                    Self.name,
                ]
            )
            // A parallel test process may have created it meanwhile: only its absence is an error.
            guard getpwnam(Self.name) != nil else { throw LocalBuilderError("useradd \(Self.name) failed: \(r)") }
        }
        guard let entry = getpwnam(Self.name) else { throw LocalBuilderError("no user \(Self.name)") }
        return BuilderUser(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }
}

/// Builders on this machine, without sshd: the builder behind a resource is the directory `root/HOST` (its "home";
/// relative paths resolve there), owned by `user`; its commands run as `user` through `/bin/sh` in that directory
/// and its files are read and written directly. The worker's commands (`setsid nohup koper-builder … &`, the
/// probe, `pkill -s`) run unchanged, so the real `koper-builder` builds here as it would on a builder host.
struct LocalBuilderTransport: BuilderTransport {
    let root: String
    let user: BuilderUser

    func home(of host: String) -> String { "\(self.root)/\(host)" }

    func connect(_ resource: Resource, logger: Logger) async throws -> any BuilderConnection {
        let home = self.home(of: resource.data.host)
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        chown(home, self.user.uid, self.user.gid)
        return LocalBuilderConnection(home: home, user: self.user)
    }
}

struct LocalBuilderError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

final class LocalBuilderConnection: BuilderConnection {
    let home: String
    let user: BuilderUser
    private let isClosed = Atomic<Bool>(false)

    init(home: String, user: BuilderUser) {
        self.home = home
        self.user = user
    }

    func path(_ path: String) -> String { path.hasPrefix("/") ? path : "\(self.home)/\(path)" }

    private func checkOpen() throws {
        if self.isClosed.load(ordering: .relaxed) { throw LocalBuilderError("connection closed") }
    }

    private var platformOptions: PlatformOptions {
        var options = PlatformOptions()
        options.userID = self.user.uid
        options.groupID = self.user.gid
        options.supplementaryGroups = []
        options.createSession = true
        options.teardownSequence = [
            .send(signal: .terminate, toProcessGroup: true, allowedDurationToNextStep: .milliseconds(500))
        ]
        return options
    }

    /// `/bin/sh -c` in the home directory, in a session of its own (torn down on timeout or cancellation). The
    /// build itself leaves that session with `setsid`, as it does on a builder.
    func run(_ command: String, timeout: Duration) async throws -> BuilderCommandResult {
        try self.checkOpen()
        let options = self.platformOptions
        let script = "cd '\(self.home)' || exit 125\n" + command
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in ["HOME": self.home, "USER": BuilderUser.name, "LOGNAME": BuilderUser.name] {
            if let key = Environment.Key(rawValue: key) { updates[key] = value }
        }
        let environment = Environment.inherit.updating(updates)
        enum Race: Sendable {
            case finished(BuilderCommandResult)
            case timedOut
        }
        let first: Race? = try await withThrowingTaskGroup(of: Race.self) { group in
            group.addTask {
                let r = try await Subprocess.run(
                    .path("/bin/sh"),
                    arguments: ["-c", script],
                    environment: environment,
                    platformOptions: options,
                    input: .none,
                    output: .bytes(limit: 16 << 20),
                    error: .bytes(limit: 1 << 20)
                )
                let status: Int32
                switch r.terminationStatus {
                case .exited(let code): status = code
                default: status = -1
                }
                return .finished(
                    BuilderCommandResult(exitStatus: status, stdout: r.standardOutput, stderr: r.standardError)
                )
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return .timedOut
            }
            let first = try await group.next()
            group.cancelAll()
            _ = try? await group.next()
            return first
        }
        try Task.checkCancellation()
        guard case .finished(let result) = first else {
            throw LocalBuilderError("command timed out after \(timeout): \(command.prefix(80))")
        }
        return result
    }

    func upload(_ bytes: [UInt8], to path: String) async throws {
        try self.checkOpen()
        let target = self.path(path)
        let temporary = "\(target).part-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw LocalBuilderError("cannot write \(temporary)")
        }
        chown(temporary, self.user.uid, self.user.gid)
        guard rename(temporary, target) == 0 else {
            unlink(temporary)
            throw LocalBuilderError("cannot rename \(temporary) to \(target): errno \(errno)")
        }
    }

    func readFile(_ path: String, from offset: Int, maxBytes: Int) async throws -> [UInt8] {
        try self.checkOpen()
        guard let handle = FileHandle(forReadingAtPath: self.path(path)) else {
            throw LocalBuilderError("no such file: \(path)")
        }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        return [UInt8](try handle.read(upToCount: maxBytes) ?? Data())
    }

    func downloadFile(_ path: String, toLocalPath localPath: String, limit: Int) async throws {
        try self.checkOpen()
        let source = self.path(path)
        let attributes = try FileManager.default.attributesOfItem(atPath: source)
        if let size = attributes[.size] as? Int, size > limit {
            throw LocalBuilderError("\(path) is larger than \(limit) bytes")
        }
        let temporary = "\(localPath).part-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.copyItem(atPath: source, toPath: temporary)
        guard rename(temporary, localPath) == 0 else {
            unlink(temporary)
            throw LocalBuilderError("cannot rename \(temporary) to \(localPath): errno \(errno)")
        }
    }

    func close() {
        self.isClosed.store(true, ordering: .relaxed)
    }
}
