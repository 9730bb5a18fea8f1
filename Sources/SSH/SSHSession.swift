internal import AtomicFile
internal import Dispatch
public import Logging
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// One authenticated SSH connection to a builder: run commands, and move files over SFTP.
///
/// Every libssh call for a session happens on the session's own serial `DispatchQueue`; the async methods hand
/// their work to it and suspend, so nothing blocks the Swift concurrency pool. Operations on one session
/// therefore run one at a time, in call order; use several sessions for parallel work.
///
/// Every wait is bounded: `connect` by `SSHTarget.connectTimeout`, `run` by its `timeout`, SFTP calls by
/// `SSHTarget.ioTimeout` without progress, and a dead peer by `SSHTarget.keepaliveInterval`. Every buffer is
/// bounded by the caller's limit.
///
/// Call `close()` when done; dropping an open session is a bug (it asserts in debug builds).
public final class SSHSession: Sendable {
    public let target: SSHTarget
    private let core: SessionCore

    private init(core: SessionCore) {
        self.core = core
        self.target = core.target
    }

    deinit {
        assert(self.core.isClosed.load(ordering: .relaxed), "SSHSession for \(self.target.host) was not closed")
        self.close()
    }

    /// Connects to `target`: TCP, key exchange, a check that the server's host key equals the pinned key (before
    /// anything is sent to authenticate), then public-key authentication with `target.privateKeyPath`. No SSH
    /// configuration file, `~/.ssh`, known-hosts file or agent is consulted.
    ///
    /// The corresponding C functions are `ssh_connect`, `ssh_get_server_publickey`, `ssh_key_cmp` and
    /// `ssh_userauth_publickey`.
    public static func connect(_ target: SSHTarget, logger: Logger) async throws(SSHError) -> SSHSession {
        let queue = DispatchQueue(label: "koper.ssh.\(target.host):\(target.port)")
        let result: Result<SessionCore, SSHError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(
                    returning: Result { () throws(SSHError) -> SessionCore in
                        try SessionCore.connect(target: target, logger: logger, queue: queue)
                    }
                )
            }
        }
        return SSHSession(core: try result.get())
    }

    /// Runs `command` through the remote user's shell and collects its output.
    ///
    /// stdout and stderr are read together, so a command that writes a lot to either cannot stall. If the command
    /// has not finished after `timeout`, or together writes more than `outputLimit` bytes, or the task is
    /// cancelled, the remote process group is sent SIGTERM, the channel is closed, and this throws `.timeout`,
    /// `.outputLimitExceeded` or `.cancelled`; the session stays usable. A non-zero exit status is not an error.
    ///
    /// If the server does not even start the command within `timeout` (or `ioTimeout`, if shorter), the
    /// connection is aborted: this throws `.timeout` and the session becomes unusable.
    ///
    /// Without a pty nothing else stops a remote command when the connection dies: wrap long-running commands in
    /// something that dies with its parent (e.g. `bwrap --die-with-parent`).
    public func run(
        _ command: String,
        timeout: Duration,
        outputLimit: Int = 16 << 20
    ) async throws(SSHError) -> SSHCommandResult {
        try await self.perform { core, cancel throws(SSHError) in
            try core.run(command, timeout: timeout, outputLimit: outputLimit, cancel: cancel)
        }
    }

    /// Writes `data` to `remotePath` atomically (temporary file, then rename) with permissions `mode`.
    public func upload(_ data: [UInt8], to remotePath: String, mode: Int32 = 0o644) async throws(SSHError) {
        try await self.perform { core, cancel throws(SSHError) in
            var position = 0
            try core.upload(to: remotePath, mode: mode, cancel: cancel) { chunk in
                let count = min(chunk.count, data.count - position)
                chunk.withUnsafeMutableBytes { destination in
                    data.withUnsafeBytes { source in
                        destination.copyMemory(
                            from: UnsafeRawBufferPointer(rebasing: source[position..<(position + count)])
                        )
                    }
                }
                position += count
                return count
            }
        }
    }

    /// Streams the local file at `localPath` to `remotePath` atomically (temporary file, then rename).
    public func uploadFile(localPath: String, to remotePath: String, mode: Int32 = 0o644) async throws(SSHError) {
        try await self.perform { core, cancel throws(SSHError) in
            let fd = open(localPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw SSHError(.invalidArgument, "cannot open the local file \(localPath)", underlyingStatus: errno)
            }
            defer { closeDescriptor(fd) }
            try core.upload(to: remotePath, mode: mode, cancel: cancel) { (chunk) throws(SSHError) -> Int in
                let count = retryingOnInterrupt { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
                if count >= 0 {
                    return count
                }
                throw SSHError(.invalidArgument, "reading the local file \(localPath) failed", underlyingStatus: errno)
            }
        }
    }

    /// Reads the whole of `remotePath`. Throws `.outputLimitExceeded` if it is longer than `limit` bytes, and
    /// `.fileNotFound` if it does not exist.
    public func download(_ remotePath: String, limit: Int) async throws(SSHError) -> [UInt8] {
        try await self.perform { core, cancel throws(SSHError) in
            var bytes: [UInt8] = []
            try core.read(remotePath, offset: 0, maxBytes: limit, failOverLimit: true, cancel: cancel) { chunk in
                bytes.append(contentsOf: chunk)
            }
            return bytes
        }
    }

    /// Streams `remotePath` into `toLocalPath` (through a temporary file beside it, renamed into place at the
    /// end). Throws `.outputLimitExceeded` if the file is longer than `limit` bytes; nothing is left behind then.
    public func downloadFile(_ remotePath: String, toLocalPath localPath: String, limit: Int) async throws(SSHError) {
        try await self.perform { core, cancel throws(SSHError) in
            let temporary = "\(localPath).part-\(randomSuffix())"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw SSHError(.invalidArgument, "cannot create the local file \(temporary)", underlyingStatus: errno)
            }
            var isOpen = true
            do throws(SSHError) {
                try core.read(remotePath, offset: 0, maxBytes: limit, failOverLimit: true, cancel: cancel) {
                    (chunk) throws(SSHError) in
                    let failedErrno: Int32? = chunk.withUnsafeBytes { buffer in
                        var offset = 0
                        while offset < buffer.count {
                            let written = retryingOnInterrupt {
                                write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                            }
                            if written < 0 {
                                return errno
                            }
                            offset += written
                        }
                        return nil
                    }
                    if let failedErrno {
                        throw SSHError(.invalidArgument, "writing \(temporary) failed", underlyingStatus: failedErrno)
                    }
                }
                isOpen = false
                guard closeDescriptor(fd) == 0 else {
                    throw SSHError(.invalidArgument, "closing \(temporary) failed", underlyingStatus: errno)
                }
                guard rename(temporary, localPath) == 0 else {
                    throw SSHError(
                        .invalidArgument,
                        "cannot rename \(temporary) to \(localPath)",
                        underlyingStatus: errno
                    )
                }
            } catch {
                if isOpen {
                    closeDescriptor(fd)
                }
                _ = unlink(temporary)
                throw error
            }
        }
    }

    /// Reads up to `maxBytes` of `remotePath` starting at byte `offset`; fewer (possibly none) at the end of the
    /// file. For tailing a growing log: pass the previous offset plus the number of bytes returned.
    public func readFile(_ remotePath: String, from offset: Int, maxBytes: Int) async throws(SSHError) -> [UInt8] {
        try await self.perform { core, cancel throws(SSHError) in
            var bytes: [UInt8] = []
            try core.read(remotePath, offset: offset, maxBytes: maxBytes, failOverLimit: false, cancel: cancel) {
                chunk in
                bytes.append(contentsOf: chunk)
            }
            return bytes
        }
    }

    /// Closes the session. Idempotent and non-blocking: an operation in flight is aborted (it throws
    /// `.disconnected`), later calls throw `.disconnected`, and the connection is released on the session's queue.
    public func close() {
        guard !self.core.isClosed.exchange(true, ordering: .relaxed) else {
            return
        }
        let core = self.core
        if core.watchdog.isArmed {
            core.watchdog.abort()
        }
        LibSSH.pendingTeardowns.enter()
        core.queue.async {
            core.teardown()
            LibSSH.pendingTeardowns.leave()
        }
    }

    /// Hands `body` to the session's queue and suspends until it finishes. Task cancellation sets a flag that
    /// the long-running loops poll.
    private func perform<T: Sendable>(
        _ body: @escaping @Sendable (SessionCore, CancellationFlag) throws(SSHError) -> T
    ) async throws(SSHError) -> T {
        let core = self.core
        let cancel = CancellationFlag()
        let result: Result<T, SSHError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                core.queue.async {
                    continuation.resume(returning: Result { () throws(SSHError) -> T in try body(core, cancel) })
                }
            }
        } onCancel: {
            cancel.cancel()
        }
        return try result.get()
    }
}
