// The signing core against the real tools: keys from gpg, packages from rpmbuild, verification by gpg and rpmkeys.
import Foundation
import LibCrypto
import OpenPGP
import RPM
import RPMSign
import TestSupport
import Testing

@Suite(.requires(signingTools))
struct GPGInteropTests {
    @Test(arguments: [2048, 4096])
    func exportParsesLikeGPG(_ bits: Int) throws {
        let key = try signingFixtures().key(bits)
        let parsed = try OpenPGPSecretKey.parseTransferable(key.secretExport, hashes: LibCryptoHashes())
        #expect(parsed.publicKey.fingerprintHex == key.fingerprint)
        #expect(parsed.publicKey.keyIDHex == String(key.fingerprint.suffix(16)))
        #expect(parsed.publicKey.creationTime == key.creationTime)
        #expect(parsed.publicKey.modulusBits == bits)
        #expect(parsed.publicKey.exponent == [0x01, 0x00, 0x01])
        #expect(parsed.userIDs == [key.userID])
        // The public part equals the tag-6 packet of `gpg --export`.
        let publicKey = try OpenPGPPublicKey.parseTransferable(key.publicExport, hashes: LibCryptoHashes())
        #expect(publicKey == parsed.publicKey)
        // OpenPGP keeps p < q (the reason for the swap when loading into OpenSSL).
        #expect(
            parsed.secret.p.count < parsed.secret.q.count || parsed.secret.p.lexicographicallyPrecedes(parsed.secret.q)
        )

        let signer = try OpenPGPKeySigner(secretKeyExport: key.secretExport)
        #expect(signer.description == "OpenPGPKeySigner(\(key.fingerprint), RSA \(bits), SHA256)")
        #expect(!"\(parsed)".contains(Crypto.hex(parsed.secret.d.prefix(6))))
    }

    @Test(arguments: [2048, 4096])
    func armoredPublicKeyEqualsGPG(_ bits: Int) throws {
        let key = try signingFixtures().key(bits)
        #expect(try OpenPGPArmor.armorPublicKey(key.publicExport) == key.gpgArmoredPublicKey)
        let refused = #expect(throws: OpenPGPError.self) { try OpenPGPArmor.armorPublicKey(key.secretExport) }
        #expect(refused?.code == .unexpectedPacket)
    }

    @Test(arguments: [(2048, OpenPGPHashAlgorithm.sha256), (2048, .sha512), (4096, .sha256), (4096, .sha512)])
    func gpgVerifiesOurSignatures(_ bits: Int, _ hash: OpenPGPHashAlgorithm) throws {
        let fixtures = try signingFixtures()
        let key = fixtures.key(bits)
        let directory = try fixtures.scratch("verify")
        var rng = SeededGenerator(seed: UInt64(bits) &* 31 &+ UInt64(hash.rawValue))
        let data = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let signer = try OpenPGPKeySigner(secretKeyExport: key.secretExport, hash: hash)
        let packet = try signer.detachedSignature(over: data)
        try writeBytes(data, to: directory + "/data")
        try writeBytes(packet, to: directory + "/data.sig")

        let parsed = try OpenPGPSignature.parse(packet)
        #expect(parsed.hashAlgorithm == hash)
        #expect(parsed.issuerFingerprint.map { Crypto.hex($0).uppercased() } == key.fingerprint)
        #expect(try RPMSignaturePacket.validate(packet, mainHeader: data).tag == RPMTag.sigRSAHeader)

        let good = try gpg(
            fixtures.gnupgHome,
            ["--no-autostart", "--status-fd", "1", "--verify", directory + "/data.sig", directory + "/data"],
            allowFailure: true
        )
        #expect(good.status == 0)
        #expect(good.stdout.contains("[GNUPG:] GOODSIG \(key.fingerprint.suffix(16))"))
        #expect(good.stdout.contains("[GNUPG:] VALIDSIG \(key.fingerprint)"))

        var tampered = data
        tampered[2500] ^= 0x01
        try writeBytes(tampered, to: directory + "/data")
        let bad = try gpg(
            fixtures.gnupgHome,
            ["--no-autostart", "--status-fd", "1", "--verify", directory + "/data.sig", directory + "/data"],
            allowFailure: true
        )
        #expect(bad.status != 0)
        #expect(bad.stdout.contains("[GNUPG:] BADSIG"))
        #expect(!bad.stdout.contains("GOODSIG"))
    }
}

/// Tests that sign with gpg itself (and so start a gpg-agent): serialized, the agent stopped afterwards.
@Suite(.requires(signingTools), .serialized)
struct ByteIdentityTests {
    /// With gpg's creation time and hash, our packet is byte-identical to `gpg --detach-sign`.
    @Test(arguments: [(2048, "SHA256"), (4096, "SHA512")])
    func packetEqualsGPGDetachSign(_ bits: Int, _ digestAlgo: String) throws {
        let fixtures = try signingFixtures()
        defer { stopAgent(fixtures.gnupgHome) }
        let key = fixtures.key(bits)
        let directory = try fixtures.scratch("gpgsign")
        let data = Array("some header bytes to sign, any bytes will do\n".utf8)
        try writeBytes(data, to: directory + "/data")
        try gpg(
            fixtures.gnupgHome,
            [
                "--pinentry-mode", "loopback", "--passphrase", "", "--digest-algo", digestAlgo, "-u", key.fingerprint,
                "--output", directory + "/data.sig", "--detach-sign", directory + "/data",
            ]
        )
        let theirs = try readBytes(directory + "/data.sig")
        let parsed = try OpenPGPSignature.parse(theirs)
        let signer = try OpenPGPKeySigner(secretKeyExport: key.secretExport, hash: parsed.hashAlgorithm)
        let ours = try signer.detachedSignature(over: data, now: parsed.creationTime)
        #expect(ours == theirs)
    }

    /// With rpmsign's creation time and hash, the signed file is byte-identical to `rpmsign --addsign`'s.
    @Test(.requires(tools: "/usr/bin/rpmsign"))
    func signedFileEqualsRpmsign() throws {
        let fixtures = try signingFixtures()
        defer { stopAgent(fixtures.gnupgHome) }
        let key = fixtures.key4096
        let theirsPath = try fixtures.copy(fixtures.smallRPM, name: "rpmsign")
        let oursPath = try fixtures.copy(fixtures.smallRPM, name: "ours")
        let result = try run(
            "/usr/bin/rpmsign",
            [
                "--define", "_gpg_path \(fixtures.gnupgHome)", "--define", "_gpg_name \(key.fingerprint)",
                "--define", "__gpg /usr/bin/gpg", "--addsign", theirsPath,
            ],
            home: fixtures.home
        )
        try #require(result.status == 0, "rpmsign failed: \(result.stderr)")
        let theirs = try readBytes(theirsPath)
        let theirPacket = try #require(try RPMReader.parse(theirs).signature.binary(RPMTag.sigRSAHeader))
        let parsed = try OpenPGPSignature.parse(theirPacket)

        let prepared = try RPMFileSigner.prepare(path: oursPath)
        let signer = try OpenPGPKeySigner(secretKeyExport: key.secretExport, hash: parsed.hashAlgorithm)
        let packet = try signer.detachedSignature(over: prepared.mainHeader, now: parsed.creationTime)
        let signed = try RPMFileSigner.finish(prepared, signaturePacket: packet, expectedKeyID: signer.expectedKeyID)
        #expect(signed.keptLayout)
        #expect(try readBytes(oursPath) == theirs)
    }
}

@Suite(.requires(signingTools))
struct RPMFileSigningTests {
    enum Package: String, CaseIterable, Sendable {
        case small, noReserve, large
        func path(_ fixtures: SigningFixtures) -> String {
            switch self {
            case .small: return fixtures.smallRPM
            case .noReserve: return fixtures.noReserveRPM
            case .large: return fixtures.largeRPM
            }
        }
    }

    @Test(arguments: [(Package.small, 2048), (.small, 4096), (.noReserve, 2048), (.noReserve, 4096), (.large, 4096)])
    func rpmkeysAcceptsOurSignature(_ package: Package, _ bits: Int) throws {
        let fixtures = try signingFixtures()
        let key = fixtures.key(bits)
        let path = try fixtures.copy(package.path(fixtures), name: "sign")
        let original = try readBytes(path)
        let before = try RPMReader.parse(original)
        #expect(before.signature.entry(RPMTag.sigRSAHeader) == nil)
        let unsigned = try checksig(path, fixtures: fixtures)
        #expect(!unsigned.output.contains("Signature"))

        let signer = try OpenPGPKeySigner(secretKeyExport: key.secretExport)
        let result = try RPMFileSigner.signRPM(path: path, signer: signer)
        let signed = try readBytes(path)
        let after = try RPMReader.parse(signed)

        #expect(result.tag == RPMTag.sigRSAHeader)
        #expect(result.signature.issuerKeyID == signer.publicKey.keyID)
        #expect(result.newFileSize == signed.count)
        #expect(Array(signed.prefix(96)) == Array(original.prefix(96)))
        #expect(signed[after.mainHeaderRange.lowerBound...] == original[before.mainHeaderRange.lowerBound...])
        #expect(after.signature.entries.filter { $0.tag == RPMTag.sigRSAHeader }.count == 1)
        let packet = try #require(after.signature.binary(RPMTag.sigRSAHeader))
        #expect(try OpenPGPSignature.parse(packet).issuerKeyID == signer.publicKey.keyID)
        for tag in [RPMTag.sigSHA256Header, RPMTag.sigSHA1Header, RPMTag.sigSize, RPMTag.sigMD5, RPMTag.sigPayloadSize]
        {
            #expect(after.signature.binary(tag) == before.signature.binary(tag))
            #expect(after.signature.string(tag) == before.signature.string(tag))
            #expect(after.signature.uint32s(tag) == before.signature.uint32s(tag))
        }

        let oldReserved = try #require(before.signature.entry(RPMTag.sigReservedSpace)?.count)
        switch package {
        case .small, .large:
            // Reserved space absorbed the signature: same size, same offsets.
            #expect(result.keptLayout)
            #expect(signed.count == original.count)
            #expect(after.signatureRange == before.signatureRange)
            #expect(after.mainHeaderRange == before.mainHeaderRange)
            let newReserved = try #require(after.signature.entry(RPMTag.sigReservedSpace)?.count)
            #expect(newReserved < oldReserved)
            #expect(result.reservedSpace == newReserved)
            // The region grew by the packet and one index entry (plus at most an alignment pad).
            #expect((oldReserved - newReserved) - packet.count - 16 <= 3)
        case .noReserve:
            // 1008 is only 32 bytes: the header grows and the main header moves.
            #expect(oldReserved == 32)
            #expect(!result.keptLayout)
            #expect(signed.count > original.count)
            #expect(after.mainHeaderRange.lowerBound > before.mainHeaderRange.lowerBound)
            #expect(after.signature.entry(RPMTag.sigReservedSpace)?.count == 32)
        }

        let check = try checksig(path, fixtures: fixtures)
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("Header V4 RSA/SHA256 Signature, key ID \(key.rpmKeyID): OK"), "\(check.output)")
        // The verdict lines only: the first line is the file's path, which may contain anything (a UUID's "BAD4").
        let verdicts = check.output.split(separator: "\n").dropFirst().joined(separator: "\n")
        #expect(!verdicts.contains("BAD"), "\(check.output)")
        #expect(!verdicts.contains("NOKEY"), "\(check.output)")
        let name = URL(fileURLWithPath: path).lastPathComponent
        #expect(strayFiles(in: URL(fileURLWithPath: path).deletingLastPathComponent().path, keep: [name]).isEmpty)
    }

    @Test func tamperedMainHeaderFailsTheCheck() throws {
        let fixtures = try signingFixtures()
        let path = try fixtures.copy(fixtures.smallRPM, name: "tamper")
        try RPMFileSigner.signRPM(
            path: path,
            signer: try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        )
        var bytes = try readBytes(path)
        let package = try RPMReader.parse(bytes)
        // Change one letter of the summary inside the main header (structure stays valid).
        let needle = Array("Signing test package".utf8)
        let range = package.mainHeaderRange
        let start = try #require(
            (range.lowerBound..<(range.upperBound - needle.count)).first {
                bytes[$0..<($0 + needle.count)].elementsEqual(needle)
            }
        )
        bytes[start] = UInt8(ascii: "Z")
        try writeBytes(bytes, to: path)
        let check = try checksig(path, fixtures: fixtures)
        #expect(check.status != 0)
        #expect(check.output.split(separator: "\n").dropFirst().contains { $0.hasSuffix(": BAD") }, "\(check.output)")
        // And we refuse to sign it (its SHA256HEADER no longer matches).
        let refused = #expect(throws: RPMSignError.self) { try RPMFileSigner.prepare(path: path) }
        #expect(refused?.code == .invalidPackage)
    }

    @Test(arguments: [Package.small, .noReserve])
    func resigningReplacesTheSignature(_ package: Package) throws {
        let fixtures = try signingFixtures()
        let path = try fixtures.copy(package.path(fixtures), name: "resign")
        let original = try readBytes(path)
        let signer2048 = try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        let signer4096 = try OpenPGPKeySigner(secretKeyExport: fixtures.key4096.secretExport, hash: .sha512)
        var sizes: [Int] = []
        for (signer, key, hashName) in [
            (signer2048, fixtures.key2048, "SHA256"), (signer4096, fixtures.key4096, "SHA512"),
            (signer2048, fixtures.key2048, "SHA256"),
        ] {
            let result = try RPMFileSigner.signRPM(path: path, signer: signer)
            sizes.append(result.newFileSize)
            let after = try RPMReader.parse(try readBytes(path))
            let signatureTags = after.signature.entries.map(\.tag).filter {
                RPMSignatureWriter.replacedTags.contains($0)
            }
            #expect(signatureTags == [RPMTag.sigRSAHeader])
            let check = try checksig(path, fixtures: fixtures)
            #expect(check.status == 0)
            #expect(
                check.output.contains("Header V4 RSA/\(hashName) Signature, key ID \(key.rpmKeyID): OK"),
                "\(check.output)"
            )
        }
        if package == .small {
            #expect(sizes == [original.count, original.count, original.count])
        } else {
            // Grows for the bigger RSA-4096 packet (1008 has only 32 bytes); going back to the smaller RSA-2048
            // packet keeps the size, since 1008 takes up the difference (docs §4.3 step 5, negative growth).
            #expect(sizes[1] > sizes[0])
            #expect(sizes[2] == sizes[1])
            let reserved = try RPMReader.parse(try readBytes(path)).signature.entry(RPMTag.sigReservedSpace)?.count
            #expect((reserved ?? 0) > 32)
        }
    }

    @Test func armoredSignatureIsAccepted() throws {
        let fixtures = try signingFixtures()
        let path = try fixtures.copy(fixtures.smallRPM, name: "armored")
        let signer = try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        let prepared = try RPMFileSigner.prepare(path: path)
        let armored = OpenPGPArmor.armor(try signer.detachedSignature(over: prepared.mainHeader), kind: .signature)
        try RPMFileSigner.finish(prepared, signaturePacket: Array(armored.utf8), expectedKeyID: signer.expectedKeyID)
        #expect(try checksig(path, fixtures: fixtures).output.contains("key ID \(fixtures.key2048.rpmKeyID): OK"))
    }

    @Test func unusablePacketsAreRefusedAndTheFileIsUntouched() throws {
        let fixtures = try signingFixtures()
        let path = try fixtures.copy(fixtures.smallRPM, name: "refuse")
        let name = URL(fileURLWithPath: path).lastPathComponent
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let original = try readBytes(path)
        let signer = try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        let prepared = try RPMFileSigner.prepare(path: path)
        let good = try signer.detachedSignature(over: prepared.mainHeader)

        // Without the unhashed issuer key ID: rpm 4.18 would say NOKEY.
        var noKeyID = Array(good[3..<38]) + [0x00, 0x00] + Array(good[50...])
        noKeyID = OpenPGPPacket.oldFormatHeader(tag: 2, bodyLength: noKeyID.count) + noKeyID
        // A text signature (type 0x01).
        var textType = good
        textType[4] = 0x01
        // A signature over other bytes.
        let otherData = try signer.detachedSignature(over: Array("not the header".utf8))
        let cases: [(String, [UInt8], [UInt8]?)] = [
            ("garbage", [1, 2, 3], nil),
            ("empty", [], nil),
            ("no key ID", noKeyID, nil),
            ("text type", textType, nil),
            ("other data", otherData, nil),
            ("wrong key", good, fixtures.key4096.fingerprint.suffix(16).hexBytes),
            ("trailing byte", good + [0], nil),
            ("secret key", fixtures.key2048.secretExport, nil),
            ("armored public key", Array(fixtures.key2048.gpgArmoredPublicKey.utf8), nil),
        ]
        for (label, packet, expectedKeyID) in cases {
            let error = #expect(throws: RPMSignError.self, "\(label)") {
                try RPMFileSigner.finish(prepared, signaturePacket: packet, expectedKeyID: expectedKeyID)
            }
            #expect(error?.code == .invalidSignature, "\(label): \(String(describing: error))")
            #expect(try readBytes(path) == original)
        }
        #expect(strayFiles(in: directory, keep: [name]).isEmpty)
    }

    @Test func changesBetweenPrepareAndFinishAreDetected() throws {
        let fixtures = try signingFixtures()
        let path = try fixtures.copy(fixtures.smallRPM, name: "changed")
        let name = URL(fileURLWithPath: path).lastPathComponent
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let signer = try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        let prepared = try RPMFileSigner.prepare(path: path)
        let packet = try signer.detachedSignature(over: prepared.mainHeader)

        let appended = try readBytes(path) + [0]
        try writeBytes(appended, to: path)
        let error = #expect(throws: RPMSignError.self) { try RPMFileSigner.finish(prepared, signaturePacket: packet) }
        #expect(error?.code == .fileChanged)
        #expect(try readBytes(path) == appended)
        #expect(strayFiles(in: directory, keep: [name]).isEmpty)

        // A truncated file (wrong SIZE) is refused up front.
        let refused = #expect(throws: RPMSignError.self) { try RPMFileSigner.prepare(path: path) }
        #expect(refused?.code == .invalidPackage)
    }

    @Test func symlinksAndNonRPMsAreRefused() throws {
        let fixtures = try signingFixtures()
        let path = try fixtures.copy(fixtures.smallRPM, name: "symlink")
        let link = URL(fileURLWithPath: path).deletingLastPathComponent().path + "/link.rpm"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        let signer = try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        let error = #expect(throws: RPMSignError.self) { try RPMFileSigner.signRPM(path: link, signer: signer) }
        #expect(error?.code == .io)
        #expect(error?.errno == ELOOP)
        #expect(try readBytes(path) == readBytes(fixtures.smallRPM))

        let notRPM = URL(fileURLWithPath: path).deletingLastPathComponent().path + "/not.rpm"
        try writeBytes(Array("hello".utf8), to: notRPM)
        #expect(throws: RPMSignError.self) { try RPMFileSigner.signRPM(path: notRPM, signer: signer) }
        #expect(throws: RPMSignError.self) { try RPMFileSigner.signRPM(path: notRPM + ".missing", signer: signer) }
    }

    @Test func malformedKeysAndPacketsAreErrorsNotCrashes() throws {
        let fixtures = try signingFixtures()
        var rng = SeededGenerator(seed: 0x0BAD_5EED)

        // Key exports: a mutation either fails cleanly or (outside the key material) still loads.
        var keyFailures = 0
        for _ in 0..<300 {
            do {
                _ = try OpenPGPKeySigner(secretKeyExport: mutate(fixtures.key2048.secretExport, using: &rng))
            } catch {
                keyFailures += 1
                #expect(!String(describing: error).contains(Crypto.hex(fixtures.key2048.secretExport[300..<306])))
            }
        }
        #expect(keyFailures > 200)

        // Signature packets: validate, and when a mutant passes, inserting it must still give a parseable RPM.
        let bytes = try readBytes(fixtures.smallRPM)
        let package = try RPMReader.parse(bytes)
        let mainHeader = Array(bytes[package.mainHeaderRange])
        let signer = try OpenPGPKeySigner(secretKeyExport: fixtures.key2048.secretExport)
        let packet = try signer.detachedSignature(over: mainHeader)
        var packetFailures = 0
        for _ in 0..<300 {
            let mutant = mutate(packet, using: &rng)
            do {
                let (tag, _) = try RPMSignaturePacket.validate(mutant)
                let signed = try RPMSignatureWriter.signedFile(bytes, tag: tag, packet: mutant)
                #expect(try RPMReader.parse(signed).signature.binary(tag) == mutant)
            } catch {
                packetFailures += 1
            }
        }
        #expect(packetFailures > 150)

        // Mutated RPM files: prepare either refuses them or they are still consistent.
        let directory = try fixtures.scratch("mutants")
        for index in 0..<60 {
            var mutant = bytes
            let position = Int.random(in: 0..<min(mutant.count, package.mainHeaderRange.upperBound + 64), using: &rng)
            mutant[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            let path = directory + "/m\(index).rpm"
            try writeBytes(mutant, to: path)
            if let prepared = try? RPMFileSigner.prepare(path: path) {
                _ = try? RPMFileSigner.finish(
                    prepared,
                    signaturePacket: try signer.detachedSignature(over: prepared.mainHeader)
                )
            }
        }
    }

    /// Not a timed assertion: prints the cost per signature.
    @Test func reportTimePerSignature() throws {
        let fixtures = try signingFixtures()
        let mainHeader: [UInt8] = {
            let bytes = try! readBytes(fixtures.smallRPM)
            return Array(bytes[try! RPMReader.parse(bytes).mainHeaderRange])
        }()
        for (key, rounds) in [(fixtures.key4096, 100), (fixtures.key2048, 300)] {
            let signer = try OpenPGPKeySigner(secretKeyExport: key.secretExport)
            _ = try signer.detachedSignature(over: mainHeader)
            let clock = ContinuousClock()
            let elapsed = try clock.measure {
                for _ in 0..<rounds { _ = try signer.detachedSignature(over: mainHeader) }
            }
            let ms = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
            print(
                "[timing] RSA-\(key.bits) detached signature over a \(mainHeader.count)-byte header: "
                    + "\(String(format: "%.2f", ms / Double(rounds))) ms/signature (\(rounds) rounds, debug build)"
            )
        }
        let path = try fixtures.copy(fixtures.largeRPM, name: "timing")
        let signer = try OpenPGPKeySigner(secretKeyExport: fixtures.key4096.secretExport)
        let clock = ContinuousClock()
        let elapsed = try clock.measure { try RPMFileSigner.signRPM(path: path, signer: signer) }
        print("[timing] signRPM (RSA-4096, \(try readBytes(path).count)-byte package with a large header): \(elapsed)")
    }
}

extension StringProtocol {
    /// "0A1B…" → [0x0A, 0x1B, …].
    var hexBytes: [UInt8] {
        var out: [UInt8] = []
        var index = self.startIndex
        while index < self.endIndex, let next = self.index(index, offsetBy: 2, limitedBy: self.endIndex) {
            out.append(UInt8(self[index..<next], radix: 16) ?? 0)
            index = next
        }
        return out
    }
}

/// `RPMSignatureWriter` on a real unsigned header with packets of every size around the reserved-space boundary.
@Suite(.requires(signingTools))
struct RPMSignatureWriterTests {
    @Test func reservedSpaceAbsorbsUntilItRunsOut() throws {
        let fixtures = try signingFixtures()
        let bytes = try readBytes(fixtures.smallRPM)
        let package = try RPMReader.parse(bytes)
        let oldSize = package.signatureRange.count
        let reserved = try #require(package.signature.entry(RPMTag.sigReservedSpace)?.count)
        var lastInPlace = 0
        var firstGrown = Int.max
        for length in stride(from: 1, through: reserved + 64, by: 1) {
            let packet = [UInt8](repeating: 0xAB, count: length)
            let plan = try RPMSignatureWriter.plan(for: package, tag: RPMTag.sigRSAHeader, packet: packet)
            let header = try RPMReader.parseHeader(plan.header, at: 0, regionTag: RPMTag.headerSignatures).header
            #expect(header.binary(RPMTag.sigRSAHeader) == packet)
            #expect(plan.paddedHeader.count % 8 == 0)
            if plan.keepsLayout {
                #expect(plan.header.count == oldSize)
                #expect(plan.reservedSpace == header.entry(RPMTag.sigReservedSpace)?.count)
                #expect((plan.reservedSpace ?? 0) >= 1)
                lastInPlace = length
            } else {
                #expect(plan.sizeChange > 0)
                #expect(header.entry(RPMTag.sigReservedSpace)?.count == reserved)
                firstGrown = min(firstGrown, length)
            }
        }
        // In place while the packet, its index entry and the alignment pad fit in 1008 with one byte to spare.
        #expect(lastInPlace < firstGrown)
        #expect(lastInPlace >= reserved - 16 - 4 && lastInPlace <= reserved - 16)

        // The whole-file helper agrees with the plan and keeps everything after the signature header.
        let packet = [UInt8](repeating: 0xCD, count: 600)
        let signed = try RPMSignatureWriter.signedFile(bytes, tag: RPMTag.sigDSAHeader, packet: packet)
        #expect(signed.count == bytes.count)
        #expect(try RPMReader.parse(signed).signature.binary(RPMTag.sigDSAHeader) == packet)
        #expect(signed[package.mainHeaderRange.lowerBound...] == bytes[package.mainHeaderRange.lowerBound...])

        for (tag, bad) in [
            (RPMTag.sigPGP, packet), (RPMTag.sigRSAHeader, []),
            (RPMTag.sigRSAHeader, [UInt8](repeating: 1, count: 70_000)),
        ] {
            let error = #expect(throws: RPMError.self) {
                try RPMSignatureWriter.plan(for: package, tag: tag, packet: bad)
            }
            #expect(error?.code == .cannotSign)
        }
    }
}
