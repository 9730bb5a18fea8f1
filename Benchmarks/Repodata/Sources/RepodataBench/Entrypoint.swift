// repodata-bench: the timed pieces of bench/repodata-bench (issue 5, item 4).
//
//   repodata-bench createrepo [--update] DIR
//       One CreateRepo.run, exactly what `koper-backend createrepo [--update] DIR` will do; prints nothing on
//       success. The script times whole invocations of it (a cold process: start-up, index load, scan,
//       hashing of new files, writing) against createrepo_c.
//   repodata-bench inprocess [--no-open-checksums] DIR RPM...
//       An in-process RepoPublisher on DIR: one warm-up publish (loads or builds the index), then for each RPM:
//       hard-link it into DIR and publish (timed); then remove them all and publish once more. Prints the
//       times, how many files each publish hashed, and the size of the written metadata.
import Logging
import RepoPublisher

#if canImport(Glibc)
    import Glibc
#endif

@main
struct RepodataBench {
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let command = arguments.first else { usage() }
        arguments.removeFirst()
        do {
            switch command {
            case "createrepo":
                let update = arguments.contains("--update")
                let rest = arguments.filter { $0 != "--update" }
                guard rest.count == 1 else { usage() }
                let result = try CreateRepo.run(directory: rest[0], update: update)
                if getenv("REPODATA_BENCH_VERBOSE") != nil {
                    let phases = result.phaseSeconds.map { "\($0.phase) \(ms($0.seconds))" }.joined(separator: ", ")
                    print(
                        "createrepo: \(result.packageCount) packages, hashed \(result.hashedFiles), "
                            + "rendered \(result.renderedPackages), \(ms(result.seconds)) [\(phases)]"
                    )
                }
            case "inprocess":
                let openChecksums = !arguments.contains("--no-open-checksums")
                let rest = arguments.filter { $0 != "--no-open-checksums" }
                guard rest.count >= 2 else { usage() }
                try await inProcess(directory: rest[0], rpms: Array(rest.dropFirst()), openChecksums: openChecksums)
            default:
                usage()
            }
        } catch {
            printError("repodata-bench: \(error)\n")
            exit(2)
        }
    }

    static func inProcess(directory: String, rpms: [String], openChecksums: Bool) async throws {
        let publisher = RepoPublisher(
            logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }),
            configuration: RepoPublisherConfiguration(openChecksums: openChecksums)
        )
        let warm = try await publisher.publish(directory: directory)
        print(
            "in-process warm-up publish: \(warm.packageCount) packages, hashed \(warm.hashedFiles), \(ms(warm.seconds))"
        )
        // Let files written just now stop being "racy" (re-hashed once more when modified < 20 ms before).
        usleep(200_000)
        var times: [Double] = []
        var linked: [String] = []
        var hashed: [Int] = []
        for rpm in rpms {
            let name = String(rpm.split(separator: "/").last!)
            let target = directory + "/" + name
            guard link(rpm, target) == 0 else {
                printError("repodata-bench: link \(rpm) -> \(target) failed (errno \(errno))\n")
                exit(2)
            }
            linked.append(target)
            let start = monotonic()
            let result = try await publisher.publish(directory: directory)
            let elapsed = monotonic() - start
            times.append(elapsed)
            if getenv("REPODATA_BENCH_VERBOSE") != nil {
                let phases = result.phaseSeconds.map { "\($0.phase) \(ms($0.seconds))" }.joined(separator: ", ")
                print("  publish: hashed \(result.hashedFiles), \(ms(elapsed)) [\(phases)]")
            }
            hashed.append(result.hashedFiles)
            usleep(150_000)
        }
        for path in linked { unlink(path) }
        let restore = try await publisher.publish(directory: directory)
        await publisher.waitUntilIdle()
        let sorted = times.sorted()
        print(
            "in-process add-one publish (\(times.count) rounds, await to return): median \(ms(sorted[sorted.count / 2])), min \(ms(sorted.first!)), max \(ms(sorted.last!))"
        )
        print(
            "  files hashed per publish: \(hashed.map(String.init).joined(separator: " ")) (the new one, plus the "
                + "previous one when it was written less than 20 ms before it was hashed)"
        )
        print(
            "  metadata written: \(restore.records.map { "\($0.type) \($0.size) B (open \($0.openSize ?? 0) B)" }.joined(separator: ", "))"
        )
        print("  restore publish (\(linked.count) removed): \(ms(restore.seconds))")
        print("RESULT inprocess_median_ms \(sorted[sorted.count / 2] * 1000)")
    }

    static func printError(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func monotonic() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    static func ms(_ seconds: Double) -> String {
        let value = (seconds * 10000).rounded() / 10
        return "\(value) ms"
    }

    static func usage() -> Never {
        printError(
            "usage: repodata-bench createrepo [--update] DIR | repodata-bench inprocess [--no-open-checksums] DIR RPM...\n"
        )
        exit(2)
    }
}
