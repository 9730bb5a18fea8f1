/// An error from the `GPG` module.
///
/// Messages carry gpgme's error text (`gpgme_strerror_r`) and the operation, never key material, passphrases or
/// the data being signed.
public struct GPGError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case engineUnavailable
            case invalidArgument
            case keyNotFound
            case operationFailed
            case timeout
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// gpgme is too old, or no usable `gpg` (OpenPGP engine) was found, or the context could not be set up.
        public static let engineUnavailable = Code(.engineUnavailable)
        /// A bad fingerprint, user ID, algorithm, duration or home directory.
        public static let invalidArgument = Code(.invalidArgument)
        /// No (secret) key with that fingerprint in the keyring.
        public static let keyNotFound = Code(.keyNotFound)
        /// gpg refused or failed the operation (see `gpgErrorCode` and `message`).
        public static let operationFailed = Code(.operationFailed)
        /// The operation took longer than the keyring's `operationTimeout` and was cancelled.
        public static let timeout = Code(.timeout)

        public var description: String {
            switch self.base {
            case .engineUnavailable: "engineUnavailable"
            case .invalidArgument: "invalidArgument"
            case .keyNotFound: "keyNotFound"
            case .operationFailed: "operationFailed"
            case .timeout: "timeout"
            }
        }
    }

    public let code: Code
    public let message: String
    /// The libgpg-error code (`gpgme_err_code`), e.g. 17 for GPG_ERR_NO_SECKEY; nil for our own checks.
    public let gpgErrorCode: UInt32?

    public init(code: Code, message: String, gpgErrorCode: UInt32? = nil) {
        self.code = code
        self.message = message
        self.gpgErrorCode = gpgErrorCode
    }

    public var description: String {
        var text = "GPGError.\(self.code): \(self.message)"
        if let gpgErrorCode {
            text += " (gpg error \(gpgErrorCode))"
        }
        return text
    }
}
