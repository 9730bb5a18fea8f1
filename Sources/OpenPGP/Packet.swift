/// One OpenPGP packet located in a byte buffer (RFC 4880 §4.2).
///
/// Both header formats are read: old format (CTB `10tttt ll`, lengths of 1, 2 or 4 bytes) and new format (CTB
/// `11tttttt`, one-, two- or five-octet lengths). Indeterminate (old type 3) and partial (new 224–254) lengths are
/// refused: they are only allowed for data packets, never for keys, user IDs or signatures.
public struct OpenPGPPacket: Sendable, Equatable {
    /// Packet tag: 2 signature, 5 secret key, 6 public key, 7 secret subkey, 13 user ID, 14 public subkey, …
    public let tag: UInt8
    /// Whole packet (header and body) in the buffer it was read from.
    public let range: Range<Int>
    /// The body in that buffer.
    public let bodyRange: Range<Int>

    public static let signatureTag: UInt8 = 2
    public static let secretKeyTag: UInt8 = 5
    public static let publicKeyTag: UInt8 = 6
    public static let secretSubkeyTag: UInt8 = 7
    public static let userIDTag: UInt8 = 13
    public static let publicSubkeyTag: UInt8 = 14

    /// Default cap on one packet's body length (a 16384-bit RSA secret key is about 4.6 KB).
    public static let defaultMaxBodyLength = 1 << 20

    /// Reads the packet that starts at `start`.
    public static func read(
        _ bytes: [UInt8],
        at start: Int,
        maxBodyLength: Int = OpenPGPPacket.defaultMaxBodyLength
    ) throws(OpenPGPError) -> OpenPGPPacket {
        var reader = ByteReader(bytes, from: start)
        let ctb = try reader.u8("packet header")
        guard ctb & 0x80 != 0 else {
            throw OpenPGPError.malformed("byte \(start) is not a packet header (0x\(hex2(ctb)))")
        }
        let tag: UInt8
        let length: Int
        if ctb & 0x40 == 0 {
            tag = (ctb >> 2) & 0x0F
            switch ctb & 0x03 {
            case 0: length = Int(try reader.u8("packet length"))
            case 1: length = Int(try reader.u16("packet length"))
            case 2: length = Int(try reader.u32("packet length"))
            default:
                throw OpenPGPError.malformed("packet at \(start) has an indeterminate length")
            }
        } else {
            tag = ctb & 0x3F
            let first = Int(try reader.u8("packet length"))
            switch first {
            case 0..<192:
                length = first
            case 192..<224:
                length = ((first - 192) << 8) + Int(try reader.u8("packet length")) + 192
            case 255:
                length = Int(try reader.u32("packet length"))
            default:
                throw OpenPGPError.malformed("packet at \(start) has a partial body length")
            }
        }
        guard tag != 0 else { throw OpenPGPError.malformed("packet at \(start) has reserved tag 0") }
        guard length <= maxBodyLength else {
            throw OpenPGPError(
                code: .tooLarge,
                detail: "packet at \(start) (tag \(tag)) has a \(length)-byte body (limit \(maxBodyLength))"
            )
        }
        let bodyStart = reader.position
        guard length <= bytes.count - bodyStart else { throw OpenPGPError.truncated("packet body (tag \(tag))") }
        return OpenPGPPacket(tag: tag, range: start..<(bodyStart + length), bodyRange: bodyStart..<(bodyStart + length))
    }

    /// All packets in `bytes`, back to back, to the end of the buffer.
    public static func readAll(
        _ bytes: [UInt8],
        maxPackets: Int = 10_000,
        maxBodyLength: Int = OpenPGPPacket.defaultMaxBodyLength
    ) throws(OpenPGPError) -> [OpenPGPPacket] {
        var packets: [OpenPGPPacket] = []
        var position = 0
        while position < bytes.count {
            guard packets.count < maxPackets else {
                throw OpenPGPError(code: .tooLarge, detail: "more than \(maxPackets) packets")
            }
            let packet = try self.read(bytes, at: position, maxBodyLength: maxBodyLength)
            packets.append(packet)
            position = packet.range.upperBound
        }
        return packets
    }

    /// An old-format packet header (as gpg writes for keys and signatures): the smallest of the 1-, 2- and 4-byte
    /// length types. `tag` must be below 16.
    public static func oldFormatHeader(tag: UInt8, bodyLength: Int) -> [UInt8] {
        precondition(tag > 0 && tag < 16 && bodyLength >= 0 && bodyLength <= Int(UInt32.max))
        let base = 0x80 | (tag << 2)
        if bodyLength < 0x100 {
            return [base, UInt8(bodyLength)]
        }
        if bodyLength < 0x10000 {
            return [base | 1, UInt8(bodyLength >> 8), UInt8(bodyLength & 0xFF)]
        }
        return [base | 2] + bigEndian32(UInt32(bodyLength))
    }
}

/// A bounds-checked big-endian cursor. Every read throws `.truncated` past `end`.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0) {
        self.init(bytes, range: start..<bytes.count)
    }

    init(_ bytes: [UInt8], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var remaining: Int { self.end - self.position }
    var isAtEnd: Bool { self.position >= self.end }

    mutating func u8(_ what: String) throws(OpenPGPError) -> UInt8 {
        guard self.position < self.end else { throw OpenPGPError.truncated(what) }
        defer { self.position += 1 }
        return self.bytes[self.position]
    }

    mutating func u16(_ what: String) throws(OpenPGPError) -> UInt16 {
        guard self.remaining >= 2 else { throw OpenPGPError.truncated(what) }
        defer { self.position += 2 }
        return UInt16(self.bytes[self.position]) << 8 | UInt16(self.bytes[self.position + 1])
    }

    mutating func u32(_ what: String) throws(OpenPGPError) -> UInt32 {
        guard self.remaining >= 4 else { throw OpenPGPError.truncated(what) }
        defer { self.position += 4 }
        var value: UInt32 = 0
        for index in 0..<4 {
            value = value << 8 | UInt32(self.bytes[self.position + index])
        }
        return value
    }

    /// The next `count` bytes as a range of `bytes`.
    mutating func skip(_ count: Int, _ what: String) throws(OpenPGPError) -> Range<Int> {
        guard count >= 0, count <= self.remaining else { throw OpenPGPError.truncated(what) }
        defer { self.position += count }
        return self.position..<(self.position + count)
    }

    mutating func take(_ count: Int, _ what: String) throws(OpenPGPError) -> [UInt8] {
        Array(self.bytes[try self.skip(count, what)])
    }

    /// A multiprecision integer (RFC 4880 §3.2): a 2-byte bit count, then ⌈bits/8⌉ big-endian bytes. Must be
    /// canonical: the bit count equals the value's bit length (so no leading zero bytes), and the value is not 0.
    /// Returns the value's bytes.
    mutating func mpi(_ what: String, maxBits: Int = 16384) throws(OpenPGPError) -> [UInt8] {
        let bits = Int(try self.u16("MPI \(what)"))
        guard bits > 0 else { throw OpenPGPError.malformed("MPI \(what) is zero") }
        guard bits <= maxBits else {
            throw OpenPGPError(code: .tooLarge, detail: "MPI \(what) has \(bits) bits (limit \(maxBits))")
        }
        let value = try self.take((bits + 7) / 8, "MPI \(what)")
        let topBits = bits - 8 * (value.count - 1)  // 1...8
        guard value[0] >> (topBits - 1) == 1 else {
            throw OpenPGPError.malformed("MPI \(what) bit count \(bits) does not match its value")
        }
        return value
    }
}

/// Encodes `value` (big-endian, leading zero bytes allowed) as a canonical MPI: leading zeros stripped, bit count
/// from the value. A zero value encodes as `00 00`.
func encodeMPI(_ value: [UInt8]) -> [UInt8] {
    let firstNonZero = value.firstIndex { $0 != 0 } ?? value.count
    let stripped = value[firstNonZero...]
    guard let top = stripped.first else { return [0, 0] }
    let bits = 8 * (stripped.count - 1) + (8 - top.leadingZeroBitCount)
    precondition(bits <= 0xFFFF, "MPI too large")
    return [UInt8(bits >> 8), UInt8(bits & 0xFF)] + stripped
}

func bigEndian32(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
}

func hex2(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}

/// Uppercase hex, as gpg prints fingerprints.
func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    bytes.map(hex2).joined()
}
