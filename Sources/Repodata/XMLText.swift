/// Byte-level XML text handling that reproduces what createrepo_c 0.17.3 gets from libxml2 2.9.14
/// (docs/rpm-repodata-signing.md §2.6). Everything works on raw bytes, never on `String`, because the
/// exact output for odd input (invalid UTF-8, non-characters) is part of the byte-identity contract.
enum XMLText {
    /// libxml2's `xmlCheckUTF8`: a purely structural check (lead byte followed by the right number of
    /// `10xxxxxx` bytes). Overlong forms and surrogates pass, exactly as in libxml2.
    static func isStructurallyUTF8<C: RandomAccessCollection<UInt8>>(_ bytes: C) -> Bool where C.Index == Int {
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index < end {
            let lead = bytes[index]
            let length: Int
            if lead & 0x80 == 0 {
                length = 1
            } else if lead & 0xE0 == 0xC0 {
                length = 2
            } else if lead & 0xF0 == 0xE0 {
                length = 3
            } else if lead & 0xF8 == 0xF0 {
                length = 4
            } else {
                return false
            }
            if length > 1 {
                guard end - index >= length else { return false }
                for offset in 1..<length where bytes[index + offset] & 0xC0 != 0x80 {
                    return false
                }
            }
            index += length
        }
        return true
    }

    /// createrepo_c's `cr_latin1_to_utf8`: bytes below 0x20 other than TAB/LF/CR are dropped, 0x80–0xBF are
    /// dropped, 0xC0–0xFF become U+00C0–U+00FF.
    static func latin1ToUTF8<C: RandomAccessCollection<UInt8>>(_ bytes: C) -> [UInt8] where C.Index == Int {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            if byte < 0x80 {
                if byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D { continue }
                out.append(byte)
            } else if byte < 0xC0 {
                continue
            } else {
                out.append(0xC3)
                out.append((byte & 0x3F) + 0x80)
            }
        }
        return out
    }

    /// Whether `bytes` holds a character createrepo_c refuses (< 0x20 other than TAB, LF, CR).
    static func hasForbiddenControlCharacters<C: Collection<UInt8>>(_ bytes: C) -> Bool {
        for byte in bytes where byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D {
            return true
        }
        return false
    }

    // MARK: - Element text (`cr_xmlNewTextChild` then libxml2's `xmlEscapeContent`)

    /// Appends element content the way `cr_xmlNewTextChild` + `xmlNodeDump` write it: invalid UTF-8 is first
    /// converted as Latin-1, then `<`, `>`, `&` and CR are escaped; everything else (non-ASCII too) is raw.
    static func appendText<C: RandomAccessCollection<UInt8>>(_ bytes: C, to out: inout [UInt8]) where C.Index == Int {
        if self.isStructurallyUTF8(bytes) {
            self.appendEscapedContent(bytes, to: &out)
        } else {
            self.appendEscapedContent(self.latin1ToUTF8(bytes), to: &out)
        }
    }

    static func appendEscapedContent<C: RandomAccessCollection<UInt8>>(_ bytes: C, to out: inout [UInt8])
    where C.Index == Int {
        var runStart = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            let entity: StaticString?
            switch byte {
            case UInt8(ascii: "<"): entity = "&lt;"
            case UInt8(ascii: ">"): entity = "&gt;"
            case UInt8(ascii: "&"): entity = "&amp;"
            case 0x0D: entity = "&#13;"
            default: entity = nil
            }
            if let entity {
                out.append(contentsOf: bytes[runStart..<index])
                out.append(entity)
                runStart = index + 1
            }
            index += 1
        }
        out.append(contentsOf: bytes[runStart..<bytes.endIndex])
    }

    // MARK: - Attribute values (`cr_xmlNewProp` then `xmlBufAttrSerializeTxtContent` with no document)

    /// Appends an attribute value the way `cr_xmlNewProp` + `xmlNodeDump` write it: invalid UTF-8 is first
    /// converted as Latin-1, then serialised by `appendEscapedAttribute`.
    static func appendAttribute<C: RandomAccessCollection<UInt8>>(_ bytes: C, to out: inout [UInt8])
    where C.Index == Int {
        if self.isStructurallyUTF8(bytes) {
            self.appendEscapedAttribute(bytes, to: &out)
        } else {
            self.appendEscapedAttribute(self.latin1ToUTF8(bytes), to: &out)
        }
    }

    /// libxml2 2.9.14 `xmlBufAttrSerializeTxtContent` for a node without a document (so without an output
    /// encoding): `& < > "` and LF, CR, TAB become entities or character references, and every multi-byte
    /// character becomes an uppercase hexadecimal character reference. Bytes that do not decode to an XML
    /// `Char` are written as a reference to the single byte; a non-ASCII final byte is copied raw (libxml2
    /// tests `cur[1] != 0` first).
    static func appendEscapedAttribute<C: RandomAccessCollection<UInt8>>(_ bytes: C, to out: inout [UInt8])
    where C.Index == Int {
        let end = bytes.endIndex
        var runStart = bytes.startIndex
        var index = bytes.startIndex
        while index < end {
            let byte = bytes[index]
            let entity: StaticString?
            switch byte {
            case 0x0A: entity = "&#10;"
            case 0x0D: entity = "&#13;"
            case 0x09: entity = "&#9;"
            case UInt8(ascii: "\""): entity = "&quot;"
            case UInt8(ascii: "<"): entity = "&lt;"
            case UInt8(ascii: ">"): entity = "&gt;"
            case UInt8(ascii: "&"): entity = "&amp;"
            default: entity = nil
            }
            if let entity {
                out.append(contentsOf: bytes[runStart..<index])
                out.append(entity)
                index += 1
                runStart = index
                continue
            }
            guard byte >= 0x80, index + 1 < end else {
                index += 1
                continue
            }
            out.append(contentsOf: bytes[runStart..<index])
            var value: UInt32 = 0
            var length = 1
            if byte < 0xC0 {
                length = 1
            } else if byte < 0xE0 {
                value = (UInt32(byte) & 0x1F) << 6 | (UInt32(bytes[index + 1]) & 0x3F)
                length = 2
            } else if byte < 0xF0, index + 2 < end {
                value = (UInt32(byte) & 0x0F) << 12 | (UInt32(bytes[index + 1]) & 0x3F) << 6
                value |= UInt32(bytes[index + 2]) & 0x3F
                length = 3
            } else if byte < 0xF8, index + 3 < end {
                value = (UInt32(byte) & 0x07) << 18 | (UInt32(bytes[index + 1]) & 0x3F) << 12
                value |= (UInt32(bytes[index + 2]) & 0x3F) << 6 | (UInt32(bytes[index + 3]) & 0x3F)
                length = 4
            }
            if length == 1 || !self.isXMLChar(value) {
                self.appendHexCharRef(UInt32(byte), to: &out)
                index += 1
            } else {
                self.appendHexCharRef(value, to: &out)
                index += length
            }
            runStart = index
        }
        out.append(contentsOf: bytes[runStart..<end])
    }

    /// libxml2's `IS_CHAR`.
    static func isXMLChar(_ value: UInt32) -> Bool {
        if value < 0x100 {
            return value == 0x09 || value == 0x0A || value == 0x0D || value >= 0x20
        }
        return (0x100...0xD7FF).contains(value) || (0xE000...0xFFFD).contains(value)
            || (0x10000...0x10FFFF).contains(value)
    }

    /// libxml2's `xmlSerializeHexCharRef`: `&#x` + uppercase hex without leading zeros + `;`.
    static func appendHexCharRef(_ value: UInt32, to out: inout [UInt8]) {
        out.append(contentsOf: [UInt8(ascii: "&"), UInt8(ascii: "#"), UInt8(ascii: "x")])
        var digits: [UInt8] = []
        var rest = value
        repeat {
            let nibble = UInt8(rest & 0xF)
            digits.append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10)
            rest >>= 4
        } while rest > 0
        out.append(contentsOf: digits.reversed())
        out.append(UInt8(ascii: ";"))
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { self.append(contentsOf: $0) }
    }

    /// Appends the decimal representation of `value`.
    mutating func appendDecimal(_ value: Int64) {
        if value < 0 {
            self.append(UInt8(ascii: "-"))
            // Int64.min cannot be negated; go through the magnitude.
            self.appendDecimal(value.magnitude)
            return
        }
        self.appendDecimal(UInt64(value))
    }

    mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            self.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits = 0
        var probe = value
        while probe > 0 {
            digits += 1
            probe /= 10
        }
        let start = self.count
        self.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var rest = value
        var position = start + digits - 1
        while rest > 0 {
            self[position] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            position -= 1
        }
    }
}
