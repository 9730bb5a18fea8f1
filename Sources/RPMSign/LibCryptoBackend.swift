import LibCrypto
import OpenPGP

/// `OpenPGPHashProvider` over LibCrypto: SHA-1 (fingerprints), SHA-256 and SHA-512.
public struct LibCryptoHashes: OpenPGPHashProvider {
    public init() {}

    public func makeHasher(_ algorithm: OpenPGPHashAlgorithm) -> (any OpenPGPHasher)? {
        switch algorithm {
        case .sha1: return LibCryptoHasher(DigestHasher(.sha1))
        case .sha256: return LibCryptoHasher(DigestHasher(.sha256))
        case .sha512: return LibCryptoHasher(DigestHasher(.sha512))
        default: return nil
        }
    }

    /// The LibCrypto algorithm for an OpenPGP hash id, if LibCrypto has it.
    public static func digestAlgorithm(_ algorithm: OpenPGPHashAlgorithm) -> DigestAlgorithm? {
        switch algorithm {
        case .sha1: return .sha1
        case .sha256: return .sha256
        case .sha512: return .sha512
        default: return nil
        }
    }
}

struct LibCryptoHasher: OpenPGPHasher {
    let hasher: DigestHasher

    init(_ hasher: DigestHasher) {
        self.hasher = hasher
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        self.hasher.update(bytes)
    }

    mutating func finalize() -> [UInt8] {
        self.hasher.finalize()
    }
}

/// `OpenPGPRSASigner` over a LibCrypto `RSAPrivateKey` (SHA-256 and SHA-512 only).
public struct LibCryptoRSASigner: OpenPGPRSASigner, Sendable {
    public let key: RSAPrivateKey

    public init(_ key: RSAPrivateKey) {
        self.key = key
    }

    public func signPKCS1v15(digest: [UInt8], hash: OpenPGPHashAlgorithm) throws -> [UInt8] {
        guard hash == .sha256 || hash == .sha512, let algorithm = LibCryptoHashes.digestAlgorithm(hash) else {
            throw CryptoError(operation: "RSA sign", detail: "hash \(hash) is not allowed")
        }
        return try self.key.sign(digest: digest, algorithm: algorithm)
    }
}
