/// An error from the `Postgres` module.
///
/// `description` and `message` never contain SQL parameter values or the password of a connection string:
/// the server's primary message is kept, but any parameter value it quotes is replaced by its placeholder
/// (`$1`, `$2`, …), and the server's DETAIL/HINT fields (which can echo row values, e.g.
/// `Key (name)=(…) already exists`) are not kept at all.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case connectionFailed
            case queryFailed
            case poolExhausted
            case poolClosed
            case timeout
            case decoding
            case invalidArgument
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// Connecting failed, or the connection was lost while a statement ran.
        public static let connectionFailed = Code(.connectionFailed)
        /// The server rejected a statement (see `sqlState`).
        public static let queryFailed = Code(.queryFailed)
        /// Too many callers are already waiting for a pooled connection.
        public static let poolExhausted = Code(.poolExhausted)
        /// The pool was closed.
        public static let poolClosed = Code(.poolClosed)
        /// Waiting for a pooled connection (or for a listener) took longer than allowed.
        public static let timeout = Code(.timeout)
        /// A column value was NULL, missing or not of the requested type.
        public static let decoding = Code(.decoding)
        /// An argument could not be used (NUL byte in a string, bad channel name, duplicate migration version).
        public static let invalidArgument = Code(.invalidArgument)

        public var description: String {
            switch base {
            case .connectionFailed: "connectionFailed"
            case .queryFailed: "queryFailed"
            case .poolExhausted: "poolExhausted"
            case .poolClosed: "poolClosed"
            case .timeout: "timeout"
            case .decoding: "decoding"
            case .invalidArgument: "invalidArgument"
            }
        }
    }

    public let code: Code
    /// The SQLSTATE reported by the server, e.g. `"23505"` (unique_violation); nil for client-side errors.
    public let sqlState: String?
    /// The server's primary message (with parameter values redacted) or our own message.
    public let message: String
    /// The constraint the server named, if any (e.g. the unique index of a unique violation).
    public let constraintName: String?

    public init(code: Code, message: String, sqlState: String? = nil, constraintName: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.constraintName = constraintName
    }

    /// True for SQLSTATE 23505, unique_violation.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        var text = "PostgresError.\(code): \(message)"
        if let sqlState {
            text += " (SQLSTATE \(sqlState))"
        }
        if let constraintName {
            text += " (constraint \(constraintName))"
        }
        return text
    }
}
