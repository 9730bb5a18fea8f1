/// An error from parsing or building OpenPGP data.
///
/// `code` is extensible (a struct over a private enum): `switch` over it with a `default`. `detail` is a fixed
/// phrase plus numbers such as offsets, lengths, tags or algorithm ids; it never contains key material or more
/// than a few bytes of the input.
public struct OpenPGPError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case truncated
            case malformed
            case tooLarge
            case unexpectedPacket
            case unsupportedVersion
            case unsupportedAlgorithm
            case encryptedSecretKey
            case badChecksum
            case badArmor
            case signerFailed
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// The input ended inside a packet, a length, an MPI or a subpacket.
        public static let truncated = Code(.truncated)
        /// A structural rule is broken: a bad packet header, a non-canonical MPI, trailing bytes, a bad subpacket.
        public static let malformed = Code(.malformed)
        /// The input, a packet or a count is larger than the parser's limits.
        public static let tooLarge = Code(.tooLarge)
        /// A packet of another type than required (for example a public key where a secret key was expected, or a
        /// secret-key packet in a block that is to be published).
        public static let unexpectedPacket = Code(.unexpectedPacket)
        /// A key or signature packet version other than 4.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// A public-key or hash algorithm this code does not handle.
        public static let unsupportedAlgorithm = Code(.unsupportedAlgorithm)
        /// The secret key is protected with a passphrase (S2K usage other than 0); Koper's keys have none.
        public static let encryptedSecretKey = Code(.encryptedSecretKey)
        /// The secret-key checksum does not match the secret MPIs.
        public static let badChecksum = Code(.badChecksum)
        /// ASCII armor is malformed or its CRC-24 does not match.
        public static let badArmor = Code(.badArmor)
        /// The RSA signer (the crypto backend) failed; see `underlyingError`.
        public static let signerFailed = Code(.signerFailed)

        public var description: String {
            switch self.value {
            case .truncated: return "truncated"
            case .malformed: return "malformed"
            case .tooLarge: return "tooLarge"
            case .unexpectedPacket: return "unexpectedPacket"
            case .unsupportedVersion: return "unsupportedVersion"
            case .unsupportedAlgorithm: return "unsupportedAlgorithm"
            case .encryptedSecretKey: return "encryptedSecretKey"
            case .badChecksum: return "badChecksum"
            case .badArmor: return "badArmor"
            case .signerFailed: return "signerFailed"
            }
        }
    }

    public let code: Code
    public let detail: String
    /// The backend's error for `.signerFailed`.
    public let underlyingError: (any Error)?

    public init(code: Code, detail: String, underlyingError: (any Error)? = nil) {
        self.code = code
        self.detail = detail
        self.underlyingError = underlyingError
    }

    public var description: String {
        if let underlyingError = self.underlyingError {
            return "OpenPGPError(\(self.code)): \(self.detail): \(underlyingError)"
        }
        return "OpenPGPError(\(self.code)): \(self.detail)"
    }

    static func truncated(_ what: String) -> OpenPGPError {
        OpenPGPError(code: .truncated, detail: "input ends inside \(what)")
    }

    static func malformed(_ detail: String) -> OpenPGPError {
        OpenPGPError(code: .malformed, detail: detail)
    }
}
