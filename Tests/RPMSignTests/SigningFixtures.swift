// Keys made by gpg and packages made by rpmbuild at test time (nothing binary is committed).
import Foundation
import OpenPGP
import RPMSign
import TestSupport

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

/// One gpg-generated key and its exports.
struct TestKey: Sendable {
    var bits: Int
    var fingerprint: String
    var creationTime: UInt32
    var userID: String
    var secretExport: [UInt8]
    var publicExport: [UInt8]
    /// `gpg --armor --export FPR`.
    var gpgArmoredPublicKey: String
    /// The 8 lowercase hex digits rpm prints as "key ID".
    var rpmKeyID: String { String(self.fingerprint.suffix(8)).lowercased() }
}

struct SigningFixtures: Sendable {
    var directory: String
    var gnupgHome: String
    var home: String
    var key2048: TestKey
    var key4096: TestKey
    /// noarch, default reserved space (1008 = 4128): the in-place path.
    var smallRPM: String
    /// noarch, built with `__gpg_reserved_space 0` (1008 = 32): the grown-header path.
    var noReserveRPM: String
    /// noarch with 3000 files: a main header of several hundred KB.
    var largeRPM: String
    /// An rpmdb with both public keys imported (armored by our own `OpenPGPArmor`).
    var rpmdb: String

    func key(_ bits: Int) -> TestKey { bits == 4096 ? self.key4096 : self.key2048 }

    /// A fresh directory for one test.
    func scratch(_ name: String) throws -> String {
        let path = self.directory + "/work-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Copies `package` into a fresh directory and returns the copy's path.
    func copy(_ package: String, name: String) throws -> String {
        let directory = try self.scratch(name)
        let path = directory + "/" + URL(fileURLWithPath: package).lastPathComponent
        try FileManager.default.copyItem(atPath: package, toPath: path)
        return path
    }
}

/// What the signing tests run: gpg makes the keys and checks signatures, rpmbuild the packages, rpmkeys verifies.
let signingTools: [IntegrationRequirement] = [
    "/usr/bin/gpg", "/usr/bin/gpgconf", "/usr/bin/rpmbuild", "/usr/bin/rpmkeys",
]
.map { IntegrationRequirement.tool($0) }

/// Built lazily, once per test process (global initialisation is thread-safe).
let sharedSigningFixtures: Result<SigningFixtures, FixtureError> = Result { () throws(FixtureError) in
    try buildSigningFixtures()
}

func signingFixtures() throws -> SigningFixtures {
    try sharedSigningFixtures.get()
}

private func spec(name: String, files: Int) -> String {
    """
    Name: \(name)
    Version: 1.0
    Release: 1
    Summary: Signing test package \(name)
    License: MIT
    BuildArch: noarch
    AutoReqProv: no

    %description
    Koper signing test.

    %install
    mkdir -p %{buildroot}/usr/share/\(name)
    for i in $(seq 1 \(files)); do echo "file $i" > %{buildroot}/usr/share/\(name)/data-file-number-$i.txt; done

    %files
    /usr/share/\(name)

    """
}

private func buildSigningFixtures() throws(FixtureError) -> SigningFixtures {
    let directory = NSTemporaryDirectory() + "koper-rpmsign-\(getpid())-\(UUID().uuidString)"
    let gnupgHome = directory + "/gnupg"
    let home = directory + "/home"
    let top = directory + "/top"
    do {
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            atPath: gnupgHome,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
    } catch {
        throw FixtureError(description: "cannot set up \(directory): \(error)")
    }

    // Keys.
    func makeKey(bits: Int, userID: String) throws(FixtureError) -> TestKey {
        try gpg(
            gnupgHome,
            [
                "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", userID, "rsa\(bits)", "sign",
                "never",
            ]
        )
        let listing = try gpg(gnupgHome, ["--with-colons", "--list-keys", "=" + userID]).stdout
        var fingerprint: String? = nil
        var creation: UInt32? = nil
        for line in listing.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.first == "pub", fields.count > 5 { creation = UInt32(fields[5]) }
            if fields.first == "fpr", fields.count > 9, fingerprint == nil { fingerprint = String(fields[9]) }
        }
        guard let fingerprint, let creation else {
            throw FixtureError(description: "cannot read the key listing: \(listing)")
        }
        let secretPath = directory + "/\(bits).sec"
        let publicPath = directory + "/\(bits).pub"
        try gpg(gnupgHome, ["--output", secretPath, "--export-secret-keys", fingerprint])
        try gpg(gnupgHome, ["--output", publicPath, "--export", fingerprint])
        let armored = try gpg(gnupgHome, ["--armor", "--export", fingerprint]).stdout
        return TestKey(
            bits: bits,
            fingerprint: fingerprint,
            creationTime: creation,
            userID: userID,
            secretExport: try readBytes(secretPath),
            publicExport: try readBytes(publicPath),
            gpgArmoredPublicKey: armored
        )
    }
    let key2048 = try makeKey(bits: 2048, userID: "owner_proj (Copr) <owner#proj@copr.test>")
    let key4096 = try makeKey(bits: 4096, userID: "owner_big (Copr) <owner#big@copr.test>")
    stopAgent(gnupgHome)

    // Packages.
    var packages: [String] = []
    for (name, files, extra) in [
        ("sig-small", 1, [String]()),
        ("sig-noreserve", 1, ["--define", "__gpg_reserved_space 0"]),
        ("sig-large", 3000, [String]()),
    ] {
        let specPath = directory + "/\(name).spec"
        do {
            try spec(name: name, files: files).write(toFile: specPath, atomically: true, encoding: .utf8)
        } catch {
            throw FixtureError(description: "cannot write \(specPath)")
        }
        let result = try run(
            "/usr/bin/rpmbuild",
            ["--define", "_topdir \(top)", "--define", "_tmppath \(top)/tmp", "--quiet"] + extra + ["-bb", specPath],
            home: home
        )
        guard result.status == 0 else { throw FixtureError(description: "rpmbuild \(name): \(result.stderr)") }
        let path = top + "/RPMS/noarch/\(name)-1.0-1.noarch.rpm"
        guard FileManager.default.fileExists(atPath: path) else {
            throw FixtureError(description: "rpmbuild did not produce \(path)")
        }
        packages.append(path)
    }

    // rpmdb with both keys, armored by our code.
    let rpmdb = directory + "/rpmdb"
    for key in [key2048, key4096] {
        let armoredPath = directory + "/\(key.bits).asc"
        do {
            let armored = try OpenPGPArmor.armorPublicKey(key.publicExport)
            try armored.write(toFile: armoredPath, atomically: true, encoding: .utf8)
        } catch {
            throw FixtureError(description: "cannot armor the \(key.bits) public key: \(error)")
        }
        let result = try run("/usr/bin/rpmkeys", ["--dbpath", rpmdb, "--import", armoredPath], home: home)
        guard result.status == 0 else { throw FixtureError(description: "rpmkeys --import: \(result.stderr)") }
    }
    return SigningFixtures(
        directory: directory,
        gnupgHome: gnupgHome,
        home: home,
        key2048: key2048,
        key4096: key4096,
        smallRPM: packages[0],
        noReserveRPM: packages[1],
        largeRPM: packages[2],
        rpmdb: rpmdb
    )
}

// MARK: - Processes

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

@discardableResult
func gpg(_ home: String, _ arguments: [String], allowFailure: Bool = false) throws(FixtureError) -> RunResult {
    let result = try run("/usr/bin/gpg", ["--homedir", home, "--batch", "--yes"] + arguments, home: home)
    guard allowFailure || result.status == 0 else {
        throw FixtureError(description: "gpg \(arguments.joined(separator: " ")) failed: \(result.stderr)")
    }
    return result
}

/// Every gpg-agent a test starts must be stopped.
func stopAgent(_ gnupgHome: String) {
    _ = try? run("/usr/bin/gpgconf", ["--homedir", gnupgHome, "--kill", "gpg-agent"], home: gnupgHome)
}

func run(_ executable: String, _ arguments: [String], home: String) throws(FixtureError) -> RunResult {
    do {
        let r = try Command.runWaiting(executable, arguments, home: home, unset: ["GNUPGHOME"])
        return RunResult(status: r.status, stdout: r.stdout, stderr: r.stderr)
    } catch {
        throw FixtureError(description: "cannot run \(executable): \(error)")
    }
}

func readBytes(_ path: String) throws(FixtureError) -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw FixtureError(description: "cannot read \(path)")
    }
    return [UInt8](data)
}

func writeBytes(_ bytes: [UInt8], to path: String) throws(FixtureError) {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw FixtureError(description: "cannot write \(path)")
    }
}

/// `rpmkeys --dbpath DB -Kv path` (exit status and combined output).
func checksig(_ path: String, fixtures: SigningFixtures) throws -> (status: Int32, output: String) {
    let result = try run("/usr/bin/rpmkeys", ["--dbpath", fixtures.rpmdb, "-Kv", path], home: fixtures.home)
    return (result.status, result.stdout + result.stderr)
}

/// Files in `directory` other than `keep` (temp files left behind would show up here).
func strayFiles(in directory: String, keep: Set<String>) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !keep.contains($0) }
}

func mutate(_ bytes: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
    var out = bytes
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
        guard !out.isEmpty else { break }
        let position = Int.random(in: 0..<out.count, using: &rng)
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: out[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
        case 1: out[position] = UInt8.random(in: 0...255, using: &rng)
        case 2: out = Array(out[0..<position])
        case 3: out.insert(UInt8.random(in: 0...255, using: &rng), at: position)
        case 4: out.remove(at: position)
        default: out[min(position, 8)] = [0x00, 0xFF, 0x7F, 0x80][Int.random(in: 0..<4, using: &rng)]
        }
    }
    return out
}
