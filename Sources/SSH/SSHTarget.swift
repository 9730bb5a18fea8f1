/// Where and how to connect: one builder host, one user, a pinned host key and a client key.
///
/// Nothing is read from `~/.ssh`, `/etc/ssh/ssh_config` or an agent: the two key files named here are the only
/// credentials used, and the server must present exactly the public key in `hostPublicKeyPath`.
public struct SSHTarget: Sendable {
    /// A host name or an IPv4/IPv6 address literal (no `user@`, no brackets).
    public var host: String
    public var port: Int
    public var user: String
    /// An OpenSSH `.pub` file (`ssh-ed25519 AAAA… comment`). The server's host key must be equal to it.
    public var hostPublicKeyPath: String
    /// An unencrypted OpenSSH private key (ed25519, ECDSA or RSA).
    public var privateKeyPath: String
    /// Bounds the whole of `connect`: TCP connect, key exchange, host-key check and authentication.
    public var connectTimeout: Duration
    /// Dead-peer detection. TCP keepalive probes start after this much idle time, a connection whose sent data
    /// (or probes) stay unacknowledged for three intervals is dropped by the kernel (`TCP_USER_TIMEOUT`), and
    /// `run` sends an SSH ignore message every interval so there is always something to acknowledge. A dead peer
    /// or a cut path is therefore noticed within about four intervals.
    public var keepaliveInterval: Duration
    /// The longest any single network wait outside `run` may go without progress (channel open, one SFTP
    /// request, closing). When it passes, the connection is aborted, the call throws `.timeout`, and the session
    /// is unusable. This catches a peer whose kernel still answers but whose sshd has stopped (e.g. frozen).
    public var ioTimeout: Duration

    public init(
        host: String,
        port: Int = 22,
        user: String,
        hostPublicKeyPath: String,
        privateKeyPath: String,
        connectTimeout: Duration = .seconds(10),
        keepaliveInterval: Duration = .seconds(5),
        ioTimeout: Duration = .seconds(60)
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.hostPublicKeyPath = hostPublicKeyPath
        self.privateKeyPath = privateKeyPath
        self.connectTimeout = connectTimeout
        self.keepaliveInterval = keepaliveInterval
        self.ioTimeout = ioTimeout
    }
}

/// The outcome of a command that ran to completion.
public struct SSHCommandResult: Sendable {
    /// The remote exit status, or -1 when the command was ended by a signal (no exit status was sent).
    public let exitStatus: Int32
    public let stdout: [UInt8]
    public let stderr: [UInt8]

    public init(exitStatus: Int32, stdout: [UInt8], stderr: [UInt8]) {
        self.exitStatus = exitStatus
        self.stdout = stdout
        self.stderr = stderr
    }
}
