/// ASCII armor (RFC 4880 §6): radix-64 lines of 64 characters between BEGIN/END lines, with a CRC-24 line.
public enum OpenPGPArmor {
    /// The armor header line label.
    public struct Kind: RawRepresentable, Hashable, Sendable {
        public let rawValue: String

        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        public static let publicKey = Kind(rawValue: "PGP PUBLIC KEY BLOCK")
        public static let privateKey = Kind(rawValue: "PGP PRIVATE KEY BLOCK")
        public static let signature = Kind(rawValue: "PGP SIGNATURE")
        public static let message = Kind(rawValue: "PGP MESSAGE")
    }

    /// Cap on the size of armored input accepted by `dearmor`.
    public static let maxArmoredBytes = 4 << 20

    /// Armors `bytes` exactly as gpg 2.2 does (no armor headers, 64-column lines, `\n` line ends):
    ///
    ///     -----BEGIN PGP PUBLIC KEY BLOCK-----
    ///     <empty line>
    ///     mQINBG…
    ///     =AbCd
    ///     -----END PGP PUBLIC KEY BLOCK-----
    public static func armor(_ bytes: [UInt8], kind: Kind) -> String {
        var out = "-----BEGIN \(kind.rawValue)-----\n\n"
        let encoded = base64Encode(bytes)
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 64, limitedBy: encoded.endIndex) ?? encoded.endIndex
            out += String(decoding: encoded[index..<end], as: UTF8.self)
            out += "\n"
            index = end
        }
        let crc = self.crc24(bytes)
        out +=
            "="
            + String(
                decoding: base64Encode([UInt8(crc >> 16), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)]),
                as: UTF8.self
            )
        out += "\n-----END \(kind.rawValue)-----\n"
        return out
    }

    /// Armors a transferable public key (binary `gpg --export` output) for publishing as `pubkey.gpg`, after
    /// checking it: well-framed packets, the first a v4 RSA public key (tag 6), and **no secret-key packets**
    /// anywhere (so a secret key can never be published by mistake).
    public static func armorPublicKey(
        _ transferablePublicKey: [UInt8],
        maxBytes: Int = OpenPGPSecretKey.maxTransferableBytes
    ) throws(OpenPGPError) -> String {
        _ = try self.publicKeyPackets(transferablePublicKey, maxBytes: maxBytes)
        return self.armor(transferablePublicKey, kind: .publicKey)
    }

    /// The packets of a transferable public key, checked as `armorPublicKey` describes.
    static func publicKeyPackets(_ bytes: [UInt8], maxBytes: Int) throws(OpenPGPError) -> [OpenPGPPacket] {
        guard bytes.count <= maxBytes else {
            throw OpenPGPError(code: .tooLarge, detail: "public key of \(bytes.count) bytes (limit \(maxBytes))")
        }
        guard !bytes.isEmpty else { throw OpenPGPError.truncated("an empty public key") }
        let packets = try OpenPGPPacket.readAll(bytes)
        guard packets[0].tag == OpenPGPPacket.publicKeyTag else {
            throw OpenPGPError(
                code: .unexpectedPacket,
                detail: "first packet has tag \(packets[0].tag), expected a public key (6)"
            )
        }
        for packet in packets {
            switch packet.tag {
            case OpenPGPPacket.secretKeyTag, OpenPGPPacket.secretSubkeyTag:
                throw OpenPGPError(code: .unexpectedPacket, detail: "secret key packet in a public key block")
            case OpenPGPPacket.publicKeyTag where packet != packets[0]:
                throw OpenPGPError(code: .unexpectedPacket, detail: "more than one primary key")
            default:
                continue
            }
        }
        var reader = ByteReader(bytes, range: packets[0].bodyRange)
        let version = try reader.u8("key version")
        guard version == 4 else {
            throw OpenPGPError(code: .unsupportedVersion, detail: "key packet version \(version) (only 4 is supported)")
        }
        return packets
    }

    /// Decodes armored text: the kind from the BEGIN line, armor headers skipped, the CRC-24 checked when present,
    /// and the END line required. Accepts `\n` and `\r\n`. Text before BEGIN is ignored.
    public static func dearmor(_ text: [UInt8]) throws(OpenPGPError) -> (kind: Kind, bytes: [UInt8]) {
        guard text.count <= self.maxArmoredBytes else {
            throw OpenPGPError(code: .tooLarge, detail: "armored input of \(text.count) bytes")
        }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for index in text.indices where text[index] == UInt8(ascii: "\n") {
            lines.append(text[start..<index])
            start = index + 1
        }
        if start < text.count { lines.append(text[start...]) }
        lines = lines.map { $0.last == UInt8(ascii: "\r") ? $0.dropLast() : $0 }
        func trimmed(_ line: ArraySlice<UInt8>) -> String {
            var line = line
            while let last = line.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
                line = line.dropLast()
            }
            return String(decoding: line, as: UTF8.self)
        }

        guard let beginIndex = lines.firstIndex(where: { trimmed($0).hasPrefix("-----BEGIN ") }) else {
            throw OpenPGPError(code: .badArmor, detail: "no BEGIN line")
        }
        let begin = trimmed(lines[beginIndex])
        guard begin.hasSuffix("-----"), begin.count > 16 else {
            throw OpenPGPError(code: .badArmor, detail: "malformed BEGIN line")
        }
        let label = String(begin.dropFirst(11).dropLast(5))
        var index = beginIndex + 1
        // Armor headers ("Key: value") up to an empty line.
        while index < lines.count, !trimmed(lines[index]).isEmpty {
            guard trimmed(lines[index]).contains(":") else { break }
            index += 1
        }
        if index < lines.count, trimmed(lines[index]).isEmpty { index += 1 }
        var body: [UInt8] = []
        var checksum: [UInt8]? = nil
        var sawEnd = false
        while index < lines.count {
            let line = trimmed(lines[index])
            index += 1
            if line.hasPrefix("-----END ") {
                guard line == "-----END \(label)-----" else {
                    throw OpenPGPError(code: .badArmor, detail: "END line does not match BEGIN")
                }
                sawEnd = true
                break
            }
            if line.hasPrefix("=") {
                guard checksum == nil, let decoded = base64Decode(Array(line.utf8.dropFirst())), decoded.count == 3
                else {
                    throw OpenPGPError(code: .badArmor, detail: "malformed checksum line")
                }
                checksum = decoded
                continue
            }
            guard checksum == nil else { throw OpenPGPError(code: .badArmor, detail: "data after the checksum line") }
            body += Array(line.utf8)
        }
        guard sawEnd else { throw OpenPGPError(code: .badArmor, detail: "no END line") }
        guard let bytes = base64Decode(body) else {
            throw OpenPGPError(code: .badArmor, detail: "invalid radix-64 data")
        }
        if let checksum {
            let crc = self.crc24(bytes)
            guard checksum == [UInt8(crc >> 16), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)] else {
                throw OpenPGPError(code: .badArmor, detail: "CRC-24 mismatch")
            }
        }
        return (Kind(rawValue: label), bytes)
    }

    /// CRC-24 of RFC 4880 §6.1 (init 0xB704CE, polynomial 0x1864CFB).
    public static func crc24<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xB704CE
        for byte in bytes {
            crc ^= UInt32(byte) << 16
            for _ in 0..<8 {
                crc <<= 1
                if crc & 0x100_0000 != 0 { crc ^= 0x1864CFB }
            }
        }
        return crc & 0xFF_FFFF
    }
}

private let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

func base64Encode(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index < bytes.count {
        let b0 = UInt32(bytes[index])
        let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
        let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
        let triple = b0 << 16 | b1 << 8 | b2
        out.append(base64Alphabet[Int((triple >> 18) & 63)])
        out.append(base64Alphabet[Int((triple >> 12) & 63)])
        out.append(index + 1 < bytes.count ? base64Alphabet[Int((triple >> 6) & 63)] : UInt8(ascii: "="))
        out.append(index + 2 < bytes.count ? base64Alphabet[Int(triple & 63)] : UInt8(ascii: "="))
        index += 3
    }
    return out
}

/// Strict radix-64 decoding: length a multiple of 4, padding only at the end; nil otherwise.
func base64Decode(_ text: [UInt8]) -> [UInt8]? {
    guard text.count % 4 == 0 else { return nil }
    var values = [UInt8](repeating: 0xFF, count: 256)
    for (index, char) in base64Alphabet.enumerated() { values[Int(char)] = UInt8(index) }
    var out: [UInt8] = []
    out.reserveCapacity(text.count / 4 * 3)
    var index = 0
    while index < text.count {
        let chunk = text[index..<(index + 4)]
        let isLast = index + 4 == text.count
        var padding = 0
        var triple: UInt32 = 0
        for (position, char) in chunk.enumerated() {
            if char == UInt8(ascii: "=") {
                guard isLast, position >= 2 else { return nil }
                padding += 1
                triple <<= 6
                continue
            }
            guard padding == 0 else { return nil }
            let value = values[Int(char)]
            guard value != 0xFF else { return nil }
            triple = triple << 6 | UInt32(value)
        }
        out.append(UInt8(triple >> 16))
        if padding < 2 { out.append(UInt8((triple >> 8) & 0xFF)) }
        if padding < 1 { out.append(UInt8(triple & 0xFF)) }
        index += 4
    }
    return out
}
