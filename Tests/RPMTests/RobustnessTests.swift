// Truncated, mutated, oversized and non-RPM input: always a thrown RPMError, never a crash.
import Foundation
import RPM
import TestSupport
import Testing

/// Parses and, on success, reads every entry through every accessor (they must not trap either).
private func parseAndTouch(_ bytes: [UInt8]) -> Result<RPMPackage, RPMError> {
    do throws(RPMError) {
        let package = try RPMReader.parse(bytes)
        for header in [package.signature, package.main] {
            for entry in header.entries {
                _ = header.string(entry.tag)
                _ = header.strings(entry.tag)
                _ = header.rawStrings(entry.tag)
                _ = header.int32s(entry.tag)
                _ = header.uint32s(entry.tag)
                _ = header.uint16s(entry.tag)
                _ = header.int64s(entry.tag)
                _ = header.uint64s(entry.tag)
                _ = header.binary(entry.tag)
            }
        }
        _ = package.isSourcePackage
        _ = package.canonicalFilename
        return .success(package)
    } catch {
        return .failure(error)
    }
}

@Suite(.requires(rpmTools))
struct TruncationAndFuzzTests {
    @Test func everyPrefixOfAnSRPMHeaderIsTruncated() throws {
        let bytes = try readBytes(try fixtures().alphaSRPM)
        let headerEnd = try RPMReader.parse(bytes).payloadOffset
        for length in 0..<headerEnd {
            let result = parseAndTouch(Array(bytes[..<length]))
            guard case .failure(let error) = result else {
                Issue.record("prefix of \(length) bytes parsed")
                return
            }
            guard error.code == .truncated, let needed = error.bytesNeeded else {
                Issue.record("prefix of \(length) bytes: \(error)")
                return
            }
            #expect(needed > length, "prefix \(length)")
            #expect(needed <= headerEnd, "prefix \(length) asks for \(needed)")
        }
    }

    @Test func feedingBytesNeededMakesProgress() throws {
        let fixtures = try fixtures()
        for path in fixtures.all {
            let bytes = try readBytes(path)
            var length = 0
            var rounds = 0
            var parsed: RPMPackage?
            while parsed == nil, rounds < 10 {
                rounds += 1
                switch parseAndTouch(Array(bytes[..<length])) {
                case .success(let package):
                    parsed = package
                case .failure(let error):
                    let needed = try #require(error.bytesNeeded, "\(error)")
                    #expect(error.code == .truncated)
                    #expect(needed > length)
                    length = min(needed, bytes.count)
                }
            }
            let package = try #require(parsed, "\(path) did not parse after \(rounds) rounds")
            #expect(length == package.payloadOffset)
            #expect(rounds == 6)  // lead, sig intro, sig, main intro, main, then success
        }
    }

    @Test func randomMutationsNeverCrash() throws {
        let fixtures = try fixtures()
        let original = try readBytes(fixtures.helloSRPM)
        let headerEnd = try RPMReader.parse(original).payloadOffset
        let base = Array(original[..<min(original.count, headerEnd + 64)])
        var generator = SeededGenerator(seed: 0x4B6F_7065_72)
        let interesting: [UInt32] = [
            0, 1, 7, 8, 15, 16, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF,
        ]
        var parsedCount = 0
        var failedCodes: [String: Int] = [:]
        for iteration in 0..<4000 {
            var bytes = base
            let mutations = Int.random(in: 1...4, using: &generator)
            for _ in 0..<mutations {
                let position = Int.random(in: 0..<headerEnd, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0:
                    bytes[position] = UInt8.random(in: 0...255, using: &generator)
                case 1:
                    bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
                case 2:
                    // An aligned 32-bit field (il, dl, or an index field) gets an interesting value.
                    let aligned = min(position & ~3, headerEnd - 4)
                    putUInt32(&bytes, at: aligned, interesting.randomElement(using: &generator)!)
                default:
                    let aligned = min(position & ~3, headerEnd - 4)
                    let value = getUInt32(bytes, at: aligned)
                    putUInt32(&bytes, at: aligned, value &+ UInt32.random(in: 0...32, using: &generator) &- 16)
                }
            }
            if iteration % 4 == 3 {
                bytes = Array(bytes[..<Int.random(in: 0...bytes.count, using: &generator)])
            }
            switch parseAndTouch(bytes) {
            case .success:
                parsedCount += 1
            case .failure(let error):
                failedCodes[error.code.description, default: 0] += 1
                if error.code == .truncated {
                    #expect((error.bytesNeeded ?? 0) > bytes.count)
                } else {
                    #expect(error.bytesNeeded == nil)
                }
            }
        }
        // Both outcomes must occur, and the validators must have been exercised.
        #expect(parsedCount > 0)
        #expect(failedCodes["badIndex", default: 0] > 0)
        #expect(failedCodes["badRegion", default: 0] > 0)
        #expect(failedCodes["headerTooLarge", default: 0] > 0)
        #expect(failedCodes["truncated", default: 0] > 0)
    }

    @Test func smallerHeaderCapIsEnforced() throws {
        let bytes = try readBytes(try fixtures().alphaRPM)
        let package = try RPMReader.parse(bytes)
        // The cap applies to each header; the larger one decides.
        let largest = max(package.signatureRange.count, package.mainHeaderRange.count)
        let error = #expect(throws: RPMError.self) { try RPMReader.parse(bytes, maxHeaderBytes: largest - 1) }
        #expect(error?.code == .headerTooLarge)
        #expect(try RPMReader.parse(bytes, maxHeaderBytes: largest).name == "alpha")
    }

    @Test func nonRPMFilesHaveBadLeadMagic() throws {
        let fixtures = try fixtures()
        let spec = Array(try String(contentsOfFile: fixtures.directory + "/alpha.spec", encoding: .utf8).utf8)
        let gzipPath = fixtures.directory + "/alpha.spec.gz"
        let result = try run(
            "/bin/sh",
            ["-c", "gzip -9 -c '\(fixtures.directory)/alpha.spec' > '\(gzipPath)'"],
            home: fixtures.directory + "/home"
        )
        try #require(result.status == 0)
        let gzip = try readBytes(gzipPath)
        #expect(Array(gzip.prefix(2)) == [0x1F, 0x8B])
        for input in [spec, gzip, Array(spec.prefix(1)), Array(gzip.prefix(3))] {
            let error = #expect(throws: RPMError.self) { try RPMReader.parse(input) }
            #expect(error?.code == .badLeadMagic)
        }
    }
}

@Suite struct OversizeAndNonRPMTests {
    @Test func emptyAndShortInputIsTruncated() {
        for input: [UInt8] in [[], [0xED], [0xED, 0xAB, 0xEE, 0xDB], makeLead().dropLast(1)] {
            let error = #expect(throws: RPMError.self) { try RPMReader.parse(input) }
            #expect(error?.code == .truncated)
            #expect(error?.bytesNeeded == 96)
        }
    }

    @Test func textIsBadLeadMagic() {
        for text in ["Name: foo\n", "<html>", "\u{ED}"] {
            let error = #expect(throws: RPMError.self) { try RPMReader.parse(Array(text.utf8)) }
            #expect(error?.code == .badLeadMagic)
            #expect(error?.bytesNeeded == nil)
        }
    }

    /// il/dl are rejected from the 16-byte intro alone: no truncation request, no allocation.
    @Test(arguments: [
        (8, UInt32(0xFFFF_FFFF)), (8, 33), (8, 0x0100_0000), (12, 0xFFFF_FFFF), (12, 0x0400_0001), (12, 0x8000_0000),
    ])
    func hugeSignatureCountsAreRejected(field: Int, value: UInt32) {
        var bytes = makePackage().bytes
        putUInt32(&bytes, at: 96 + field, value)
        let prefix = Array(bytes[..<(96 + 16)])
        let error = #expect(throws: RPMError.self) { try RPMReader.parse(prefix) }
        #expect(error?.code == .headerTooLarge)
    }

    @Test(arguments: [
        (8, UInt32(0x0001_0000)), (8, 0xFFFF_FFFF), (12, 0x0400_0000), (12, 0xFFFF_FFFF), (12, 0x7FFF_FFFF),
    ])
    func hugeMainCountsAreRejected(field: Int, value: UInt32) {
        let package = makePackage()
        var bytes = package.bytes
        putUInt32(&bytes, at: package.mainStart + field, value)
        let prefix = Array(bytes[..<(package.mainStart + 16)])
        let error = #expect(throws: RPMError.self) { try RPMReader.parse(prefix) }
        #expect(error?.code == .headerTooLarge)
    }

    @Test func maximalAllowedCountsAskForBytesInsteadOfAllocating() {
        let package = makePackage()
        var bytes = package.bytes
        putUInt32(&bytes, at: package.mainStart + 8, 0xFFFF)
        putUInt32(&bytes, at: package.mainStart + 12, 0x0100_0000)
        let prefix = Array(bytes[..<(package.mainStart + 16)])
        let error = #expect(throws: RPMError.self) { try RPMReader.parse(prefix) }
        #expect(error?.code == .truncated)
        #expect(error?.bytesNeeded == package.mainStart + 16 + 16 * 0xFFFF + 0x0100_0000)
    }

    @Test func errorDescriptions() {
        let error = RPMError(code: .truncated, detail: "lead", bytesNeeded: 96)
        #expect(error.description.contains("truncated"))
        #expect(error.description.contains("96"))
        #expect(RPMError(code: .badIndex, detail: "x").description == "RPMError(badIndex): x")
        #expect(RPMError.Code.badIndex != RPMError.Code.badRegion)
    }
}
