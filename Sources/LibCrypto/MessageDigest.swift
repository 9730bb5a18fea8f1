internal import CLibcrypto

/// The hash functions `DigestHasher` and `RSAPrivateKey` support.
public enum DigestAlgorithm: Sendable, Hashable, CustomStringConvertible {
    /// SHA-1: only for legacy identifiers such as OpenPGP v4 fingerprints; never for new signatures.
    case sha1
    case sha256
    case sha512

    /// Length of the digest in bytes.
    public var digestLength: Int {
        switch self {
        case .sha1: return 20
        case .sha256: return 32
        case .sha512: return 64
        }
    }

    public var description: String {
        switch self {
        case .sha1: return "SHA-1"
        case .sha256: return "SHA-256"
        case .sha512: return "SHA-512"
        }
    }

    /// libcrypto's built-in method table for this hash (static, never freed).
    var evpMD: OpaquePointer {
        let md: OpaquePointer?
        switch self {
        case .sha1: md = EVP_sha1()
        case .sha256: md = EVP_sha256()
        case .sha512: md = EVP_sha512()
        }
        guard let md else { fatalError("libcrypto has no \(self)") }
        return md
    }
}

/// Incremental hashing (SHA-1, SHA-256 or SHA-512) over libcrypto's EVP interface.
///
/// Owns one `EVP_MD_CTX`. Not Sendable: use one hasher from one thread at a time (an `EVP_MD_CTX` must not be
/// shared between threads). The corresponding C functions are `EVP_DigestInit_ex`, `EVP_DigestUpdate` and
/// `EVP_DigestFinal_ex`.
public final class DigestHasher {
    public let algorithm: DigestAlgorithm
    private let ctx: OpaquePointer
    private var finished = false

    public init(_ algorithm: DigestAlgorithm) {
        self.algorithm = algorithm
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.ctx = ctx
        precondition(EVP_DigestInit_ex(ctx, algorithm.evpMD, nil) == 1, "EVP_DigestInit_ex(\(algorithm)) failed")
    }

    deinit { EVP_MD_CTX_free(self.ctx) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!self.finished, "DigestHasher used after finalize()")
        if bytes.isEmpty { return }
        precondition(EVP_DigestUpdate(self.ctx, bytes.baseAddress, bytes.count) == 1)
    }

    public func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ self.update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        Array(bytes).withUnsafeBytes { self.update($0) }
    }

    /// The digest (`algorithm.digestLength` bytes). The hasher cannot be used afterwards.
    public func finalize() -> [UInt8] {
        precondition(!self.finished, "DigestHasher finalized twice")
        self.finished = true
        let length = self.algorithm.digestLength
        var out = [UInt8](repeating: 0, count: length)
        var written: UInt32 = 0
        precondition(EVP_DigestFinal_ex(self.ctx, &out, &written) == 1 && Int(written) == length)
        return out
    }
}

extension Crypto {
    /// One-shot digest of `bytes`.
    public static func digest<C: Collection>(_ algorithm: DigestAlgorithm, _ bytes: C) -> [UInt8]
    where C.Element == UInt8 {
        let hasher = DigestHasher(algorithm)
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func sha512<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        self.digest(.sha512, bytes)
    }

    /// SHA-1, for legacy identifiers only (OpenPGP v4 fingerprints, rpm's SHA1HEADER).
    public static func sha1<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        self.digest(.sha1, bytes)
    }
}
