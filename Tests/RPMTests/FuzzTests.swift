// A short seeded fuzz run of the RPM header reader (bench/fuzz runs ≥ 1,000,000 inputs), and the findings of those
// runs as regression tests. Synthetic seeds: no rpm tools needed.
import KoperFuzz
import RPM
import Testing

@Suite struct RPMReaderFuzzTests {
    /// Seeds keep every invariant; most are accepted (a few exceed the small limits some inputs are checked under).
    @Test func seedsKeepTheInvariants() {
        let target = RPMReaderFuzzTarget()
        var accepted = 0
        for seed in target.seeds {
            let outcome = target.check(seed)
            #expect(outcome == .accepted || outcome == .rejected, "\(outcome): \(fuzzEscaped(seed))")
            if outcome == .accepted { accepted += 1 }
        }
        #expect(accepted * 2 > target.seeds.count)
    }

    @Test func mutatedPackagesKeepTheInvariants() {
        let report = Fuzzer.run(RPMReaderFuzzTarget(), inputs: 20_000, seed: 0x5250_4D21)
        #expect(report.violations == 0, "\(report.findings)")
        #expect(report.accepted > 500, "\(report)")
        #expect(report.rejected > 2_000, "\(report)")
    }
}
