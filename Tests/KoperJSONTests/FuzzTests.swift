// A short seeded fuzz run of the JSON parser (bench/fuzz runs ≥ 1,000,000 inputs), and the findings of those runs as
// regression tests.
import KoperFuzz
import KoperJSON
import Testing

@Suite struct JSONFuzzTests {
    /// Seeds keep every invariant; most are accepted (a few exceed the small limits some inputs are checked under).
    @Test func seedsKeepTheInvariants() {
        let target = JSONFuzzTarget()
        var accepted = 0
        for seed in target.seeds {
            let outcome = target.check(seed)
            #expect(outcome == .accepted || outcome == .rejected, "\(outcome): \(fuzzEscaped(seed))")
            if outcome == .accepted { accepted += 1 }
        }
        #expect(accepted * 2 > target.seeds.count)
    }

    @Test func mutatedDocumentsRoundTrip() {
        let report = Fuzzer.run(JSONFuzzTarget(), inputs: 30_000, seed: 0x4A53_4F4E)
        #expect(report.violations == 0, "\(report.findings)")
        #expect(report.accepted > 3_000, "\(report)")
        #expect(report.rejected > 3_000, "\(report)")
    }
}

/// Findings of bench/fuzz, kept as regression tests.
@Suite struct JSONFuzzFindings {
    /// Finding (json, first mutation run): a number beyond Double's range (`1e400`) parsed as infinity, which the
    /// serialiser writes as `null`, so parse → serialise → parse changed the value (`{"dup":1,"dup":1e400}` came back
    /// as `{"dup":null}`). Such numbers are now refused.
    @Test func numbersBeyondDoubleAreRefused() throws {
        for text in [
            "1e400", "-1e400", "[1,2.5e308]", #"{"dup":1,"dup":1e400,"":null}"#,
            "1" + String(repeating: "0", count: 400),
        ] {
            #expect(throws: JSONParseError.self, "\(text)") { try JSONParser.parse(Array(text.utf8)) }
            do {
                _ = try JSONParser.parse(Array(text.utf8))
            } catch {
                #expect(error.message == "number out of range", "\(text)")
            }
        }
        // Large but finite numbers, and underflow to zero, still parse and round-trip.
        for text in ["1e308", "-1.7976931348623157e308", "18446744073709551616", "1e-400", "9223372036854775807"] {
            let value = try? JSONParser.parse(Array(text.utf8))
            #expect(value != nil, "\(text)")
            if let value { #expect(try JSONParser.parse(value.serialized()) == value, "\(text)") }
        }
    }
}
