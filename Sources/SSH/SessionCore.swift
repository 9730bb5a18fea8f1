internal import CLibSSH
internal import Dispatch
import Logging
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Process-wide libssh state. The corresponding C function is `ssh_init`.
enum LibSSH {
    /// `ssh_init()`, run exactly once, on first use (a `static let` initialiser runs once, thread-safely).
    static let isInitialised: Bool = ssh_init() == SSH_OK

    /// Entered when a teardown is scheduled, left when it has finished.
    static let pendingTeardowns = DispatchGroup()

    /// An exit handler that waits (at most two seconds) for session teardowns still running on their queues.
    ///
    /// OpenSSL registers its own exit handler (`OPENSSL_cleanup`) when libcrypto is first used, which is during
    /// the first key exchange. Exit handlers run in reverse order, so ours is registered after the first
    /// handshake: it then runs first, and a teardown still sending its last packets cannot find libcrypto
    /// already torn down (which crashed the process at exit).
    static let exitHandlerRegistered: Void = {
        atexit {
            _ = LibSSH.pendingTeardowns.wait(timeout: DispatchTime.now() + .seconds(2))
        }
    }()
}

/// Set from a task-cancellation handler on any thread; polled by long operations on the session queue.
final class CancellationFlag: Sendable {
    private let flag = Atomic(false)

    func cancel() {
        self.flag.store(true, ordering: .relaxed)
    }

    var isCancelled: Bool {
        self.flag.load(ordering: .relaxed)
    }
}

/// The libssh state of one session: one `ssh_session`, at most one `sftp_session`, and the TCP socket.
///
/// `@unchecked Sendable` invariant: `session`, `sftp` and `broken`, and every libssh call on those handles, are
/// touched only by blocks running on `queue`, which is serial. The other stored properties are immutable or are
/// thread-safe themselves (`Watchdog`, `Atomic`). `SSHSession` is the only owner.
final class SessionCore: @unchecked Sendable {
    let queue: DispatchQueue
    let target: SSHTarget
    let logger: Logger
    let watchdog: Watchdog
    /// Set by `SSHSession.close()` (any thread); checked by every operation before it starts.
    let isClosed = Atomic(false)

    /// Our descriptor for the socket: kept open until `teardown()`, so the watchdog can always shut it down.
    private let socketFD: Int32
    /// The duplicate given to libssh (`SSH_OPTIONS_FD`). libssh closes it on some error paths and not on others.
    private let libsshFD: Int32
    private var session: OpaquePointer?
    private var sftp: sftp_session?
    /// Set once the connection is known to be dead; every later operation throws `.disconnected`.
    private var broken: SSHError?

    private static let chunkSize = 64 * 1024

    private init(queue: DispatchQueue, target: SSHTarget, logger: Logger, socketFD: Int32, libsshFD: Int32) {
        self.queue = queue
        self.target = target
        self.logger = logger
        self.socketFD = socketFD
        self.libsshFD = libsshFD
        self.watchdog = Watchdog(fd: socketFD)
    }

    // MARK: Connecting

    /// Connects, checks the pinned host key, and authenticates with the client key. Runs on `queue`.
    ///
    /// The corresponding C functions are `ssh_connect`, `ssh_get_server_publickey`, `ssh_key_cmp` and
    /// `ssh_userauth_publickey`.
    static func connect(target: SSHTarget, logger: Logger, queue: DispatchQueue) throws(SSHError) -> SessionCore {
        try self.validate(target)
        guard LibSSH.isInitialised else {
            throw SSHError(.connectionFailed, "ssh_init() failed")
        }
        let deadline = ContinuousClock.now + target.connectTimeout
        let pinned = try self.importPublicKey(target.hostPublicKeyPath)
        defer { ssh_key_free(pinned) }
        let identity = try self.importPrivateKey(target.privateKeyPath)
        defer { ssh_key_free(identity) }

        let fd = try TCPConnector.connect(
            host: target.host,
            port: target.port,
            deadline: deadline,
            keepaliveInterval: target.keepaliveInterval
        )
        let duplicate = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else {
            let error = errno
            closeDescriptor(fd)
            throw SSHError(.connectionFailed, "cannot duplicate the socket", underlyingStatus: error)
        }
        let core = SessionCore(queue: queue, target: target, logger: logger, socketFD: fd, libsshFD: duplicate)
        do throws(SSHError) {
            try core.handshake(pinned: pinned, identity: identity, deadline: deadline)
            LibSSH.exitHandlerRegistered
        } catch {
            core.teardown()
            throw error
        }
        logger.debug("ssh session established", metadata: ["ssh.host": "\(target.host)", "ssh.port": "\(target.port)"])
        return core
    }

    private static func validate(_ target: SSHTarget) throws(SSHError) {
        guard !target.host.isEmpty, !target.host.contains(where: { $0 == "@" || $0.isWhitespace }) else {
            throw SSHError(.invalidArgument, "invalid host name")
        }
        guard (1...65535).contains(target.port) else {
            throw SSHError(.invalidArgument, "port \(target.port) is out of range")
        }
        guard !target.user.isEmpty, !target.user.contains(where: { $0.isWhitespace }) else {
            throw SSHError(.invalidArgument, "invalid user name")
        }
        guard target.connectTimeout > .zero, target.keepaliveInterval > .zero, target.ioTimeout > .zero else {
            throw SSHError(.invalidArgument, "timeouts must be positive")
        }
    }

    private static func importPublicKey(_ path: String) throws(SSHError) -> OpaquePointer {
        var key: OpaquePointer? = nil
        guard ssh_pki_import_pubkey_file(path, &key) == SSH_OK, let key else {
            throw SSHError(.invalidArgument, "cannot read the pinned host public key at \(path)")
        }
        return key
    }

    private static func importPrivateKey(_ path: String) throws(SSHError) -> OpaquePointer {
        var key: OpaquePointer? = nil
        guard ssh_pki_import_privkey_file(path, nil, nil, nil, &key) == SSH_OK, let key else {
            throw SSHError(
                .invalidArgument,
                "cannot read the private key at \(path) (missing, unreadable or encrypted)"
            )
        }
        return key
    }

    /// The host-key algorithms to offer, so that the server presents the same kind of key as the pinned one.
    private static func hostKeyAlgorithms(for key: OpaquePointer) -> String? {
        switch ssh_key_type(key) {
        case SSH_KEYTYPE_ED25519: "ssh-ed25519"
        case SSH_KEYTYPE_RSA: "rsa-sha2-512,rsa-sha2-256"
        case SSH_KEYTYPE_ECDSA_P256: "ecdsa-sha2-nistp256"
        case SSH_KEYTYPE_ECDSA_P384: "ecdsa-sha2-nistp384"
        case SSH_KEYTYPE_ECDSA_P521: "ecdsa-sha2-nistp521"
        default: nil
        }
    }

    private func handshake(
        pinned: OpaquePointer,
        identity: OpaquePointer,
        deadline: ContinuousClock.Instant
    ) throws(SSHError) {
        guard let session = ssh_new() else {
            throw SSHError(.connectionFailed, "ssh_new() failed")
        }
        self.session = session
        let place = "\(self.target.host) port \(self.target.port)"

        try self.setOption(SSH_OPTIONS_HOST, self.target.host)
        var port = UInt32(self.target.port)
        try self.setOption(SSH_OPTIONS_PORT, &port)
        try self.setOption(SSH_OPTIONS_USER, self.target.user)
        // No ~/.ssh/config, /etc/ssh/ssh_config, known_hosts files or $HOME lookups: the target is the whole truth.
        var processConfig = false
        try self.setOption(SSH_OPTIONS_PROCESS_CONFIG, &processConfig)
        let keyDirectory = String(self.target.privateKeyPath.reversed().drop { $0 != "/" }.reversed())
        try self.setOption(SSH_OPTIONS_SSH_DIR, keyDirectory.isEmpty ? "." : keyDirectory)
        try self.setOption(SSH_OPTIONS_KNOWNHOSTS, "/dev/null")
        try self.setOption(SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null")
        if let algorithms = Self.hostKeyAlgorithms(for: pinned) {
            try self.setOption(SSH_OPTIONS_HOSTKEYS, algorithms)
        }
        var seconds = (deadline - ContinuousClock.now).wholeSecondsRoundedUp
        try self.setOption(SSH_OPTIONS_TIMEOUT, &seconds)
        var fd = self.libsshFD
        try self.setOption(SSH_OPTIONS_FD, &fd)

        self.watchdog.arm(max(deadline - ContinuousClock.now, .milliseconds(1)))
        defer { self.watchdog.disarm() }

        guard ssh_connect(session) == SSH_OK else {
            throw self.failure(.connectionFailed, "SSH handshake with \(place) failed")
        }
        var serverKey: OpaquePointer? = nil
        guard ssh_get_server_publickey(session, &serverKey) == SSH_OK, let serverKey else {
            throw self.failure(.connectionFailed, "\(place) presented no host key")
        }
        defer { ssh_key_free(serverKey) }
        guard ssh_key_cmp(serverKey, pinned, SSH_KEY_CMP_PUBLIC) == 0 else {
            let type = ssh_key_type_to_char(ssh_key_type(serverKey)).map { String(cString: $0) } ?? "unknown"
            throw SSHError(
                .hostKeyMismatch,
                "the \(type) host key of \(place) is not the pinned key \(self.target.hostPublicKeyPath)"
            )
        }

        let result = ssh_userauth_publickey(session, nil, identity)
        guard result == SSH_AUTH_SUCCESS.rawValue else {
            if result == SSH_AUTH_DENIED.rawValue || result == SSH_AUTH_PARTIAL.rawValue {
                throw SSHError(.authenticationFailed, "\(place) did not accept the key for user \(self.target.user)")
            }
            throw self.failure(.authenticationFailed, "authentication with \(place) failed")
        }
        var ioSeconds = self.target.ioTimeout.wholeSecondsRoundedUp
        try self.setOption(SSH_OPTIONS_TIMEOUT, &ioSeconds)
    }

    private func setOption(_ option: ssh_options_e, _ value: String) throws(SSHError) {
        let result = value.withCString { ssh_options_set(self.session, option, $0) }
        guard result == 0 else {
            throw SSHError(.invalidArgument, "libssh rejected option \(option.rawValue)")
        }
    }

    private func setOption<T>(_ option: ssh_options_e, _ value: inout T) throws(SSHError) {
        let result = withUnsafePointer(to: &value) { ssh_options_set(self.session, option, $0) }
        guard result == 0 else {
            throw SSHError(.invalidArgument, "libssh rejected option \(option.rawValue)")
        }
    }

    // MARK: Running operations

    /// Runs one operation on the calling thread, which must be `queue`. Refuses to start on a closed or broken
    /// session, and arms the watchdog for the operation's blocking libssh calls.
    func perform<T>(
        _ cancel: CancellationFlag,
        _ body: (OpaquePointer) throws(SSHError) -> T
    ) throws(SSHError) -> T {
        dispatchPrecondition(condition: .onQueue(self.queue))
        if self.isClosed.load(ordering: .relaxed) {
            throw SSHError(.disconnected, "the session is closed")
        }
        if let broken = self.broken {
            throw SSHError(.disconnected, "the connection was lost earlier: \(broken.message)")
        }
        if cancel.isCancelled {
            throw SSHError(.cancelled, "cancelled before start")
        }
        guard let session = self.session else {
            throw SSHError(.disconnected, "the session is closed")
        }
        self.watchdog.arm(self.target.ioTimeout)
        defer { self.watchdog.disarm() }
        return try body(session)
    }

    /// Turns a failed libssh call into an error, and records whether the connection is now dead.
    private func failure(_ code: SSHError.Code, _ what: String) -> SSHError {
        let error = self.classify(code, what)
        if self.broken == nil, error.code == .timeout || error.code == .disconnected,
            !self.isClosed.load(ordering: .relaxed)
        {
            self.broken = error
            self.logger.warning(
                "ssh connection lost",
                metadata: [
                    "ssh.host": "\(self.target.host)", "ssh.port": "\(self.target.port)", "ssh.error": "\(error)",
                ]
            )
        }
        return error
    }

    private func classify(_ code: SSHError.Code, _ what: String) -> SSHError {
        if self.isClosed.load(ordering: .relaxed) {
            return SSHError(.disconnected, "\(what): the session was closed")
        }
        if self.watchdog.hasTripped {
            return SSHError(.timeout, "\(what): the server stopped responding; the connection was aborted")
        }
        guard let session = self.session else {
            return SSHError(.disconnected, "\(what): the session is closed")
        }
        let detail = ssh_get_error(UnsafeMutableRawPointer(session)).map { String(cString: $0) } ?? ""
        let message = detail.isEmpty ? what : "\(what): \(detail)"
        if !self.isAlive(session) {
            return SSHError(.disconnected, message)
        }
        return SSHError(code, message)
    }

    private func isAlive(_ session: OpaquePointer) -> Bool {
        ssh_is_connected(session) != 0 && (ssh_get_status(session) & (SSH_CLOSED | SSH_CLOSED_ERROR)) == 0
    }

    // MARK: Commands

    /// Runs `command` in a new session channel, reading stdout and stderr together until both reach EOF and the
    /// exit status arrives.
    ///
    /// The loop puts the session into non-blocking mode and waits in `poll(2)` on the socket itself, so a quiet
    /// stdout cannot hold up a chatty stderr (or the reverse), the deadline is exact, and an SSH ignore message goes
    /// out every keepalive interval. The corresponding C functions are `ssh_channel_request_exec`,
    /// `ssh_channel_read_nonblocking` and `ssh_channel_get_exit_status`.
    func run(
        _ command: String,
        timeout: Duration,
        outputLimit: Int,
        cancel: CancellationFlag
    ) throws(SSHError) -> SSHCommandResult {
        guard outputLimit >= 0, timeout > .zero else {
            throw SSHError(.invalidArgument, "the output limit must not be negative and the timeout must be positive")
        }
        return try self.perform(cancel) { (session) throws(SSHError) -> SSHCommandResult in
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            // Until the command has started, a server that does not answer may hold us up no longer than the
            // command's own timeout: past it the connection is aborted (and the session becomes unusable).
            self.watchdog.arm(min(self.target.ioTimeout, timeout))
            guard let channel = ssh_channel_new(session) else {
                throw self.failure(.channelFailed, "cannot create a channel")
            }
            var abandon = false
            defer { self.finish(channel, session: session, abandon: abandon) }
            guard ssh_channel_open_session(channel) == SSH_OK else {
                throw self.failure(.channelFailed, "cannot open a session channel")
            }
            guard ssh_channel_request_exec(channel, command) == SSH_OK else {
                throw self.failure(.commandFailed, "the server refused to start the command")
            }
            self.watchdog.arm(self.target.ioTimeout)

            ssh_set_blocking(session, 0)
            defer { ssh_set_blocking(session, 1) }

            var output: [[UInt8]] = [[], []]
            var atEOF = [false, false]
            var chunk = [UInt8](repeating: 0, count: Self.chunkSize)
            var nextKeepalive = clock.now + self.target.keepaliveInterval
            while true {
                var progressed = false
                for stream in 0..<2 where !atEOF[stream] {
                    while true {
                        let count = chunk.withUnsafeMutableBytes { buffer in
                            ssh_channel_read_nonblocking(
                                channel,
                                buffer.baseAddress,
                                UInt32(buffer.count),
                                Int32(stream)
                            )
                        }
                        if count > 0 {
                            if output[0].count + output[1].count + Int(count) > outputLimit {
                                abandon = true
                                throw SSHError(
                                    .outputLimitExceeded,
                                    "the command wrote more than \(outputLimit) bytes to stdout and stderr"
                                )
                            }
                            output[stream].append(contentsOf: chunk[0..<Int(count)])
                            progressed = true
                        } else if count == 0 || count == SSH_AGAIN {
                            break
                        } else if count == SSH_EOF {
                            atEOF[stream] = true
                            break
                        } else {
                            throw self.failure(.channelFailed, "reading the command's output failed")
                        }
                    }
                }
                self.watchdog.touch()
                if atEOF[0] && atEOF[1] {
                    let status = ssh_channel_get_exit_status(channel)
                    if status != -1 || ssh_channel_is_closed(channel) != 0 {
                        if !self.isAlive(session) {
                            throw self.failure(.disconnected, "the connection was lost")
                        }
                        return SSHCommandResult(exitStatus: status, stdout: output[0], stderr: output[1])
                    }
                }
                let now = clock.now
                if now >= deadline {
                    abandon = true
                    throw SSHError(.timeout, "the command did not finish within \(timeout)")
                }
                if cancel.isCancelled {
                    abandon = true
                    throw SSHError(.cancelled, "the command was cancelled")
                }
                if now >= nextKeepalive {
                    if ssh_send_ignore(session, "") != SSH_OK {
                        throw self.failure(.disconnected, "sending a keepalive failed")
                    }
                    nextKeepalive = now + self.target.keepaliveInterval
                }
                if !progressed {
                    let wait = min(deadline, nextKeepalive, now + .milliseconds(250)) - now
                    try self.waitForSocket(session, wait)
                }
            }
        }
    }

    /// Waits until the socket is readable (or writable, if libssh has output queued), or `wait` passes.
    private func waitForSocket(_ session: OpaquePointer, _ wait: Duration) throws(SSHError) {
        var events = Int16(POLLIN)
        if ssh_get_poll_flags(session) & SSH_WRITE_PENDING != 0 {
            _ = ssh_blocking_flush(session, 0)
            if ssh_get_poll_flags(session) & SSH_WRITE_PENDING != 0 {
                events |= Int16(POLLOUT)
            }
        }
        var descriptor = pollfd(fd: self.socketFD, events: events, revents: 0)
        if poll(&descriptor, 1, wait.clampedMilliseconds) < 0 && errno != EINTR {
            throw SSHError(.disconnected, "poll() on the connection failed", underlyingStatus: errno)
        }
    }

    /// Closes and frees a command channel. When the command is abandoned (timeout, limit, cancellation) the
    /// remote process group is sent SIGTERM first; sshd delivers it with `killpg` (OpenSSH 8.1 and later). The
    /// corresponding C functions are `ssh_channel_request_send_signal`, `ssh_channel_close` and `ssh_channel_free`.
    private func finish(_ channel: OpaquePointer, session: OpaquePointer, abandon: Bool) {
        if self.isAlive(session) && ssh_channel_is_open(channel) != 0 {
            if abandon {
                _ = ssh_channel_request_send_signal(channel, "TERM")
            }
            _ = ssh_channel_close(channel)
        }
        ssh_channel_free(channel)
    }

    // MARK: SFTP

    /// The session's SFTP subsystem, opened on first use. The corresponding C functions are `sftp_new` and
    /// `sftp_init`.
    private func sftpSession(_ session: OpaquePointer) throws(SSHError) -> sftp_session {
        if let sftp = self.sftp {
            return sftp
        }
        guard let sftp = sftp_new(session) else {
            throw self.failure(.sftpFailed, "cannot open the SFTP subsystem")
        }
        guard sftp_init(sftp) == SSH_OK else {
            let error = self.failure(.sftpFailed, "SFTP initialisation failed")
            sftp_free(sftp)
            throw error
        }
        self.sftp = sftp
        return sftp
    }

    private func sftpFailure(_ sftp: sftp_session, _ what: String) -> SSHError {
        let base = self.failure(.sftpFailed, what)
        guard base.code == .sftpFailed else {
            return base
        }
        let status = sftp_get_error(sftp)
        switch status {
        case SSH_FX_NO_SUCH_FILE, SSH_FX_NO_SUCH_PATH:
            return SSHError(.fileNotFound, what, underlyingStatus: status)
        case SSH_FX_PERMISSION_DENIED:
            return SSHError(.sftpFailed, "\(what): permission denied", underlyingStatus: status)
        default:
            return SSHError(.sftpFailed, base.message, underlyingStatus: status)
        }
    }

    /// Writes everything `fill` produces to `remotePath` atomically: the data goes to a temporary file in the same
    /// directory, which is closed, given `mode`, and renamed over `remotePath`. Readers never see a partial file.
    /// (SFTP v3 rename cannot replace a file, so an existing `remotePath` is removed just before the rename.)
    /// The corresponding C functions are `sftp_open`, `sftp_write`, `sftp_close`, `sftp_chmod` and `sftp_rename`.
    func upload(
        to remotePath: String,
        mode: Int32,
        cancel: CancellationFlag,
        fill: (inout [UInt8]) throws(SSHError) -> Int
    ) throws(SSHError) {
        guard !remotePath.isEmpty, (0...0o7777).contains(mode) else {
            throw SSHError(.invalidArgument, "invalid remote path or mode")
        }
        try self.perform(cancel) { (session) throws(SSHError) in
            let sftp = try self.sftpSession(session)
            let temporary = "\(remotePath).tmp-\(randomSuffix())"
            guard let file = sftp_open(sftp, temporary, O_WRONLY | O_CREAT | O_EXCL, mode_t(0o600)) else {
                throw self.sftpFailure(sftp, "cannot create \(temporary)")
            }
            var isOpen = true
            do throws(SSHError) {
                var chunk = [UInt8](repeating: 0, count: Self.chunkSize)
                while true {
                    if cancel.isCancelled {
                        throw SSHError(.cancelled, "the upload to \(remotePath) was cancelled")
                    }
                    let count = try fill(&chunk)
                    if count == 0 { break }
                    let written = chunk.withUnsafeBytes { sftp_write(file, $0.baseAddress, count) }
                    guard written == count else {
                        throw self.sftpFailure(sftp, "writing \(temporary) failed")
                    }
                    self.watchdog.touch()
                }
                isOpen = false
                guard sftp_close(file) == SSH_OK else {
                    throw self.sftpFailure(sftp, "closing \(temporary) failed")
                }
                guard sftp_chmod(sftp, temporary, mode_t(mode)) == 0 else {
                    throw self.sftpFailure(sftp, "setting the mode of \(temporary) failed")
                }
                if sftp_rename(sftp, temporary, remotePath) != 0 {
                    if let attributes = sftp_lstat(sftp, remotePath) {
                        sftp_attributes_free(attributes)
                        _ = sftp_unlink(sftp, remotePath)
                    }
                    guard sftp_rename(sftp, temporary, remotePath) == 0 else {
                        throw self.sftpFailure(sftp, "renaming \(temporary) to \(remotePath) failed")
                    }
                }
            } catch {
                if isOpen {
                    _ = sftp_close(file)
                }
                if self.broken == nil && self.isAlive(session) {
                    _ = sftp_unlink(sftp, temporary)
                }
                throw error
            }
        }
    }

    /// Reads `remotePath` from `offset`, handing each chunk to `sink`, until EOF or `maxBytes`. If `failOverLimit`
    /// is set, a file longer than `maxBytes` throws `.outputLimitExceeded` instead of being cut short. The
    /// corresponding C functions are `sftp_open`, `sftp_fstat`, `sftp_seek64` and `sftp_read`.
    func read(
        _ remotePath: String,
        offset: Int,
        maxBytes: Int,
        failOverLimit: Bool,
        cancel: CancellationFlag,
        sink: (ArraySlice<UInt8>) throws(SSHError) -> Void
    ) throws(SSHError) {
        guard !remotePath.isEmpty, offset >= 0, maxBytes >= 0 else {
            throw SSHError(.invalidArgument, "invalid remote path, offset or limit")
        }
        try self.perform(cancel) { (session) throws(SSHError) in
            let sftp = try self.sftpSession(session)
            guard let file = sftp_open(sftp, remotePath, O_RDONLY, 0) else {
                throw self.sftpFailure(sftp, "cannot open \(remotePath)")
            }
            defer { _ = sftp_close(file) }
            if failOverLimit, let attributes = sftp_fstat(file) {
                let size = attributes.pointee.size
                let hasSize = attributes.pointee.flags & UInt32(SSH_FILEXFER_ATTR_SIZE) != 0
                sftp_attributes_free(attributes)
                if hasSize && size > UInt64(maxBytes) {
                    throw SSHError(
                        .outputLimitExceeded,
                        "\(remotePath) is \(size) bytes, over the limit of \(maxBytes)"
                    )
                }
            }
            if offset > 0 {
                guard sftp_seek64(file, UInt64(offset)) == 0 else {
                    throw self.sftpFailure(sftp, "cannot seek in \(remotePath)")
                }
            }
            var total = 0
            var chunk = [UInt8](repeating: 0, count: Self.chunkSize)
            // Ask for one byte past the limit, so that a file that grew after fstat is still caught.
            let budget = failOverLimit ? maxBytes + 1 : maxBytes
            while total < budget {
                if cancel.isCancelled {
                    throw SSHError(.cancelled, "reading \(remotePath) was cancelled")
                }
                let wanted = min(chunk.count, budget - total)
                let count = chunk.withUnsafeMutableBytes { sftp_read(file, $0.baseAddress, wanted) }
                if count < 0 {
                    throw self.sftpFailure(sftp, "reading \(remotePath) failed")
                }
                if count == 0 {
                    break
                }
                if failOverLimit && total + count > maxBytes {
                    throw SSHError(.outputLimitExceeded, "\(remotePath) is larger than the limit of \(maxBytes) bytes")
                }
                total += count
                try sink(chunk[0..<count])
                self.watchdog.touch()
            }
        }
    }

    // MARK: Closing

    /// Frees the SFTP subsystem and the session and closes both descriptors. Runs on `queue`, last; bounded by the
    /// watchdog (a frozen peer cannot hold it up for more than a few seconds).
    func teardown() {
        self.watchdog.arm(min(self.target.ioTimeout, .seconds(5)))
        if let sftp = self.sftp {
            self.sftp = nil
            sftp_free(sftp)
        }
        if let session = self.session {
            self.session = nil
            ssh_disconnect(session)
            ssh_free(session)
        }
        let fd = self.watchdog.invalidate()
        // libssh closed its duplicate on some error paths; if it did, the number may since belong to someone
        // else, so close it only while it still refers to our socket.
        if fd >= 0 {
            if sameFile(self.libsshFD, fd) {
                closeDescriptor(self.libsshFD)
            }
            closeDescriptor(fd)
        }
        self.logger.debug(
            "ssh session closed",
            metadata: ["ssh.host": "\(self.target.host)", "ssh.port": "\(self.target.port)"]
        )
    }
}
