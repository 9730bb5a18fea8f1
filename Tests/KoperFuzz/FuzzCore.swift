// The fuzzing core shared by the CI-sized runs (Swift Testing, in HTTPCoreTests, RPMTests and KoperJSONTests) and the
// benchmark-style runs of bench/fuzz (docs/decisions/0012-fuzzing.md): a seeded generator, a mutator over valid seed
// inputs, and a loop that checks every input against a target's invariants. Deterministic: the same seed gives the
// same inputs in the same order.

/// splitmix64, seeded, so that every run can be repeated input for input.
public struct FuzzRNG: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (bound > 0).
    public mutating func below(_ bound: Int) -> Int {
        Int(self.next() % UInt64(bound))
    }

    public mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        self.below(denominator) < numerator
    }
}

/// FNV-1a over the input: targets derive their per-input choices (limits, chunk sizes) from it, so that a check
/// depends on the input bytes alone and a finding can be replayed from its bytes.
public func fuzzHash(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01B3
    }
    return h
}

/// What one input did.
public enum FuzzOutcome: Sendable, Equatable {
    /// The parser accepted the input and every invariant held.
    case accepted
    /// The parser refused the input with an error, as it should, and every invariant held.
    case rejected
    /// An invariant broke (the message says which).
    case violation(String)
}

/// A parser under fuzzing: valid seeds, tokens worth inserting, and the invariants checked on one input.
public protocol FuzzTarget: Sendable {
    var name: String { get }
    /// Valid inputs the mutations start from.
    var seeds: [[UInt8]] { get }
    /// Tokens of the format (inserted or overwritten by the mutator).
    var dictionary: [[UInt8]] { get }
    /// Runs the parser(s) on `input` and checks the invariants. Must depend on the bytes of `input` only.
    func check(_ input: [UInt8]) -> FuzzOutcome
    /// A mutation that knows the format (e.g. blows up a length field); false when it did nothing.
    func mutateStructured(_ bytes: inout [UInt8], _ rng: inout FuzzRNG) -> Bool
}

extension FuzzTarget {
    public func mutateStructured(_ bytes: inout [UInt8], _ rng: inout FuzzRNG) -> Bool { false }
}

/// An input that broke an invariant.
public struct FuzzFinding: Sendable, CustomStringConvertible {
    public let target: String
    public let message: String
    public let input: [UInt8]

    public var description: String {
        "\(self.target): \(self.message); input (\(self.input.count) bytes): \(fuzzEscaped(self.input.prefix(400)))"
    }
}

/// A Swift-literal-like rendering of bytes (printable ASCII as is, the rest as \u{XX}), for reports.
public func fuzzEscaped(_ bytes: some Sequence<UInt8>) -> String {
    var out = ""
    for b in bytes {
        switch b {
        case 0x5C: out += "\\\\"
        case 0x22: out += "\\\""
        case 0x0D: out += "\\r"
        case 0x0A: out += "\\n"
        case 0x09: out += "\\t"
        case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let hex = String(b, radix: 16)
            out += "\\u{" + (hex.count == 1 ? "0" : "") + hex + "}"
        }
    }
    return out
}

/// Counts of one run.
public struct FuzzReport: Sendable, CustomStringConvertible {
    public let target: String
    public var inputs = 0
    public var accepted = 0
    public var rejected = 0
    public var violations = 0
    /// The first findings (at most `keep` of them).
    public var findings: [FuzzFinding] = []
    public var seconds = 0.0

    public var description: String {
        let rate = self.seconds > 0 ? Int(Double(self.inputs) / self.seconds) : 0
        return "\(self.target): \(self.inputs) inputs in \(formatSeconds(self.seconds)) s (\(rate)/s), "
            + "accepted \(self.accepted), rejected \(self.rejected), findings \(self.violations)"
    }
}

func formatSeconds(_ s: Double) -> String {
    let tenths = Int((s * 100).rounded())
    return "\(tenths / 100).\(tenths % 100 < 10 ? "0" : "")\(tenths % 100)"
}

/// The mutation loop: `inputs` inputs, each a seed (or an earlier accepted mutant) with 1–6 stacked mutations.
/// Accepted mutants join a bounded pool, so later inputs start from deeper valid structure.
public enum Fuzzer {
    public static func run(
        _ target: some FuzzTarget,
        inputs: Int,
        seed: UInt64,
        keep: Int = 10,
        maxInputBytes: Int = 1 << 16,
        clock: () -> Double = { 0 },
        beforeCheck: ([UInt8]) -> Void = { _ in }
    ) -> FuzzReport {
        var report = FuzzReport(target: target.name)
        var rng = FuzzRNG(seed: seed)
        let seeds = target.seeds
        precondition(!seeds.isEmpty, "a fuzz target needs seeds")
        var pool: [[UInt8]] = []
        let poolSize = 512
        let start = clock()
        // Every seed is checked unmutated first: a seed that is not accepted is a broken target.
        for s in seeds {
            beforeCheck(s)
            report.record(target.check(s), input: s, keep: keep)
        }
        for _ in 0..<max(0, inputs - seeds.count) {
            let base: [UInt8]
            if !pool.isEmpty, rng.chance(1, in: 2) {
                base = pool[rng.below(pool.count)]
            } else {
                base = seeds[rng.below(seeds.count)]
            }
            var input = base
            Mutator.mutate(&input, target: target, seeds: seeds, pool: pool, rng: &rng, maxBytes: maxInputBytes)
            beforeCheck(input)
            let outcome = target.check(input)
            report.record(outcome, input: input, keep: keep)
            if outcome == .accepted, input != base {
                if pool.count < poolSize {
                    pool.append(input)
                } else {
                    pool[rng.below(poolSize)] = input
                }
            }
        }
        report.seconds = clock() - start
        return report
    }
}

extension FuzzReport {
    mutating func record(_ outcome: FuzzOutcome, input: [UInt8], keep: Int) {
        self.inputs += 1
        switch outcome {
        case .accepted: self.accepted += 1
        case .rejected: self.rejected += 1
        case .violation(let message):
            self.violations += 1
            if self.findings.count < keep {
                self.findings.append(FuzzFinding(target: self.target, message: message, input: input))
            }
        }
    }
}

/// Byte-level mutations: bit flips, byte and integer overwrites with boundary values, deletion, insertion,
/// duplication, truncation, splicing with another input, dictionary tokens, blown-up decimal and hex numbers, and
/// the target's own structured mutation.
public enum Mutator {
    static let interestingBytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 9, 10, 13, 32, 34, 45, 48, 58, 59, 92, 0xC3, 0xED]
    static let interesting32: [UInt32] = [
        0, 1, 2, 7, 8, 15, 16, 17, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000, 0x7FFF_FFFF,
        0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF, 0x0400_0000, 0x4000_0000,
    ]
    static let decimalBlowUps: [String] = [
        "0", "-1", "1", "00", "65536", "4294967295", "4294967296", "9223372036854775807", "9223372036854775808",
        "18446744073709551616", "99999999999999999999999999", "999999999999999", "1000000000000000", "1e400",
        "-1e400", "1e-400", "0.0000000000000000000001", "2.5e308", "-0", "-9223372036854775809",
    ]
    static let hexBlowUps: [String] = [
        "0", "1", "f", "ffffffff", "7fffffffffffffff", "ffffffffffffffff", "fffffffffffffff", "1000000000000000",
        "00000000000000001", "FFFFFFFFFFFFFF",
    ]

    public static func mutate(
        _ bytes: inout [UInt8],
        target: some FuzzTarget,
        seeds: [[UInt8]],
        pool: [[UInt8]],
        rng: inout FuzzRNG,
        maxBytes: Int
    ) {
        let rounds = 1 + rng.below(rng.chance(1, in: 4) ? 6 : 2)
        for _ in 0..<rounds {
            self.mutateOnce(&bytes, target: target, seeds: seeds, pool: pool, rng: &rng)
            if bytes.count > maxBytes { bytes.removeLast(bytes.count - maxBytes) }
        }
    }

    static func mutateOnce(
        _ bytes: inout [UInt8],
        target: some FuzzTarget,
        seeds: [[UInt8]],
        pool: [[UInt8]],
        rng: inout FuzzRNG
    ) {
        let n = bytes.count
        switch rng.below(16) {
        case 0 where n > 0:
            bytes[rng.below(n)] ^= 1 << UInt8(rng.below(8))
        case 1 where n > 0:
            bytes[rng.below(n)] = UInt8(truncatingIfNeeded: rng.next())
        case 2 where n > 0:
            bytes[rng.below(n)] = self.interestingBytes[rng.below(self.interestingBytes.count)]
        case 3 where n >= 4:
            // A 32-bit big-endian field (aligned half of the time) gets a boundary value.
            var p = rng.below(n - 3)
            if rng.chance(1, in: 2) { p &= ~3 }
            let v = self.interesting32[rng.below(self.interesting32.count)]
            for k in 0..<4 { bytes[p + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
        case 4 where n >= 4:
            // A 32-bit big-endian field moves by a small amount.
            let p = rng.below(n - 3) & ~3
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 8 | UInt32(bytes[p + k]) }
            v = v &+ UInt32(truncatingIfNeeded: rng.below(33) - 16)
            for k in 0..<4 { bytes[p + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
        case 5 where n > 0:
            let start = rng.below(n)
            let length = 1 + rng.below(min(n - start, rng.chance(1, in: 4) ? 256 : 8))
            bytes.removeSubrange(start..<(start + length))
        case 6:
            let count = 1 + rng.below(16)
            let insert = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            bytes.insert(contentsOf: insert, at: rng.below(n + 1))
        case 7 where n > 0:
            // Duplicate a range, sometimes many times (long lines, many fields, many parts).
            let start = rng.below(n)
            let length = 1 + rng.below(min(n - start, 64))
            let piece = Array(bytes[start..<(start + length)])
            let times = rng.chance(1, in: 4) ? 1 + rng.below(200) : 1
            var repeated: [UInt8] = []
            for _ in 0..<times { repeated += piece }
            bytes.insert(contentsOf: repeated, at: rng.below(n + 1))
        case 8 where n > 0:
            bytes.removeLast(1 + rng.below(n))
        case 9:
            // Splice: our prefix, another input's suffix.
            let other =
                !pool.isEmpty && rng.chance(1, in: 2) ? pool[rng.below(pool.count)] : seeds[rng.below(seeds.count)]
            let cut = rng.below(n + 1)
            let otherCut = rng.below(other.count + 1)
            bytes = Array(bytes[..<cut]) + other[otherCut...]
        case 10, 11:
            let dictionary = target.dictionary
            guard !dictionary.isEmpty else { return }
            let token = dictionary[rng.below(dictionary.count)]
            let p = rng.below(n + 1)
            if rng.chance(1, in: 2) || p + token.count > n {
                bytes.insert(contentsOf: token, at: p)
            } else {
                bytes.replaceSubrange(p..<(p + token.count), with: token)
            }
        case 12:
            self.blowUpNumber(&bytes, hex: false, rng: &rng)
        case 13:
            self.blowUpNumber(&bytes, hex: true, rng: &rng)
        default:
            if !target.mutateStructured(&bytes, &rng), n > 0 {
                bytes[rng.below(n)] ^= 1 << UInt8(rng.below(8))
            }
        }
    }

    /// Replaces a run of decimal (or hex) digits with a boundary number: declared lengths, counts and chunk sizes
    /// blown up, zeroed, made negative or too long to fit.
    static func blowUpNumber(_ bytes: inout [UInt8], hex: Bool, rng: inout FuzzRNG) {
        func isDigit(_ b: UInt8) -> Bool {
            (b >= 48 && b <= 57) || (hex && ((b >= 65 && b <= 70) || (b >= 97 && b <= 102)))
        }
        guard !bytes.isEmpty else { return }
        var p = rng.below(bytes.count)
        var tries = 0
        while !isDigit(bytes[p]) && tries < bytes.count {
            p = (p + 1) % bytes.count
            tries += 1
        }
        guard isDigit(bytes[p]) else { return }
        var start = p
        var end = p
        while start > 0, isDigit(bytes[start - 1]) { start -= 1 }
        while end < bytes.count, isDigit(bytes[end]) { end += 1 }
        let table = hex ? self.hexBlowUps : self.decimalBlowUps
        bytes.replaceSubrange(start..<end, with: Array(table[rng.below(table.count)].utf8))
    }
}

/// Chunk sizes for incremental feeding, derived from the input: mostly small (1–16 bytes, so every delimiter and
/// line end straddles some boundary), sometimes large.
func chunkPlan(for input: [UInt8]) -> [Int] {
    var rng = FuzzRNG(seed: fuzzHash(input) ^ 0x5EED)
    if rng.chance(1, in: 8) { return [1] }
    return (0..<32).map { _ in rng.chance(1, in: 8) ? 1 + rng.below(512) : 1 + rng.below(16) }
}

/// Splits `input` by `plan` (cycled).
func chunks(_ input: [UInt8], plan: [Int]) -> [ArraySlice<UInt8>] {
    var result: [ArraySlice<UInt8>] = []
    var position = 0
    var k = 0
    while position < input.count {
        let end = min(input.count, position + plan[k % plan.count])
        result.append(input[position..<end])
        position = end
        k += 1
    }
    return result
}
