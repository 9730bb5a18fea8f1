// koper-fuzz: the seeded mutation engine of bench/fuzz.
//
//   koper-fuzz [--target NAME]... [--inputs N] [--seed S] [--out DIR]
//   koper-fuzz --write-corpus DIR        seeds (DIR/NAME/seed-K) and dictionaries (DIR/NAME.dict) for libFuzzer
//   koper-fuzz --replay FILE --target NAME
//
// Prints one line per target: inputs, seconds, accepted, rejected, findings, crashes. A finding (broken invariant) is
// saved as OUT/finding-NAME-K.bin; a trap is caught by a signal handler that saves the input being checked as
// OUT/crash-NAME.bin, prints a CRASH line and exits 3. Exit status: 0 clean, 1 findings, 2 usage, 3 crash.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KoperFuzz

nonisolated(unsafe) var currentInput = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 1 << 17)
nonisolated(unsafe) var currentCount = 0
nonisolated(unsafe) var crashPath: UnsafeMutablePointer<CChar>? = nil

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return }
    bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buffer[..<n]
    }
    return out
}

/// Async-signal-safe: writes the input under check and exits.
func onCrash(_ signal: Int32) {
    if let path = crashPath {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 {
            _ = write(fd, currentInput.baseAddress, currentCount)
            close(fd)
        }
        let message = "koper-fuzz: CRASH (signal) — input saved as "
        _ = write(2, message, message.utf8.count)
        _ = write(2, path, strlen(path))
        _ = write(2, "\n", 1)
    }
    _exit(3)
}

func usage(_ message: String) -> Never {
    print("koper-fuzz: \(message)")
    print("usage: koper-fuzz [--target NAME]... [--inputs N] [--seed S] [--out DIR] | --write-corpus DIR | --replay FILE --target NAME")
    exit(2)
}

var names: [String] = []
var inputs = 1_000_000
var seed: UInt64 = 0x4B6F_7065_7246_757A
var out = "."
var corpus: String? = nil
var replay: String? = nil
var arguments = CommandLine.arguments.dropFirst()
@MainActor func value(_ option: String) -> String {
    guard let v = arguments.popFirst() else { usage("\(option) needs a value") }
    return v
}
while let argument = arguments.popFirst() {
    switch argument {
    case "--target": names.append(value(argument))
    case "--inputs":
        guard let n = Int(value(argument)) else { usage("--inputs needs a number") }
        inputs = n
    case "--seed":
        guard let n = UInt64(value(argument)) else { usage("--seed needs a number") }
        seed = n
    case "--out": out = value(argument)
    case "--write-corpus": corpus = value(argument)
    case "--replay": replay = value(argument)
    default: usage("unknown argument \(argument)")
    }
}
let known = allFuzzTargets.map(\.name)
for name in names where !known.contains(name) { usage("unknown target \(name) (known: \(known.joined(separator: ", ")))") }
let targets = names.isEmpty ? allFuzzTargets : allFuzzTargets.filter { names.contains($0.name) }

if let corpus {
    mkdir(corpus, 0o755)
    for target in targets {
        mkdir("\(corpus)/\(target.name)", 0o755)
        for (k, s) in target.seeds.enumerated() { writeFile("\(corpus)/\(target.name)/seed-\(k)", s) }
        var dict = ""
        for (k, token) in target.dictionary.enumerated() {
            dict += "t\(k)=\"" + token.map { String(format2: $0) }.joined() + "\"\n"
        }
        writeFile("\(corpus)/\(target.name).dict", Array(dict.utf8))
    }
    exit(0)
}

if let replay {
    guard targets.count == 1, let bytes = readFile(replay) else { usage("--replay needs one --target and a readable file") }
    let outcome = targets[0].check(bytes)
    print("koper-fuzz: \(targets[0].name) \(replay): \(outcome)")
    exit(outcome == .accepted || outcome == .rejected ? 0 : 1)
}

for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE] { signal(sig, onCrash) }
var status: Int32 = 0
for target in targets {
    crashPath = strdup("\(out)/crash-\(target.name).bin")
    let report = Fuzzer.run(
        target,
        inputs: inputs,
        seed: seed,
        clock: now,
        beforeCheck: { input in
            let n = min(input.count, currentInput.count)
            _ = UnsafeMutableBufferPointer(rebasing: currentInput[..<n]).initialize(from: input[..<n])
            currentCount = n
        }
    )
    print("koper-fuzz: \(report), crashes 0")
    for (k, finding) in report.findings.enumerated() {
        let path = "\(out)/finding-\(target.name)-\(k).bin"
        writeFile(path, finding.input)
        print("koper-fuzz:   finding \(k) (\(path)): \(finding.message)")
    }
    if report.violations > 0 { status = 1 }
}
exit(status)

extension String {
    /// `\xHH` for libFuzzer dictionaries.
    init(format2 byte: UInt8) {
        let hex = String(byte, radix: 16)
        self = "\\x" + (hex.count == 1 ? "0" : "") + hex
    }
}
