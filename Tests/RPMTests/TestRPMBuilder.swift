// Builds synthetic RPM files byte by byte, laid out the way rpm 4.18 writes them
// (docs/rpm-repodata-signing.md §1), so tests can corrupt exactly one field at a time.

/// One header value to lay out in a synthetic header.
struct TestItem {
    var tag: UInt32
    var type: UInt32
    var count: UInt32
    var data: [UInt8]
    var alignment: Int

    static func string(_ tag: UInt32, _ value: String) -> TestItem {
        TestItem(tag: tag, type: 6, count: 1, data: Array(value.utf8) + [0], alignment: 1)
    }

    static func stringArray(_ tag: UInt32, _ values: [String], type: UInt32 = 8) -> TestItem {
        TestItem(
            tag: tag,
            type: type,
            count: UInt32(values.count),
            data: values.flatMap { Array($0.utf8) + [0] },
            alignment: 1
        )
    }

    static func i18n(_ tag: UInt32, _ values: [String]) -> TestItem {
        self.stringArray(tag, values, type: 9)
    }

    static func int8(_ tag: UInt32, _ values: [UInt8]) -> TestItem {
        TestItem(tag: tag, type: 2, count: UInt32(values.count), data: values, alignment: 1)
    }

    static func int16(_ tag: UInt32, _ values: [UInt16]) -> TestItem {
        TestItem(tag: tag, type: 3, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 2)
    }

    static func int32(_ tag: UInt32, _ values: [UInt32]) -> TestItem {
        TestItem(tag: tag, type: 4, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 4)
    }

    static func int64(_ tag: UInt32, _ values: [UInt64]) -> TestItem {
        TestItem(tag: tag, type: 5, count: UInt32(values.count), data: values.flatMap { bigEndian($0) }, alignment: 8)
    }

    static func bin(_ tag: UInt32, _ bytes: [UInt8]) -> TestItem {
        TestItem(tag: tag, type: 7, count: UInt32(bytes.count), data: bytes, alignment: 1)
    }
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

func putUInt32(_ bytes: inout [UInt8], at position: Int, _ value: UInt32) {
    bytes.replaceSubrange(position..<(position + 4), with: bigEndian(value))
}

func getUInt32(_ bytes: [UInt8], at position: Int) -> UInt32 {
    bytes[position..<(position + 4)].reduce(0) { $0 << 8 | UInt32($1) }
}

/// A complete header blob: region entry first, items in order, trailer at the end of the store.
func makeHeader(region: UInt32, items: [TestItem]) -> [UInt8] {
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

func makeLead(type: UInt16 = 0, major: UInt8 = 3, signatureType: UInt16 = 5) -> [UInt8] {
    var lead = [UInt8](repeating: 0, count: 96)
    lead.replaceSubrange(0..<4, with: [0xED, 0xAB, 0xEE, 0xDB])
    lead[4] = major
    lead.replaceSubrange(6..<8, with: bigEndian(type))
    lead.replaceSubrange(8..<10, with: bigEndian(UInt16(1)))
    let name = Array("synthetic-1-1".utf8)
    lead.replaceSubrange(10..<(10 + name.count), with: name)
    lead.replaceSubrange(76..<78, with: bigEndian(UInt16(1)))
    lead.replaceSubrange(78..<80, with: bigEndian(signatureType))
    return lead
}

/// A synthetic package and where its parts are.
struct TestPackage {
    var bytes: [UInt8]
    var signatureStart: Int { 96 }
    var signatureEnd: Int
    var mainStart: Int
    var mainEnd: Int

    /// File offset of field `field` (0 tag, 4 type, 8 offset, 12 count) of index entry `entry` of a header.
    func indexField(headerStart: Int, entry: Int, field: Int) -> Int {
        headerStart + 16 + 16 * entry + field
    }

    /// File offset of the main header's data store.
    var mainStoreStart: Int {
        self.mainStart + 16 + 16 * Int(getUInt32(self.bytes, at: self.mainStart + 8))
    }
}

let defaultIdentity: [TestItem] = [
    .string(1000, "synthetic"),
    .string(1001, "1.0"),
    .string(1002, "1"),
]

func makePackage(
    signature: [TestItem] = [.int32(1000, [1234])],
    main: [TestItem] = defaultIdentity,
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

