public import HTTPClient

/// A failed call to another Koper service through `JSONServiceClient`.
///
/// The description names the service and never contains the secret, a URL's credentials or query, or a body:
///
///     frontend answered 409: task 12-fedora-41-x86_64 is claimed by another worker
///     frontend call failed: HTTPClientError.connectFailed: …
///     frontend sent a malformed ClaimAnswer: ok is required
public struct ServiceCallError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case status
            case transport
            case malformedAnswer
            case malformedRequest
            case cancelled
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The service answered with a status other than 2xx; `status` and `serverMessage` say what.
        public static let status = Code(.status)
        /// No answer: connection refused, timeout, reset, response too large (`underlyingError`).
        public static let transport = Code(.transport)
        /// A 2xx answer whose body does not decode as the expected type.
        public static let malformedAnswer = Code(.malformedAnswer)
        /// The request body could not be encoded.
        public static let malformedRequest = Code(.malformedRequest)
        /// The calling task was cancelled (during the call or while waiting to retry).
        public static let cancelled = Code(.cancelled)

        public var description: String {
            switch self.base {
            case .status: "status"
            case .transport: "transport"
            case .malformedAnswer: "malformedAnswer"
            case .malformedRequest: "malformedRequest"
            case .cancelled: "cancelled"
            }
        }
    }

    public let code: Code
    /// The client's `name` (`frontend`, `keygen`).
    public let service: String
    /// The HTTP status, when the service answered.
    public let status: Int?
    /// The answer's `{"error": …}` text for `.status`, if it had one (at most 500 characters); what did not
    /// decode for `.malformedAnswer`.
    public let serverMessage: String?
    /// The transport failure for `.transport`.
    public let underlyingError: HTTPClientError?

    public init(
        code: Code,
        service: String,
        status: Int? = nil,
        serverMessage: String? = nil,
        underlyingError: HTTPClientError? = nil
    ) {
        self.code = code
        self.service = service
        self.status = status
        self.serverMessage = serverMessage
        self.underlyingError = underlyingError
    }

    /// Worth retrying: no answer (other than an invalid request or cancellation), or a 5xx answer. 4xx answers,
    /// malformed answers and requests, and cancellation are final.
    public var isTransient: Bool {
        switch self.code {
        case .status:
            return (self.status ?? 0) >= 500
        case .transport:
            guard let code = self.underlyingError?.code else { return true }
            return code != .invalidArgument && code != .cancelled
        default:
            return false
        }
    }

    public var description: String {
        switch self.code {
        case .status:
            let status = self.status.map(String.init) ?? "?"
            return "\(self.service) answered \(status)" + (self.serverMessage.map { ": \($0)" } ?? "")
        case .transport:
            return "\(self.service) call failed: " + (self.underlyingError.map { "\($0)" } ?? "no answer")
        case .malformedAnswer:
            return "\(self.service) sent a malformed answer" + (self.serverMessage.map { ": \($0)" } ?? "")
        case .malformedRequest:
            return "cannot encode the request to \(self.service)" + (self.serverMessage.map { ": \($0)" } ?? "")
        default:
            return "\(self.service) call cancelled"
        }
    }
}
