// Real packages for the publisher tests, built once per test process: a make-rpm-corpus corpus (epochs,
// tildes and carets, every dependency kind the generator writes, changelogs) and a spec with what the
// generator lacks (subpackages, an SRPM, %ghost, %dir, /etc files, Requires(pre/post), file requires,
// libc requires, rich dependencies, every weak dependency kind, non-ASCII, a Latin-1 summary, a changelog
// longer than the limit with same-day entries).
import Foundation
import Gzip
import LibCrypto
import TestSupport
import Testing

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// make-rpm-corpus: $KOPER_MAKE_RPM_CORPUS, else shared/bench/ beside the repository (as in CI), else /work/shared.
let corpusTool: String = {
    if let path = ProcessInfo.processInfo.environment["KOPER_MAKE_RPM_CORPUS"] { return path }
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let beside = repository.deletingLastPathComponent().appendingPathComponent("shared/bench/make-rpm-corpus").path
    return FileManager.default.isExecutableFile(atPath: beside) ? beside : "/work/shared/bench/make-rpm-corpus"
}()
let createrepoC = "/usr/bin/createrepo_c"
let publisherTools: [IntegrationRequirement] = [.tool(corpusTool), .tool("/usr/bin/rpmbuild"), .tool(createrepoC)]

struct Fixtures: Sendable {
    var directory: String
    /// 130 small packages; the first 30 are the base repository, the other 100 get added by tests.
    var corpus: [String]
    /// feature-pkg (x86_64), feature-pkg-data, other-name-tool, the SRPM, latin-pkg.
    var feature: [String]

    var base: [String] { Array(self.corpus.prefix(30)) }
    var additions: [String] { Array(self.corpus.dropFirst(30)) }
}

let sharedFixtures: Result<Fixtures, FixtureError> = Result { () throws(FixtureError) in try buildFixtures() }

func fixtures() throws -> Fixtures {
    try sharedFixtures.get()
}

private let featureSpec = """
    %global debug_package %{nil}
    Name: feature-pkg
    Epoch: 3
    Version: 2.5.1
    Release: 7.fc39
    Summary: Feature package for repodata tests – with ünïcödé & <tags>
    License: MIT AND (GPL-2.0-or-later OR BSD-3-Clause)
    URL: https://example.org/feature?a=1&b=2
    Vendor: Vendor "Quoted" <vendor@example.org>
    Packager: Jürgen Müller <jm@example.org>
    Group: Applications/Testing
    Provides: feature-api = 3:2.5
    Provides: feature(ünï) = 1.0
    Provides: config(feature-pkg) = 3:2.5.1-7.fc39
    Requires: /bin/sh
    Requires(pre): /bin/sh
    Requires(post): /bin/sh
    Requires(preun): coreutils
    Requires(postun): coreutils
    Requires: /usr/bin/feature-tool
    Requires: /usr/share/feature/data.txt
    Requires: /etc/feature/feature.conf
    Requires: config(feature-pkg) = 3:2.5.1-7.fc39
    Requires: feature-api = 3:2.5
    Requires: libc.so.6()(64bit)
    Requires: libc.so.6(GLIBC_2.2.5)(64bit)
    Requires: libc.so.6(GLIBC_2.34)(64bit)
    Requires: libc.so.6(GLIBC_2.4)(64bit)
    Requires: zlib < 2:1.3-1
    Requires: bar >= 1.0
    Requires: qux <= 4
    Requires: (foo-lib >= 1.0 if bar-runtime)
    Requires: %{name}-data = %{epoch}:%{version}-%{release}
    Conflicts: old-feature < 1.0
    Obsoletes: feature-legacy < 2.0-1
    Recommends: feature-extras
    Suggests: feature-docs >= 1
    Supplements: (feature-pkg and langpacks-de)
    Enhances: other-tool

    %description
    Feature package.
    It has "quotes", <angle brackets> & ampersands,\ta tab,
    and non-ASCII: Jürgen, café, €, 日本語, 🎉.

    %package data
    Summary: Data for feature-pkg
    BuildArch: noarch
    Requires: %{name} = %{epoch}:%{version}-%{release}
    %description data
    Data files.

    %package -n other-name-tool
    Summary: Another subpackage with a different name
    %description -n other-name-tool
    Other.

    %install
    mkdir -p %{buildroot}/usr/bin %{buildroot}/etc/feature %{buildroot}/usr/share/feature %{buildroot}/opt/feature/sbin %{buildroot}/usr/libexec/feature/bin %{buildroot}/var/lib/feature %{buildroot}/usr/lib/sendmail-dir
    printf '#!/bin/sh\\necho feature\\n' > %{buildroot}/usr/bin/feature-tool
    chmod 755 %{buildroot}/usr/bin/feature-tool
    ln -s feature-tool %{buildroot}/usr/bin/feature-link
    echo conf > %{buildroot}/etc/feature/feature.conf
    echo data > %{buildroot}/usr/share/feature/data.txt
    echo daemon > %{buildroot}/opt/feature/sbin/daemon
    echo helper > %{buildroot}/usr/libexec/feature/bin/helper
    echo u > "%{buildroot}/usr/share/feature/ünïcödé & <file>.txt"
    echo other > %{buildroot}/usr/bin/other-tool
    echo sm > %{buildroot}/usr/lib/sendmail

    %files
    /usr/bin/feature-tool
    /usr/bin/feature-link
    %dir /etc/feature
    %config(noreplace) /etc/feature/feature.conf
    %ghost /etc/feature/generated.conf
    %ghost /var/lib/feature/state
    %dir /var/lib/feature
    /opt/feature/sbin/daemon
    %dir /usr/libexec/feature/bin
    /usr/libexec/feature/bin/helper
    /usr/lib/sendmail

    %files data
    /usr/share/feature/data.txt
    "/usr/share/feature/ünïcödé & <file>.txt"

    %files -n other-name-tool
    /usr/bin/other-tool
    %dir /usr/lib/sendmail-dir

    %pre
    echo pre
    %post
    echo post

    %changelog
    * Mon Dec 02 2024 Jürgen Müller <jm@example.org> - 3:2.5.1-7
    - Latest entry with <xml> & "quotes"
    * Mon Dec 02 2024 Ana Lima <ana@example.com> - 3:2.5.1-6
    - Same day entry 2
    * Mon Dec 02 2024 Ana Lima <ana@example.com> - 3:2.5.1-5
    - Same day entry 3
    * Sun Dec 01 2024 Wei Zhang <wei@example.org>\u{20}\u{20}\u{20}
    - Author with trailing spaces
    * Sat Nov 30 2024 Tom Baker <tom@example.com> - 2.5.0-1
    - Entry 5
    * Fri Nov 29 2024 Tom Baker <tom@example.com> - 2.4.0-1
    - Entry 6
    * Thu Nov 28 2024 Tom Baker <tom@example.com> - 2.3.0-1
    - Entry 7
    * Wed Nov 27 2024 Tom Baker <tom@example.com> - 2.2.0-1
    - Entry 8
    * Tue Nov 26 2024 Tom Baker <tom@example.com> - 2.1.0-1
    - Entry 9
    * Mon Nov 25 2024 Tom Baker <tom@example.com> - 2.0.0-1
    - Entry 10
    * Sun Nov 24 2024 Tom Baker <tom@example.com> - 1.9.0-1
    - Entry 11 (beyond the default limit)
    * Sat Nov 23 2024 Tom Baker <tom@example.com> - 1.8.0-1
    - Entry 12

    """

/// A spec whose summary, provide and changelog author are Latin-1 bytes (not UTF-8).
private let latinSpec: [UInt8] =
    Array(
        "%global _invalid_encoding_terminates_build 0\nName: latin-pkg\nVersion: 1\nRelease: 1\nSummary: Latin-1 caf"
            .utf8
    )
    + [0xE9] + Array(" summary\nLicense: MIT\nBuildArch: noarch\nAutoReqProv: no\nProvides: caf".utf8) + [0xE9]
    + Array("-cap = 1\n\n%description\nDescription.\n\n%files\n\n%changelog\n* Mon Dec 02 2024 Ren".utf8) + [0xE9]
    + Array(" <rf@example.org> - 1-1\n- Entry\n".utf8)

private func buildFixtures() throws(FixtureError) -> Fixtures {
    let directory = NSTemporaryDirectory() + "koper-repopub-fixtures-\(getpid())-\(UUID().uuidString)"
    let top = directory + "/top"
    do {
        for sub in ["home", "tmp", "corpus"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
        }
        try featureSpec.write(toFile: directory + "/feature.spec", atomically: true, encoding: .utf8)
        try Data(latinSpec).write(to: URL(fileURLWithPath: directory + "/latin.spec"))
    } catch {
        throw FixtureError(description: "cannot set up \(directory): \(error)")
    }
    let corpus = try run(
        "/bin/bash",
        [corpusTool, "--out", directory + "/corpus", "--count", "130"]
    )
    guard corpus.status == 0 else { throw FixtureError(description: "make-rpm-corpus failed: \(corpus.output)") }
    for (spec, mode) in [("feature.spec", "-ba"), ("latin.spec", "-bb")] {
        let result = try run(
            "/usr/bin/rpmbuild",
            ["--define", "_topdir \(top)", "--define", "_tmppath \(directory)/tmp", mode, directory + "/" + spec],
            environment: ["HOME": directory + "/home", "LC_ALL": "C"]
        )
        guard result.status == 0 else { throw FixtureError(description: "rpmbuild \(spec) failed: \(result.output)") }
    }
    let corpusFiles = ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/corpus")) ?? [])
        .filter { $0.hasSuffix(".rpm") }.sorted().map { directory + "/corpus/" + $0 }
    guard corpusFiles.count == 130 else {
        throw FixtureError(description: "expected 130 corpus RPMs, got \(corpusFiles.count)")
    }
    let feature = [
        top + "/RPMS/x86_64/feature-pkg-2.5.1-7.fc39.x86_64.rpm",
        top + "/RPMS/noarch/feature-pkg-data-2.5.1-7.fc39.noarch.rpm",
        top + "/RPMS/x86_64/other-name-tool-2.5.1-7.fc39.x86_64.rpm",
        top + "/SRPMS/feature-pkg-2.5.1-7.fc39.src.rpm",
        top + "/RPMS/noarch/latin-pkg-1-1.noarch.rpm",
    ]
    for path in feature where !FileManager.default.fileExists(atPath: path) {
        throw FixtureError(description: "rpmbuild did not produce \(path)")
    }
    return Fixtures(directory: directory, corpus: corpusFiles, feature: feature)
}

// MARK: - Helpers

struct RunResult {
    var status: Int32
    var output: String
}

/// Runs a program to completion with stdout and stderr in one file (never a pipe that could fill up).
func run(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = [:]
) throws(FixtureError) -> RunResult {
    let outputPath = NSTemporaryDirectory() + "koper-repopub-run-\(UUID().uuidString).out"
    guard FileManager.default.createFile(atPath: outputPath, contents: nil),
        let output = FileHandle(forWritingAtPath: outputPath)
    else { throw FixtureError(description: "cannot create \(outputPath)") }
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var merged = ProcessInfo.processInfo.environment
    for (key, value) in environment { merged[key] = value }
    process.environment = merged
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = output
    do {
        try process.run()
    } catch {
        throw FixtureError(description: "cannot run \(executable): \(error)")
    }
    process.waitUntilExit()
    try? output.close()
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    return RunResult(status: process.terminationStatus, output: text)
}

/// A fresh directory for one test's repository.
func makeRepositoryDirectory(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "koper-repopub-\(name)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Copies `files` into `directory` (optionally a subdirectory), keeping their mtimes.
func place(_ files: [String], in directory: String, subdirectory: String? = nil) throws {
    let target = subdirectory.map { directory + "/" + $0 } ?? directory
    try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
    for file in files {
        let destination = target + "/" + (file as NSString).lastPathComponent
        try FileManager.default.copyItem(atPath: file, toPath: destination)
    }
}

/// A metadata record as read back from a repomd.xml.
struct ParsedRecord: Equatable {
    var type: String
    var checksum: String
    var openChecksum: String?
    var href: String
    var timestamp: Int64
    var size: Int64
    var openSize: Int64?
}

func parseRepomd(_ directory: String) throws -> (revision: String, records: [ParsedRecord]) {
    let text = try String(contentsOfFile: directory + "/repodata/repomd.xml", encoding: .utf8)
    func element(_ chunk: Substring, _ open: String, _ close: String) -> String? {
        guard let start = chunk.range(of: open),
            let end = chunk.range(of: close, range: start.upperBound..<chunk.endIndex)
        else { return nil }
        return String(chunk[start.upperBound..<end.lowerBound])
    }
    let revision = element(text[...], "<revision>", "</revision>") ?? ""
    var records: [ParsedRecord] = []
    for chunk in text.components(separatedBy: "<data type=\"").dropFirst() {
        let part = chunk[...]
        records.append(
            ParsedRecord(
                type: String(part.prefix(while: { $0 != "\"" })),
                checksum: element(part, "<checksum type=\"sha256\">", "</checksum>") ?? "",
                openChecksum: element(part, "<open-checksum type=\"sha256\">", "</open-checksum>"),
                href: element(part, "<location href=\"", "\"/>") ?? "",
                timestamp: Int64(element(part, "<timestamp>", "</timestamp>") ?? "") ?? -1,
                size: Int64(element(part, "<size>", "</size>") ?? "") ?? -1,
                openSize: element(part, "<open-size>", "</open-size>").flatMap { Int64($0) }
            )
        )
    }
    return (revision, records)
}

/// The uncompressed document of `type` that `repomdDirectory/repodata/repomd.xml` points to, read with
/// the Gzip module (which reads concatenated members). The href is relative to `repomdDirectory`.
func document(_ repomdDirectory: String, _ type: String) throws -> [UInt8] {
    let record = try parseRepomd(repomdDirectory).records.first { $0.type == type }
    guard let record else { throw FixtureError(description: "no \(type) record in \(repomdDirectory)") }
    let compressed = [UInt8](try Data(contentsOf: URL(fileURLWithPath: repomdDirectory + "/" + record.href)))
    return try Gzip.decompress(compressed, limit: 1 << 30)
}

/// Runs createrepo_c 0.17.3 on `directory` with its output in a separate directory (so it neither sees nor
/// replaces ours); returns that output directory.
func createrepoReference(_ directory: String, update: Bool = false, output: String? = nil) throws -> String {
    let out = output ?? directory + ".createrepo_c"
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    var arguments = ["--no-database", "--quiet", "--outputdir", out]
    if update { arguments.append("--update") }
    arguments.append(directory)
    let result = try run(createrepoC, arguments)
    guard result.status == 0 || result.output.contains("invalid packages") else {
        throw FixtureError(description: "createrepo_c failed: \(result.output)")
    }
    return out
}

/// Asserts that our three documents equal createrepo_c's for the same directory, byte for byte.
func expectSameDocuments(_ directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let reference = try createrepoReference(directory)
    defer { try? FileManager.default.removeItem(atPath: reference) }
    for type in ["primary", "filelists", "other"] {
        let ours = try document(directory, type)
        let theirs = try document(reference, type)
        if ours != theirs {
            let common = zip(ours, theirs).prefix(while: { $0 == $1 }).count
            let excerpt = { (bytes: [UInt8]) in
                String(decoding: bytes[max(0, common - 150)..<min(bytes.count, common + 150)], as: UTF8.self)
            }
            Issue.record(
                "\(type) differs at byte \(common)\ncreaterepo_c: \(excerpt(theirs))\nours: \(excerpt(ours))",
                sourceLocation: sourceLocation
            )
        }
    }
}

func sha256Hex(ofFile path: String) throws -> String {
    Crypto.sha256Hex([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
