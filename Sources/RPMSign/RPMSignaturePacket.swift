import LibCrypto
import OpenPGP
import RPM

/// Checks a detached signature packet before it goes into an RPM (docs/rpm-repodata-signing.md §4.3 step 3,
/// docs/openpgp-signing.md §3.1), and picks its signature header tag.
public enum RPMSignaturePacket {
    /// Hashes accepted in RPM signatures (SHA-1 and MD5 are refused).
    public static let allowedHashes: Set<OpenPGPHashAlgorithm> = [.sha256, .sha384, .sha512, .sha224]

    /// Validates `packet` for use as the header signature of `mainHeader` and returns the tag to store it under.
    ///
    /// Requires: exactly one v4 signature packet; signature type 0x00 (binary document); RSA → 268 RSAHEADER,
    /// DSA or EdDSA → 267 DSAHEADER, anything else refused; SHA-2 hash; exactly one hashed creation time (the
    /// parser checks this); an issuer key ID subpacket (16), since rpm 4.18 finds the key only through it; no
    /// critical issuer fingerprint (rpm 4.18 rejects it); `expectedKeyID`, when given, equal to the issuer. When
    /// `mainHeader` is given and the hash is SHA-256 or SHA-512, the packet's left 16 bits must match the digest of
    /// those bytes (a cheap check that it signs this header, not a cryptographic verification).
    public static func validate(
        _ packet: [UInt8],
        mainHeader: [UInt8]? = nil,
        expectedKeyID: [UInt8]? = nil
    ) throws(RPMSignError) -> (tag: UInt32, signature: OpenPGPSignature) {
        let signature: OpenPGPSignature
        do {
            signature = try OpenPGPSignature.parse(packet)
        } catch {
            throw RPMSignError(code: .invalidSignature, detail: "not a usable signature packet", underlyingError: error)
        }
        func invalid(_ detail: String) -> RPMSignError {
            RPMSignError(code: .invalidSignature, detail: detail)
        }
        guard signature.signatureType == OpenPGPSignature.binaryDocumentType else {
            throw invalid("signature type 0x\(String(signature.signatureType, radix: 16)) (rpm needs 0x00)")
        }
        let tag: UInt32
        switch signature.publicKeyAlgorithm {
        case .rsa, .rsaSignOnly: tag = RPMTag.sigRSAHeader
        case .dsa, .eddsa: tag = RPMTag.sigDSAHeader
        default: throw invalid("public-key algorithm \(signature.publicKeyAlgorithm) is not supported by rpm")
        }
        guard self.allowedHashes.contains(signature.hashAlgorithm) else {
            throw invalid("hash \(signature.hashAlgorithm) is not allowed")
        }
        guard signature.hasIssuerKeyIDSubpacket, let issuer = signature.issuerKeyID else {
            throw invalid("no issuer key ID subpacket (rpm 4.18 needs subpacket 16)")
        }
        let criticalFingerprint = (signature.hashedSubpackets + signature.unhashedSubpackets).contains {
            $0.type == OpenPGPSubpacket.issuerFingerprintType && $0.isCritical
        }
        guard !criticalFingerprint else { throw invalid("critical issuer fingerprint subpacket (rpm 4.18 rejects it)") }
        if let expectedKeyID, expectedKeyID != issuer {
            throw invalid("issuer key ID does not match the signing key")
        }
        if let mainHeader, signature.hashAlgorithm == .sha256 || signature.hashAlgorithm == .sha512 {
            let digest: [UInt8]
            do {
                digest = try signature.signedDigest(over: mainHeader, hashes: LibCryptoHashes())
            } catch {
                throw RPMSignError(code: .invalidSignature, detail: "cannot hash the header", underlyingError: error)
            }
            guard Array(digest.prefix(2)) == signature.digestPrefix else {
                throw invalid("signature does not cover this package's main header")
            }
        }
        return (tag, signature)
    }
}
