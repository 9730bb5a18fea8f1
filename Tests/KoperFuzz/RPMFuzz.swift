import RPM

/// The RPM lead / signature header / main header reader (`RPMReader`) and the accessors of what it accepts.
///
/// Invariants: no trap; a `.truncated` error asks for more bytes than it was given, and after padding the input to
/// that many bytes the reader never asks for fewer again (declared lengths are followed, not trusted); other errors
/// carry no byte count; an accepted package respects the caps (entries, header bytes, a signature header of at most
/// 32 entries), its ranges lie inside the input and every entry's data inside the data store before the trailer;
/// the same package comes out of exactly the header bytes (the payload is not read) and one byte less is truncated;
/// a smaller `maxHeaderBytes` than the main header refuses it; every accessor answers without trapping; the values
/// written back by `RPMHeaderWriter` read back the same.
public struct RPMReaderFuzzTarget: FuzzTarget {
    public init() {}

    public let name = "rpm"

    public var seeds: [[UInt8]] {
        [
            Self.package(
                source: true,
                main: [
                    .init(tag: RPMTag.name, type: .string, count: 1, data: cString("hello")),
                    .init(tag: RPMTag.version, type: .string, count: 1, data: cString("2.12.1")),
                    .init(tag: RPMTag.release, type: .string, count: 1, data: cString("3.fc41")),
                    .init(tag: RPMTag.summary, type: .i18nstring, count: 2, data: cString("Hi") + cString("Hallo")),
                    .init(tag: RPMTag.license, type: .string, count: 1, data: cString("GPL-3.0-or-later")),
                    .init(tag: RPMTag.arch, type: .string, count: 1, data: cString("x86_64")),
                    .init(tag: RPMTag.sourcePackage, type: .int32, count: 1, data: [0, 0, 0, 1]),
                    .init(
                        tag: RPMTag.headerI18NTable,
                        type: .stringArray,
                        count: 2,
                        data: cString("C") + cString("de")
                    ),
                    .init(tag: RPMTag.buildTime, type: .int32, count: 1, data: [0x66, 0, 0, 0]),
                ]
            ),
            Self.package(
                source: false,
                main: [
                    .init(tag: RPMTag.name, type: .string, count: 1, data: cString("tool")),
                    .init(tag: RPMTag.version, type: .string, count: 1, data: cString("1.0")),
                    .init(tag: RPMTag.release, type: .string, count: 1, data: cString("1")),
                    .init(tag: RPMTag.epoch, type: .int32, count: 1, data: [0, 0, 0, 2]),
                    .init(tag: RPMTag.sourceRPM, type: .string, count: 1, data: cString("tool-1.0-1.src.rpm")),
                    .init(tag: RPMTag.fileModes, type: .int16, count: 2, data: [0x81, 0xA4, 0x41, 0xED]),
                    .init(tag: RPMTag.dirIndexes, type: .int32, count: 2, data: [0, 0, 0, 0, 0, 0, 0, 1]),
                    .init(tag: RPMTag.baseNames, type: .stringArray, count: 2, data: cString("tool") + cString("doc")),
                    .init(
                        tag: RPMTag.dirNames,
                        type: .stringArray,
                        count: 2,
                        data: cString("/usr/bin/") + cString("/d/")
                    ),
                    .init(tag: RPMTag.longSize, type: .int64, count: 1, data: [0, 0, 0, 1, 0, 0, 0, 0]),
                    .init(tag: RPMTag.payloadDigest, type: .stringArray, count: 1, data: cString("ab12")),
                    .init(tag: 1141, type: .bin, count: 5, data: [1, 2, 3, 4, 5]),
                    .init(tag: 1142, type: .char, count: 3, data: [65, 66, 67]),
                    .init(tag: 1143, type: .int8, count: 1, data: [9]),
                ]
            ),
            Self.package(
                source: true,
                main: [
                    .init(tag: RPMTag.name, type: .string, count: 1, data: cString("old")),
                    .init(tag: RPMTag.version, type: .string, count: 1, data: cString("0")),
                    .init(tag: RPMTag.release, type: .string, count: 1, data: cString("0")),
                    .init(tag: RPMTag.oldFilenames, type: .stringArray, count: 1, data: cString("old.spec")),
                ]
            ),
        ]
    }

    public var dictionary: [[UInt8]] {
        [
            [0x8E, 0xAD, 0xE8, 0x01, 0, 0, 0, 0], [0xED, 0xAB, 0xEE, 0xDB], [0, 0, 0, 62], [0, 0, 0, 63],
            [0, 0, 0, 7, 0, 0, 0, 16], [0xFF, 0xFF, 0xFF, 0xF0], [0, 0, 0, 6], [0, 0, 0, 8], [0, 0, 0, 9],
            [0, 0, 0, 0],
            [0, 0, 0x03, 0xE8], [0, 0, 0x04, 0x52], [0, 0, 0x04, 0x14], [0, 0, 0x04, 0x5E],
        ]
    }

    /// Blows up a header's `il` or `dl`, or one index entry's type, offset or count.
    public func mutateStructured(_ bytes: inout [UInt8], _ rng: inout FuzzRNG) -> Bool {
        var starts: [Int] = []
        if bytes.count >= 96 + 16 {
            starts.append(96)
            let il = Int(readUInt32(bytes, 96 + 8))
            let dl = Int(readUInt32(bytes, 96 + 12))
            if il < 1000, dl < 1 << 20 {
                let end = 96 + 16 + 16 * il + dl
                let main = end + (8 - end % 8) % 8
                if main + 16 <= bytes.count { starts.append(main) }
            }
        }
        guard !starts.isEmpty else { return false }
        let start = starts[rng.below(starts.count)]
        let il = Int(readUInt32(bytes, start + 8))
        let field: Int
        if rng.chance(1, in: 3) || il == 0 {
            field = start + 8 + 4 * rng.below(2)
        } else {
            let entry = rng.below(min(il, 64))
            field = start + 16 + 16 * entry + 4 * (1 + rng.below(3))
        }
        guard field + 4 <= bytes.count else { return false }
        let values: [UInt32] = [
            0, 1, 15, 16, 17, 33, 0xFFFF, 0x1_0000, 0x0400_0000, 0x0400_0001, 0x4000_0000, 0x7FFF_FFFF, 0x8000_0000,
            0xFFFF_FFF0, 0xFFFF_FFFF, readUInt32(bytes, field) &+ 1, readUInt32(bytes, field) &- 1,
            readUInt32(bytes, field) &* 2, readUInt32(bytes, field) &+ 8,
        ]
        let v = values[rng.below(values.count)]
        for k in 0..<4 { bytes[field + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
        return true
    }

    public func check(_ input: [UInt8]) -> FuzzOutcome {
        let result = Self.parse(input)
        switch result {
        case .failure(let error):
            guard error.code == .truncated else {
                return error.bytesNeeded == nil ? .rejected : .violation("\(error.code) error with a byte count")
            }
            guard let need = error.bytesNeeded, need > input.count else {
                return .violation("truncated at \(input.count) bytes asks for \(error.bytesNeeded ?? -1)")
            }
            // Give it what it asked for (zeros; the cap keeps the run fast, the reader's own cap is 64 MiB).
            guard need <= input.count + (1 << 20) else { return .rejected }
            let padded = input + [UInt8](repeating: 0, count: need - input.count)
            if case .failure(let again) = Self.parse(padded), again.code == .truncated {
                guard let needAgain = again.bytesNeeded, needAgain > need else {
                    return .violation("asked for \(need) bytes, then with them for \(again.bytesNeeded ?? -1)")
                }
            }
            return .rejected
        case .success(let package):
            if let problem = Self.acceptedProblem(package, input: input) { return .violation(problem) }
            return .accepted
        }
    }

    static func parse(_ bytes: [UInt8]) -> Result<RPMPackage, RPMError> {
        do throws(RPMError) {
            return .success(try RPMReader.parse(bytes))
        } catch {
            return .failure(error)
        }
    }

    static func acceptedProblem(_ package: RPMPackage, input: [UInt8]) -> String? {
        let sig = package.signatureRange
        let main = package.mainHeaderRange
        guard sig.lowerBound == 96, sig.upperBound <= main.lowerBound, main.upperBound <= input.count,
            main.lowerBound - sig.upperBound < 8, main.lowerBound % 8 == 0
        else { return "ranges \(sig) and \(main) in \(input.count) bytes" }
        if main.count > RPMReader.maxHeaderBytes { return "main header of \(main.count) bytes accepted" }
        if package.signature.entries.count > RPMReader.maxSignatureIndexEntries {
            return "signature header with \(package.signature.entries.count) entries accepted"
        }
        for (header, range) in [(package.signature, sig), (package.main, main)] {
            let il = header.entries.count
            if range.count != 16 + 16 * il + header.dataStore.count { return "header size does not add up" }
            let limit = header.dataStore.count - 16
            for entry in header.entries.dropFirst() {
                guard entry.offset >= 0, entry.count > 0, entry.offset < limit else {
                    return "entry \(entry.tag) offset \(entry.offset) count \(entry.count) outside the store"
                }
                if let size = fixedSize(entry.type), entry.offset + entry.count * size > limit {
                    return "entry \(entry.tag) data runs past the store"
                }
            }
            // Every accessor on every entry.
            for entry in header.entries {
                _ = header.string(entry.tag)
                _ = header.strings(entry.tag)
                _ = header.rawStrings(entry.tag)
                _ = header.int32s(entry.tag)
                _ = header.uint16s(entry.tag)
                _ = header.int64s(entry.tag)
                _ = header.binary(entry.tag)
            }
            // Writer and reader agree on every value.
            let values = RPMHeaderWriter.values(of: header)
            let region = header.entries[0].tag
            do throws(RPMError) {
                let written = try RPMHeaderWriter.serialize(regionTag: region, values: values)
                let reread = try RPMReader.parseHeader(written, at: 0, regionTag: region)
                let sorted = values.enumerated().sorted { ($0.element.tag, $0.offset) < ($1.element.tag, $1.offset) }
                    .map(\.element)
                if RPMHeaderWriter.values(of: reread.header) != sorted { return "written values read back differ" }
            } catch {
                return "accepted header cannot be written back and read: \(error)"
            }
        }
        _ = package.isSourcePackage
        _ = package.canonicalFilename
        _ = package.evr
        // The payload is not read: exactly the header bytes give the same package, one byte less is truncated.
        let exact = Array(input[..<main.upperBound])
        guard case .success(let again) = parse(exact), again.name == package.name, again.evr == package.evr,
            again.mainHeaderRange == main, again.signatureRange == sig
        else { return "the header bytes alone do not give the same package" }
        guard case .failure(let short) = parse(Array(exact.dropLast())), short.code == .truncated,
            let need = short.bytesNeeded, need == main.upperBound
        else { return "one byte less than the headers is not truncated at \(main.upperBound)" }
        // A cap below the main header's size refuses it.
        do throws(RPMError) {
            _ = try RPMReader.parse(input, maxHeaderBytes: main.count - 1)
            return "a main header of \(main.count) bytes passed a cap of \(main.count - 1)"
        } catch {
            if error.code != .headerTooLarge { return "a cap below the main header size gave \(error.code)" }
        }
        return nil
    }

    static func fixedSize(_ type: RPMTagType) -> Int? {
        switch type {
        case .char, .int8, .bin: return 1
        case .int16: return 2
        case .int32: return 4
        case .int64: return 8
        default: return nil
        }
    }

    static func package(source: Bool, main: [RPMHeaderValue]) -> [UInt8] {
        var lead = [UInt8](repeating: 0, count: 96)
        lead.replaceSubrange(0..<4, with: [0xED, 0xAB, 0xEE, 0xDB])
        lead[4] = 3
        lead[7] = source ? 1 : 0
        lead[9] = 1
        lead.replaceSubrange(10..<19, with: Array("pkg-1-1.x".utf8))
        lead[77] = 1
        lead[79] = 5
        let signature: [RPMHeaderValue] = [
            .init(tag: RPMTag.sigSize, type: .int32, count: 1, data: [0, 0, 0x10, 0]),
            .init(
                tag: RPMTag.sigSHA256Header,
                type: .string,
                count: 1,
                data: cString(String(repeating: "ab", count: 32))
            ),
            .init(tag: RPMTag.sigMD5, type: .bin, count: 16, data: Array(0..<16)),
            .init(tag: RPMTag.sigReservedSpace, type: .bin, count: 13, data: [UInt8](repeating: 0, count: 13)),
        ]
        var bytes =
            lead + ((try? RPMHeaderWriter.serialize(regionTag: RPMTag.headerSignatures, values: signature)) ?? [])
        while bytes.count % 8 != 0 { bytes.append(0) }
        bytes += (try? RPMHeaderWriter.serialize(regionTag: RPMTag.headerImmutable, values: main)) ?? []
        return bytes + Array("\u{FD}7zXZ payload".utf8)
    }
}

func cString(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }

func readUInt32(_ bytes: [UInt8], _ p: Int) -> UInt32 {
    guard p >= 0, p + 4 <= bytes.count else { return 0 }
    return UInt32(bytes[p]) << 24 | UInt32(bytes[p + 1]) << 16 | UInt32(bytes[p + 2]) << 8 | UInt32(bytes[p + 3])
}
