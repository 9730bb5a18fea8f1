import Foundation
import Gzip
import TestSupport
import Testing

/// Deterministic test data: text-like (compressible) or noise (incompressible).
private func sampleBytes(count: Int, seed: UInt64 = 1, noise: Bool = false) -> [UInt8] {
    var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    let words = Array("<package type=\"rpm\"><name>koper</name><version epoch=\"0\" ver=\"1.0\"/></package>\n".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(count)
    while out.count < count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        if noise {
            out.append(UInt8(truncatingIfNeeded: state >> 33))
        } else {
            out.append(words[Int(state >> 33) % 7 == 0 ? Int(state >> 40) % words.count : out.count % words.count])
        }
    }
    return out
}

private func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

private func read(_ path: String) throws -> [UInt8] {
    try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
}

private func expectGzipError(_ code: GzipError.Code, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected GzipError.\(code), got success")
    } catch let error as GzipError {
        #expect(error.code == code, "\(error)")
    } catch {
        Issue.record("expected GzipError.\(code), got \(error)")
    }
}

@Suite struct GzipRoundTripTests {
    @Test(arguments: [0, 1, 100, 70_000, 1 << 20])
    func roundTrip(count: Int) throws {
        let input = sampleBytes(count: count)
        let packed = try Gzip.compress(input)
        #expect(packed.starts(with: [0x1f, 0x8b, 8]))
        #expect(try Gzip.decompress(packed, limit: count) == input)
    }

    @Test(arguments: [Int32(-1), 0, 1, 9])
    func roundTripAtLevel(level: Int32) throws {
        let input = sampleBytes(count: 200_000, seed: 7, noise: level == 0)
        #expect(try Gzip.decompress(Gzip.compress(input, level: level), limit: input.count) == input)
    }

    @Test func incompressibleData() throws {
        let input = sampleBytes(count: 300_000, seed: 3, noise: true)
        let packed = try Gzip.compress(input, level: 9)
        #expect(try Gzip.decompress(packed, limit: input.count) == input)
    }

    @Test func streamingCompressorProducesOneMember() throws {
        let input = sampleBytes(count: 500_000, seed: 11)
        let compressor = try GzipCompressor(level: 6)
        var packed: [UInt8] = []
        var offset = 0
        var step = 1
        while offset < input.count {
            let end = min(input.count, offset + step)
            packed += try compressor.append(input[offset..<end])  // ArraySlice: contiguous
            offset = end
            step = step * 3 + 1
        }
        packed += try compressor.append((0..<10).map { UInt8($0) }.lazy.map { $0 })  // non-contiguous collection
        packed += try compressor.finish()
        let expected = input + (0..<10).map { UInt8($0) }
        #expect(try Gzip.decompress(packed, limit: expected.count) == expected)
        #expect(try Gzip.decompress(packed + packed, limit: 2 * expected.count) == expected + expected)
    }

    @Test func compressorRefusesUseAfterFinish() throws {
        let compressor = try GzipCompressor(level: 1)
        _ = try compressor.append([1, 2, 3])
        _ = try compressor.finish()
        expectGzipError(.invalidArgument) { _ = try compressor.append([4]) }
        expectGzipError(.invalidArgument) { _ = try compressor.finish() }
    }

    @Test func invalidLevelIsRejected() {
        expectGzipError(.invalidArgument) { _ = try GzipCompressor(level: 10) }
        expectGzipError(.invalidArgument) { _ = try Gzip.compress([1], level: -2) }
        expectGzipError(.invalidArgument) { _ = try Gzip.decompress([1], limit: -1) }
    }
}

@Suite struct GzipLimitAndCorruptionTests {
    @Test func limitIsEnforced() throws {
        let input = [UInt8](repeating: 0, count: 8 << 20)  // 8 MiB of zeros: a ~8 KiB "bomb"
        let packed = try Gzip.compress(input, level: 9)
        #expect(packed.count < 64 * 1024)
        #expect(try Gzip.decompress(packed, limit: input.count).count == input.count)
        expectGzipError(.limitExceeded) { _ = try Gzip.decompress(packed, limit: input.count - 1) }
        expectGzipError(.limitExceeded) { _ = try Gzip.decompress(packed, limit: 1 << 20) }
        expectGzipError(.limitExceeded) { _ = try Gzip.decompress(packed, limit: 0) }
    }

    @Test func limitCountsAllMembers() throws {
        let one = try Gzip.compress(sampleBytes(count: 1000))
        #expect(try Gzip.decompress(one + one, limit: 2000).count == 2000)
        expectGzipError(.limitExceeded) { _ = try Gzip.decompress(one + one, limit: 1999) }
    }

    @Test func emptyMemberDecodesToNothing() throws {
        #expect(try Gzip.decompress(Gzip.compress([]), limit: 0) == [])
    }

    @Test func corruptInputThrows() throws {
        let input = sampleBytes(count: 100_000, seed: 5)
        let packed = try Gzip.compress(input)

        expectGzipError(.corruptData) { _ = try Gzip.decompress(Array("hello, not gzip".utf8), limit: 1 << 20) }
        expectGzipError(.truncated) { _ = try Gzip.decompress([], limit: 1 << 20) }

        var badMagic = packed
        badMagic[1] = 0x8c
        expectGzipError(.corruptData) { _ = try Gzip.decompress(badMagic, limit: 1 << 20) }

        var badCRC = packed
        badCRC[badCRC.count - 8] ^= 0xff
        expectGzipError(.corruptData) { _ = try Gzip.decompress(badCRC, limit: 1 << 20) }

        var badLength = packed
        badLength[badLength.count - 1] ^= 0x01
        expectGzipError(.corruptData) { _ = try Gzip.decompress(badLength, limit: 1 << 20) }

        var flipped = packed
        for i in stride(from: 20, to: flipped.count - 8, by: 97) { flipped[i] ^= 0x5a }
        // Damage inside the deflate data is caught by the decoder or the CRC; it may also look like early EOF.
        do {
            _ = try Gzip.decompress(flipped, limit: 1 << 20)
            Issue.record("damaged deflate data decoded")
        } catch let error as GzipError {
            #expect(error.code == .corruptData || error.code == .truncated, "\(error)")
        }

        expectGzipError(.truncated) { _ = try Gzip.decompress(Array(packed.prefix(packed.count / 2)), limit: 1 << 20) }
        expectGzipError(.truncated) { _ = try Gzip.decompress(Array(packed.dropLast()), limit: 1 << 20) }
        expectGzipError(.truncated) { _ = try Gzip.decompress(Array(packed.prefix(5)), limit: 1 << 20) }

        // Bytes after the last member must themselves be a member.
        expectGzipError(.corruptData) { _ = try Gzip.decompress(packed + [0, 0, 0, 0], limit: 1 << 20) }
        expectGzipError(.corruptData) { _ = try Gzip.decompress(packed + Array("junk".utf8), limit: 1 << 20) }
        expectGzipError(.truncated) { _ = try Gzip.decompress(packed + [0x1f], limit: 1 << 20) }
    }
}

/// Interoperability with the `gzip` tool (gzip 1.12 on Debian 12).
@Suite(.serialized) struct GzipToolTests {
    @Test func gzipToolAcceptsOurOutput() async throws {
        let dir = try makeTemporaryDirectory(prefix: "koper-gzip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleBytes(count: 1 << 20, seed: 21)
        try write(Gzip.compress(input), to: "\(dir)/one.gz")

        let compressor = try GzipCompressor(level: 9)
        var streamed = try compressor.append(input.prefix(1000))
        streamed += try compressor.append(input.dropFirst(1000))
        streamed += try compressor.finish()
        try write(streamed, to: "\(dir)/streamed.gz")

        let test = try await Command.run("/bin/gzip", ["-t", "\(dir)/one.gz", "\(dir)/streamed.gz"], timeout: 60)
        #expect(test.status == 0, "\(test)")
        let cat = try await Command.shell(
            "zcat '\(dir)/one.gz' > '\(dir)/one.out' && zcat '\(dir)/streamed.gz' > '\(dir)/streamed.out'",
            timeout: 60
        )
        #expect(cat.status == 0, "\(cat)")
        #expect(try read("\(dir)/one.out") == input)
        #expect(try read("\(dir)/streamed.out") == input)

        // Each file is exactly one member: a single-member decoder ends with no unused bytes left.
        let script =
            "import sys, zlib\nfor p in sys.argv[1:]:\n    d = zlib.decompressobj(31)\n    d.decompress(open(p, 'rb').read())\n    assert d.eof and d.unused_data == b'', p\n"
        let members = try await Command.run(
            "/usr/bin/python3",
            ["-c", script, "\(dir)/one.gz", "\(dir)/streamed.gz"],
            timeout: 60
        )
        #expect(members.status == 0, "\(members)")
    }

    @Test func weReadGzipToolOutput() async throws {
        let dir = try makeTemporaryDirectory(prefix: "koper-gzip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleBytes(count: 777_777, seed: 33)
        try write(input, to: "\(dir)/data")
        // gzip -c stores the file name in the header (FNAME): exercises header fields zlib must skip.
        let result = try await Command.shell("gzip -c -9 '\(dir)/data' > '\(dir)/data.gz'", timeout: 60)
        #expect(result.status == 0, "\(result)")
        #expect(try Gzip.decompress(read("\(dir)/data.gz"), limit: input.count) == input)
    }

    @Test func concatenatedMembersDecodeToTheConcatenation() async throws {
        let dir = try makeTemporaryDirectory(prefix: "koper-gzip")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = sampleBytes(count: 100_000, seed: 41)
        let b = sampleBytes(count: 3, seed: 42)
        let c = sampleBytes(count: 250_000, seed: 43, noise: true)
        try write(a, to: "\(dir)/a")
        try write(b, to: "\(dir)/b")
        try write(c, to: "\(dir)/c")
        // The tool's concatenation (`gzip -c a b c` writes one member per file) …
        let result = try await Command.shell("cd '\(dir)' && gzip -c a b c > tool.gz", timeout: 60)
        #expect(result.status == 0, "\(result)")
        #expect(try Gzip.decompress(read("\(dir)/tool.gz"), limit: 1 << 20) == a + b + c)

        // … and ours, mixing our members with the tool's and an empty member; zcat agrees.
        let ours = try Gzip.compress(a) + Gzip.compress([]) + read("\(dir)/tool.gz") + Gzip.compress(b, level: 1)
        #expect(try Gzip.decompress(ours, limit: 1 << 20) == a + a + b + c + b)
        try write(ours, to: "\(dir)/ours.gz")
        let cat = try await Command.shell(
            "gzip -t '\(dir)/ours.gz' && zcat '\(dir)/ours.gz' > '\(dir)/ours.out'",
            timeout: 60
        )
        #expect(cat.status == 0, "\(cat)")
        #expect(try read("\(dir)/ours.out") == a + a + b + c + b)
    }
}
