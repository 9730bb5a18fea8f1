/// An error from the `HTTPClient` module.
///
/// `message` and `description` never contain a URL's user name, password or query string: URLs appear only as
/// `scheme://host:port/path`, and libcurl's own error text is scrubbed of the URL's credentials.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case connectFailed
            case timeout
            case responseTooLarge
            case transferFailed
            case invalidArgument
            case cancelled
            case fileError
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The host could not be resolved or refused the connection.
        public static let connectFailed = Code(.connectFailed)
        /// The request did not complete within its `timeout` (waiting for a free slot, connecting and transferring
        /// all count), or connecting took longer than the client's connect timeout.
        public static let timeout = Code(.timeout)
        /// The response body is larger than the caller's limit; the transfer was aborted.
        public static let responseTooLarge = Code(.responseTooLarge)
        /// Any other failure of the transfer (connection reset, protocol error, too many redirects, …).
        public static let transferFailed = Code(.transferFailed)
        /// A malformed URL, unsupported scheme, method or header.
        public static let invalidArgument = Code(.invalidArgument)
        /// The calling task was cancelled.
        public static let cancelled = Code(.cancelled)
        /// `download` could not write the destination file.
        public static let fileError = Code(.fileError)

        public var description: String {
            switch self.base {
            case .connectFailed: "connectFailed"
            case .timeout: "timeout"
            case .responseTooLarge: "responseTooLarge"
            case .transferFailed: "transferFailed"
            case .invalidArgument: "invalidArgument"
            case .cancelled: "cancelled"
            case .fileError: "fileError"
            }
        }
    }

    public let code: Code
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "HTTPClientError.\(self.code): \(self.message)" }
}
