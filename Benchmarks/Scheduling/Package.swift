// swift-tools-version:6.0
//
// Benchmark of the Scheduling module: time per dispatch decision and memory per queued task (issue 4).
// A separate package so that benchmark code never enters the product graph; run it with bench/scheduler-bench.
import PackageDescription

// `.package(path: "../..")` is identified by the repository's directory name, whatever the checkout is called.
let rootIdentity = Context.packageDirectory.split(separator: "/").dropLast(2).last.map(String.init) ?? "main"

let package = Package(
    name: "SchedulingBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [
        /** scheduler-bench: fills a Scheduler with 100,000 tasks and times decisions under caps. */
        .executableTarget(
            name: "scheduler-bench",
            dependencies: [.product(name: "Scheduling", package: rootIdentity)],
            path: "Sources/SchedulerBench"
        )
    ],
    swiftLanguageModes: [.v6]
)
