/// One value to write into a header: the tag, its type, the element count (the byte length for BIN) and the
/// encoded data (strings NUL-terminated, integers big-endian).
public struct RPMHeaderValue: Sendable, Equatable {
    public let tag: UInt32
    public let type: RPMTagType
    public let count: Int
    public let data: [UInt8]

    public init(tag: UInt32, type: RPMTagType, count: Int, data: [UInt8]) {
        self.tag = tag
        self.type = type
        self.count = count
        self.data = data
    }

    /// A BIN value (count = byte length).
    public static func binary(_ tag: UInt32, _ data: [UInt8]) -> RPMHeaderValue {
        RPMHeaderValue(tag: tag, type: .bin, count: data.count, data: data)
    }
}

/// Serialises a header the way rpm writes one (docs/rpm-repodata-signing.md §1.2, §4.3 step 4).
public enum RPMHeaderWriter {
    /// Header bytes: magic, il, dl, the region entry, the other entries sorted by tag (stable), and the data store,
    /// where each value is zero-padded to its type's alignment and the region trailer
    /// `{regionTag, BIN, −16·il, 16}` follows the last value.
    ///
    /// - Throws: `.cannotSign` if a value's count does not match its data, a tag is below 100, or the header would
    ///   exceed 65535 entries or 1 GiB.
    public static func serialize(regionTag: UInt32, values: [RPMHeaderValue]) throws(RPMError) -> [UInt8] {
        let sorted = values.enumerated().sorted { ($0.element.tag, $0.offset) < ($1.element.tag, $1.offset) }
            .map(\.element)
        let il = sorted.count + 1
        guard il <= RPMReader.maxIndexEntries else {
            throw RPMError(code: .cannotSign, detail: "header would have \(il) entries")
        }
        var store: [UInt8] = []
        var index: [UInt8] = []
        index.reserveCapacity(16 * il)
        for value in sorted {
            guard value.tag >= RPMTag.headerI18NTable, value.type != .null, value.count > 0,
                value.count <= Int(UInt32.max)
            else {
                throw RPMError(code: .cannotSign, detail: "cannot write tag \(value.tag) type \(value.type)")
            }
            if let size = value.type.fixedElementSize {
                guard value.data.count == value.count * size else {
                    throw RPMError(code: .cannotSign, detail: "tag \(value.tag): data does not match count")
                }
            } else {
                let nuls = value.data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
                guard value.data.last == 0, nuls == value.count, value.type != .string || value.count == 1 else {
                    throw RPMError(code: .cannotSign, detail: "tag \(value.tag): strings do not match count")
                }
            }
            let alignment = value.type.alignment
            while store.count % alignment != 0 { store.append(0) }
            guard store.count <= Int(Int32.max) - value.data.count else {
                throw RPMError(code: .cannotSign, detail: "header too large")
            }
            appendEntry(
                &index,
                tag: value.tag,
                type: value.type.rawValue,
                offset: Int32(store.count),
                count: UInt32(value.count)
            )
            store += value.data
        }
        guard store.count + 16 <= 1 << 30 else { throw RPMError(code: .cannotSign, detail: "header too large") }
        let trailerOffset = store.count
        appendEntry(&store, tag: regionTag, type: RPMTagType.bin.rawValue, offset: Int32(-16 * il), count: 16)
        var region: [UInt8] = []
        appendEntry(&region, tag: regionTag, type: RPMTagType.bin.rawValue, offset: Int32(trailerOffset), count: 16)

        var header = RPMReader.headerMagic
        header.reserveCapacity(16 + 16 * il + store.count)
        appendUInt32(&header, UInt32(il))
        appendUInt32(&header, UInt32(store.count))
        header += region
        header += index
        header += store
        return header
    }

    /// The values of `header` except the region entry, with their data copied out of the data store.
    public static func values(of header: RPMHeader) -> [RPMHeaderValue] {
        header.entries.dropFirst().map { entry in
            let length: Int
            if let size = entry.type.fixedElementSize {
                length = entry.count * size
            } else {
                // Validated by the reader: the strings are NUL-terminated inside the store.
                length =
                    RPMReader.stringsLength(
                        header.dataStore,
                        from: entry.offset,
                        count: entry.count,
                        limit: header.dataStore.count
                    ) ?? 0
            }
            return RPMHeaderValue(
                tag: entry.tag,
                type: entry.type,
                count: entry.count,
                data: Array(header.dataStore[entry.offset..<(entry.offset + length)])
            )
        }
    }

    private static func appendEntry(_ out: inout [UInt8], tag: UInt32, type: UInt32, offset: Int32, count: UInt32) {
        appendUInt32(&out, tag)
        appendUInt32(&out, type)
        appendUInt32(&out, UInt32(bitPattern: offset))
        appendUInt32(&out, count)
    }

    private static func appendUInt32(_ out: inout [UInt8], _ value: UInt32) {
        out += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}

/// Puts a detached OpenPGP header signature into an RPM's signature header, as `rpmsign --addsign` does in rpm 4.18
/// (docs/rpm-repodata-signing.md §4.1, recipe §4.3). Pure: it computes bytes, the caller does the I/O.
///
/// The new signature header keeps every entry except the region and the old signatures (267, 268, 1002, 1005,
/// 1006), adds the packet as BIN under `tag` (268 RSAHEADER for RSA keys, 267 DSAHEADER for DSA/EdDSA), and shrinks
/// (or grows, for a smaller new signature) the reserved space (1008, BIN zeros) by the size change so the header
/// keeps its exact size when there is room: then the lead, the main header and the payload stay at the same offsets.
/// Without room, 1008 is left as it is and the signature header grows (the main header moves; nothing refers to
/// file offsets, and the digests 269/273/1000/1004/5092 stay valid because none covers the signature header).
///
/// The caller must have checked the packet (v4, binary document, algorithm matching `tag`, issuer key ID present).
public enum RPMSignatureWriter {
    /// Signature tags removed before the new one is added (rpmsign's list).
    public static let replacedTags: Set<UInt32> = [
        RPMTag.sigDSAHeader, RPMTag.sigRSAHeader, RPMTag.sigPGP, RPMTag.sigGPG, 1006,  // 1006: legacy PGP5
    ]
    /// Largest signature packet accepted (an RSA-16384 packet is about 2.1 KB).
    public static let maxPacketBytes = 64 << 10

    public struct Plan: Sendable {
        /// The new signature header, without padding.
        public let header: [UInt8]
        /// `header` plus zero padding to a multiple of 8: what follows the 96-byte lead.
        public let paddedHeader: [UInt8]
        /// The padded size is unchanged, so the main header stays at the same offset ("in place" in rpmsign's
        /// terms; Koper still writes a new file and renames it).
        public let keepsLayout: Bool
        /// Change of the padded signature header size (0 when `keepsLayout`).
        public let sizeChange: Int
        /// Byte count of tag 1008 in the new header; nil when there is none.
        public let reservedSpace: Int?
    }

    /// Plans the new signature header for `package` with `packet` under `tag`.
    ///
    /// - Throws: `.cannotSign` for a tag other than 267/268, an empty or oversized packet, or a header beyond rpm's
    ///   signature header limits (32 entries, 64 MiB).
    public static func plan(for package: RPMPackage, tag: UInt32, packet: [UInt8]) throws(RPMError) -> Plan {
        guard tag == RPMTag.sigRSAHeader || tag == RPMTag.sigDSAHeader else {
            throw RPMError(code: .cannotSign, detail: "signature tag \(tag) (expected 267 or 268)")
        }
        guard !packet.isEmpty, packet.count <= self.maxPacketBytes else {
            throw RPMError(code: .cannotSign, detail: "signature packet of \(packet.count) bytes")
        }
        let oldSize = package.signatureRange.count
        var values = RPMHeaderWriter.values(of: package.signature).filter { !self.replacedTags.contains($0.tag) }
        values.append(.binary(tag, packet))

        var header = try RPMHeaderWriter.serialize(regionTag: RPMTag.headerSignatures, values: values)
        let reservedIndex = values.firstIndex { $0.tag == RPMTag.sigReservedSpace && $0.type == .bin }
        var reservedSpace = reservedIndex.map { values[$0].count }
        if let reservedIndex, var count = reservedSpace, header.count != oldSize {
            // Shrink (or widen) 1008 by the size change. 1008 sorts after every standard signature tag, so one round
            // normally lands exactly; a further round covers an alignment pad of a tag sorting after it.
            var adjusted = values
            var current = header.count
            for _ in 0..<3 {
                count -= current - oldSize
                guard count >= 1 else { break }
                adjusted[reservedIndex] = .binary(RPMTag.sigReservedSpace, [UInt8](repeating: 0, count: count))
                let candidate = try RPMHeaderWriter.serialize(regionTag: RPMTag.headerSignatures, values: adjusted)
                if candidate.count == oldSize {
                    header = candidate
                    reservedSpace = count
                    break
                }
                current = candidate.count
            }
        }

        // Self-check: the result must parse under rpm's signature header rules.
        let parsed: (header: RPMHeader, range: Range<Int>)
        do {
            parsed = try RPMReader.parseHeader(
                header,
                at: 0,
                regionTag: RPMTag.headerSignatures,
                maxIndexEntries: RPMReader.maxSignatureIndexEntries,
                maxHeaderBytes: 16 + 16 * RPMReader.maxSignatureIndexEntries + RPMReader.maxSignatureDataBytes
            )
        } catch {
            throw RPMError(code: .cannotSign, detail: "new signature header is invalid: \(error.detail)")
        }
        precondition(parsed.range.count == header.count)

        let paddedHeader = header + [UInt8](repeating: 0, count: padded(header.count) - header.count)
        let change = paddedHeader.count - padded(oldSize)
        return Plan(
            header: header,
            paddedHeader: paddedHeader,
            keepsLayout: change == 0,
            sizeChange: change,
            reservedSpace: reservedSpace
        )
    }

    /// The bytes that replace `[0, hdrStart)` of the file: the original lead and the padded new signature header.
    /// The rest of the file (`[hdrStart, EOF)`, main header and payload) is copied unchanged after it.
    ///
    /// `prefix` must hold at least the first `package.mainHeaderRange.lowerBound` bytes of the file `package` was
    /// parsed from.
    public static func signedPrefix(
        _ prefix: [UInt8],
        package: RPMPackage,
        tag: UInt32,
        packet: [UInt8]
    ) throws(RPMError) -> (bytes: [UInt8], plan: Plan) {
        guard prefix.count >= package.mainHeaderRange.lowerBound else {
            throw RPMError.truncated("prefix ends before the main header", need: package.mainHeaderRange.lowerBound)
        }
        let plan = try self.plan(for: package, tag: tag, packet: packet)
        return (Array(prefix[0..<RPMReader.leadSize]) + plan.paddedHeader, plan)
    }

    /// The whole signed file, for callers that hold the file in memory (tests, small packages).
    public static func signedFile(_ bytes: [UInt8], tag: UInt32, packet: [UInt8]) throws(RPMError) -> [UInt8] {
        let package = try RPMReader.parse(bytes)
        let (prefix, _) = try self.signedPrefix(bytes, package: package, tag: tag, packet: packet)
        return prefix + bytes[package.mainHeaderRange.lowerBound...]
    }

    private static func padded(_ size: Int) -> Int {
        (size + 7) / 8 * 8
    }
}
