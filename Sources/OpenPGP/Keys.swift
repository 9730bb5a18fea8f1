/// A v4 RSA public key: the public part of a key packet (tag 5 or 6), with its fingerprint.
public struct OpenPGPPublicKey: Sendable, Equatable, CustomStringConvertible {
    /// Key creation time (Unix seconds).
    public let creationTime: UInt32
    /// `.rsa` or `.rsaSignOnly`.
    public let algorithm: OpenPGPPublicKeyAlgorithm
    /// Modulus n, big-endian, no leading zero bytes.
    public let modulus: [UInt8]
    /// Public exponent e, big-endian, no leading zero bytes.
    public let exponent: [UInt8]
    /// The public key packet body (version through e), identical to the body of the tag-6 packet `gpg --export`
    /// writes. The fingerprint is computed over it.
    public let packetBody: [UInt8]
    /// v4 fingerprint: SHA-1(0x99 ‖ u16 length ‖ packetBody), 20 bytes.
    public let fingerprint: [UInt8]

    /// The key ID: the last 8 bytes of the fingerprint.
    public var keyID: [UInt8] { Array(self.fingerprint.suffix(8)) }
    /// Fingerprint as 40 uppercase hex digits (as `gpg --with-colons` prints it).
    public var fingerprintHex: String { hexString(self.fingerprint) }
    /// Key ID as 16 uppercase hex digits.
    public var keyIDHex: String { hexString(self.keyID) }
    /// Bit length of the modulus.
    public var modulusBits: Int {
        guard let top = self.modulus.first else { return 0 }
        return 8 * (self.modulus.count - 1) + (8 - top.leadingZeroBitCount)
    }

    public var description: String {
        "OpenPGPPublicKey(\(self.algorithm) \(self.modulusBits), \(self.fingerprintHex), created \(self.creationTime))"
    }

    /// Parses the public part of a v4 key packet body starting at `range.lowerBound`; returns the key and the
    /// position after e.
    static func parsePublicPart(
        _ bytes: [UInt8],
        range: Range<Int>,
        hashes: some OpenPGPHashProvider
    ) throws(OpenPGPError) -> (key: OpenPGPPublicKey, end: Int) {
        var reader = ByteReader(bytes, range: range)
        let version = try reader.u8("key version")
        guard version == 4 else {
            throw OpenPGPError(code: .unsupportedVersion, detail: "key packet version \(version) (only 4 is supported)")
        }
        let creationTime = try reader.u32("key creation time")
        let algorithm = OpenPGPPublicKeyAlgorithm(rawValue: try reader.u8("key algorithm"))
        guard algorithm.isRSA else {
            throw OpenPGPError(
                code: .unsupportedAlgorithm,
                detail: "key algorithm \(algorithm) (only RSA is supported)"
            )
        }
        let modulus = try reader.mpi("n")
        let exponent = try reader.mpi("e", maxBits: 4096)
        let body = Array(bytes[range.lowerBound..<reader.position])
        let fingerprint = try self.fingerprint(ofPacketBody: body, hashes: hashes)
        let key = OpenPGPPublicKey(
            creationTime: creationTime,
            algorithm: algorithm,
            modulus: modulus,
            exponent: exponent,
            packetBody: body,
            fingerprint: fingerprint
        )
        return (key, reader.position)
    }

    /// The v4 fingerprint of a public key packet body: SHA-1(0x99 ‖ u16 BE length ‖ body). The prefix is 0x99 even
    /// for keys read from a secret-key packet.
    public static func fingerprint(
        ofPacketBody body: [UInt8],
        hashes: some OpenPGPHashProvider
    ) throws(OpenPGPError) -> [UInt8] {
        guard body.count <= 0xFFFF else {
            throw OpenPGPError(code: .tooLarge, detail: "public key body of \(body.count) bytes")
        }
        var hasher = try hashes.hasher(.sha1)
        hasher.update([0x99, UInt8(body.count >> 8), UInt8(body.count & 0xFF)])
        hasher.update(body)
        let digest = hasher.finalize()
        guard digest.count == 20 else {
            throw OpenPGPError(code: .unsupportedAlgorithm, detail: "SHA-1 provider returned \(digest.count) bytes")
        }
        return digest
    }

    /// The primary key of a transferable public key (`gpg --export`, binary): the first packet must be a v4 RSA
    /// public key (tag 6). All packets must be well framed; secret-key packets anywhere are refused.
    public static func parseTransferable(
        _ bytes: [UInt8],
        hashes: some OpenPGPHashProvider,
        maxBytes: Int = OpenPGPSecretKey.maxTransferableBytes
    ) throws(OpenPGPError) -> OpenPGPPublicKey {
        let packets = try OpenPGPArmor.publicKeyPackets(bytes, maxBytes: maxBytes)
        return try self.parsePublicPart(bytes, range: packets[0].bodyRange, hashes: hashes).key
    }
}

/// The secret RSA numbers of an OpenPGP key, in OpenPGP's convention: `p < q`, `u = p⁻¹ mod q`.
///
/// Big-endian bytes without leading zeros. `description`, `debugDescription` and `Mirror` (so `dump` and string
/// interpolation) never show the values.
public struct OpenPGPRSASecretComponents: Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    public let d: [UInt8]
    public let p: [UInt8]
    public let q: [UInt8]
    public let u: [UInt8]

    public var description: String { "OpenPGPRSASecretComponents(redacted)" }
    public var debugDescription: String { self.description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// The primary key of a transferable secret key as `gpg --export-secret-keys` writes it (binary, unprotected).
///
/// Layout (docs/openpgp-signing.md §1.1): secret-key packet (tag 5, v4): version, creation time, algorithm, the
/// MPIs n and e (the public part), S2K usage 0, the MPIs d, p, q, u, and a 2-byte checksum (sum of the bytes of the
/// four secret MPIs, bit counts included, mod 65536). Then user IDs (13), signatures (2) and possibly subkeys
/// (7, 14), which are framed but otherwise ignored.
///
/// `description` and `Mirror` never show secret values.
public struct OpenPGPSecretKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let publicKey: OpenPGPPublicKey
    public let secret: OpenPGPRSASecretComponents
    /// The user IDs (tag 13) that follow the key, decoded as UTF-8 (invalid bytes become U+FFFD).
    public let userIDs: [String]

    /// Cap on the size of an export accepted by the parsers (keys with many signatures stay far below it).
    public static let maxTransferableBytes = 1 << 20

    public var description: String { "OpenPGPSecretKey(\(self.publicKey), \(self.userIDs.count) user IDs)" }
    public var debugDescription: String { self.description }
    public var customMirror: Mirror {
        Mirror(self, children: ["publicKey": self.publicKey, "userIDs": self.userIDs], displayStyle: .struct)
    }

    /// Parses the primary key of `gpg --export-secret-keys` output (binary).
    ///
    /// - Throws: `.unexpectedPacket` when the first packet is not a secret key or a second primary secret key
    ///   follows; `.unsupportedVersion` for a non-v4 key; `.unsupportedAlgorithm` for a non-RSA key;
    ///   `.encryptedSecretKey` for a passphrase-protected key; `.badChecksum`; `.malformed`, `.truncated` and
    ///   `.tooLarge` for broken input. Never traps on malformed input.
    public static func parseTransferable(
        _ bytes: [UInt8],
        hashes: some OpenPGPHashProvider,
        maxBytes: Int = OpenPGPSecretKey.maxTransferableBytes
    ) throws(OpenPGPError) -> OpenPGPSecretKey {
        guard bytes.count <= maxBytes else {
            throw OpenPGPError(code: .tooLarge, detail: "key export of \(bytes.count) bytes (limit \(maxBytes))")
        }
        guard !bytes.isEmpty else { throw OpenPGPError.truncated("an empty key export") }
        let packets = try OpenPGPPacket.readAll(bytes)
        guard packets[0].tag == OpenPGPPacket.secretKeyTag else {
            throw OpenPGPError(
                code: .unexpectedPacket,
                detail: "first packet has tag \(packets[0].tag), expected a secret key (5)"
            )
        }
        var userIDs: [String] = []
        for packet in packets.dropFirst() {
            switch packet.tag {
            case OpenPGPPacket.secretKeyTag, OpenPGPPacket.publicKeyTag:
                throw OpenPGPError(code: .unexpectedPacket, detail: "the export holds more than one primary key")
            case OpenPGPPacket.userIDTag:
                userIDs.append(String(decoding: bytes[packet.bodyRange], as: UTF8.self))
            default:
                break
            }
        }
        let body = packets[0].bodyRange
        let (publicKey, publicEnd) = try OpenPGPPublicKey.parsePublicPart(bytes, range: body, hashes: hashes)
        var reader = ByteReader(bytes, range: publicEnd..<body.upperBound)
        let s2kUsage = try reader.u8("S2K usage")
        guard s2kUsage == 0 else {
            throw OpenPGPError(
                code: .encryptedSecretKey,
                detail: "secret key is protected (S2K usage \(s2kUsage)); export a key without a passphrase"
            )
        }
        let secretStart = reader.position
        let d = try reader.mpi("d")
        let p = try reader.mpi("p")
        let q = try reader.mpi("q")
        let u = try reader.mpi("u")
        let secretEnd = reader.position
        let checksum = try reader.u16("secret key checksum")
        guard reader.isAtEnd else {
            throw OpenPGPError.malformed("\(reader.remaining) unexpected bytes after the secret key checksum")
        }
        var sum: UInt16 = 0
        for index in secretStart..<secretEnd {
            sum = sum &+ UInt16(bytes[index])
        }
        guard sum == checksum else {
            throw OpenPGPError(code: .badChecksum, detail: "secret key checksum does not match")
        }
        return OpenPGPSecretKey(
            publicKey: publicKey,
            secret: OpenPGPRSASecretComponents(d: d, p: p, q: q, u: u),
            userIDs: userIDs
        )
    }
}
