// Synthetic RPM files, laid out as rpm 4.18 writes them (docs/rpm-repodata-signing.md §1), for header
// contents rpmbuild cannot produce (MISSINGOK requires, legacy weak dependencies, non-numeric epochs,
// OLDFILENAMES, control characters). createrepo_c reads them too: it skips digest and signature checks.

/// One header value.
struct HeaderItem {
    var tag: UInt32
    var type: UInt32
    var count: UInt32
    var data: [UInt8]
    var alignment: Int

    static func string(_ tag: UInt32, _ value: [UInt8]) -> HeaderItem {
        HeaderItem(tag: tag, type: 6, count: 1, data: value + [0], alignment: 1)
    }

    static func string(_ tag: UInt32, _ value: String) -> HeaderItem {
        self.string(tag, Array(value.utf8))
    }

    static func strings(_ tag: UInt32, _ values: [[UInt8]], type: UInt32 = 8) -> HeaderItem {
        HeaderItem(tag: tag, type: type, count: UInt32(values.count), data: values.flatMap { $0 + [0] }, alignment: 1)
    }

    static func strings(_ tag: UInt32, _ values: [String], type: UInt32 = 8) -> HeaderItem {
        self.strings(tag, values.map { Array($0.utf8) }, type: type)
    }

    static func i18n(_ tag: UInt32, _ value: [UInt8]) -> HeaderItem {
        self.strings(tag, [value], type: 9)
    }

    static func int16(_ tag: UInt32, _ values: [UInt16]) -> HeaderItem {
        HeaderItem(tag: tag, type: 3, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 2)
    }

    static func int32(_ tag: UInt32, _ values: [UInt32]) -> HeaderItem {
        HeaderItem(tag: tag, type: 4, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 4)
    }

    static func int64(_ tag: UInt32, _ values: [UInt64]) -> HeaderItem {
        HeaderItem(tag: tag, type: 5, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 8)
    }
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

/// A header blob: region entry first, items sorted by tag, region trailer at the end of the store.
func makeHeader(region: UInt32, items: [HeaderItem]) -> [UInt8] {
    var store: [UInt8] = []
    var index: [UInt8] = []
    for item in items.sorted(by: { $0.tag < $1.tag }) {
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

/// A dependency as the header stores it.
struct Dep {
    var name: [UInt8]
    var flags: UInt32
    var version: [UInt8]

    init(_ name: String, _ flags: UInt32 = 0, _ version: String = "") {
        self.name = Array(name.utf8)
        self.flags = flags
        self.version = Array(version.utf8)
    }

    init(bytes name: [UInt8], _ flags: UInt32 = 0, _ version: String = "") {
        self.name = name
        self.flags = flags
        self.version = Array(version.utf8)
    }
}

/// A file entry (full path, mode, flags).
struct SyntheticFile {
    var path: String
    var mode: UInt16 = 0o100644
    var flags: UInt32 = 0
}

/// Builds a complete .rpm: lead, signature header (SIZE and PAYLOADSIZE, padded to 8), main header, payload.
struct SyntheticRPM {
    var name: [UInt8]
    var version = "1.0"
    var release = "1"
    var epoch: UInt32?
    var arch = "noarch"
    var summary: [UInt8] = Array("A synthetic package".utf8)
    var description: [UInt8] = Array("Synthetic.".utf8)
    var license = "MIT"
    var extra: [HeaderItem] = []
    var provides: [Dep] = []
    var requires: [Dep] = []
    var conflicts: [Dep] = []
    var obsoletes: [Dep] = []
    var recommends: [Dep] = []
    var suggests: [Dep] = []
    var supplements: [Dep] = []
    var enhances: [Dep] = []
    var oldSuggests: [Dep] = []
    var oldEnhances: [Dep] = []
    var files: [SyntheticFile] = []
    /// Use OLDFILENAMES instead of DIRNAMES/BASENAMES/DIRINDEXES.
    var oldFileNames = false
    var changelog: [(time: UInt32, name: [UInt8], text: [UInt8])] = []
    var source = false
    var sourceRPM: String? = "synthetic-1.0-1.src.rpm"
    var payload: [UInt8] = Array(repeating: 0x5A, count: 300)
    /// Extra bytes in the signature header's reserved space (moves the main header).
    var reservedSpace = 0

    init(name: String) {
        self.name = Array(name.utf8)
    }

    private func depItems(_ deps: [Dep], _ nameTag: UInt32, _ flagsTag: UInt32, _ versionTag: UInt32) -> [HeaderItem] {
        guard !deps.isEmpty else { return [] }
        return [
            .strings(nameTag, deps.map(\.name)),
            .int32(flagsTag, deps.map(\.flags)),
            .strings(versionTag, deps.map(\.version)),
        ]
    }

    func bytes() -> [UInt8] {
        var items: [HeaderItem] = [
            .strings(100, ["C"]),
            .string(1000, self.name),
            .string(1001, self.version),
            .string(1002, self.release),
            .i18n(1004, self.summary),
            .i18n(1005, self.description),
            .int32(1006, [1_700_000_000]),
            .string(1007, "synthetic.example.org"),
            .int32(1009, [4242]),
            .string(1014, self.license),
            .i18n(1016, Array("Unspecified".utf8)),
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
                items.append(.strings(1027, self.files.map(\.path)))
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
                items.append(.strings(1117, baseNames))
                items.append(.strings(1118, directories))
            }
        }
        if !self.changelog.isEmpty {
            items.append(.int32(1080, self.changelog.map(\.time)))
            items.append(.strings(1081, self.changelog.map(\.name)))
            items.append(.strings(1082, self.changelog.map(\.text)))
        }
        items += self.extra
        let main = makeHeader(region: 63, items: items)

        var signatureItems: [HeaderItem] = [
            .int32(1000, [UInt32(main.count + self.payload.count)]),
            .int32(1007, [UInt32(self.payload.count * 3)]),
        ]
        if self.reservedSpace > 0 {
            signatureItems.append(
                HeaderItem(
                    tag: 1008,
                    type: 7,
                    count: UInt32(self.reservedSpace),
                    data: Array(repeating: 0, count: self.reservedSpace),
                    alignment: 1
                )
            )
        }
        var signature = makeHeader(region: 62, items: signatureItems)
        while signature.count % 8 != 0 { signature.append(0) }

        var lead: [UInt8] =
            [0xED, 0xAB, 0xEE, 0xDB, 3, 0] + bigEndian(UInt16(self.source ? 1 : 0)) + bigEndian(UInt16(1))
        var leadName = Array(self.name.prefix(65))
        leadName += Array(repeating: 0, count: 66 - leadName.count)
        lead += leadName + bigEndian(UInt16(1)) + bigEndian(UInt16(5)) + Array(repeating: 0, count: 16)
        return lead + signature + main + self.payload
    }
}
