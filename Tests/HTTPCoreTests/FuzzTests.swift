// A short seeded fuzz run of the request and multipart parsers (bench/fuzz runs ≥ 1,000,000 inputs per target), and
// the findings of those runs as regression tests.
import HTTPCore
import KoperFuzz
import Testing

@Suite struct HTTPParserFuzzTests {
    /// Seeds keep every invariant; most are accepted (a few exceed the small limits some inputs are checked under).
    @Test func seedsKeepTheInvariants() {
        let target = HTTPParserFuzzTarget()
        var accepted = 0
        for seed in target.seeds {
            let outcome = target.check(seed)
            #expect(outcome == .accepted || outcome == .rejected, "\(outcome): \(fuzzEscaped(seed))")
            if outcome == .accepted { accepted += 1 }
        }
        #expect(accepted * 2 > target.seeds.count)
    }

    @Test func mutatedRequestStreamsKeepTheInvariants() {
        let report = Fuzzer.run(HTTPParserFuzzTarget(), inputs: 30_000, seed: 0x4854_5450)
        #expect(report.violations == 0, "\(report.findings)")
        // The mutants reach both sides: accepted requests and refusals.
        #expect(report.accepted > 3_000, "\(report)")
        #expect(report.rejected > 3_000, "\(report)")
    }
}

@Suite struct MultipartFuzzTests {
    /// Seeds keep every invariant; most are accepted (a few exceed the small limits some inputs are checked under).
    @Test func seedsKeepTheInvariants() {
        let target = MultipartFuzzTarget()
        var accepted = 0
        for seed in target.seeds {
            let outcome = target.check(seed)
            #expect(outcome == .accepted || outcome == .rejected, "\(outcome): \(fuzzEscaped(seed))")
            if outcome == .accepted { accepted += 1 }
        }
        #expect(accepted * 2 > target.seeds.count)
    }

    @Test func mutatedBodiesKeepTheInvariants() {
        let report = Fuzzer.run(MultipartFuzzTarget(), inputs: 30_000, seed: 0x4D50_4152)
        #expect(report.violations == 0, "\(report.findings)")
        #expect(report.accepted > 3_000, "\(report)")
        #expect(report.rejected > 3_000, "\(report)")
    }
}

/// Findings of bench/fuzz, kept as regression tests.
@Suite struct HTTPParserFuzzFindings {
    /// Finding (http, mutation engine, 200,000-input run): a chunk-size line of exactly `maxChunkLine` bytes was accepted when its
    /// CRLF arrived in one read, but refused (400 "chunk size line too long") when a read ended between CR and LF:
    /// the pending CR was counted as part of the line.
    @Test func chunkSizeLineAtTheLimitIsAcceptedWhateverTheSplit() throws {
        let limits = HTTPParserLimits(maxChunkLine: 7)
        let stream = Array(
            "PUT /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n".utf8
        )
        let splitAfterCR = try #require(firstOffset(of: Array("5;ext=1\r".utf8), in: stream)) + 8
        for cuts in [[stream.count], [splitAfterCR, stream.count], Array(1...stream.count)] {
            var parser = HTTPRequestParser(limits: limits)
            var queue = ByteQueue()
            var body: [UInt8] = []
            var ended = false
            var start = 0
            for cut in cuts {
                queue.append(contentsOf: stream[start..<cut])
                start = cut
                while let event = try parser.next(&queue) {
                    if case .body(let bytes) = event { body += bytes }
                    if case .end = event { ended = true }
                }
            }
            #expect(ended, "cuts \(cuts.count)")
            #expect(body == Array("hello".utf8))
        }
        // One byte more is still refused, however it arrives.
        let tooLong = Array(
            "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=12\r".utf8
        )
        var parser = HTTPRequestParser(limits: limits)
        var queue = ByteQueue(tooLong)
        #expect(throws: HTTPParseError(status: 400, reason: "chunk size line too long")) {
            while try parser.next(&queue) != nil {}
        }
    }
}

private func firstOffset(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
    guard needle.count <= bytes.count else { return nil }
    return (0...(bytes.count - needle.count)).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }
}

@Suite struct MultipartFuzzFindings {
    /// Finding (multipart, 1,000,000-input run): with an invalid boundary and an empty body, `finish()` without a
    /// `feed` said "no boundary found in body" while feeding the empty body first said "invalid boundary".
    @Test func invalidBoundaryIsReportedForAnEmptyBody() {
        for boundary in ["", "ends in space ", String(repeating: "b", count: 71), "bad\u{0}byte"] {
            var parser = MultipartParser(boundary: boundary)
            #expect(throws: MultipartError(message: "invalid boundary")) { try parser.finish() }
            var fed = MultipartParser(boundary: boundary)
            #expect(throws: MultipartError(message: "invalid boundary")) { _ = try fed.feed([UInt8]()) }
        }
    }
}
