/// A failure of an SSH operation.
///
/// `description` names the operation and, where useful, the host, port or remote path. It never contains key
/// material, command lines (they may carry tokens) or file contents.
public struct SSHError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes: switch with a `default` branch.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case connectionRefused
            case connectionFailed
            case timeout
            case hostKeyMismatch
            case authenticationFailed
            case channelFailed
            case commandFailed
            case sftpFailed
            case fileNotFound
            case outputLimitExceeded
            case disconnected
            case cancelled
            case invalidArgument
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The TCP connection was refused: nothing listens on the port.
        public static let connectionRefused = Code(.connectionRefused)
        /// The host could not be reached or resolved, or the SSH handshake failed.
        public static let connectionFailed = Code(.connectionFailed)
        /// A deadline passed: the connect timeout, a command's timeout, or `ioTimeout` without progress.
        public static let timeout = Code(.timeout)
        /// The server's host key is not the pinned key. Raised before any authentication is attempted.
        public static let hostKeyMismatch = Code(.hostKeyMismatch)
        /// The server did not accept the client key.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The server refused to open a session channel.
        public static let channelFailed = Code(.channelFailed)
        /// The server refused to start the command.
        public static let commandFailed = Code(.commandFailed)
        /// An SFTP request failed; `underlyingStatus` holds the SFTP status (`SSH_FX_*`).
        public static let sftpFailed = Code(.sftpFailed)
        /// The remote file or directory does not exist (SFTP `NO_SUCH_FILE` / `NO_SUCH_PATH`).
        public static let fileNotFound = Code(.fileNotFound)
        /// The output or file is larger than the caller's limit.
        public static let outputLimitExceeded = Code(.outputLimitExceeded)
        /// The connection is gone (peer closed it, network error, or the session was closed). The session is
        /// unusable; connect again.
        public static let disconnected = Code(.disconnected)
        /// The calling task was cancelled.
        public static let cancelled = Code(.cancelled)
        /// A parameter or local file was unusable (bad path, unreadable key, negative limit).
        public static let invalidArgument = Code(.invalidArgument)

        public var description: String {
            switch self.base {
            case .connectionRefused: "connectionRefused"
            case .connectionFailed: "connectionFailed"
            case .timeout: "timeout"
            case .hostKeyMismatch: "hostKeyMismatch"
            case .authenticationFailed: "authenticationFailed"
            case .channelFailed: "channelFailed"
            case .commandFailed: "commandFailed"
            case .sftpFailed: "sftpFailed"
            case .fileNotFound: "fileNotFound"
            case .outputLimitExceeded: "outputLimitExceeded"
            case .disconnected: "disconnected"
            case .cancelled: "cancelled"
            case .invalidArgument: "invalidArgument"
            }
        }
    }

    public let code: Code
    /// A human-readable explanation, free of secrets.
    public let message: String
    /// The lower-level status, when there is one: an errno value, or an SFTP status (`SSH_FX_*`).
    public let underlyingStatus: Int32?

    public init(_ code: Code, _ message: String, underlyingStatus: Int32? = nil) {
        self.code = code
        self.message = message
        self.underlyingStatus = underlyingStatus
    }

    public var description: String {
        if let underlyingStatus {
            return "SSHError.\(self.code): \(self.message) (status \(underlyingStatus))"
        }
        return "SSHError.\(self.code): \(self.message)"
    }
}
