// swift-tools-version:6.0
//
// Benchmark of repodata publishing (issue 5, item 4): the in-process RepoPublisher and the standalone
// CreateRepo command against createrepo_c. A separate package so that benchmark code never enters the
// product graph; run it with bench/repodata-bench.
import PackageDescription

// The package that provides the `RepoPublisher` library product: the repository root by default.
// REPODATA_BENCH_ROOT overrides it (a scratch package exporting the product, until the root does).
// `.package(path:)` is identified by the directory's last path component.
let rootPath = Context.environment["REPODATA_BENCH_ROOT"] ?? "../.."
let rootIdentity: String = {
    if rootPath == "../.." {
        return Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "main"
    }
    return rootPath.split(separator: "/").last.map(String.init) ?? rootPath
}()

let package = Package(
    name: "RepodataBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: rootPath),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        /** repodata-bench: `createrepo [--update] DIR` (CreateRepo.run) and the in-process add-one publish. */
        .executableTarget(
            name: "repodata-bench",
            dependencies: [
                .product(name: "RepoPublisher", package: rootIdentity),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/RepodataBench"
        )
    ],
    swiftLanguageModes: [.v6]
)
