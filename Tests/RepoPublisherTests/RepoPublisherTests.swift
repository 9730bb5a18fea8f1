import Foundation
import Glibc
import Gzip
import LibCrypto
import Logging
import RepoPublisher
import Repodata
import Synchronization
import TestSupport
import Testing

private let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Files placed this close before a publish count as "racy" and are hashed again at the next one; tests
/// that count hashed files wait this long after placing files.
private func settle() async throws {
    try await Task.sleep(for: .milliseconds(60))
}

private func names(inPrimary primary: [UInt8]) -> [String] {
    text(primary).components(separatedBy: "\n").filter { $0.hasPrefix("  <name>") }.map {
        String($0.dropFirst("  <name>".count).dropLast("</name>".count))
    }
}

@Suite(
    "Repository publishing",
    .requires(publisherTools),
    .serialized
)
struct RepoPublisherTests {
    @Test func fullGenerationMatchesCreaterepoCByteForByte() throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("compare")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        try place(fixtures.feature, in: directory, subdirectory: "feature/x86_64")
        try place([fixtures.base[0]], in: directory, subdirectory: "dup")  // same file name, other directory
        try Data("not an rpm".utf8).write(to: URL(fileURLWithPath: directory + "/garbage.rpm"))

        let result = try CreateRepo.run(directory: directory, update: false, logger: quiet)
        #expect(result.packageCount == 36)
        #expect(result.hashedFiles == 37)
        #expect(result.rejected.map(\.href) == ["garbage.rpm"])
        #expect(result.wroteMetadata)
        try expectSameDocuments(directory)

        // repomd.xml: createrepo_c's structure; the open values equal createrepo_c's (identical XML), the
        // compressed ones describe our files.
        let reference = try createrepoReference(directory)
        defer { try? FileManager.default.removeItem(atPath: reference) }
        let ours = try parseRepomd(directory)
        let theirs = try parseRepomd(reference)
        #expect(ours.records.map(\.type) == ["primary", "filelists", "other"])
        #expect(theirs.records.map(\.type) == ours.records.map(\.type))
        #expect(Int64(ours.revision).map { abs($0 - Int64(Date().timeIntervalSince1970)) < 120 } == true)
        for (mine, other) in zip(ours.records, theirs.records) {
            #expect(mine.openChecksum == other.openChecksum)
            #expect(mine.openSize == other.openSize)
            let path = directory + "/" + mine.href
            #expect(mine.href == "repodata/\(mine.checksum)-\(mine.type).xml.gz")
            #expect(try sha256Hex(ofFile: path) == mine.checksum)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.size] as? NSNumber)?.int64Value == mine.size)
            let mtime = Int64((attributes[.modificationDate] as! Date).timeIntervalSince1970.rounded(.down))
            #expect(mine.timestamp == mtime)
            // zlib's gzip reader (as librepo and libsolv use it) reads the concatenated members.
            let system = try run("/bin/sh", ["-c", "gzip -dc \"$0\" | sha256sum", path])
            #expect(system.output.hasPrefix(mine.openChecksum ?? "-"))
        }
        let repomd = try String(contentsOfFile: directory + "/repodata/repomd.xml", encoding: .utf8)
        #expect(
            repomd.hasPrefix(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n  <revision>"
            )
        )
        #expect(repomd.hasSuffix("  </data>\n</repomd>\n"))
    }

    @Test func addingOnePackageHashesOnlyThatPackage() async throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("add")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        try await settle()
        let publisher = RepoPublisher(logger: quiet)
        let first = try await publisher.publish(directory: directory)
        #expect(first.hashedFiles == 30 && first.added == 30 && first.packageCount == 30)

        try place([fixtures.additions[0]], in: directory)
        let second = try await publisher.publish(directory: directory)
        #expect(second.hashedFiles == 1)
        #expect(second.renderedPackages == 1)
        #expect(second.added == 1 && second.removed == 0 && second.changed == 0)
        #expect(second.packageCount == 31)
        #expect(second.wroteMetadata)
        #expect(second.records.map(\.checksum) != first.records.map(\.checksum))
        try expectSameDocuments(directory)

        // Nothing changed: nothing is rendered or written (the new file may be hashed once more: it was
        // written just before it was first hashed).
        try await settle()
        let third = try await publisher.publish(directory: directory)
        #expect(third.hashedFiles <= 1 && third.renderedPackages == 0 && !third.wroteMetadata)
        #expect(third.records.map(\.checksum) == second.records.map(\.checksum))
        let fourth = try await publisher.publish(directory: directory)
        #expect(fourth.hashedFiles == 0 && !fourth.wroteMetadata)
        await publisher.waitUntilIdle()
    }

    @Test func removingAPackageDropsIt() async throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("remove")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        try place(fixtures.feature, in: directory, subdirectory: "sub")
        try await settle()
        let publisher = RepoPublisher(logger: quiet)
        _ = try await publisher.publish(directory: directory)
        let victim = directory + "/sub/feature-pkg-data-2.5.1-7.fc39.noarch.rpm"
        try FileManager.default.removeItem(atPath: victim)
        let result = try await publisher.publish(directory: directory)
        #expect(result.removed == 1 && result.hashedFiles == 0 && result.packageCount == 34)
        #expect(!names(inPrimary: try document(directory, "primary")).contains("feature-pkg-data"))
        try expectSameDocuments(directory)
        await publisher.waitUntilIdle()
    }

    /// docs/rpm-repodata-signing.md §3.4: createrepo_c --update trusts (href, size, mtime) and keeps the
    /// old pkgid of a package re-signed in place; our index trusts the content digest.
    @Test func replacedContentWithSameSizeAndMtimeIsDetected() async throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("replace")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        try await settle()
        _ = try CreateRepo.run(directory: directory, update: false, logger: quiet)

        let victim = directory + "/" + (fixtures.base[3] as NSString).lastPathComponent
        let oldDigest = try sha256Hex(ofFile: victim)
        try flipLastByteKeepingSizeInodeAndMtime(victim)
        let newDigest = try sha256Hex(ofFile: victim)
        #expect(newDigest != oldDigest)

        let result = try CreateRepo.run(directory: directory, update: true, logger: quiet)
        #expect(
            result.changed == 1 && result.hashedFiles == 1 && result.wroteMetadata,
            "\(result.changed) \(result.hashedFiles)"
        )
        let primary = text(try document(directory, "primary"))
        #expect(primary.contains("pkgid=\"YES\">\(newDigest)</checksum>"))
        #expect(!primary.contains(oldDigest))
        try expectSameDocuments(directory)

        // The trap, for the record: createrepo_c --update on its own repository keeps the stale pkgid.
        let trap = try makeRepositoryDirectory("trap")
        defer { try? FileManager.default.removeItem(atPath: trap) }
        try place(fixtures.base, in: trap)
        #expect(try run(createrepoC, ["--no-database", "--quiet", trap]).status == 0)
        try flipLastByteKeepingSizeInodeAndMtime(trap + "/" + (fixtures.base[3] as NSString).lastPathComponent)
        #expect(try run(createrepoC, ["--no-database", "--quiet", "--update", trap]).status == 0)
        #expect(text(try document(trap, "primary")).contains(oldDigest))
    }

    /// Rewrites `path` in place with its last byte inverted, then restores its mtime to the nanosecond.
    private func flipLastByteKeepingSizeInodeAndMtime(_ path: String) throws {
        var before = stat()
        #expect(stat(path, &before) == 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 1] ^= 0xFF
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
        let times = [before.st_atim, before.st_mtim]
        #expect(utimensat(AT_FDCWD, path, times, 0) == 0)
        var after = stat()
        #expect(stat(path, &after) == 0)
        #expect(after.st_size == before.st_size && after.st_ino == before.st_ino)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
    }

    @Test func commandAndPublisherShareTheIndexAndACorruptIndexIsRebuilt() async throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("shared")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        try await settle()
        _ = try CreateRepo.run(directory: directory, update: false, logger: quiet)
        try place([fixtures.additions[1]], in: directory)
        let publisher = RepoPublisher(logger: quiet)
        let added = try await publisher.publish(directory: directory)
        #expect(added.hashedFiles == 1 && added.packageCount == 31)
        await publisher.waitUntilIdle()

        try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory + "/.koper-repodata/index"))
        try await settle()
        let rebuilt = try CreateRepo.run(directory: directory, update: true, logger: quiet)
        #expect(rebuilt.hashedFiles == 31 && rebuilt.packageCount == 31)
        try expectSameDocuments(directory)
        let again = try CreateRepo.run(directory: directory, update: true, logger: quiet)
        #expect(
            again.hashedFiles == 0 && !again.wroteMetadata,
            "hashed \(again.hashedFiles), wrote \(again.wroteMetadata)"
        )
    }

    @Test func replacedMetadataFilesStayForTheGracePeriod() throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("grace")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(Array(fixtures.base.prefix(5)), in: directory)
        let keep = RepoPublisherConfiguration(gracePeriodSeconds: 3600)
        let first = try CreateRepo.run(directory: directory, update: true, logger: quiet, configuration: keep)
        try place([fixtures.additions[2]], in: directory)
        let second = try CreateRepo.run(directory: directory, update: true, logger: quiet, configuration: keep)
        for record in first.records + second.records {
            #expect(
                FileManager.default.fileExists(atPath: directory + "/" + record.locationHref),
                "\(record.locationHref)"
            )
        }
        try place([fixtures.additions[3]], in: directory)
        let drop = RepoPublisherConfiguration(gracePeriodSeconds: 0)
        let third = try CreateRepo.run(directory: directory, update: true, logger: quiet, configuration: drop)
        let remaining = try FileManager.default.contentsOfDirectory(atPath: directory + "/repodata").sorted()
        let expected = (third.records.map { ($0.locationHref as NSString).lastPathComponent } + ["repomd.xml"]).sorted()
        #expect(remaining == expected)
    }

    /// Copr's layout: one directory per build. Unchanged directories are not listed again, and every kind
    /// of change below them is still seen.
    @Test func nestedBuildDirectoriesAreListedOnlyWhenTheyChange() async throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("nested")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (index, file) in fixtures.base.enumerated() {
            try place([file], in: directory, subdirectory: String(format: "%08d-build", index / 3))
        }
        try await settle()
        let publisher = RepoPublisher(logger: quiet)
        let first = try await publisher.publish(directory: directory)
        #expect(first.packageCount == 30 && first.directoriesRead == 11)
        try await settle()
        let unchanged = try await publisher.publish(directory: directory)
        // The first publish created repodata/ in the root just before listing it: the root is listed once more.
        #expect(unchanged.directoriesRead <= 1 && unchanged.hashedFiles == 0 && !unchanged.wroteMetadata)
        let again = try await publisher.publish(directory: directory)
        #expect(again.directoriesRead == 0 && again.hashedFiles == 0, "\(again.directoriesRead) \(again.hashedFiles)")

        // A new build directory: the root and the new directory are listed.
        try place([fixtures.additions[20]], in: directory, subdirectory: "00000100-build")
        try await settle()
        let added = try await publisher.publish(directory: directory)
        #expect(added.directoriesRead == 2 && added.added == 1 && added.hashedFiles == 1)
        try expectSameDocuments(directory)

        // A file added to an existing build directory, one removed from another.
        try place([fixtures.additions[21]], in: directory, subdirectory: "00000002-build")
        let removed = directory + "/00000003-build/" + (fixtures.base[9] as NSString).lastPathComponent
        try FileManager.default.removeItem(atPath: removed)
        try await settle()
        let changed = try await publisher.publish(directory: directory)
        #expect(changed.directoriesRead == 2 && changed.added == 1 && changed.removed == 1)
        try expectSameDocuments(directory)

        // Content replaced in place inside a directory whose listing did not change.
        let victim = directory + "/00000004-build/" + (fixtures.base[12] as NSString).lastPathComponent
        try flipLastByteKeepingSizeInodeAndMtime(victim)
        try await settle()
        let replaced = try await publisher.publish(directory: directory)
        #expect(replaced.directoriesRead == 0 && replaced.changed == 1)
        try expectSameDocuments(directory)

        // A whole build directory removed; and the listings survive into a new process (CreateRepo).
        await publisher.waitUntilIdle()
        try FileManager.default.removeItem(atPath: directory + "/00000005-build")
        try await settle()
        let dropped = try CreateRepo.run(directory: directory, update: true, logger: quiet)
        #expect(dropped.directoriesRead == 1 && dropped.removed == 3 && dropped.packageCount == 28)
        try expectSameDocuments(directory)
    }

    @Test func openChecksumsCanBeLeftOut() throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("open")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(Array(fixtures.base.prefix(4)), in: directory)
        let without = RepoPublisherConfiguration(openChecksums: false)
        let result = try CreateRepo.run(directory: directory, update: true, logger: quiet, configuration: without)
        #expect(result.records.allSatisfy { $0.openChecksum == nil && $0.openSize == nil })
        let repomd = try String(contentsOfFile: directory + "/repodata/repomd.xml", encoding: .utf8)
        #expect(!repomd.contains("open-checksum") && !repomd.contains("open-size"))
        try expectSameDocuments(directory)
    }

    @Test func theBlobFileIsCompactedWhenMostlyGarbage() throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("compact")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(Array(fixtures.base.prefix(8)), in: directory)
        let configuration = RepoPublisherConfiguration(packagesPerMember: 2, compactionThresholdBytes: 0)
        func blobFiles() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: directory + "/.koper-repodata").filter {
                $0.hasPrefix("blobs-")
            }
        }
        _ = try CreateRepo.run(directory: directory, update: true, logger: quiet, configuration: configuration)
        let first = try blobFiles()
        var generations = Set(first)
        for index in 0..<4 {
            try place([fixtures.additions[10 + index]], in: directory)
            try FileManager.default.removeItem(
                atPath: directory + "/" + (fixtures.base[index] as NSString).lastPathComponent
            )
            let result = try CreateRepo.run(
                directory: directory,
                update: true,
                logger: quiet,
                configuration: configuration
            )
            #expect(result.packageCount == 8 && result.added == 1 && result.removed == 1)
            let files = try blobFiles()
            #expect(files.count == 1)
            generations.formUnion(files)
            try expectSameDocuments(directory)
        }
        #expect(generations.count > 1)  // the blob file was rewritten under a new generation
        let again = try CreateRepo.run(directory: directory, update: true, logger: quiet, configuration: configuration)
        #expect(again.hashedFiles <= 1 && !again.wroteMetadata)
    }

    @Test(.requires(tools: "/usr/bin/dnf")) func dnfReadsTheRepository() throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("dnf")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        try place(fixtures.feature, in: directory, subdirectory: "feature")
        _ = try CreateRepo.run(directory: directory, update: false, logger: quiet)

        // A private dnf: its own config, cache, persist and log directories and an empty installroot;
        // no plugins (docs/copr-protocol.md §9).
        let home = try makeRepositoryDirectory("dnf-home")
        defer { try? FileManager.default.removeItem(atPath: home) }
        for sub in ["repos.d", "cache", "persist", "log", "plugins", "root"] {
            try FileManager.default.createDirectory(atPath: home + "/" + sub, withIntermediateDirectories: true)
        }
        let config = """
            [main]
            reposdir=\(home)/repos.d
            cachedir=\(home)/cache
            persistdir=\(home)/persist
            logdir=\(home)/log
            pluginconfpath=\(home)/plugins
            gpgcheck=0

            """
        try config.write(toFile: home + "/dnf.conf", atomically: true, encoding: .utf8)
        func dnf(_ arguments: [String]) throws -> RunResult {
            try run(
                "/usr/bin/dnf",
                [
                    "-q", "-y", "-c", home + "/dnf.conf", "--installroot=\(home)/root", "--releasever=39",
                    "--disableplugin=*", "--repofrompath=koper,file://\(directory)", "--repo=koper",
                ] + arguments
            )
        }
        let listed = try dnf(["repoquery", "-a", "--qf", "%{name}-%{epoch}:%{version}-%{release}.%{arch}"])
        #expect(listed.status == 0, "\(listed.output)")
        let got = Set(listed.output.split(separator: "\n").map(String.init))
        let primary = text(try document(directory, "primary"))
        var expected = Set<String>()
        for package in primary.components(separatedBy: "<package type=\"rpm\">").dropFirst() {
            func value(_ open: String, _ close: String) -> String {
                guard let start = package.range(of: open),
                    let end = package.range(of: close, range: start.upperBound..<package.endIndex)
                else { return "" }
                return String(package[start.upperBound..<end.lowerBound])
            }
            let version = value("<version ", "/>")
            func attribute(_ name: String) -> String {
                guard let start = version.range(of: name + "=\""),
                    let end = version.range(of: "\"", range: start.upperBound..<version.endIndex)
                else { return "" }
                return String(version[start.upperBound..<end.lowerBound])
            }
            expected.insert(
                "\(value("<name>", "</name>"))-\(attribute("epoch")):\(attribute("ver"))-\(attribute("rel")).\(value("<arch>", "</arch>"))"
            )
        }
        #expect(expected.count == 35)
        #expect(got == expected)

        // filelists.xml: a path that is not in primary.xml.
        let owner = try dnf(["repoquery", "--qf", "%{name}", "--whatprovides", "/usr/share/feature/data.txt"])
        #expect(owner.output.split(separator: "\n").map(String.init) == ["feature-pkg-data"])
        // other.xml: changelogs.
        let changelog = try dnf(["repoquery", "--changelogs", "feature-pkg.x86_64"])
        #expect(changelog.output.contains("Latest entry with <xml> & \"quotes\""))
        // An install checks the pkgid against the downloaded file.
        let install = try dnf(["install", "latin-pkg"])
        #expect(install.status == 0, "\(install.output)")
    }

    @Test func concurrentPublishesNeverShowATornRepository() async throws {
        let fixtures = try fixtures()
        let directory = try makeRepositoryDirectory("concurrent")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try place(fixtures.base, in: directory)
        let publisher = RepoPublisher(logger: quiet, configuration: RepoPublisherConfiguration(gracePeriodSeconds: 3))
        _ = try await publisher.publish(directory: directory)

        let reader = RepositoryReader(directory: directory)
        let readerTask = Task.detached { reader.run() }
        let results = try await withThrowingTaskGroup(of: PublishResult.self) { group in
            for file in fixtures.additions {
                group.addTask {
                    try place([file], in: directory)
                    return try await publisher.publish(directory: directory)
                }
            }
            var results: [PublishResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        reader.stop()
        await readerTask.value

        #expect(results.count == 100)
        // Calls that arrived during a write were answered together by the next one.
        #expect(results.contains { $0.coalescedRequests > 1 })
        let writes = Set(results.map { $0.records.map(\.checksum) }).count
        #expect(writes < 100)
        let final = try await publisher.publish(directory: directory)
        #expect(final.packageCount == 130)
        await publisher.waitUntilIdle()
        try expectSameDocuments(directory)

        let report = reader.report
        #expect(report.failures.isEmpty, "\(report.failures.prefix(5))")
        #expect(report.consistentReads > 0)
    }
}

/// Polls repomd.xml like a client: every file it names must exist and match its checksum and size, and
/// primary.xml must hold as many packages as it says.
final class RepositoryReader: Sendable {
    struct Report: Sendable {
        var consistentReads = 0
        var failures: [String] = []
    }

    let directory: String
    private let state = Mutex((stopped: false, report: Report()))

    init(directory: String) {
        self.directory = directory
    }

    var report: Report { self.state.withLock { $0.report } }

    func stop() {
        self.state.withLock { $0.stopped = true }
    }

    func run() {
        while !self.state.withLock({ $0.stopped }) {
            let failure = self.checkOnce()
            self.state.withLock { state in
                if let failure { state.report.failures.append(failure) } else { state.report.consistentReads += 1 }
            }
        }
    }

    private func checkOnce() -> String? {
        guard let repomd = try? parseRepomd(self.directory) else { return "repomd.xml unreadable" }
        for record in repomd.records {
            let path = self.directory + "/" + record.href
            guard let data = FileManager.default.contents(atPath: path) else { return "missing \(record.href)" }
            let bytes = [UInt8](data)
            guard Int64(bytes.count) == record.size else { return "size mismatch \(record.href)" }
            guard Crypto.sha256Hex(bytes) == record.checksum else { return "checksum mismatch \(record.href)" }
            if record.type == "primary" {
                guard let xml = try? Gzip.decompress(bytes, limit: 1 << 28) else {
                    return "primary does not decompress"
                }
                let body = text(xml)
                let declared = body.components(separatedBy: "packages=\"").dropFirst().first?.prefix { $0 != "\"" }
                let count = body.components(separatedBy: "<package type=\"rpm\">").count - 1
                guard declared.flatMap({ Int($0) }) == count else { return "package count mismatch" }
                guard Crypto.sha256Hex(xml) == record.openChecksum else { return "open checksum mismatch" }
            }
        }
        return nil
    }
}
