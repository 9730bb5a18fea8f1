import LibCrypto
import OpenPGP

#if canImport(Glibc)
import Glibc
#endif

/// Something that signs RPM main headers: returns a detached binary OpenPGP v4 signature packet over the header
/// bytes. Implemented by `OpenPGPKeySigner` (in process); a remote Keygen client can implement it too.
public protocol RPMHeaderSigner {
    /// The signature packet (binary, not armored) over exactly `header`.
    func signature(forHeader header: [UInt8]) throws -> [UInt8]
    /// The key ID the returned signature must name, or nil to accept any issuer.
    var expectedKeyID: [UInt8]? { get }
}

/// A project's signing key loaded from `gpg --export-secret-keys FPR` output (binary, no passphrase), kept in
/// memory as a libcrypto RSA key, producing OpenPGP v4 detached signatures in process (docs/openpgp-signing.md).
///
/// Loading checks the export (packet structure, S2K usage 0, checksum), maps OpenPGP's `p, q, u` to OpenSSL's
/// order (`p: q, q: p, qInv: u`) and checks the numbers (`RSAPrivateKey`). The export bytes are not retained.
///
/// **Thread safety:** `Sendable`; `detachedSignature` may be called from many threads at once (each call builds
/// its own libcrypto context; see `RSAPrivateKey`). It is CPU-bound (about 5 ms for RSA-4096): call it from a
/// dedicated queue or thread, not from the cooperative pool, when latency matters.
///
/// OpenSSL checks each RSA-CRT result against the public exponent before returning it (`rsa_ossl_mod_exp`), so a
/// faulty computation cannot leak the key through a published signature.
public final class OpenPGPKeySigner: RPMHeaderSigner, Sendable, CustomStringConvertible {
    public let publicKey: OpenPGPPublicKey
    public let userIDs: [String]
    /// Hash used for signatures: `.sha256` (default) or `.sha512`.
    public let hash: OpenPGPHashAlgorithm
    private let signer: LibCryptoRSASigner

    public init(secretKeyExport: [UInt8], hash: OpenPGPHashAlgorithm = .sha256) throws(RPMSignError) {
        guard OpenPGPSignatureBuilder.allowedHashes.contains(hash) else {
            throw RPMSignError(code: .invalidKey, detail: "hash \(hash) is not allowed for signatures")
        }
        let key: OpenPGPSecretKey
        do {
            key = try OpenPGPSecretKey.parseTransferable(secretKeyExport, hashes: LibCryptoHashes())
        } catch {
            throw RPMSignError(code: .invalidKey, detail: "cannot parse the secret key export", underlyingError: error)
        }
        let rsa: RSAPrivateKey
        do {
            rsa = try RSAPrivateKey(
                n: key.publicKey.modulus,
                e: key.publicKey.exponent,
                d: key.secret.d,
                p: key.secret.q,
                q: key.secret.p,
                qInv: key.secret.u
            )
        } catch {
            throw RPMSignError(code: .invalidKey, detail: "libcrypto refused the RSA key", underlyingError: error)
        }
        self.publicKey = key.publicKey
        self.userIDs = key.userIDs
        self.hash = hash
        self.signer = LibCryptoRSASigner(rsa)
    }

    /// A detached binary-document signature packet over `data`.
    ///
    /// - Parameters:
    ///   - hash: `.sha256` or `.sha512`; default `self.hash`.
    ///   - now: the signature creation time; default the current time. It is raised to the key's creation time if
    ///     earlier.
    public func detachedSignature<C: Collection>(
        over data: C,
        hash: OpenPGPHashAlgorithm? = nil,
        now: UInt32? = nil
    ) throws(RPMSignError) -> [UInt8] where C.Element == UInt8 {
        do {
            return try OpenPGPSignatureBuilder.detachedSignature(
                over: data,
                key: self.publicKey,
                signer: self.signer,
                hashes: LibCryptoHashes(),
                hash: hash ?? self.hash,
                now: now ?? Self.currentTime()
            )
        } catch {
            throw RPMSignError(code: .signerFailed, detail: "cannot sign", underlyingError: error)
        }
    }

    public func signature(forHeader header: [UInt8]) throws -> [UInt8] {
        try self.detachedSignature(over: header)
    }

    public var expectedKeyID: [UInt8]? { self.publicKey.keyID }

    public var description: String {
        "OpenPGPKeySigner(\(self.publicKey.fingerprintHex), RSA \(self.publicKey.modulusBits), \(self.hash))"
    }

    static func currentTime() -> UInt32 {
        let now = time(nil)
        return now <= 0 ? 0 : UInt32(clamping: now)
    }
}
