/// One signature subpacket (RFC 4880 §5.2.3.1).
public struct OpenPGPSubpacket: Sendable, Equatable {
    /// Subpacket type without the critical bit: 2 creation time, 16 issuer key ID, 33 issuer fingerprint, …
    public let type: UInt8
    /// The critical bit (0x80) was set.
    public let isCritical: Bool
    public let data: [UInt8]

    public static let creationTimeType: UInt8 = 2
    public static let issuerKeyIDType: UInt8 = 16
    public static let issuerFingerprintType: UInt8 = 33

    public init(type: UInt8, isCritical: Bool = false, data: [UInt8]) {
        precondition(type < 0x80)
        self.type = type
        self.isCritical = isCritical
        self.data = data
    }

    /// The subpacket in wire form: length (1, 2 or 5 octets, counting the type octet), type octet, data.
    public var encoded: [UInt8] {
        let length = self.data.count + 1
        var out: [UInt8]
        if length < 192 {
            out = [UInt8(length)]
        } else if length < 8384 {
            let value = length - 192
            out = [UInt8((value >> 8) + 192), UInt8(value & 0xFF)]
        } else {
            out = [0xFF] + bigEndian32(UInt32(length))
        }
        out.append(self.type | (self.isCritical ? 0x80 : 0))
        return out + self.data
    }

    /// Parses a whole subpacket area.
    static func parseArea(_ bytes: [UInt8], range: Range<Int>, what: String) throws(OpenPGPError) -> [OpenPGPSubpacket]
    {
        var reader = ByteReader(bytes, range: range)
        var subpackets: [OpenPGPSubpacket] = []
        while !reader.isAtEnd {
            guard subpackets.count < 1024 else {
                throw OpenPGPError(code: .tooLarge, detail: "more than 1024 subpackets in the \(what) area")
            }
            let first = Int(try reader.u8("\(what) subpacket length"))
            let length: Int
            switch first {
            case 0..<192:
                length = first
            case 192..<255:
                length = ((first - 192) << 8) + Int(try reader.u8("\(what) subpacket length")) + 192
            default:
                length = Int(try reader.u32("\(what) subpacket length"))
            }
            guard length >= 1 else { throw OpenPGPError.malformed("empty subpacket in the \(what) area") }
            guard length <= reader.remaining else { throw OpenPGPError.truncated("a \(what) subpacket") }
            let typeOctet = try reader.u8("\(what) subpacket type")
            let data = try reader.take(length - 1, "\(what) subpacket data")
            subpackets.append(OpenPGPSubpacket(type: typeOctet & 0x7F, isCritical: typeOctet & 0x80 != 0, data: data))
        }
        return subpackets
    }
}

/// A parsed v4 signature packet (tag 2).
///
/// Parsing checks the structure rpm 4.18 and gpg rely on: version 4; a known public-key algorithm with the right
/// number of canonical MPIs; well-formed subpacket areas; **exactly one** creation-time subpacket (2), in the
/// **hashed** area (rpm refuses anything else); at most 8-byte issuer key IDs (16) and v4 issuer fingerprints (33)
/// that agree with each other; and no bytes after the packet. It does not verify the signature.
public struct OpenPGPSignature: Sendable, Equatable {
    public let signatureType: UInt8
    public let publicKeyAlgorithm: OpenPGPPublicKeyAlgorithm
    public let hashAlgorithm: OpenPGPHashAlgorithm
    public let hashedSubpackets: [OpenPGPSubpacket]
    public let unhashedSubpackets: [OpenPGPSubpacket]
    /// The left 16 bits of the signed digest.
    public let digestPrefix: [UInt8]
    /// The signature MPIs' values (1 for RSA, 2 for DSA/ECDSA/EdDSA).
    public let mpis: [[UInt8]]
    /// Signature creation time from the hashed area.
    public let creationTime: UInt32
    /// Issuer key ID (subpacket 16, hashed area first), or the last 8 bytes of the issuer fingerprint when only 33
    /// is present. rpm 4.18 finds the key only through subpacket 16: see `hasIssuerKeyIDSubpacket`.
    public let issuerKeyID: [UInt8]?
    /// Whether a subpacket 16 is present (in either area).
    public let hasIssuerKeyIDSubpacket: Bool
    /// Issuer fingerprint (subpacket 33, key version 4), 20 bytes.
    public let issuerFingerprint: [UInt8]?
    /// Packet body bytes `[0, 6 + hashed area length)`: what is hashed after the data.
    public let hashedPart: [UInt8]
    /// Length of the whole packet, header included.
    public let packetLength: Int

    /// Binary document signature, the type rpm requires.
    public static let binaryDocumentType: UInt8 = 0x00

    /// Issuer key ID as 16 uppercase hex digits.
    public var issuerKeyIDHex: String? { self.issuerKeyID.map { hexString($0) } }

    /// Parses `bytes`, which must be exactly one signature packet (old or new header format).
    public static func parse(_ bytes: [UInt8]) throws(OpenPGPError) -> OpenPGPSignature {
        guard !bytes.isEmpty else { throw OpenPGPError.truncated("an empty signature") }
        let packet = try OpenPGPPacket.read(bytes, at: 0, maxBodyLength: 1 << 16)
        guard packet.tag == OpenPGPPacket.signatureTag else {
            throw OpenPGPError(code: .unexpectedPacket, detail: "packet tag \(packet.tag), expected a signature (2)")
        }
        guard packet.range.upperBound == bytes.count else {
            throw OpenPGPError.malformed("\(bytes.count - packet.range.upperBound) bytes after the signature packet")
        }
        return try self.parseBody(bytes, range: packet.bodyRange, packetLength: bytes.count)
    }

    static func parseBody(
        _ bytes: [UInt8],
        range: Range<Int>,
        packetLength: Int
    ) throws(OpenPGPError) -> OpenPGPSignature {
        var reader = ByteReader(bytes, range: range)
        let version = try reader.u8("signature version")
        guard version == 4 else {
            throw OpenPGPError(code: .unsupportedVersion, detail: "signature version \(version) (only 4 is supported)")
        }
        let signatureType = try reader.u8("signature type")
        let algorithm = OpenPGPPublicKeyAlgorithm(rawValue: try reader.u8("signature algorithm"))
        let hash = OpenPGPHashAlgorithm(rawValue: try reader.u8("signature hash algorithm"))
        guard let mpiCount = algorithm.signatureMPICount else {
            throw OpenPGPError(code: .unsupportedAlgorithm, detail: "signature public-key algorithm \(algorithm)")
        }
        guard hash.digestLength != nil else {
            throw OpenPGPError(code: .unsupportedAlgorithm, detail: "signature hash algorithm \(hash)")
        }
        let hashedLength = Int(try reader.u16("hashed area length"))
        let hashedRange = try reader.skip(hashedLength, "hashed subpackets")
        let hashedPart = Array(bytes[range.lowerBound..<hashedRange.upperBound])
        let unhashedLength = Int(try reader.u16("unhashed area length"))
        let unhashedRange = try reader.skip(unhashedLength, "unhashed subpackets")
        let hashed = try OpenPGPSubpacket.parseArea(bytes, range: hashedRange, what: "hashed")
        let unhashed = try OpenPGPSubpacket.parseArea(bytes, range: unhashedRange, what: "unhashed")
        let digestPrefix = try reader.take(2, "digest prefix")
        var mpis: [[UInt8]] = []
        for index in 0..<mpiCount {
            mpis.append(try reader.mpi("signature value \(index)"))
        }
        guard reader.isAtEnd else {
            throw OpenPGPError.malformed("\(reader.remaining) unexpected bytes after the signature MPIs")
        }

        let creationTimes = hashed.filter { $0.type == OpenPGPSubpacket.creationTimeType }
        guard creationTimes.count == 1, creationTimes[0].data.count == 4 else {
            throw OpenPGPError.malformed(
                "need exactly one 4-byte creation time subpacket in the hashed area, found \(creationTimes.count)"
            )
        }
        guard !unhashed.contains(where: { $0.type == OpenPGPSubpacket.creationTimeType }) else {
            throw OpenPGPError.malformed("creation time subpacket in the unhashed area")
        }
        let creationTime = creationTimes[0].data.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }

        var keyID: [UInt8]? = nil
        var hasKeyIDSubpacket = false
        var fingerprint: [UInt8]? = nil
        for subpacket in hashed + unhashed {
            switch subpacket.type {
            case OpenPGPSubpacket.issuerKeyIDType:
                guard subpacket.data.count == 8 else {
                    throw OpenPGPError.malformed("issuer key ID subpacket of \(subpacket.data.count) bytes")
                }
                if let keyID, keyID != subpacket.data {
                    throw OpenPGPError.malformed("two different issuer key IDs")
                }
                keyID = subpacket.data
                hasKeyIDSubpacket = true
            case OpenPGPSubpacket.issuerFingerprintType:
                guard let keyVersion = subpacket.data.first else {
                    throw OpenPGPError.malformed("empty issuer fingerprint subpacket")
                }
                guard keyVersion == 4 else { continue }
                guard subpacket.data.count == 21 else {
                    throw OpenPGPError.malformed("v4 issuer fingerprint subpacket of \(subpacket.data.count) bytes")
                }
                let value = Array(subpacket.data.dropFirst())
                if let fingerprint, fingerprint != value {
                    throw OpenPGPError.malformed("two different issuer fingerprints")
                }
                fingerprint = value
            default:
                continue
            }
        }
        if let keyID, let fingerprint, Array(fingerprint.suffix(8)) != keyID {
            throw OpenPGPError.malformed("issuer key ID does not match the issuer fingerprint")
        }
        return OpenPGPSignature(
            signatureType: signatureType,
            publicKeyAlgorithm: algorithm,
            hashAlgorithm: hash,
            hashedSubpackets: hashed,
            unhashedSubpackets: unhashed,
            digestPrefix: digestPrefix,
            mpis: mpis,
            creationTime: creationTime,
            issuerKeyID: keyID ?? fingerprint.map { Array($0.suffix(8)) },
            hasIssuerKeyIDSubpacket: hasKeyIDSubpacket,
            issuerFingerprint: fingerprint,
            hashedPart: hashedPart,
            packetLength: packetLength
        )
    }

    /// The digest this signature signs for `data`: hash(data ‖ hashedPart ‖ 04 FF ‖ u32 length of hashedPart).
    /// Compare its first two bytes with `digestPrefix` for a cheap check that the signature covers `data` (this is
    /// not a cryptographic verification).
    public func signedDigest<C: Collection>(
        over data: C,
        hashes: some OpenPGPHashProvider
    ) throws(OpenPGPError) -> [UInt8] where C.Element == UInt8 {
        try OpenPGPSignatureBuilder.digest(
            over: data,
            hashedPart: self.hashedPart,
            hash: self.hashAlgorithm,
            hashes: hashes
        )
    }
}

/// Builds v4 detached binary-document signatures with RSA, in the layout docs/openpgp-signing.md §2 and §3.1
/// establish for rpm 4.18, gpg and Sequoia:
///
///     04 | 00 (binary document) | 01 (RSA) | hash (8 SHA-256 / 10 SHA-512)
///     hashed area (29 bytes):   16 21 04 <fingerprint>   issuer fingerprint (33), not critical
///                               05 02 <u32 time>         signature creation time (2), not critical
///     unhashed area (10 bytes): 09 10 <key ID>           issuer key ID (16)
///     left 16 bits of the digest | MPI of the RSA signature (leading zeros stripped)
///
/// in an old-format packet header (`89 LL LL`). The subpacket order is gpg 2.2's (33 before 2), so with the same
/// creation time and hash the packet is byte-identical to `gpg --detach-sign`'s.
public enum OpenPGPSignatureBuilder {
    /// Hash algorithms used for new signatures.
    public static let allowedHashes: Set<OpenPGPHashAlgorithm> = [.sha256, .sha512]

    /// Body bytes `[0, 6 + hashedLength)` of the signature: version through the hashed subpackets.
    public static func hashedPart(
        issuerFingerprint: [UInt8],
        creationTime: UInt32,
        hash: OpenPGPHashAlgorithm,
        algorithm: OpenPGPPublicKeyAlgorithm = .rsa
    ) -> [UInt8] {
        precondition(issuerFingerprint.count == 20, "v4 fingerprints are 20 bytes")
        let area =
            OpenPGPSubpacket(type: OpenPGPSubpacket.issuerFingerprintType, data: [4] + issuerFingerprint).encoded
            + OpenPGPSubpacket(type: OpenPGPSubpacket.creationTimeType, data: bigEndian32(creationTime)).encoded
        return [4, OpenPGPSignature.binaryDocumentType, algorithm.rawValue, hash.rawValue]
            + [UInt8(area.count >> 8), UInt8(area.count & 0xFF)] + area
    }

    /// The v4 hash trailer: `04 FF ‖ u32 BE length of the hashed part`.
    public static func trailer(hashedPartLength: Int) -> [UInt8] {
        [4, 0xFF] + bigEndian32(UInt32(hashedPartLength))
    }

    /// hash(data ‖ hashedPart ‖ trailer).
    public static func digest<C: Collection>(
        over data: C,
        hashedPart: [UInt8],
        hash: OpenPGPHashAlgorithm,
        hashes: some OpenPGPHashProvider
    ) throws(OpenPGPError) -> [UInt8] where C.Element == UInt8 {
        var hasher = try hashes.hasher(hash)
        if data.withContiguousStorageIfAvailable({ hasher.update(UnsafeRawBufferPointer($0)) }) == nil {
            hasher.update(Array(data))
        }
        hasher.update(hashedPart)
        hasher.update(self.trailer(hashedPartLength: hashedPart.count))
        let digest = hasher.finalize()
        guard let expected = hash.digestLength, digest.count == expected else {
            throw OpenPGPError(
                code: .unsupportedAlgorithm,
                detail: "hash provider returned \(digest.count) bytes for \(hash)"
            )
        }
        return digest
    }

    /// The complete signature packet from its parts.
    public static func assemble(
        hashedPart: [UInt8],
        issuerKeyID: [UInt8],
        digestPrefix: [UInt8],
        signatureValue: [UInt8]
    ) -> [UInt8] {
        precondition(issuerKeyID.count == 8 && digestPrefix.count == 2)
        let unhashed = OpenPGPSubpacket(type: OpenPGPSubpacket.issuerKeyIDType, data: issuerKeyID).encoded
        let body =
            hashedPart + [UInt8(unhashed.count >> 8), UInt8(unhashed.count & 0xFF)] + unhashed + digestPrefix
            + encodeMPI(signatureValue)
        return OpenPGPPacket.oldFormatHeader(tag: OpenPGPPacket.signatureTag, bodyLength: body.count) + body
    }

    /// A detached binary-document signature over `data` by `key`'s private half.
    ///
    /// - Parameters:
    ///   - now: the current Unix time; the creation time is `max(now, key.creationTime)`, since gpg and Sequoia
    ///     refuse signatures older than the key (docs/openpgp-signing.md §3.2). Never pass a future time.
    ///   - hash: `.sha256` (default) or `.sha512`.
    /// - Returns: the packet bytes (old-format header, as gpg writes).
    public static func detachedSignature<C: Collection>(
        over data: C,
        key: OpenPGPPublicKey,
        signer: some OpenPGPRSASigner,
        hashes: some OpenPGPHashProvider,
        hash: OpenPGPHashAlgorithm = .sha256,
        now: UInt32
    ) throws(OpenPGPError) -> [UInt8] where C.Element == UInt8 {
        guard self.allowedHashes.contains(hash) else {
            throw OpenPGPError(code: .unsupportedAlgorithm, detail: "\(hash) is not allowed for new signatures")
        }
        guard key.algorithm.isRSA else {
            throw OpenPGPError(code: .unsupportedAlgorithm, detail: "key algorithm \(key.algorithm)")
        }
        let hashedPart = self.hashedPart(
            issuerFingerprint: key.fingerprint,
            creationTime: max(now, key.creationTime),
            hash: hash,
            algorithm: key.algorithm
        )
        let digest = try self.digest(over: data, hashedPart: hashedPart, hash: hash, hashes: hashes)
        let value: [UInt8]
        do {
            value = try signer.signPKCS1v15(digest: digest, hash: hash)
        } catch {
            throw OpenPGPError(code: .signerFailed, detail: "RSA signing failed", underlyingError: error)
        }
        let significant = value.drop { $0 == 0 }
        guard !significant.isEmpty, significant.count <= key.modulus.count else {
            throw OpenPGPError(code: .signerFailed, detail: "signer returned a \(value.count)-byte value")
        }
        return self.assemble(
            hashedPart: hashedPart,
            issuerKeyID: key.keyID,
            digestPrefix: Array(digest.prefix(2)),
            signatureValue: Array(significant)
        )
    }
}
