#if canImport(Glibc)
import Glibc
#endif

/// An error from signing keys or RPM files.
///
/// `code` is extensible (a struct over a private enum). `detail` names the step and, for I/O, the path and the
/// failing call; `errno` is set for system call failures; `underlyingError` carries an `RPMError`, `OpenPGPError`
/// or `CryptoError`. None of them ever contains key material.
public struct RPMSignError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case io
            case invalidKey
            case invalidPackage
            case invalidSignature
            case signerFailed
            case fileChanged
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// A system call failed (see `errno`), or the path is not a regular file.
        public static let io = Code(.io)
        /// The secret key export could not be parsed or loaded into libcrypto.
        public static let invalidKey = Code(.invalidKey)
        /// The file is not a signable RPM: parse error, digest or size mismatch, no header region.
        public static let invalidPackage = Code(.invalidPackage)
        /// The signature packet is unusable for an RPM header (version, type, algorithm, issuer, hash, coverage).
        public static let invalidSignature = Code(.invalidSignature)
        /// The signer failed to produce a signature.
        public static let signerFailed = Code(.signerFailed)
        /// The file was replaced or modified while it was being signed; nothing was changed.
        public static let fileChanged = Code(.fileChanged)

        public var description: String {
            switch self.value {
            case .io: return "io"
            case .invalidKey: return "invalidKey"
            case .invalidPackage: return "invalidPackage"
            case .invalidSignature: return "invalidSignature"
            case .signerFailed: return "signerFailed"
            case .fileChanged: return "fileChanged"
            }
        }
    }

    public let code: Code
    public let detail: String
    public let errno: Int32?
    public let underlyingError: (any Error)?

    public init(code: Code, detail: String, errno: Int32? = nil, underlyingError: (any Error)? = nil) {
        self.code = code
        self.detail = detail
        self.errno = errno
        self.underlyingError = underlyingError
    }

    public var description: String {
        var text = "RPMSignError(\(self.code)): \(self.detail)"
        if let errno = self.errno {
            text += ": \(String(cString: strerror(errno))) (errno \(errno))"
        }
        if let underlyingError = self.underlyingError {
            text += ": \(underlyingError)"
        }
        return text
    }
}
