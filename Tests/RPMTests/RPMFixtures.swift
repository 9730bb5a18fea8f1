// Real RPMs and SRPMs built with rpmbuild at test time (nothing binary is committed).
import Foundation
import TestSupport

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// Paths of the packages built once per test run.
struct RPMFixtures: Sendable {
    var directory: String
    /// noarch, with subpackage alpha-doc, no epoch.
    var alphaSRPM: String
    var alphaRPM: String
    var alphaDocRPM: String
    /// x86_64, Epoch: 2.
    var helloSRPM: String
    var helloRPM: String

    var all: [String] { [self.alphaSRPM, self.alphaRPM, self.alphaDocRPM, self.helloSRPM, self.helloRPM] }
}

/// What the tests on real packages need: rpmbuild makes them, rpm reports what they hold.
let rpmTools: [IntegrationRequirement] = [.tool("/usr/bin/rpmbuild"), .tool("/usr/bin/rpm")]

/// Built lazily, once, the first time a test asks (global initialisation is thread-safe).
let sharedFixtures: Result<RPMFixtures, FixtureError> = Result { () throws(FixtureError) in try buildFixtures() }

func fixtures() throws -> RPMFixtures {
    try sharedFixtures.get()
}

private let alphaSpec = """
    Name: alpha
    Version: 1.0
    Release: 3
    Summary: Alpha test package
    License: MIT
    BuildArch: noarch

    %description
    Alpha.

    %package doc
    Summary: Alpha documentation
    %description doc
    Docs.

    %install
    mkdir -p %{buildroot}/usr/share/alpha %{buildroot}/usr/share/doc/alpha-doc
    echo hi > %{buildroot}/usr/share/alpha/data.txt
    echo doc > %{buildroot}/usr/share/doc/alpha-doc/README

    %files
    /usr/share/alpha/data.txt

    %files doc
    /usr/share/doc/alpha-doc/README

    """

private let helloSpec = """
    %global debug_package %{nil}
    Name: hello-tool
    Epoch: 2
    Version: 1.2.3
    Release: 4
    Summary: Hello tool for tests
    License: GPL-2.0-or-later AND MIT

    %description
    Hello.

    %install
    mkdir -p %{buildroot}/usr/bin
    printf '#!/bin/sh\\necho hello\\n' > %{buildroot}/usr/bin/hello
    chmod 755 %{buildroot}/usr/bin/hello

    %files
    /usr/bin/hello

    """

private func buildFixtures() throws(FixtureError) -> RPMFixtures {
    let directory = NSTemporaryDirectory() + "koper-rpmtests-\(getpid())-\(UUID().uuidString)"
    let top = directory + "/top"
    do {
        try FileManager.default.createDirectory(atPath: directory + "/home", withIntermediateDirectories: true)
        try alphaSpec.write(toFile: directory + "/alpha.spec", atomically: true, encoding: .utf8)
        try helloSpec.write(toFile: directory + "/hello.spec", atomically: true, encoding: .utf8)
    } catch {
        throw FixtureError(description: "cannot set up \(directory): \(error)")
    }
    for spec in ["alpha.spec", "hello.spec"] {
        let result = try run(
            "/usr/bin/rpmbuild",
            ["--define", "_topdir \(top)", "-ba", directory + "/" + spec],
            home: directory + "/home"
        )
        guard result.status == 0 else {
            throw FixtureError(description: "rpmbuild \(spec) failed: \(result.stderr)")
        }
    }
    let fixtures = RPMFixtures(
        directory: directory,
        alphaSRPM: top + "/SRPMS/alpha-1.0-3.src.rpm",
        alphaRPM: top + "/RPMS/noarch/alpha-1.0-3.noarch.rpm",
        alphaDocRPM: top + "/RPMS/noarch/alpha-doc-1.0-3.noarch.rpm",
        helloSRPM: top + "/SRPMS/hello-tool-1.2.3-4.src.rpm",
        helloRPM: top + "/RPMS/x86_64/hello-tool-1.2.3-4.x86_64.rpm"
    )
    for path in fixtures.all where !FileManager.default.fileExists(atPath: path) {
        throw FixtureError(description: "rpmbuild did not produce \(path)")
    }
    return fixtures
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func run(_ executable: String, _ arguments: [String], home: String) throws(FixtureError) -> RunResult {
    do {
        let r = try Command.runWaiting(executable, arguments, home: home)
        return RunResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
    } catch {
        throw FixtureError(description: "cannot run \(executable): \(error)")
    }
}

/// `rpm -qp --qf FORMAT path`, split on `|`.
func rpmQuery(_ path: String, _ format: String, fixtures: RPMFixtures) throws -> [String] {
    let result = try run("/usr/bin/rpm", ["-qp", "--qf", format, path], home: fixtures.directory + "/home")
    guard result.status == 0 else {
        throw FixtureError(description: "rpm -qp \(path) failed: \(result.stderr)")
    }
    return result.stdout.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
}

func readBytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw FixtureError(description: "cannot read \(path)")
    }
    return [UInt8](data)
}

/// SHA-256 hex of `bytes`, computed by coreutils `sha256sum` (Foundation has no SHA-256 on Linux).
func sha256Hex(_ bytes: [UInt8], fixtures: RPMFixtures) throws -> String {
    let path = fixtures.directory + "/digest-\(UUID().uuidString).bin"
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw FixtureError(description: "cannot write \(path)")
    }
    defer { try? FileManager.default.removeItem(atPath: path) }
    let result = try run("/usr/bin/sha256sum", [path], home: fixtures.directory + "/home")
    guard result.status == 0, let digest = result.stdout.split(separator: " ").first else {
        throw FixtureError(description: "sha256sum failed: \(result.stderr)")
    }
    return String(digest)
}
