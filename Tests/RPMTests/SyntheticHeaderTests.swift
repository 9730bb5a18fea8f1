// Validation rules checked one at a time on synthetic packages (TestSupport/SyntheticRPM.swift).
import RPM
import TestSupport
import Testing

private func expectError(_ code: RPMError.Code, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    let error = #expect(throws: RPMError.self, sourceLocation: sourceLocation) { try RPMReader.parse(bytes) }
    #expect(error?.code == code, "\(error.map(String.init(describing:)) ?? "no error")", sourceLocation: sourceLocation)
}

@Suite struct SyntheticPackageTests {
    @Test func minimalPackageParses() throws {
        let synthetic = makePackage()
        let package = try RPMReader.parse(synthetic.bytes)
        #expect(package.name == "synthetic")
        #expect(package.version == "1.0")
        #expect(package.release == "1")
        #expect(package.epoch == nil)
        #expect(package.arch == nil)
        #expect(package.license == nil)
        #expect(package.summary == nil)
        #expect(!package.isSourceLead)
        #expect(!package.isSourcePackage)
        #expect(package.signatureRange == 96..<synthetic.signatureEnd)
        #expect(package.mainHeaderRange == synthetic.mainStart..<synthetic.mainEnd)
        #expect(package.payloadOffset == synthetic.mainEnd)
        #expect(package.main.entries.map(\.tag) == [63, 1000, 1001, 1002])
        #expect(package.signature.uint32s(1000) == [1234])
    }

    @Test(arguments: [0, 1, 3, 5, 7, 8, 13])
    func signaturePaddingTo8(extraBytes: Int) throws {
        let synthetic = makePackage(signature: [.bin(1008, [UInt8](repeating: 0, count: 1 + extraBytes))])
        #expect(synthetic.mainStart % 8 == 0)
        let package = try RPMReader.parse(synthetic.bytes)
        #expect(package.signatureRange.upperBound == synthetic.signatureEnd)
        #expect(package.mainHeaderRange.lowerBound == synthetic.mainStart)
        #expect(package.signature.binary(1008)?.count == 1 + extraBytes)
    }

    @Test func identityTags() throws {
        let package = try RPMReader.parse(
            makePackage(
                main: [
                    .string(1000, "hello-tool"), .string(1001, "1.2.3"), .string(1002, "4"), .int32(1003, [2]),
                    .i18n(1004, ["Summary C", "Zusammenfassung"]), .string(1014, "MIT"), .string(1022, "x86_64"),
                    .int32(1106, [1]),
                ],
                leadType: 1
            ).bytes
        )
        #expect(package.epoch == 2)
        #expect(package.summary == "Summary C")
        #expect(package.main.strings(1004) == ["Summary C", "Zusammenfassung"])
        #expect(package.license == "MIT")
        #expect(package.arch == "x86_64")
        #expect(package.isSourceLead)
        #expect(package.isSourcePackage)
        #expect(package.evr == "2:1.2.3-4")
        #expect(package.canonicalFilename == "hello-tool-1.2.3-4.src.rpm")
    }

    @Test func largeEpochIsUnsigned() throws {
        let package = try RPMReader.parse(makePackage(main: defaultIdentity + [.int32(1003, [0xFFFF_FFFF])]).bytes)
        #expect(package.epoch == 4_294_967_295)
    }

    @Test func sourceDetection() throws {
        func isSource(_ extra: [HeaderItem]) throws -> Bool {
            try RPMReader.parse(makePackage(main: defaultIdentity + extra).bytes).isSourcePackage
        }
        #expect(try isSource([.int32(1106, [1])]))
        #expect(try !isSource([.string(1044, "x-1-1.src.rpm")]))
        #expect(try isSource([.string(1044, "x-1-1.src.rpm"), .int32(1106, [1])]))  // 1106 wins, as in createrepo_c
        // rpm's retrofit heuristic for headers with neither tag.
        #expect(try isSource([.stringArray(1118, [""])]))
        #expect(try !isSource([.stringArray(1118, ["/usr/bin/"])]))
        #expect(try !isSource([.stringArray(1118, ["", "/usr/"])]))
        #expect(try isSource([.stringArray(1027, ["x.spec", "x.tar.gz"])]))
        #expect(try !isSource([.stringArray(1027, ["x.spec", "/usr/bin/x"])]))
        #expect(try !isSource([]))
    }

    @Test func accessors() throws {
        let main =
            defaultIdentity + [
                .int8(1100, [0xFF, 1]),
                .int16(1101, [0x81A4, 7]),
                .int32(1102, [0xFFFF_FFFE, 3]),
                .int64(1103, [0x1_0000_0000, 0xFFFF_FFFF_FFFF_FFFF]),
                .bin(1104, [0, 1, 2, 0]),
                .stringArray(1105, ["a", "", "ccc"]),
                .string(1107, "caf\u{E9}"),
                HeaderItem(tag: 1108, type: 6, count: 1, data: [0x66, 0xFF, 0x6F, 0], alignment: 1),
            ]
        let header = try RPMReader.parse(makePackage(main: main).bytes).main
        #expect(header.int32s(1100) == [255, 1])
        #expect(header.uint16s(1101) == [0x81A4, 7])
        #expect(header.uint32s(1101) == [0x81A4, 7])
        #expect(header.int32s(1101) == [0x81A4, 7])
        #expect(header.int32s(1102) == [-2, 3])
        #expect(header.uint32s(1102) == [0xFFFF_FFFE, 3])
        #expect(header.int64s(1102) == [0xFFFF_FFFE, 3])
        #expect(header.uint16s(1102) == nil)
        #expect(header.int32s(1103) == nil)
        #expect(header.uint64s(1103) == [0x1_0000_0000, 0xFFFF_FFFF_FFFF_FFFF])
        #expect(header.int64s(1103) == [0x1_0000_0000, -1])
        #expect(header.binary(1104) == [0, 1, 2, 0])
        #expect(header.string(1104) == nil)
        #expect(header.strings(1105) == ["a", "", "ccc"])
        #expect(header.string(1105) == "a")
        #expect(header.rawStrings(1105) == [[0x61], [], [0x63, 0x63, 0x63]])
        #expect(header.binary(1105) == nil)
        #expect(header.string(1107) == "caf\u{E9}")
        #expect(header.strings(1107) == ["caf\u{E9}"])
        #expect(header.string(1108) == "f\u{FFFD}o")
        #expect(header.rawStrings(1108) == [[0x66, 0xFF, 0x6F]])
        #expect(header.string(9999) == nil)
        #expect(!header.contains(9999))
        #expect(header.contains(1104))
        #expect(
            header.entry(1102) == RPMHeader.Entry(tag: 1102, type: .int32, offset: header.entry(1102)!.offset, count: 2)
        )
        #expect(header.entry(1103)!.offset % 8 == 0)
    }

    @Test func requiredTags() {
        expectError(.badTagValue, makePackage(main: [.string(1001, "1"), .string(1002, "1")]).bytes)
        expectError(.badTagValue, makePackage(main: [.string(1000, "x"), .string(1002, "1")]).bytes)
        expectError(.badTagValue, makePackage(main: [.string(1000, "x"), .string(1001, "1")]).bytes)
        expectError(.badTagValue, makePackage(main: [.string(1000, ""), .string(1001, "1"), .string(1002, "1")]).bytes)
        expectError(
            .badTagValue,
            makePackage(main: [.stringArray(1000, ["x"]), .string(1001, "1"), .string(1002, "1")]).bytes
        )
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.string(1003, "2")]).bytes)
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.int32(1003, [1, 2])]).bytes)
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.int16(1003, [1])]).bytes)
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.int32(1014, [1])]).bytes)
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.stringArray(1022, ["noarch"])]).bytes)
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.string(1106, "1")]).bytes)
        expectError(.badTagValue, makePackage(main: defaultIdentity + [.int32(1044, [1])]).bytes)
    }

    @Test func leadChecks() {
        var bytes = makePackage().bytes
        bytes[4] = 2
        expectError(.badLead, bytes)
        bytes[4] = 5
        expectError(.badLead, bytes)
        bytes[4] = 4
        #expect(throws: Never.self) { try RPMReader.parse(bytes) }
        bytes[79] = 4
        expectError(.badLead, bytes)
        var magic = makePackage().bytes
        magic[3] = 0xDC
        expectError(.badLeadMagic, magic)
    }

    @Test func headerMagic() {
        let synthetic = makePackage()
        for offset in [96, 99, 100, 103, synthetic.mainStart, synthetic.mainStart + 7] {
            var bytes = synthetic.bytes
            bytes[offset] ^= 0x40
            expectError(.badHeaderMagic, bytes)
            // Detected from the available bytes, before asking for more.
            expectError(.badHeaderMagic, Array(bytes[...offset]))
        }
    }
}

@Suite struct IndexValidationTests {
    /// main: region, NAME (STRING), VERSION, RELEASE, 1100 INT32 ×2, 1101 STRING_ARRAY ×2.
    static let base = makePackage(main: defaultIdentity + [.int32(1100, [1, 2]), .stringArray(1101, ["a", "b"])])

    static func mutated(entry: Int, field: Int, _ value: UInt32, header: Int? = nil) -> [UInt8] {
        var bytes = base.bytes
        putUInt32(&bytes, at: base.indexField(headerStart: header ?? base.mainStart, entry: entry, field: field), value)
        return bytes
    }

    static func field(entry: Int, field: Int) -> UInt32 {
        getUInt32(base.bytes, at: base.indexField(headerStart: base.mainStart, entry: entry, field: field))
    }

    @Test func baseParses() throws {
        let package = try RPMReader.parse(Self.base.bytes)
        #expect(package.main.int32s(1100) == [1, 2])
        #expect(package.main.strings(1101) == ["a", "b"])
    }

    @Test func typeChecks() {
        expectError(.badIndex, Self.mutated(entry: 4, field: 4, 0))  // NULL
        expectError(.badIndex, Self.mutated(entry: 4, field: 4, 10))  // unknown
        expectError(.badIndex, Self.mutated(entry: 4, field: 4, 0xFFFF_FFFF))
    }

    @Test func countChecks() {
        expectError(.badIndex, Self.mutated(entry: 4, field: 12, 0))
        expectError(.badIndex, Self.mutated(entry: 1, field: 12, 2))  // STRING count must be 1
        expectError(.badIndex, Self.mutated(entry: 4, field: 12, 3))  // INT32 runs into the next entry
        expectError(.badIndex, Self.mutated(entry: 5, field: 12, 3))  // third string would be the trailer
        expectError(.badIndex, Self.mutated(entry: 4, field: 12, 0x4000_0000))
        expectError(.badIndex, Self.mutated(entry: 5, field: 12, 0xFFFF_FFFF))
    }

    @Test func offsetChecks() {
        let intOffset = Self.field(entry: 4, field: 8)
        expectError(.badIndex, Self.mutated(entry: 4, field: 8, intOffset + 2))  // misaligned INT32
        expectError(.badIndex, Self.mutated(entry: 4, field: 8, 0))  // overlaps NAME
        expectError(.badIndex, Self.mutated(entry: 4, field: 8, 0xFFFF_FFFC))  // negative
        expectError(.badIndex, Self.mutated(entry: 4, field: 8, 0x7FFF_FFFC))
        let dl = getUInt32(Self.base.bytes, at: Self.base.mainStart + 12)
        expectError(.badIndex, Self.mutated(entry: 5, field: 8, dl - 16))  // inside the trailer
        expectError(.badIndex, Self.mutated(entry: 5, field: 8, dl))
        expectError(.badIndex, Self.mutated(entry: 2, field: 8, Self.field(entry: 1, field: 8)))  // same data as NAME
        // Out of order: VERSION's data placed after RELEASE's.
        expectError(.badIndex, Self.mutated(entry: 2, field: 8, Self.field(entry: 3, field: 8) + 2))
    }

    @Test func tagChecks() {
        expectError(.badIndex, Self.mutated(entry: 4, field: 0, 99))
        expectError(.badIndex, Self.mutated(entry: 4, field: 0, 63))  // a second region tag
    }

    @Test func unterminatedString() {
        var bytes = Self.base.bytes
        let store = Self.base.mainStoreStart
        let offset = Int(Self.field(entry: 5, field: 8))
        // "a\0b\0" → "a\0bX": the last string now runs into the trailer.
        bytes[store + offset + 3] = UInt8(ascii: "X")
        expectError(.badIndex, bytes)
    }

    @Test func regionChecks() {
        let il = getUInt32(Self.base.bytes, at: Self.base.mainStart + 8)
        let dl = getUInt32(Self.base.bytes, at: Self.base.mainStart + 12)
        expectError(.badRegion, Self.mutated(entry: 0, field: 0, 62))  // wrong region tag in main
        expectError(.badRegion, Self.mutated(entry: 0, field: 0, 1000))  // no region
        expectError(.badRegion, Self.mutated(entry: 0, field: 4, 4))
        expectError(.badRegion, Self.mutated(entry: 0, field: 8, dl - 20))
        expectError(.badRegion, Self.mutated(entry: 0, field: 8, dl))
        expectError(.badRegion, Self.mutated(entry: 0, field: 12, 15))
        expectError(.badRegion, Self.mutated(entry: 0, field: 0, 63, header: 96))  // main region tag in signature

        let trailer = Self.base.mainStoreStart + Int(dl) - 16
        for (field, value) in [(0, UInt32(62)), (4, 4), (8, UInt32(bitPattern: -16 * Int32(il - 1))), (8, 0), (12, 0)] {
            var bytes = Self.base.bytes
            putUInt32(&bytes, at: trailer + field, value)
            expectError(.badRegion, bytes)
        }

        var noEntries = Self.base.bytes
        putUInt32(&noEntries, at: Self.base.mainStart + 8, 0)
        expectError(.badRegion, noEntries)

        // A store too small for the trailer.
        let tiny: [UInt8] =
            makeLead() + [0x8E, 0xAD, 0xE8, 0x01, 0, 0, 0, 0] + bigEndian(UInt32(1)) + bigEndian(UInt32(8))
            + bigEndian(UInt32(62)) + bigEndian(UInt32(7)) + bigEndian(UInt32(0)) + bigEndian(UInt32(16))
            + [UInt8](repeating: 0, count: 8)
        expectError(.badRegion, tiny)
    }

    @Test func signatureHeaderImageTrailerIsAccepted() throws {
        // Old packages carry HEADERIMAGE (61) in the signature trailer; rpm accepts it.
        var bytes = Self.base.bytes
        let dl = Int(getUInt32(bytes, at: 96 + 12))
        let il = Int(getUInt32(bytes, at: 96 + 8))
        putUInt32(&bytes, at: 96 + 16 + 16 * il + dl - 16, 61)
        #expect(try RPMReader.parse(bytes).name == "synthetic")
    }
}
