/// The data type of a header index entry (rpm's `rpmTagType`).
public enum RPMTagType: UInt32, Sendable {
    case null = 0
    case char = 1
    case int8 = 2
    case int16 = 3
    case int32 = 4
    case int64 = 5
    case string = 6
    case bin = 7
    case stringArray = 8
    case i18nstring = 9

    /// Alignment of the value relative to the start of the data store.
    public var alignment: Int {
        switch self {
        case .int16: return 2
        case .int32: return 4
        case .int64: return 8
        default: return 1
        }
    }

    /// Size of one element for the fixed-size types; `nil` for strings and NULL.
    var fixedElementSize: Int? {
        switch self {
        case .char, .int8, .bin: return 1
        case .int16: return 2
        case .int32: return 4
        case .int64: return 8
        case .null, .string, .stringArray, .i18nstring: return nil
        }
    }
}

/// One parsed and validated RPM header (the signature header or the main header).
///
/// Every index entry has been checked when the header was parsed (see `RPMReader`), so the
/// accessors never fail on malformed data: they return `nil` only when the tag is absent or has a
/// type the accessor does not handle.
///
/// **Strings** are decoded as UTF-8; invalid sequences become U+FFFD. Use `rawStrings(_:)` when the
/// exact bytes matter (createrepo_c converts non-UTF-8 strings as Latin-1).
///
/// **Integers** follow rpm's `rpmtdGetNumber`: narrower integer types (CHAR, INT8, INT16, INT32)
/// are zero-extended, never sign-extended, because rpm treats them as unsigned (file modes are
/// INT16 and exceed 0x7FFF). `int32s` and `uint32s` accept CHAR/INT8/INT16/INT32; `int64s` and
/// `uint64s` accept all integer types. INT32 values are returned by `int32s` bit for bit.
public struct RPMHeader: Sendable {
    public struct Entry: Sendable, Equatable {
        public let tag: UInt32
        public let type: RPMTagType
        /// Offset of the value relative to the start of the data store.
        public let offset: Int
        /// Element count; the byte length for BIN.
        public let count: Int

        public init(tag: UInt32, type: RPMTagType, offset: Int, count: Int) {
            self.tag = tag
            self.type = type
            self.offset = offset
            self.count = count
        }
    }

    /// All index entries in file order, including the region entry (tag 62 or 63) first.
    public let entries: [Entry]
    /// The data store (the `dl` bytes after the index).
    public let dataStore: [UInt8]
    /// Index into `entries` of the first entry for each tag.
    private let firstEntry: [UInt32: Int]

    init(entries: [Entry], dataStore: [UInt8]) {
        self.entries = entries
        self.dataStore = dataStore
        var firstEntry: [UInt32: Int] = [:]
        firstEntry.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() where firstEntry[entry.tag] == nil {
            firstEntry[entry.tag] = index
        }
        self.firstEntry = firstEntry
    }

    /// The first entry with `tag`, if any.
    public func entry(_ tag: UInt32) -> Entry? {
        guard let index = self.firstEntry[tag] else { return nil }
        return self.entries[index]
    }

    public func contains(_ tag: UInt32) -> Bool {
        self.firstEntry[tag] != nil
    }

    /// STRING, or the first element of STRING_ARRAY / I18NSTRING (the `C` locale).
    public func string(_ tag: UInt32) -> String? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .string, .stringArray, .i18nstring:
            return self.decodeStrings(entry, limit: 1).first
        default:
            return nil
        }
    }

    /// STRING_ARRAY or I18NSTRING elements; a STRING is returned as a one-element array.
    public func strings(_ tag: UInt32) -> [String]? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .string, .stringArray, .i18nstring:
            return self.decodeStrings(entry, limit: entry.count)
        default:
            return nil
        }
    }

    /// The raw bytes of each string (without the NUL) of a STRING, STRING_ARRAY or I18NSTRING.
    public func rawStrings(_ tag: UInt32) -> [[UInt8]]? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .string, .stringArray, .i18nstring:
            return self.stringRanges(entry, limit: entry.count).map { Array(self.dataStore[$0]) }
        default:
            return nil
        }
    }

    /// INT32 values bit for bit; CHAR/INT8/INT16 zero-extended.
    public func int32s(_ tag: UInt32) -> [Int32]? {
        guard let values = self.uint32s(tag) else { return nil }
        return values.map { Int32(bitPattern: $0) }
    }

    /// INT32 values; CHAR/INT8/INT16 zero-extended.
    public func uint32s(_ tag: UInt32) -> [UInt32]? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .char, .int8, .int16, .int32:
            return self.unsignedValues(entry).map { UInt32(truncatingIfNeeded: $0) }
        default:
            return nil
        }
    }

    /// INT16 values; CHAR/INT8 zero-extended.
    public func uint16s(_ tag: UInt32) -> [UInt16]? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .char, .int8, .int16:
            return self.unsignedValues(entry).map { UInt16(truncatingIfNeeded: $0) }
        default:
            return nil
        }
    }

    /// INT64 values bit for bit; CHAR/INT8/INT16/INT32 zero-extended.
    public func int64s(_ tag: UInt32) -> [Int64]? {
        guard let values = self.uint64s(tag) else { return nil }
        return values.map { Int64(bitPattern: $0) }
    }

    /// Any integer type, zero-extended to 64 bits (rpm's `rpmtdGetNumber`).
    public func uint64s(_ tag: UInt32) -> [UInt64]? {
        guard let entry = self.entry(tag) else { return nil }
        switch entry.type {
        case .char, .int8, .int16, .int32, .int64:
            return self.unsignedValues(entry)
        default:
            return nil
        }
    }

    /// BIN data (`count` bytes).
    public func binary(_ tag: UInt32) -> [UInt8]? {
        guard let entry = self.entry(tag), entry.type == .bin else { return nil }
        return Array(self.dataStore[entry.offset..<(entry.offset + entry.count)])
    }

    // MARK: - Decoding validated entries

    private func unsignedValues(_ entry: Entry) -> [UInt64] {
        guard let size = entry.type.fixedElementSize else { return [] }
        var values: [UInt64] = []
        values.reserveCapacity(entry.count)
        var position = entry.offset
        for _ in 0..<entry.count {
            var value: UInt64 = 0
            for byteIndex in 0..<size {
                value = (value << 8) | UInt64(self.dataStore[position + byteIndex])
            }
            values.append(value)
            position += size
        }
        return values
    }

    private func stringRanges(_ entry: Entry, limit: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(min(limit, entry.count))
        var position = entry.offset
        let end = self.dataStore.count
        while ranges.count < min(limit, entry.count), position < end {
            var nul = position
            while nul < end, self.dataStore[nul] != 0 {
                nul += 1
            }
            ranges.append(position..<nul)
            position = nul + 1
        }
        return ranges
    }

    private func decodeStrings(_ entry: Entry, limit: Int) -> [String] {
        self.stringRanges(entry, limit: limit).map { String(decoding: self.dataStore[$0], as: UTF8.self) }
    }
}
