import Logging
import SSH
import Tickets

/// How a worker reaches a leased builder. Production uses SSH (`SSHBuilderTransport`); tests run the same
/// commands locally and inject failures (Tests/BackendTests).
protocol BuilderTransport: Sendable {
    /// Opens a connection to the builder behind `resource`. A throw means the builder is unreachable (the worker
    /// retires the resource and retries the task elsewhere).
    func connect(_ resource: Resource, logger: Logger) async throws -> any BuilderConnection
}

/// One open connection to a builder: shell commands and file transfer, every wait bounded. Operations run one at
/// a time in call order. Paths that are not absolute are relative to the builder user's home directory.
protocol BuilderConnection: Sendable {
    /// Runs `command` through the builder user's shell and collects its output (bounded). Throws when the
    /// command does not finish within `timeout` or the calling task is cancelled; a non-zero exit is not an error.
    func run(_ command: String, timeout: Duration) async throws -> BuilderCommandResult
    /// Writes `bytes` to `path` atomically.
    func upload(_ bytes: [UInt8], to path: String) async throws
    /// Up to `maxBytes` of `path` from byte `offset` (fewer, or none, at the end of the file).
    func readFile(_ path: String, from offset: Int, maxBytes: Int) async throws -> [UInt8]
    /// Streams `path` into the local file `localPath` (renamed into place at the end); fails over `limit` bytes.
    func downloadFile(_ path: String, toLocalPath localPath: String, limit: Int) async throws
    /// Idempotent; an operation in flight fails.
    func close()
}

/// The outcome of a command that ran to completion on a builder.
struct BuilderCommandResult: Sendable {
    /// The exit status, or -1 when the command was ended by a signal.
    var exitStatus: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
}

/// Builders over SSH (libssh): the pool's resource data names host, port, user and pinned host key; the
/// Backend's `ssh_private_key` authenticates.
struct SSHBuilderTransport: BuilderTransport {
    let privateKeyPath: String

    func connect(_ resource: Resource, logger: Logger) async throws -> any BuilderConnection {
        let r = resource.data
        let target = SSHTarget(
            host: r.host,
            port: r.port,
            user: r.user,
            hostPublicKeyPath: r.hostPublicKey ?? "",
            privateKeyPath: self.privateKeyPath,
            connectTimeout: .seconds(10),
            keepaliveInterval: .seconds(5)
        )
        return SSHBuilderConnection(session: try await SSHSession.connect(target, logger: logger))
    }
}

struct SSHBuilderConnection: BuilderConnection {
    let session: SSHSession

    func run(_ command: String, timeout: Duration) async throws -> BuilderCommandResult {
        let r = try await self.session.run(command, timeout: timeout)
        return BuilderCommandResult(exitStatus: r.exitStatus, stdout: r.stdout, stderr: r.stderr)
    }

    func upload(_ bytes: [UInt8], to path: String) async throws {
        try await self.session.upload(bytes, to: path)
    }

    func readFile(_ path: String, from offset: Int, maxBytes: Int) async throws -> [UInt8] {
        try await self.session.readFile(path, from: offset, maxBytes: maxBytes)
    }

    func downloadFile(_ path: String, toLocalPath localPath: String, limit: Int) async throws {
        try await self.session.downloadFile(path, toLocalPath: localPath, limit: limit)
    }

    func close() {
        self.session.close()
    }
}
