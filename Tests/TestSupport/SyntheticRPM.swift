// Synthetic RPM files, written byte by byte and laid out the way rpm 4.18 writes them
// (docs/rpm-repodata-signing.md §1): for the reader's validation rules (one corrupted field at a time) and for
// header contents rpmbuild cannot produce (MISSINGOK requires, legacy weak dependencies, non-numeric epochs,
// OLDFILENAMES, control characters). createrepo_c reads them too: it skips digest and signature checks.
//
// Independent of the RPM module on purpose: the writer under test (`RPMHeaderWriter`) is not its own oracle.

/// One header value to lay out in a synthetic header: the raw type, count and data, and the data's alignment
/// in the store.
public struct HeaderItem: Sendable {
    public var tag: UInt32
    public var type: UInt32
    public var count: UInt32
    public var data: [UInt8]
    public var alignment: Int

    public init(tag: UInt32, type: UInt32, count: UInt32, data: [UInt8], alignment: Int) {
        self.tag = tag
        self.type = type
        self.count = count
        self.data = data
        self.alignment = alignment
    }

    /// STRING (6).
    public static func string(_ tag: UInt32, _ value: [UInt8]) -> HeaderItem {
        HeaderItem(tag: tag, type: 6, count: 1, data: value + [0], alignment: 1)
    }

    /// STRING (6).
    public static func string(_ tag: UInt32, _ value: String) -> HeaderItem {
        self.string(tag, Array(value.utf8))
    }

    /// STRING_ARRAY (8), or another string type given as `type`.
    public static func stringArray(_ tag: UInt32, _ values: [[UInt8]], type: UInt32 = 8) -> HeaderItem {
        HeaderItem(tag: tag, type: type, count: UInt32(values.count), data: values.flatMap { $0 + [0] }, alignment: 1)
    }

    /// STRING_ARRAY (8), or another string type given as `type`.
    public static func stringArray(_ tag: UInt32, _ values: [String], type: UInt32 = 8) -> HeaderItem {
        self.stringArray(tag, values.map { Array($0.utf8) }, type: type)
    }

    /// I18NSTRING (9).
    public static func i18n(_ tag: UInt32, _ values: [String]) -> HeaderItem {
        self.stringArray(tag, values, type: 9)
    }

    /// CHAR/INT8 (2).
    public static func int8(_ tag: UInt32, _ values: [UInt8]) -> HeaderItem {
        HeaderItem(tag: tag, type: 2, count: UInt32(values.count), data: values, alignment: 1)
    }

    /// INT16 (3).
    public static func int16(_ tag: UInt32, _ values: [UInt16]) -> HeaderItem {
        HeaderItem(tag: tag, type: 3, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 2)
    }

    /// INT32 (4).
    public static func int32(_ tag: UInt32, _ values: [UInt32]) -> HeaderItem {
        HeaderItem(tag: tag, type: 4, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 4)
    }

    /// INT64 (5).
    public static func int64(_ tag: UInt32, _ values: [UInt64]) -> HeaderItem {
        HeaderItem(tag: tag, type: 5, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 8)
    }

    /// BIN (7).
    public static func bin(_ tag: UInt32, _ bytes: [UInt8]) -> HeaderItem {
        HeaderItem(tag: tag, type: 7, count: UInt32(bytes.count), data: bytes, alignment: 1)
    }
}

/// `value` in network byte order.
public func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

/// Overwrites the four bytes at `position` with `value`, big-endian.
public func putUInt32(_ bytes: inout [UInt8], at position: Int, _ value: UInt32) {
    bytes.replaceSubrange(position..<(position + 4), with: bigEndian(value))
}

/// The big-endian UInt32 at `position`.
public func getUInt32(_ bytes: [UInt8], at position: Int) -> UInt32 {
    bytes[position..<(position + 4)].reduce(0) { $0 << 8 | UInt32($1) }
}

/// A complete header blob: region entry first, then `items` in the order given (sort them for a well-formed
/// header), the region trailer at the end of the store.
public func makeHeader(region: UInt32, items: [HeaderItem]) -> [UInt8] {
    var store: [UInt8] = []
    var index: [UInt8] = []
    for item in items {
        while store.count % item.alignment != 0 { store.append(0) }
        index += bigEndian(item.tag) + bigEndian(item.type) + bigEndian(UInt32(store.count)) + bigEndian(item.count)
        store += item.data
    }
    let il = UInt32(items.count + 1)
    let regionEntry = bigEndian(region) + bigEndian(UInt32(7)) + bigEndian(UInt32(store.count)) + bigEndian(UInt32(16))
    store +=
        bigEndian(region) + bigEndian(UInt32(7)) + bigEndian(UInt32(bitPattern: -16 * Int32(il)))
        + bigEndian(UInt32(16))
    let intro: [UInt8] = [0x8E, 0xAD, 0xE8, 0x01, 0, 0, 0, 0] + bigEndian(il) + bigEndian(UInt32(store.count))
    return intro + regionEntry + index + store
}

/// The 96-byte lead: magic, version `major`.0, `type` (0 binary, 1 source), arch 1, `name` (at most 65 bytes,
/// NUL-padded to 66), os 1, `signatureType` (5 = header-style signature).
public func makeLead(
    type: UInt16 = 0,
    major: UInt8 = 3,
    signatureType: UInt16 = 5,
    name: [UInt8] = Array("synthetic-1-1".utf8)
) -> [UInt8] {
    var lead = [UInt8](repeating: 0, count: 96)
    lead.replaceSubrange(0..<4, with: [0xED, 0xAB, 0xEE, 0xDB])
    lead[4] = major
    lead.replaceSubrange(6..<8, with: bigEndian(type))
    lead.replaceSubrange(8..<10, with: bigEndian(UInt16(1)))
    let name = name.prefix(65)
    lead.replaceSubrange(10..<(10 + name.count), with: name)
    lead.replaceSubrange(76..<78, with: bigEndian(UInt16(1)))
    lead.replaceSubrange(78..<80, with: bigEndian(signatureType))
    return lead
}

/// A synthetic package and where its parts are.
public struct TestPackage: Sendable {
    public var bytes: [UInt8]
    public var signatureStart: Int { 96 }
    public var signatureEnd: Int
    public var mainStart: Int
    public var mainEnd: Int

    /// File offset of field `field` (0 tag, 4 type, 8 offset, 12 count) of index entry `entry` of a header.
    public func indexField(headerStart: Int, entry: Int, field: Int) -> Int {
        headerStart + 16 + 16 * entry + field
    }

    /// File offset of the main header's data store.
    public var mainStoreStart: Int {
        self.mainStart + 16 + 16 * Int(getUInt32(self.bytes, at: self.mainStart + 8))
    }
}

/// NAME, VERSION and RELEASE: the least a main header needs.
public let defaultIdentity: [HeaderItem] = [
    .string(1000, "synthetic"),
    .string(1001, "1.0"),
    .string(1002, "1"),
]

/// Lead, signature header (`signature`, items in the order given), padding to 8, main header (`main`, in the
/// order given), payload.
public func makePackage(
    signature: [HeaderItem] = [.int32(1000, [1234])],
    main: [HeaderItem] = defaultIdentity,
    leadType: UInt16 = 0,
    payload: [UInt8] = Array("PAYLOAD".utf8)
) -> TestPackage {
    let sig = makeHeader(region: 62, items: signature)
    var bytes = makeLead(type: leadType) + sig
    let signatureEnd = bytes.count
    while bytes.count % 8 != 0 { bytes.append(0) }
    let mainStart = bytes.count
    bytes += makeHeader(region: 63, items: main)
    let mainEnd = bytes.count
    bytes += payload
    return TestPackage(bytes: bytes, signatureEnd: signatureEnd, mainStart: mainStart, mainEnd: mainEnd)
}

/// A dependency as the header stores it.
public struct Dep: Sendable {
    public var name: [UInt8]
    public var flags: UInt32
    public var version: [UInt8]

    public init(_ name: String, _ flags: UInt32 = 0, _ version: String = "") {
        self.name = Array(name.utf8)
        self.flags = flags
        self.version = Array(version.utf8)
    }

    public init(bytes name: [UInt8], _ flags: UInt32 = 0, _ version: String = "") {
        self.name = name
        self.flags = flags
        self.version = Array(version.utf8)
    }
}

/// A file entry (full path, mode, flags).
public struct SyntheticFile: Sendable {
    public var path: String
    public var mode: UInt16
    public var flags: UInt32

    public init(path: String, mode: UInt16 = 0o100644, flags: UInt32 = 0) {
        self.path = path
        self.mode = mode
        self.flags = flags
    }
}

/// A complete, well-formed .rpm described by its header contents: lead, signature header (SIZE and PAYLOADSIZE,
/// padded to 8), main header (items sorted by tag), payload.
public struct SyntheticRPM: Sendable {
    public var name: [UInt8]
    public var version = "1.0"
    public var release = "1"
    public var epoch: UInt32?
    public var arch = "noarch"
    public var summary: [UInt8] = Array("A synthetic package".utf8)
    public var description: [UInt8] = Array("Synthetic.".utf8)
    public var license = "MIT"
    public var extra: [HeaderItem] = []
    public var provides: [Dep] = []
    public var requires: [Dep] = []
    public var conflicts: [Dep] = []
    public var obsoletes: [Dep] = []
    public var recommends: [Dep] = []
    public var suggests: [Dep] = []
    public var supplements: [Dep] = []
    public var enhances: [Dep] = []
    public var oldSuggests: [Dep] = []
    public var oldEnhances: [Dep] = []
    public var files: [SyntheticFile] = []
    /// Use OLDFILENAMES instead of DIRNAMES/BASENAMES/DIRINDEXES.
    public var oldFileNames = false
    public var changelog: [(time: UInt32, name: [UInt8], text: [UInt8])] = []
    public var source = false
    public var sourceRPM: String? = "synthetic-1.0-1.src.rpm"
    public var payload: [UInt8] = Array(repeating: 0x5A, count: 300)
    /// Extra bytes in the signature header's reserved space (moves the main header).
    public var reservedSpace = 0

    public init(name: String) {
        self.name = Array(name.utf8)
    }

    private func depItems(_ deps: [Dep], _ nameTag: UInt32, _ flagsTag: UInt32, _ versionTag: UInt32) -> [HeaderItem] {
        guard !deps.isEmpty else { return [] }
        return [
            .stringArray(nameTag, deps.map(\.name)),
            .int32(flagsTag, deps.map(\.flags)),
            .stringArray(versionTag, deps.map(\.version)),
        ]
    }

    public func bytes() -> [UInt8] {
        var items: [HeaderItem] = [
            .stringArray(100, ["C"]),
            .string(1000, self.name),
            .string(1001, self.version),
            .string(1002, self.release),
            .stringArray(1004, [self.summary], type: 9),
            .stringArray(1005, [self.description], type: 9),
            .int32(1006, [1_700_000_000]),
            .string(1007, "synthetic.example.org"),
            .int32(1009, [4242]),
            .string(1014, self.license),
            .i18n(1016, ["Unspecified"]),
            .string(1021, "linux"),
            .string(1022, self.arch),
            .string(1124, "cpio"),
            .string(1125, "gzip"),
        ]
        if let epoch = self.epoch { items.append(.int32(1003, [epoch])) }
        if self.source {
            items.append(.int32(1106, [1]))
        } else if let sourceRPM = self.sourceRPM {
            items.append(.string(1044, sourceRPM))
        }
        items += self.depItems(self.provides, 1047, 1112, 1113)
        items += self.depItems(self.requires, 1049, 1048, 1050)
        items += self.depItems(self.conflicts, 1054, 1053, 1055)
        items += self.depItems(self.obsoletes, 1090, 1114, 1115)
        items += self.depItems(self.recommends, 5046, 5048, 5047)
        items += self.depItems(self.suggests, 5049, 5051, 5050)
        items += self.depItems(self.supplements, 5052, 5054, 5053)
        items += self.depItems(self.enhances, 5055, 5057, 5056)
        items += self.depItems(self.oldSuggests, 1156, 1158, 1157)
        items += self.depItems(self.oldEnhances, 1159, 1161, 1160)
        if !self.files.isEmpty {
            items.append(.int16(1030, self.files.map(\.mode)))
            items.append(.int32(1037, self.files.map(\.flags)))
            if self.oldFileNames {
                items.append(.stringArray(1027, self.files.map(\.path)))
            } else {
                var directories: [String] = []
                var indexes: [UInt32] = []
                var baseNames: [String] = []
                for file in self.files {
                    let slash = file.path.lastIndex(of: "/").map { file.path.index(after: $0) } ?? file.path.startIndex
                    let directory = String(file.path[..<slash])
                    if let existing = directories.firstIndex(of: directory) {
                        indexes.append(UInt32(existing))
                    } else {
                        directories.append(directory)
                        indexes.append(UInt32(directories.count - 1))
                    }
                    baseNames.append(String(file.path[slash...]))
                }
                items.append(.int32(1116, indexes))
                items.append(.stringArray(1117, baseNames))
                items.append(.stringArray(1118, directories))
            }
        }
        if !self.changelog.isEmpty {
            items.append(.int32(1080, self.changelog.map(\.time)))
            items.append(.stringArray(1081, self.changelog.map(\.name)))
            items.append(.stringArray(1082, self.changelog.map(\.text)))
        }
        items += self.extra
        let main = makeHeader(region: 63, items: items.sorted(by: { $0.tag < $1.tag }))

        var signatureItems: [HeaderItem] = [
            .int32(1000, [UInt32(main.count + self.payload.count)]),
            .int32(1007, [UInt32(self.payload.count * 3)]),
        ]
        if self.reservedSpace > 0 {
            signatureItems.append(.bin(1008, Array(repeating: 0, count: self.reservedSpace)))
        }
        var signature = makeHeader(region: 62, items: signatureItems)
        while signature.count % 8 != 0 { signature.append(0) }

        return makeLead(type: self.source ? 1 : 0, name: self.name) + signature + main + self.payload
    }
}
