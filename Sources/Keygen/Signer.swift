import Dispatch
import GPG
import RPMSign
import Synchronization

/// The hash of a signature (`?digest=` on the sign endpoint). Only SHA-256 and stronger.
enum DigestAlgorithm: String, Sendable, CaseIterable {
    case sha256
    case sha512

    /// The OpenPGP hash algorithm id (RFC 4880 §9.4).
    var openPGPID: Int {
        switch self {
        case .sha256: 8
        case .sha512: 10
        }
    }

    /// Relative strength of an OpenPGP hash id, for "at least as strong as" checks; 0 for ids Keygen refuses.
    static func strength(ofOpenPGPID id: Int) -> Int {
        switch id {
        case 8: 256  // SHA-256
        case 9: 384  // SHA-384
        case 10: 512  // SHA-512
        default: 0  // SHA-1, SHA-224, MD5, RIPEMD-160, …
        }
    }
}

/// Makes binary detached OpenPGP v4 signatures (signature type 0x00, binary document) with one project key.
///
/// `sign` is synchronous and may block or burn CPU: Keygen calls it only on its signing lanes (`SigningLanes`), never
/// on the Swift cooperative pool. Implementations are safe to call from several threads at once.
protocol Signer: Sendable {
    /// A detached signature over `data` whose hash is `digest` or stronger.
    func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8]
}

/// What a signer needs to know about its key (all public).
struct SigningKey: Sendable, Hashable {
    /// Upper-case hex v4 fingerprint.
    var fingerprint: String
    /// Upper-case hex long key id (last 16 digits of the fingerprint).
    var keyID: String
    /// Key creation time, Unix seconds: a signature's creation time must not be earlier (openpgp-signing.md §3.2).
    var created: Int64
}

/// The reference signer: gpg makes every signature through gpgme (`GPGKeyring.signDetachedSynchronously`).
/// Correct, and byte-for-byte what gpg would make, but slow (one gpg process per signature: ~15 ms for RSA-2048,
/// ~40 ms for RSA-4096, openpgp-signing.md §4).
///
/// gpgme cannot choose the hash per call; gpg picks it from `personal-digest-preferences` in Keygen's `gpg.conf`
/// (written at start: SHA-512 first). The result is checked: a signature weaker than the requested digest is refused.
struct GPGReferenceSigner: Signer {
    let keyring: GPGKeyring
    let key: SigningKey

    func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8] {
        let signature = try self.keyring.signDetachedSynchronously(data, fingerprint: self.key.fingerprint)
        guard
            DigestAlgorithm.strength(ofOpenPGPID: signature.hashAlgorithm)
                >= DigestAlgorithm.strength(ofOpenPGPID: digest.openPGPID)
        else {
            throw KeygenError(
                .unavailable,
                "gpg signed with hash algorithm \(signature.hashAlgorithm), weaker than the requested \(digest.rawValue)"
            )
        }
        return signature.bytes
    }
}

// MARK: - FAST-SIGNER SEAM

/// **The one place that decides how a project key signs.**
///
/// Today it returns `GPGReferenceSigner` (gpg per signature). When the `OpenPGP` module (secret-key packet → RSA
/// components; v4 signature packet builder) and LibCrypto's `RSAPrivateKey` are in, replace the body of
/// `makeSigner` with, roughly (type names are placeholders):
///
/// ```swift
/// var secret = try await keyring.exportSecretKey(fingerprint: key.fingerprint)  // once per project key
/// defer { for i in secret.indices { secret[i] = 0 } }                           // wipe the export
/// let rsa = try RSAPrivateKey(openPGP: OpenPGPSecretKey(parsing: secret))
/// return LibcryptoSigner(key: key, rsa: rsa)                                    // conforms to `Signer`
/// ```
///
/// `LibcryptoSigner.sign` hashes data ‖ hashed part ‖ trailer with `digest`, signs with PKCS#1 v1.5, and emits
/// subpackets 2 + 33 hashed and 16 unhashed, with creation time max(now, key.created) (openpgp-signing.md §2, §3).
/// Set `kind` to its name. Nothing else changes: `KeyService` caches one signer per fingerprint and calls it on the
/// signing lanes, and the tests (gpg --verify of API signatures, the no-secret-material sweep) apply unchanged.
enum SignerFactory {
    /// A short name for logs and `/health`.
    static let kind = "libcrypto"

    /// Exports the project's secret key from the gpgme keyring once, parses it and keeps it in memory as a
    /// libcrypto RSA key (`RPMSign.OpenPGPKeySigner`): each signature then costs the raw RSA operation (≈5 ms for
    /// RSA-4096) instead of a gpg process (≈40 ms). The export buffer is overwritten after parsing.
    static func makeSigner(for key: SigningKey, keyring: GPGKeyring) async throws -> any Signer {
        var secret = try await keyring.exportSecretKey(fingerprint: key.fingerprint)
        defer { for i in secret.indices { secret[i] = 0 } }
        return LibcryptoSigner(signer: try OpenPGPKeySigner(secretKeyExport: secret, hash: .sha256))
    }
}

/// In-process signing with the key held by libcrypto (openpgp-signing.md; verified with gpg and rpmkeys).
struct LibcryptoSigner: Signer {
    let signer: OpenPGPKeySigner

    func sign(_ data: [UInt8], digest: DigestAlgorithm) throws -> [UInt8] {
        try self.signer.detachedSignature(over: data, hash: digest == .sha512 ? .sha512 : .sha256)
    }
}

/// Serial dispatch queues, one per CPU, on which signers run: signing never blocks the cooperative pool, and at most
/// one signature per core is computed at a time.
final class SigningLanes: Sendable {
    private let queues: [DispatchQueue]
    private let next = Atomic<Int>(0)

    init(count: Int) {
        self.queues = (0..<max(1, count)).map { DispatchQueue(label: "koper.keygen.sign.\($0)") }
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let i = self.next.wrappingAdd(1, ordering: .relaxed).oldValue
        let queue = self.queues[(i & Int.max) % self.queues.count]
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
