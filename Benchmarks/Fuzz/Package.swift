// swift-tools-version:6.0
//
// Fuzzing of the parsers (issue 10, docs/decisions/0012-fuzzing.md), outside the product graph; run it with
// bench/fuzz. A package of its own with no dependencies: its parser and harness targets are the root package's own
// source directories (symbolic links under Sources/), so the fuzzers build without resolving the root package's
// dependencies, and with -sanitize=fuzzer,address instrumenting exactly the parsers and the harness.
//
//   koper-fuzz      seeded mutation engine: N inputs per target, counts, findings and crashes saved as files
//   fuzz-http …     libFuzzer entry points (build with -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
import PackageDescription

let package = Package(
    name: "KoperFuzzing",
    platforms: [.macOS(.v15)],
    targets: [
        .target(name: "HTTPCore"),
        .target(name: "RPM"),
        .target(name: "KoperJSON"),
        .target(name: "KoperFuzz", dependencies: ["HTTPCore", "RPM", "KoperJSON"]),
        .executableTarget(name: "koper-fuzz", dependencies: ["KoperFuzz"], path: "Sources/KoperFuzzMain"),
        .executableTarget(name: "fuzz-http", dependencies: ["KoperFuzz"], path: "Sources/FuzzHTTP"),
        .executableTarget(name: "fuzz-multipart", dependencies: ["KoperFuzz"], path: "Sources/FuzzMultipart"),
        .executableTarget(name: "fuzz-rpm", dependencies: ["KoperFuzz"], path: "Sources/FuzzRPM"),
        .executableTarget(name: "fuzz-json", dependencies: ["KoperFuzz"], path: "Sources/FuzzJSON"),
    ],
    swiftLanguageModes: [.v6]
)
