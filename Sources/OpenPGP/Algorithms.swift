/// An OpenPGP hash algorithm id (RFC 4880 §9.4). Any byte parses; only SHA-256 and SHA-512 are used for signing.
public struct OpenPGPHashAlgorithm: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let md5 = OpenPGPHashAlgorithm(rawValue: 1)
    /// Used for v4 fingerprints; refused for new signatures.
    public static let sha1 = OpenPGPHashAlgorithm(rawValue: 2)
    public static let sha256 = OpenPGPHashAlgorithm(rawValue: 8)
    public static let sha384 = OpenPGPHashAlgorithm(rawValue: 9)
    public static let sha512 = OpenPGPHashAlgorithm(rawValue: 10)
    public static let sha224 = OpenPGPHashAlgorithm(rawValue: 11)

    /// Digest length in bytes for the algorithms listed above; nil for unknown ids.
    public var digestLength: Int? {
        switch self.rawValue {
        case 1: return 16
        case 2: return 20
        case 8: return 32
        case 9: return 48
        case 10: return 64
        case 11: return 28
        default: return nil
        }
    }

    public var description: String {
        switch self.rawValue {
        case 1: return "MD5"
        case 2: return "SHA1"
        case 8: return "SHA256"
        case 9: return "SHA384"
        case 10: return "SHA512"
        case 11: return "SHA224"
        default: return "hash(\(self.rawValue))"
        }
    }
}

/// An OpenPGP public-key algorithm id (RFC 4880 §9.1, RFC 9580 §9.1).
public struct OpenPGPPublicKeyAlgorithm: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// RSA (encrypt or sign); what gpg generates for `rsaN`.
    public static let rsa = OpenPGPPublicKeyAlgorithm(rawValue: 1)
    /// RSA sign-only (deprecated, still parsed).
    public static let rsaSignOnly = OpenPGPPublicKeyAlgorithm(rawValue: 3)
    public static let dsa = OpenPGPPublicKeyAlgorithm(rawValue: 17)
    public static let ecdsa = OpenPGPPublicKeyAlgorithm(rawValue: 19)
    public static let eddsa = OpenPGPPublicKeyAlgorithm(rawValue: 22)

    /// RSA in either flavour.
    public var isRSA: Bool { self == .rsa || self == .rsaSignOnly }

    /// Number of MPIs in a v4 signature made with this algorithm; nil for algorithms not handled here.
    var signatureMPICount: Int? {
        switch self.rawValue {
        case 1, 3: return 1
        case 17, 19, 22: return 2
        default: return nil
        }
    }

    public var description: String {
        switch self.rawValue {
        case 1: return "RSA"
        case 3: return "RSA-S"
        case 17: return "DSA"
        case 19: return "ECDSA"
        case 22: return "EdDSA"
        default: return "pubkey(\(self.rawValue))"
        }
    }
}

/// Incremental hash state from a crypto backend (for example LibCrypto's `DigestHasher`).
public protocol OpenPGPHasher {
    mutating func update(_ bytes: UnsafeRawBufferPointer)
    /// The digest; the hasher is not used afterwards.
    mutating func finalize() -> [UInt8]
}

/// The hash functions this module needs, supplied by the caller so the packet code stays pure (no C, no I/O).
///
/// Must support SHA-1 (fingerprints), SHA-256 and SHA-512 (signatures).
public protocol OpenPGPHashProvider: Sendable {
    /// A fresh hasher, or nil if the backend does not implement `algorithm`.
    func makeHasher(_ algorithm: OpenPGPHashAlgorithm) -> (any OpenPGPHasher)?
}

/// An RSA private key operation supplied by the caller (for example LibCrypto's `RSAPrivateKey`).
public protocol OpenPGPRSASigner {
    /// The RSASSA-PKCS1-v1_5 signature of `digest`, a `hash` digest (the backend adds the DigestInfo). Leading zero
    /// bytes may be present or not; the builder strips them for the MPI.
    func signPKCS1v15(digest: [UInt8], hash: OpenPGPHashAlgorithm) throws -> [UInt8]
}

extension OpenPGPHasher {
    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { self.update($0) }
    }

    mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { self.update($0) }
    }
}

extension OpenPGPHashProvider {
    /// A hasher for `algorithm` or `.unsupportedAlgorithm`.
    func hasher(_ algorithm: OpenPGPHashAlgorithm) throws(OpenPGPError) -> any OpenPGPHasher {
        guard let hasher = self.makeHasher(algorithm) else {
            throw OpenPGPError(code: .unsupportedAlgorithm, detail: "hash provider does not implement \(algorithm)")
        }
        return hasher
    }
}
