/// Reads the lead, the signature header and the main header of an RPM file from its first bytes.
///
/// Pure and bounds-checked: no I/O, and nothing is allocated from a count before that count has
/// been checked against the limits below. Malformed input always ends in a thrown `RPMError`.
///
/// Layout (docs/rpm-repodata-signing.md §1): a 96-byte lead, the signature header, zero padding
/// to a multiple of 8, the main header, then the payload. Each header is
/// `8E AD E8 01 00 00 00 00`, `il` (u32), `dl` (u32), `16·il` bytes of index, `dl` bytes of data.
///
/// What is checked, following rpm 4.18 (`hdrblobVerifyRegion`, `hdrblobVerifyInfo`):
/// - lead magic, `3 <= major <= 4`, signature type 5;
/// - full header magic; `1 <= il`; `il <= 32` and `dl <= 64 MiB` for the signature header,
///   `il <= 65535` and `16 + 16·il + dl <= maxHeaderBytes` for both;
/// - the first entry is the region (62 in the signature header, 63 in the main header), BIN,
///   count 16, at `dl - 16`, and its trailer is `{tag, BIN, -16·il, 16}` (the region covers the
///   whole header exactly);
/// - every other entry: tag >= 100, a known non-NULL type, `count > 0`, STRING count 1, offset
///   aligned for its type, offsets non-decreasing and data not overlapping the previous entry or
///   the trailer, data inside the store, strings NUL-terminated inside the store.
///
/// Not checked: the padding bytes after the signature header (rpm ignores them) and
/// tag/type agreement beyond the tags `RPMPackage` exposes.
public enum RPMReader {
    /// Size of the lead.
    public static let leadSize = 96
    /// Default hard cap on one header's `16 + 16·il + dl`.
    public static let maxHeaderBytes = 64 << 20
    /// Cap on `il` for the main header (rpm's `HEADER_TAGS_MAX`).
    public static let maxIndexEntries = 0xFFFF
    /// Cap on `il` for the signature header (rpm 4.18 rejects more).
    public static let maxSignatureIndexEntries = 32
    /// Cap on `dl` for the signature header (rpm 4.18 rejects more).
    public static let maxSignatureDataBytes = 64 << 20

    static let leadMagic: [UInt8] = [0xED, 0xAB, 0xEE, 0xDB]
    static let headerMagic: [UInt8] = [0x8E, 0xAD, 0xE8, 0x01, 0x00, 0x00, 0x00, 0x00]
    /// rpm's `HEADERIMAGE`, accepted in the signature region trailer of old packages as rpm does.
    static let headerImageTag: UInt32 = 61

    /// Parses lead + signature header (+ padding to 8) + main header from the first bytes of a file.
    ///
    /// If `prefix` is too short, throws `.truncated` whose `bytesNeeded` is the total number of
    /// bytes (from the start of the file) needed to make progress; it is always greater than
    /// `prefix.count`. Read at least that many bytes and call again. Bytes after the main header
    /// (the payload) are ignored.
    public static func parse(_ prefix: [UInt8]) throws(RPMError) -> RPMPackage {
        try self.parse(prefix, maxHeaderBytes: self.maxHeaderBytes)
    }

    /// `parse(_:)` with a different cap on the size of each header (clamped to 1 GiB).
    public static func parse(_ prefix: [UInt8], maxHeaderBytes: Int) throws(RPMError) -> RPMPackage {
        let isSourceLead = try self.parseLead(prefix)
        let signature = try self.parseHeader(
            prefix,
            at: self.leadSize,
            regionTag: RPMTag.headerSignatures,
            maxIndexEntries: self.maxSignatureIndexEntries,
            maxHeaderBytes: min(maxHeaderBytes, 16 + 16 * self.maxSignatureIndexEntries + self.maxSignatureDataBytes)
        )
        let signatureSize = signature.range.count
        let padding = (8 - signatureSize % 8) % 8
        let mainStart = signature.range.upperBound + padding
        let main = try self.parseHeader(
            prefix,
            at: mainStart,
            regionTag: RPMTag.headerImmutable,
            maxIndexEntries: self.maxIndexEntries,
            maxHeaderBytes: maxHeaderBytes
        )
        return try RPMPackage(
            isSourceLead: isSourceLead,
            signature: signature.header,
            main: main.header,
            signatureRange: signature.range,
            mainHeaderRange: main.range
        )
    }

    /// Like `parse(_:)`, but throws `.notSourcePackage` for a binary package.
    public static func parseSourcePackage(_ prefix: [UInt8]) throws(RPMError) -> RPMPackage {
        let package = try self.parse(prefix)
        guard package.isSourcePackage else {
            throw RPMError(code: .notSourcePackage, detail: "\(package.name) is a binary package, not a source RPM")
        }
        return package
    }

    /// Validates the lead; returns whether its type says "source".
    static func parseLead(_ bytes: [UInt8]) throws(RPMError) -> Bool {
        let magicAvailable = min(bytes.count, self.leadMagic.count)
        for index in 0..<magicAvailable where bytes[index] != self.leadMagic[index] {
            throw RPMError(code: .badLeadMagic, detail: "not an RPM file (bad lead magic)")
        }
        guard bytes.count >= self.leadSize else {
            throw RPMError.truncated("lead needs \(self.leadSize) bytes", need: self.leadSize)
        }
        let major = bytes[4]
        guard major >= 3, major <= 4 else {
            throw RPMError(code: .badLead, detail: "unsupported lead major version \(major)")
        }
        let signatureType = readUInt16(bytes, at: 78)
        guard signatureType == 5 else {
            throw RPMError(code: .badLead, detail: "unsupported lead signature type \(signatureType)")
        }
        return readUInt16(bytes, at: 6) == 1
    }

    /// Parses and validates one header that starts at `start` in `bytes`.
    ///
    /// - Parameters:
    ///   - regionTag: 62 for the signature header, 63 for the main header.
    ///   - maxIndexEntries: cap on `il` (clamped to 65535).
    ///   - maxHeaderBytes: cap on `16 + 16·il + dl` (clamped to 1 GiB).
    /// - Returns: the header and its byte range `start ..< start + 16 + 16·il + dl` in `bytes`.
    public static func parseHeader(
        _ bytes: [UInt8],
        at start: Int,
        regionTag: UInt32,
        maxIndexEntries: Int = RPMReader.maxIndexEntries,
        maxHeaderBytes: Int = RPMReader.maxHeaderBytes
    ) throws(RPMError) -> (header: RPMHeader, range: Range<Int>) {
        let what = regionTag == RPMTag.headerSignatures ? "signature header" : "main header"
        precondition(start >= 0, "header start must not be negative")
        let entryCap = min(max(maxIndexEntries, 1), self.maxIndexEntries)
        let byteCap = min(max(maxHeaderBytes, 32), 1 << 30)

        // Intro: magic, il, dl.
        let available = bytes.count > start ? bytes.count - start : 0
        for index in 0..<min(available, self.headerMagic.count) where bytes[start + index] != self.headerMagic[index] {
            throw RPMError(code: .badHeaderMagic, detail: "\(what) at offset \(start) has bad magic")
        }
        guard available >= 16 else {
            throw RPMError.truncated("\(what) intro", need: start + 16)
        }
        let il = readUInt32(bytes, at: start + 8)
        let dl = readUInt32(bytes, at: start + 12)
        guard il >= 1 else {
            throw RPMError(code: .badRegion, detail: "\(what) has no index entries")
        }
        guard il <= UInt32(entryCap) else {
            throw RPMError(code: .headerTooLarge, detail: "\(what) has \(il) index entries (limit \(entryCap))")
        }
        guard dl <= UInt32(byteCap) else {
            throw RPMError(code: .headerTooLarge, detail: "\(what) data store is \(dl) bytes (limit \(byteCap))")
        }
        let indexCount = Int(il)
        let dataCount = Int(dl)
        let headerSize = 16 + 16 * indexCount + dataCount  // <= 16 + 16·65535 + 2^30: no overflow
        guard headerSize <= byteCap else {
            throw RPMError(code: .headerTooLarge, detail: "\(what) is \(headerSize) bytes (limit \(byteCap))")
        }
        guard available >= headerSize else {
            throw RPMError.truncated("\(what) needs \(headerSize) bytes", need: start + headerSize)
        }

        let indexStart = start + 16
        let dataStart = indexStart + 16 * indexCount
        let store = Array(bytes[dataStart..<(dataStart + dataCount)])

        // Region entry and trailer.
        guard dataCount >= 16 else {
            throw RPMError(code: .badRegion, detail: "\(what) data store too small for a region trailer")
        }
        let region = readRawEntry(bytes, at: indexStart)
        guard region.tag == regionTag else {
            throw RPMError(
                code: .badRegion,
                detail: "\(what) does not start with region tag \(regionTag) (found \(region.tag))"
            )
        }
        guard region.type == RPMTagType.bin.rawValue, region.count == 16, Int(region.offset) == dataCount - 16 else {
            throw RPMError(
                code: .badRegion,
                detail: "\(what) region entry is \(region)"
            )
        }
        let trailer = readRawEntry(store, at: dataCount - 16)
        let trailerTagOK =
            trailer.tag == regionTag
            || (regionTag == RPMTag.headerSignatures && trailer.tag == self.headerImageTag)
        guard trailerTagOK, trailer.type == RPMTagType.bin.rawValue, trailer.count == 16,
            Int(trailer.offset) == -16 * indexCount
        else {
            throw RPMError(
                code: .badRegion,
                detail: "\(what) region trailer is \(trailer)"
            )
        }

        // Remaining entries.
        let dataLimit = dataCount - 16  // data must end before the trailer
        var entries: [RPMHeader.Entry] = []
        entries.reserveCapacity(indexCount)
        entries.append(RPMHeader.Entry(tag: regionTag, type: .bin, offset: dataCount - 16, count: 16))
        var previousEnd = 0
        for index in 1..<indexCount {
            let raw = readRawEntry(bytes, at: indexStart + 16 * index)
            func bad(_ why: String) -> RPMError {
                RPMError(
                    code: .badIndex,
                    detail: "\(what) entry \(index) \(raw): \(why)"
                )
            }
            guard raw.tag >= RPMTag.headerI18NTable else { throw bad("tag below 100") }
            guard let type = RPMTagType(rawValue: raw.type), type != .null else { throw bad("unknown type") }
            guard raw.count > 0 else { throw bad("count is 0") }
            guard raw.count <= dl else { throw bad("count exceeds data size") }
            guard raw.offset >= 0 else { throw bad("negative offset") }
            let offset = Int(raw.offset)
            let count = Int(raw.count)
            guard offset >= previousEnd else { throw bad("data overlaps the previous entry or is out of order") }
            guard offset % type.alignment == 0 else { throw bad("misaligned offset") }
            guard offset < dataLimit else { throw bad("offset outside the data store") }
            let length: Int
            if let size = type.fixedElementSize {
                // count <= dl <= 2^30 and size <= 8: no overflow.
                length = count * size
                guard length <= dataLimit - offset else { throw bad("data runs past the data store") }
            } else {
                if type == .string, count != 1 { throw bad("STRING count must be 1") }
                guard let stringsLength = stringsLength(store, from: offset, count: count, limit: dataLimit) else {
                    throw bad("string not NUL-terminated inside the data store")
                }
                length = stringsLength
            }
            previousEnd = offset + length
            entries.append(RPMHeader.Entry(tag: raw.tag, type: type, offset: offset, count: count))
        }
        return (RPMHeader(entries: entries, dataStore: store), start..<(start + headerSize))
    }

    // MARK: - Byte helpers (callers check bounds first)

    struct RawEntry: CustomStringConvertible {
        var tag: UInt32
        var type: UInt32
        var offset: Int32
        var count: UInt32

        var description: String {
            "(tag \(self.tag), type \(self.type), offset \(self.offset), count \(self.count))"
        }
    }

    static func readRawEntry(_ bytes: [UInt8], at position: Int) -> RawEntry {
        RawEntry(
            tag: readUInt32(bytes, at: position),
            type: readUInt32(bytes, at: position + 4),
            offset: Int32(bitPattern: readUInt32(bytes, at: position + 8)),
            count: readUInt32(bytes, at: position + 12)
        )
    }

    static func readUInt32(_ bytes: [UInt8], at position: Int) -> UInt32 {
        UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16
            | UInt32(bytes[position + 2]) << 8 | UInt32(bytes[position + 3])
    }

    static func readUInt16(_ bytes: [UInt8], at position: Int) -> UInt16 {
        UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
    }

    /// Length of `count` consecutive NUL-terminated strings starting at `offset`, all ending
    /// before `limit`; nil if they do not.
    static func stringsLength(_ store: [UInt8], from offset: Int, count: Int, limit: Int) -> Int? {
        var position = offset
        var remaining = count
        while remaining > 0 {
            guard position < limit else { return nil }
            if store[position] == 0 {
                remaining -= 1
            }
            position += 1
        }
        return position - offset
    }
}
