internal import CLibcrypto

/// An RSA public key held by libcrypto, for checking RSASSA-PKCS1-v1_5 signatures over precomputed digests (the
/// signatures `RSAPrivateKey.sign` makes, and OpenPGP RSA signatures).
///
/// Built from the modulus and public exponent alone (an OpenPGP public key packet carries exactly these), so a
/// verifier never needs private material. The same bounds as `RSAPrivateKey` apply: a modulus of
/// `RSAPrivateKey.minimumModulusBits...RSAPrivateKey.maximumModulusBits` bits and an odd exponent of at most 64 bits.
///
/// **Thread safety:** `Sendable`. The `EVP_PKEY` is never modified after `init`; every `verify` call creates its own
/// `EVP_PKEY_CTX` (openssl-threads(7), as for `RSAPrivateKey`).
///
/// The corresponding C functions are `EVP_PKEY_fromdata` (selection `EVP_PKEY_PUBLIC_KEY`) and `EVP_PKEY_verify`.
public final class RSAPublicKey: @unchecked Sendable, CustomStringConvertible {
    // @unchecked Sendable: `pkey` is created once in init, never mutated, freed in deinit; each verify call uses
    // its own EVP_PKEY_CTX.
    private let pkey: OpaquePointer

    /// Size of the modulus in bits.
    public let modulusBits: Int
    /// Size of a signature in bytes (the modulus length).
    public var signatureLength: Int { (self.modulusBits + 7) / 8 }

    /// Builds a key from big-endian unsigned `n` and `e` (leading zero bytes allowed).
    ///
    /// - Throws: `CryptoError` if a component is empty or too long, the modulus is outside the allowed sizes, the
    ///   exponent is even, 1 or longer than 64 bits, or libcrypto refuses the key.
    public init(modulus: [UInt8], exponent: [UInt8]) throws(CryptoError) {
        let op = "RSA public key import"
        let maxBytes = RSAPrivateKey.maximumModulusBits / 8 + 1
        for (name, value) in [("n", modulus), ("e", exponent)] {
            guard !value.isEmpty, value.count <= maxBytes else {
                throw CryptoError(operation: op, detail: "component \(name) is empty or longer than \(maxBytes) bytes")
            }
        }
        guard let bnN = BN_new() else { throw CryptoError.openSSL("BN_new") }
        defer { BN_free(bnN) }
        guard let bnE = BN_new() else { throw CryptoError.openSSL("BN_new") }
        defer { BN_free(bnE) }
        for (bytes, bn) in [(modulus, bnN), (exponent, bnE)] {
            let ok = bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), bn) != nil }
            guard ok else { throw CryptoError.openSSL("BN_bin2bn") }
        }
        let bits = Int(BN_num_bits(bnN))
        guard bits >= RSAPrivateKey.minimumModulusBits, bits <= RSAPrivateKey.maximumModulusBits else {
            throw CryptoError(
                operation: op,
                detail:
                    "modulus has \(bits) bits (allowed \(RSAPrivateKey.minimumModulusBits)...\(RSAPrivateKey.maximumModulusBits))"
            )
        }
        guard BN_is_odd(bnE) == 1, BN_num_bits(bnE) >= 2, BN_num_bits(bnE) <= 64 else {
            throw CryptoError(operation: op, detail: "public exponent must be odd, >= 3 and at most 64 bits")
        }
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError.openSSL("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        guard OSSL_PARAM_BLD_push_BN(builder, CLibcrypto_RSA_N, bnN) == 1,
            OSSL_PARAM_BLD_push_BN(builder, CLibcrypto_RSA_E, bnE) == 1
        else { throw CryptoError.openSSL("OSSL_PARAM_BLD_push_BN") }
        guard let params = OSSL_PARAM_BLD_to_param(builder) else {
            throw CryptoError.openSSL("OSSL_PARAM_BLD_to_param")
        }
        defer { OSSL_PARAM_free(params) }
        guard let pctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else {
            throw CryptoError.openSSL("EVP_PKEY_CTX_new_from_name")
        }
        defer { EVP_PKEY_CTX_free(pctx) }
        guard EVP_PKEY_fromdata_init(pctx) == 1 else { throw CryptoError.openSSL("EVP_PKEY_fromdata_init") }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_fromdata(pctx, &pkey, CLibcrypto_EVP_PKEY_PUBLIC_KEY, params) == 1, let pkey else {
            throw CryptoError.openSSL("EVP_PKEY_fromdata")
        }
        self.pkey = pkey
        self.modulusBits = Int(EVP_PKEY_get_bits(pkey))
    }

    deinit { EVP_PKEY_free(self.pkey) }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 signature of `digest`, an `algorithm` digest (libcrypto
    /// checks the DigestInfo for `algorithm`). A signature shorter than the modulus (an OpenPGP MPI without its
    /// leading zero bytes) is left-padded with zeros first. SHA-1 is refused (returns false). Thread-safe.
    ///
    /// The corresponding C function is `EVP_PKEY_verify` with `RSA_PKCS1_PADDING` and `EVP_PKEY_CTX_set_signature_md`.
    public func verify(signature: [UInt8], digest: [UInt8], algorithm: DigestAlgorithm) -> Bool {
        guard algorithm != .sha1, digest.count == algorithm.digestLength else { return false }
        let length = self.signatureLength
        guard !signature.isEmpty, signature.count <= length else { return false }
        let padded = [UInt8](repeating: 0, count: length - signature.count) + signature
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, self.pkey, nil) else {
            ERR_clear_error()
            return false
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_verify_init(ctx) == 1,
            EVP_PKEY_CTX_set_rsa_padding(ctx, CLibcrypto_RSA_PKCS1_PADDING) > 0,
            EVP_PKEY_CTX_set_signature_md(ctx, algorithm.evpMD) > 0
        else {
            ERR_clear_error()
            return false
        }
        let ok = EVP_PKEY_verify(ctx, padded, padded.count, digest, digest.count) == 1
        if !ok { ERR_clear_error() }
        return ok
    }

    public var description: String { "RSAPublicKey(\(self.modulusBits) bits)" }
}
