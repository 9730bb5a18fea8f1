internal import CLibcrypto

/// An RSA private key held by libcrypto, in memory only, for PKCS#1 v1.5 signatures over precomputed digests.
///
/// **Components** use the PKCS#1 / OpenSSL convention: `p` is OpenSSL's `rsa-factor1`, `q` is `rsa-factor2`,
/// `dp = d mod (p−1)`, `dq = d mod (q−1)` and `qInv = q⁻¹ mod p`. OpenPGP stores `u = p⁻¹ mod q` with its own
/// `p < q`, so an OpenPGP key maps as `p: pgp.q, q: pgp.p, qInv: pgp.u` (docs/openpgp-signing.md §1.3). The key is
/// checked at load with cheap bignum identities (`n = p·q`, `e·dp ≡ 1 (mod p−1)`, `e·dq ≡ 1 (mod q−1)`,
/// `qInv·q ≡ 1 (mod p)`); in particular an unswapped OpenPGP key is refused instead of silently signing 4× slower.
///
/// **Key material** is copied into libcrypto bignums allocated with `BN_secure_new` (libcrypto's secure heap when
/// one is initialised), the temporary bignums are freed with `BN_clear_free`, and the key itself is freed with
/// `EVP_PKEY_free` in `deinit`. Nothing is written to disk. `description` and every error show at most the modulus
/// size. The caller still owns (and should drop promptly) the `[UInt8]` component arrays it passed in.
///
/// **Thread safety:** `Sendable`. After `init` the `EVP_PKEY` is never modified; every `sign`/`verify` call creates
/// its own `EVP_PKEY_CTX`. openssl-threads(7) (OpenSSL 3.0): "Objects are thread-safe as long as the API's being
/// invoked don't modify the object" and "two threads can calculate a signature using two different EVP_PKEY_CTX
/// objects"; the RSA provider's blinding state inside the key is taken under the key's own lock. So one key may be
/// used for concurrent signatures from any number of threads (checked by `RSAPrivateKeyTests.concurrentSigning`).
///
/// The corresponding C functions are `EVP_PKEY_fromdata` and `EVP_PKEY_sign`.
public final class RSAPrivateKey: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    // @unchecked Sendable: `pkey` is created once in init, never mutated through this class, freed in deinit, and
    // OpenSSL 3 allows concurrent signing with one EVP_PKEY when each call has its own EVP_PKEY_CTX (see above).
    private let pkey: OpaquePointer

    /// Size of the modulus in bits.
    public let modulusBits: Int
    /// Size of a signature in bytes (the modulus length; `sign` returns exactly this many bytes).
    public var signatureLength: Int { (self.modulusBits + 7) / 8 }

    /// Smallest modulus accepted (bits).
    public static let minimumModulusBits = 2048
    /// Largest modulus accepted (bits); bounds every component's length.
    public static let maximumModulusBits = 16384

    /// Builds a key from big-endian unsigned components (leading zero bytes allowed).
    ///
    /// `dp`, `dq` and `qInv` are computed when nil and checked when given.
    /// - Throws: `CryptoError` if a component is empty or too long, the modulus is outside
    ///   `minimumModulusBits...maximumModulusBits`, the exponent is even or longer than 64 bits, a consistency check
    ///   fails, or libcrypto refuses the key. The error never contains key material.
    public init(
        n: [UInt8],
        e: [UInt8],
        d: [UInt8],
        p: [UInt8],
        q: [UInt8],
        dp: [UInt8]? = nil,
        dq: [UInt8]? = nil,
        qInv: [UInt8]? = nil
    ) throws(CryptoError) {
        let op = "RSA key import"
        let maxBytes = Self.maximumModulusBits / 8 + 1
        for (name, value) in [("n", n), ("e", e), ("d", d), ("p", p), ("q", q)] {
            guard !value.isEmpty, value.count <= maxBytes else {
                throw CryptoError(operation: op, detail: "component \(name) is empty or longer than \(maxBytes) bytes")
            }
        }
        for (name, value) in [("dp", dp), ("dq", dq), ("qInv", qInv)] {
            if let value, value.isEmpty || value.count > maxBytes {
                throw CryptoError(operation: op, detail: "component \(name) is empty or longer than \(maxBytes) bytes")
            }
        }

        let nums = BigNumbers()
        guard let ctx = BN_CTX_secure_new() else { throw CryptoError(operation: op, detail: "out of memory") }
        defer { BN_CTX_free(ctx) }

        let bnN = try nums.make(n, secret: false)
        let bnE = try nums.make(e, secret: false)
        let bnD = try nums.make(d, secret: true)
        let bnP = try nums.make(p, secret: true)
        let bnQ = try nums.make(q, secret: true)

        let bits = Int(BN_num_bits(bnN))
        guard bits >= Self.minimumModulusBits, bits <= Self.maximumModulusBits else {
            throw CryptoError(
                operation: op,
                detail: "modulus has \(bits) bits (allowed \(Self.minimumModulusBits)...\(Self.maximumModulusBits))"
            )
        }
        guard BN_is_odd(bnE) == 1, BN_num_bits(bnE) >= 2, BN_num_bits(bnE) <= 64 else {
            throw CryptoError(operation: op, detail: "public exponent must be odd, >= 3 and at most 64 bits")
        }
        guard BN_num_bits(bnP) >= 2, BN_num_bits(bnQ) >= 2 else {
            throw CryptoError(operation: op, detail: "prime too small")
        }

        // n = p·q
        let tmp = try nums.make(secret: true)
        guard BN_mul(tmp, bnP, bnQ, ctx) == 1 else { throw CryptoError.openSSL("BN_mul") }
        guard BN_cmp(tmp, bnN) == 0 else { throw CryptoError(operation: op, detail: "n is not p·q") }

        // dp, dq (computed or checked), and e·dp ≡ 1 (mod p−1), e·dq ≡ 1 (mod q−1), i.e. d is a valid private
        // exponent modulo lcm(p−1, q−1).
        let pMinus1 = try nums.make(secret: true)
        let qMinus1 = try nums.make(secret: true)
        guard BN_copy(pMinus1, bnP) != nil, BN_sub_word(pMinus1, 1) == 1,
            BN_copy(qMinus1, bnQ) != nil, BN_sub_word(qMinus1, 1) == 1
        else { throw CryptoError.openSSL("BN_sub_word") }
        var exponents: [OpaquePointer] = []
        for (name, modulus, given) in [("dp", pMinus1, dp), ("dq", qMinus1, dq)] {
            let computed = try nums.make(secret: true)
            guard BN_div(nil, computed, bnD, modulus, ctx) == 1 else { throw CryptoError.openSSL("BN_div") }
            if let given {
                let bnGiven = try nums.make(given, secret: true)
                guard BN_cmp(bnGiven, computed) == 0 else {
                    throw CryptoError(operation: op, detail: "\(name) does not match d")
                }
            }
            guard BN_mod_mul(tmp, bnE, computed, modulus, ctx) == 1 else { throw CryptoError.openSSL("BN_mod_mul") }
            guard BN_is_one(tmp) == 1 else {
                throw CryptoError(operation: op, detail: "d is not the inverse of e")
            }
            exponents.append(computed)
        }

        // qInv = q⁻¹ mod p
        let bnQInv: OpaquePointer
        if let qInv {
            bnQInv = try nums.make(qInv, secret: true)
            guard BN_mod_mul(tmp, bnQInv, bnQ, bnP, ctx) == 1 else { throw CryptoError.openSSL("BN_mod_mul") }
            guard BN_is_one(tmp) == 1 else {
                throw CryptoError(
                    operation: op,
                    detail: "qInv is not q⁻¹ mod p (for an OpenPGP key pass p: q, q: p, qInv: u)"
                )
            }
        } else {
            bnQInv = try nums.make(secret: true)
            guard BN_mod_inverse(bnQInv, bnQ, bnP, ctx) != nil else {
                ERR_clear_error()
                throw CryptoError(operation: op, detail: "q has no inverse mod p")
            }
        }

        // EVP_PKEY_fromdata with the OSSL_PKEY_PARAM_RSA_* parameters. The builder copies the values; bignums
        // marked secure are copied into the parameter array's secure block, cleared by OSSL_PARAM_free.
        guard let builder = OSSL_PARAM_BLD_new() else { throw CryptoError.openSSL("OSSL_PARAM_BLD_new") }
        defer { OSSL_PARAM_BLD_free(builder) }
        let pushes: [(UnsafePointer<CChar>, OpaquePointer)] = [
            (CLibcrypto_RSA_N, bnN), (CLibcrypto_RSA_E, bnE), (CLibcrypto_RSA_D, bnD),
            (CLibcrypto_RSA_FACTOR1, bnP), (CLibcrypto_RSA_FACTOR2, bnQ),
            (CLibcrypto_RSA_EXPONENT1, exponents[0]), (CLibcrypto_RSA_EXPONENT2, exponents[1]),
            (CLibcrypto_RSA_COEFFICIENT1, bnQInv),
        ]
        for (key, value) in pushes {
            guard OSSL_PARAM_BLD_push_BN(builder, key, value) == 1 else {
                throw CryptoError.openSSL("OSSL_PARAM_BLD_push_BN")
            }
        }
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
        guard EVP_PKEY_fromdata(pctx, &pkey, CLibcrypto_EVP_PKEY_KEYPAIR, params) == 1, let pkey else {
            throw CryptoError.openSSL("EVP_PKEY_fromdata")
        }
        self.pkey = pkey
        self.modulusBits = Int(EVP_PKEY_get_bits(pkey))
    }

    deinit { EVP_PKEY_free(self.pkey) }

    /// An RSASSA-PKCS1-v1_5 signature over `digest`, which must be a `algorithm` digest of the message (the
    /// DigestInfo for `algorithm` is added by libcrypto). The result is exactly `signatureLength` bytes, leading
    /// zero bytes included.
    ///
    /// Thread-safe (see the type's documentation). SHA-1 is refused. The corresponding C function is
    /// `EVP_PKEY_sign` with `RSA_PKCS1_PADDING` and `EVP_PKEY_CTX_set_signature_md`.
    public func sign(digest: [UInt8], algorithm: DigestAlgorithm) throws(CryptoError) -> [UInt8] {
        guard algorithm != .sha1 else {
            throw CryptoError(operation: "RSA sign", detail: "SHA-1 is not allowed for signatures")
        }
        guard digest.count == algorithm.digestLength else {
            throw CryptoError(
                operation: "RSA sign",
                detail: "digest is \(digest.count) bytes, \(algorithm) needs \(algorithm.digestLength)"
            )
        }
        let ctx = try self.makeContext(operation: "EVP_PKEY_sign_init", algorithm: algorithm, verify: false)
        defer { EVP_PKEY_CTX_free(ctx) }
        var length = 0
        guard EVP_PKEY_sign(ctx, nil, &length, digest, digest.count) == 1, length > 0, length <= 4096 else {
            throw CryptoError.openSSL("EVP_PKEY_sign")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_PKEY_sign(ctx, &signature, &length, digest, digest.count) == 1 else {
            throw CryptoError.openSSL("EVP_PKEY_sign")
        }
        guard length == self.signatureLength else {
            throw CryptoError(operation: "EVP_PKEY_sign", detail: "unexpected signature length \(length)")
        }
        return signature
    }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 signature of `digest` under this key's public half.
    /// Thread-safe. The corresponding C function is `EVP_PKEY_verify`.
    public func verify(signature: [UInt8], digest: [UInt8], algorithm: DigestAlgorithm) -> Bool {
        guard digest.count == algorithm.digestLength, !signature.isEmpty, signature.count <= 4096 else { return false }
        guard let ctx = try? self.makeContext(operation: "EVP_PKEY_verify_init", algorithm: algorithm, verify: true)
        else { return false }
        defer { EVP_PKEY_CTX_free(ctx) }
        let ok = EVP_PKEY_verify(ctx, signature, signature.count, digest, digest.count) == 1
        if !ok { ERR_clear_error() }
        return ok
    }

    public var description: String { "RSAPrivateKey(\(self.modulusBits) bits)" }
    public var debugDescription: String { self.description }

    private func makeContext(
        operation: String,
        algorithm: DigestAlgorithm,
        verify: Bool
    ) throws(CryptoError)
        -> OpaquePointer
    {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, self.pkey, nil) else {
            throw CryptoError.openSSL("EVP_PKEY_CTX_new_from_pkey")
        }
        let initialised = verify ? EVP_PKEY_verify_init(ctx) : EVP_PKEY_sign_init(ctx)
        guard initialised == 1,
            EVP_PKEY_CTX_set_rsa_padding(ctx, CLibcrypto_RSA_PKCS1_PADDING) > 0,
            EVP_PKEY_CTX_set_signature_md(ctx, algorithm.evpMD) > 0
        else {
            EVP_PKEY_CTX_free(ctx)
            throw CryptoError.openSSL(operation)
        }
        return ctx
    }
}

extension CryptoError {
    /// An error for a failed libcrypto call, with the reason of the first queued OpenSSL error (reason strings are
    /// fixed texts such as "bad decrypt", never data). Clears this thread's OpenSSL error queue.
    static func openSSL(_ function: String) -> CryptoError {
        let code = ERR_get_error()
        var detail: String? = nil
        if code != 0, let reason = ERR_reason_error_string(code) {
            detail = String(cString: reason)
        }
        ERR_clear_error()
        return CryptoError(operation: function, detail: detail)
    }
}

/// Owns the temporary bignums of one key import and frees them with `BN_clear_free`.
private final class BigNumbers {
    private var owned: [OpaquePointer] = []

    deinit {
        for bn in self.owned { BN_clear_free(bn) }
    }

    /// A new zero bignum; `secret` ones live on the secure heap (when initialised) and use constant-time paths.
    func make(secret: Bool) throws(CryptoError) -> OpaquePointer {
        guard let bn = secret ? BN_secure_new() : BN_new() else { throw CryptoError.openSSL("BN_new") }
        self.owned.append(bn)
        if secret { BN_set_flags(bn, BN_FLG_CONSTTIME) }
        return bn
    }

    func make(_ bytes: [UInt8], secret: Bool) throws(CryptoError) -> OpaquePointer {
        let bn = try self.make(secret: secret)
        let ok = bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), bn) != nil }
        guard ok else { throw CryptoError.openSSL("BN_bin2bn") }
        return bn
    }
}
