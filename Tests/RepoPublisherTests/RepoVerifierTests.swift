// The repository verifier against real repositories: rpmbuild-made packages (the make-rpm-corpus fixtures), signed
// in place with gpg-generated keys by RPMFileSigner, published by RepoPublisher, then damaged one way at a time.
import Foundation
import Logging
import OpenPGP
import RPM
import RPMSign
import RepoPublisher
import TestSupport
import Testing

private let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// Two gpg-generated RSA-2048 keys: the project's and a stranger's.
struct VerifierKeys: Sendable {
    var project: [UInt8]
    var projectPublic: [UInt8]
    var projectArmored: String
    var other: [UInt8]
    var otherPublic: [UInt8]
}

private let sharedKeys: Result<VerifierKeys, FixtureError> = Result { () throws(FixtureError) in
    let home = NSTemporaryDirectory() + "koper-verifier-gnupg-\(getpid())-\(UUID().uuidString)"
    do {
        try FileManager.default.createDirectory(
            atPath: home,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
    } catch {
        throw FixtureError(description: "cannot create \(home)")
    }
    func gpg(_ arguments: [String]) throws(FixtureError) -> String {
        let result = try run("/usr/bin/gpg", ["--homedir", home, "--batch", "--quiet"] + arguments)
        guard result.status == 0 else { throw FixtureError(description: "gpg \(arguments): \(result.output)") }
        return result.output
    }
    var exports: [(secret: [UInt8], public: [UInt8], armored: String)] = []
    for userID in ["owner_proj (Copr) <owner#proj@copr.test>", "stranger (Copr) <stranger#x@copr.test>"] {
        _ = try gpg([
            "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", userID, "rsa2048", "sign", "never",
        ])
        let secretPath = home + "/\(exports.count).sec"
        let publicPath = home + "/\(exports.count).pub"
        _ = try gpg(["--output", secretPath, "--export-secret-keys", "=" + userID])
        _ = try gpg(["--output", publicPath, "--export", "=" + userID])
        let armored = try gpg(["--armor", "--export", "=" + userID])
        guard let secret = FileManager.default.contents(atPath: secretPath),
            let publicKey = FileManager.default.contents(atPath: publicPath)
        else { throw FixtureError(description: "gpg wrote no export") }
        exports.append(([UInt8](secret), [UInt8](publicKey), armored))
    }
    _ = try? run("/usr/bin/gpgconf", ["--homedir", home, "--kill", "gpg-agent"])
    try? FileManager.default.removeItem(atPath: home)  // the exports are in memory
    return VerifierKeys(
        project: exports[0].secret,
        projectPublic: exports[0].public,
        projectArmored: exports[0].armored,
        other: exports[1].secret,
        otherPublic: exports[1].public
    )
}

private let verifierTools: [IntegrationRequirement] =
    publisherTools + [.tool("/usr/bin/gpg"), .tool("/usr/bin/gpgconf")]

/// A published chroot directory: 10 corpus packages in two build directories, signed with the project key.
private struct SignedRepository {
    var directory: String
    var publisher: RepoPublisher
    var key: OpenPGPPublicKey
    var keys: VerifierKeys
    var hrefs: [String]

    static func make(_ name: String) async throws -> SignedRepository {
        let fixtures = try fixtures()
        let keys = try sharedKeys.get()
        let directory = try makeRepositoryDirectory("verify-\(name)")
        try place(Array(fixtures.base[0..<6]), in: directory, subdirectory: "00000001-first")
        try place(Array(fixtures.base[6..<10]), in: directory, subdirectory: "00000002-second")
        let signer = try OpenPGPKeySigner(secretKeyExport: keys.project)
        var hrefs: [String] = []
        for build in ["00000001-first", "00000002-second"] {
            for file in try FileManager.default.contentsOfDirectory(atPath: directory + "/" + build).sorted() {
                try RPMFileSigner.signRPM(path: directory + "/" + build + "/" + file, signer: signer)
                hrefs.append(build + "/" + file)
            }
        }
        let publisher = RepoPublisher(logger: quiet)
        let published = try await publisher.publish(directory: directory)
        #expect(published.packageCount == 10)
        let key = try RepoVerifier.publicKey(keys.projectPublic)
        return SignedRepository(directory: directory, publisher: publisher, key: key, keys: keys, hrefs: hrefs)
    }

    func verify() async throws -> RepoVerification {
        try await RepoVerifier.verify(directory: self.directory, publicKey: self.key)
    }

    func repair(_ verification: RepoVerification) async throws -> RepoRepair {
        try await self.publisher.repair(verification, publicKey: self.key)
    }

    /// The href of the primary metadata file.
    func primaryHref() throws -> String {
        let records = try parseRepomd(self.directory).records
        return try #require(records.first { $0.type == "primary" }).href
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

private func kinds(_ verification: RepoVerification) -> [String] {
    verification.problems.map { "\($0.kind) \($0.path)" }
}

@Suite("Repository verification", .requires(verifierTools), .serialized)
struct RepoVerifierTests {
    @Test func aGoodRepositoryVerifiesClean() async throws {
        let repository = try await SignedRepository.make("good")
        defer { repository.remove() }
        // What the publisher does not index is not checked: its own index directory.
        let fixtures = try fixtures()
        try FileManager.default.copyItem(
            atPath: fixtures.base[20],
            toPath: repository.directory + "/.koper-repodata/stray.rpm"
        )
        let verification = try await repository.verify()
        #expect(verification.problems == [])
        #expect(verification.isClean)
        #expect(verification.metadataRecords == 3)
        #expect(verification.listedPackages == 10)
        #expect(verification.packageFiles == 10)
        #expect(verification.checkedPackages == 10)

        // The armored pubkey.gpg (as Keygen serves it) gives the same key, from a file too.
        #expect(try RepoVerifier.publicKey(Array(repository.keys.projectArmored.utf8)) == repository.key)
        let keyPath = repository.directory + "/../" + UUID().uuidString + "-pubkey.gpg"
        try repository.keys.projectArmored.write(toFile: keyPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: keyPath) }
        #expect(try await RepoVerifier.loadPublicKey(path: keyPath) == repository.key)

        // Under another project's key every package is reported, and a repair changes nothing.
        let stranger = try RepoVerifier.publicKey(repository.keys.otherPublic)
        let foreign = try await RepoVerifier.verify(directory: repository.directory, publicKey: stranger)
        #expect(foreign.problems.count == 10)
        #expect(foreign.problems.allSatisfy { $0.kind == .wrongKey && $0.detail.contains(stranger.keyIDHex) })
        #expect(Set(foreign.problems.map(\.path)) == Set(repository.hrefs))
        let repair = try await repository.publisher.repair(foreign, publicKey: stranger)
        #expect(!repair.republished)

        // A clean repository needs no repair.
        let clean = try await repository.publisher.verifyAndRepair(
            directory: repository.directory,
            publicKey: repository.key
        )
        #expect(!clean.republished)
        #expect(clean.after.isClean)
    }

    @Test func refusals() async throws {
        let keys = try sharedKeys.get()
        let key = try RepoVerifier.publicKey(keys.projectPublic)
        let missing = NSTemporaryDirectory() + "koper-no-such-repo-\(UUID().uuidString)"
        let error = await #expect(throws: RepoPublisherError.self) {
            try await RepoVerifier.verify(directory: missing, publicKey: key)
        }
        #expect(error?.code == .systemCall)
        #expect(throws: RepoPublisherError.self) { try RepoVerifier.publicKey(Array("not a key".utf8)) }
        #expect(throws: RepoPublisherError.self) { try RepoVerifier.publicKey(keys.project) }  // a secret key

        // A directory without repodata: the problem is reported, not thrown.
        let empty = try makeRepositoryDirectory("verify-empty")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let verification = try await RepoVerifier.verify(directory: empty, publicKey: key)
        #expect(kinds(verification) == ["unreadable-repomd repodata/repomd.xml"])
    }

    @Test func aTruncatedPrimaryIsDetectedAndRepaired() async throws {
        let repository = try await SignedRepository.make("truncated")
        defer { repository.remove() }
        let primary = try repository.primaryHref()
        let path = repository.directory + "/" + primary
        let bytes = try #require(FileManager.default.contents(atPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))

        let verification = try await repository.verify()
        #expect(!verification.isClean)
        #expect(verification.problems.allSatisfy { $0.path == primary })
        #expect(verification.problems(.metadataChecksumMismatch).count == 2)  // size and checksum
        #expect(verification.problems(.metadataContentMismatch).count == 1)  // does not decompress
        #expect(verification.needsRepublish)

        let repair = try await repository.repair(verification)
        #expect(repair.republished)
        #expect(repair.after.problems == [])
        #expect(repair.after.listedPackages == 10)
    }

    @Test func aTamperedRepomdChecksumIsDetectedAndRepaired() async throws {
        let repository = try await SignedRepository.make("repomd")
        defer { repository.remove() }
        let records = try parseRepomd(repository.directory).records
        let filelists = try #require(records.first { $0.type == "filelists" })
        let repomdPath = repository.directory + "/repodata/repomd.xml"
        let text = try String(contentsOfFile: repomdPath, encoding: .utf8)
        let forged = String(repeating: "0", count: 64)
        let tampered = text.replacingOccurrences(
            of: "<checksum type=\"sha256\">\(filelists.checksum)</checksum>",
            with: "<checksum type=\"sha256\">\(forged)</checksum>"
        )
        #expect(tampered != text)
        try tampered.write(toFile: repomdPath, atomically: true, encoding: .utf8)

        let verification = try await repository.verify()
        #expect(kinds(verification) == ["metadata-checksum-mismatch \(filelists.href)"])
        #expect(verification.problems[0].detail.contains(forged))

        let repair = try await repository.repair(verification)
        #expect(repair.republished)
        #expect(repair.after.problems == [])

        // Not well-formed XML at all.
        try "<repomd><data type=\"primary\">".write(toFile: repomdPath, atomically: true, encoding: .utf8)
        let broken = try await repository.verify()
        #expect(kinds(broken) == ["unreadable-repomd repodata/repomd.xml"])
        #expect(try await repository.repair(broken).after.problems == [])
    }

    @Test func aDeletedRPMIsDetectedAndRepaired() async throws {
        let repository = try await SignedRepository.make("deleted")
        defer { repository.remove() }
        let victim = repository.hrefs[3]
        try FileManager.default.removeItem(atPath: repository.directory + "/" + victim)

        let verification = try await repository.verify()
        #expect(kinds(verification) == ["listed-rpm-missing \(victim)"])
        let repair = try await repository.repair(verification)
        #expect(repair.after.problems == [])
        #expect(repair.after.listedPackages == 9)
    }

    @Test func anUnsignedRPMIsReportedAndStaysReportedOnceListed() async throws {
        let repository = try await SignedRepository.make("unsigned")
        defer { repository.remove() }
        let fixtures = try fixtures()
        try place([fixtures.base[20]], in: repository.directory, subdirectory: "00000003-dropped")
        let href = "00000003-dropped/" + (fixtures.base[20] as NSString).lastPathComponent

        let verification = try await repository.verify()
        #expect(kinds(verification) == ["unlisted-rpm \(href)", "unsigned-rpm \(href)"])
        let repair = try await repository.repair(verification)
        #expect(repair.republished)
        #expect(kinds(repair.after) == ["unsigned-rpm \(href)"])
        #expect(repair.after.listedPackages == 11)
        #expect(!repair.after.needsRepublish)
    }

    @Test func anRPMSignedWithAnotherKeyIsReported() async throws {
        let repository = try await SignedRepository.make("otherkey")
        defer { repository.remove() }
        let victim = repository.hrefs[7]
        let stranger = try OpenPGPKeySigner(secretKeyExport: repository.keys.other)
        try RPMFileSigner.signRPM(path: repository.directory + "/" + victim, signer: stranger)

        let verification = try await repository.verify()
        // The file changed, so its listed checksum (and here its size) no longer match either.
        #expect(verification.problems(.wrongKey).map(\.path) == [victim])
        #expect(verification.problems(.wrongKey)[0].detail.contains(stranger.publicKey.keyIDHex))
        #expect(verification.problems.allSatisfy { $0.path == victim })
        #expect(verification.problems(.listedRPMMismatch).count >= 1)
        let repair = try await repository.repair(verification)
        #expect(kinds(repair.after) == ["wrong-key \(victim)"])
    }

    @Test func aFlippedSignatureByteIsReported() async throws {
        let repository = try await SignedRepository.make("flipped")
        defer { repository.remove() }
        let victim = repository.hrefs[1]
        let path = repository.directory + "/" + victim
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        let package = try RPMReader.parse(bytes)
        let entry = try #require(package.signature.entry(RPMTag.sigRSAHeader))
        let storeStart = package.signatureRange.upperBound - package.signature.dataStore.count
        bytes[storeStart + entry.offset + entry.count - 1] ^= 0x01  // the last byte of the RSA value
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let verification = try await repository.verify()
        #expect(verification.problems(.badSignature).map(\.path) == [victim])
        #expect(verification.problems(.badSignature)[0].detail.contains("does not verify"))
        #expect(verification.problems(.listedRPMMismatch).map(\.path) == [victim])  // the pkgid changed
        let repair = try await repository.repair(verification)
        #expect(kinds(repair.after) == ["bad-signature \(victim)"])
    }
}
