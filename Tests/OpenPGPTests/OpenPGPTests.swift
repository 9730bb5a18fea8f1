// Pure tests of the OpenPGP module: packet framing, secret-key parsing, signature building and parsing, armor.
// Real gpg/rpm interoperability is tested in RPMSignTests.
import Foundation
import LibCrypto
import OpenPGP
import TestSupport
import Testing

@Suite struct SecretKeyParsingTests {
    @Test func parsesSyntheticExport() throws {
        let synthetic = SyntheticKey()
        let key = try OpenPGPSecretKey.parseTransferable(synthetic.export, hashes: TestHashes())
        #expect(key.publicKey.creationTime == synthetic.creationTime)
        #expect(key.publicKey.algorithm == .rsa)
        #expect(key.publicKey.modulus == synthetic.n)
        #expect(key.publicKey.exponent == [0x01, 0x00, 0x01])
        #expect(key.publicKey.modulusBits == 2048)
        #expect(key.publicKey.packetBody == synthetic.publicBody)
        #expect(key.secret.d == synthetic.d)
        #expect(key.secret.p == synthetic.p)
        #expect(key.secret.q == synthetic.q)
        #expect(key.secret.u == synthetic.u)
        #expect(key.userIDs == [synthetic.userID])

        let body = synthetic.publicBody
        let expected = Crypto.sha1([0x99, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body)
        #expect(key.publicKey.fingerprint == expected)
        #expect(key.publicKey.keyID == Array(expected.suffix(8)))
        #expect(key.publicKey.fingerprintHex == Crypto.hex(expected).uppercased())
        #expect(key.publicKey.keyIDHex.count == 16)

        // The public export gives the same key.
        let publicKey = try OpenPGPPublicKey.parseTransferable(synthetic.publicExport, hashes: TestHashes())
        #expect(publicKey == key.publicKey)
    }

    @Test func secretsNeverAppearInDescriptions() throws {
        let synthetic = SyntheticKey()
        let key = try OpenPGPSecretKey.parseTransferable(synthetic.export, hashes: TestHashes())
        let secretHex = Crypto.hex(synthetic.d.prefix(6))
        var dumped = ""
        dump(key, to: &dumped)
        for text in ["\(key)", String(reflecting: key), "\(key.secret)", String(reflecting: key.secret), dumped] {
            #expect(!text.lowercased().contains(secretHex))
            #expect(!text.contains(String(describing: synthetic.d.prefix(4))))
        }
    }

    @Test func refusesWhatItCannotUse() {
        func code(_ export: [UInt8]) -> OpenPGPError.Code? {
            do {
                _ = try OpenPGPSecretKey.parseTransferable(export, hashes: TestHashes())
                return nil
            } catch {
                return error.code
            }
        }
        var key = SyntheticKey()
        key.s2kUsage = 254
        #expect(code(key.export) == .encryptedSecretKey)
        key = SyntheticKey()
        key.checksumDelta = 1
        #expect(code(key.export) == .badChecksum)
        key = SyntheticKey()
        key.version = 3
        #expect(code(key.export) == .unsupportedVersion)
        key = SyntheticKey()
        key.algorithm = 17
        #expect(code(key.export) == .unsupportedAlgorithm)
        #expect(code(SyntheticKey().publicExport) == .unexpectedPacket)
        #expect(code(SyntheticKey().export + SyntheticKey().export) == .unexpectedPacket)
        #expect(code([]) == .truncated)
        #expect(code([0x00, 0x01]) == .malformed)
        // Indeterminate old-format length and partial new-format length.
        #expect(code([0x97, 0x04]) == .malformed)
        #expect(code([0xC5, 0xE1, 0x00]) == .malformed)
        // Trailing garbage inside the key packet (checksum must end the body).
        var body = SyntheticKey().secretKeyBody
        body.append(0)
        #expect(code([0x95, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body) == .malformed)
        // A non-canonical MPI (bit count larger than the value).
        key = SyntheticKey()
        var export = key.export
        export[3 + 6 + 1] &+= 1  // n's bit count 0x0800 -> 0x0801
        #expect(code(export) != nil)
        // Too large.
        #expect(code([UInt8](repeating: 0x95, count: (1 << 20) + 1)) == .tooLarge)
    }

    @Test func everyTruncationIsAnError() {
        let export = SyntheticKey().export
        // Cutting inside the key packet must fail; cutting between packets leaves a valid, shorter export.
        let keyPacketLength = 3 + SyntheticKey().secretKeyBody.count
        for length in 0..<keyPacketLength {
            #expect(throws: OpenPGPError.self) {
                try OpenPGPSecretKey.parseTransferable(Array(export.prefix(length)), hashes: TestHashes())
            }
        }
    }

    @Test func seededMutationsNeverCrash() {
        let export = SyntheticKey().export
        var rng = SeededGenerator(seed: 0x5EED_0001)
        var parsed = 0
        var failed = 0
        for _ in 0..<500 {
            let input = mutate(export, using: &rng)
            do {
                let key = try OpenPGPSecretKey.parseTransferable(input, hashes: TestHashes())
                parsed += 1
                #expect(key.publicKey.fingerprint.count == 20)
            } catch {
                failed += 1
                #expect(!error.detail.isEmpty)
            }
        }
        #expect(parsed + failed == 500)
        #expect(failed > 300)
    }
}

@Suite struct SignatureTests {
    static let key = try! OpenPGPSecretKey.parseTransferable(SyntheticKey().export, hashes: TestHashes()).publicKey
    static let key4096: OpenPGPPublicKey = {
        var synthetic = SyntheticKey()
        synthetic.n = number(512, seed: 11)
        return try! OpenPGPSecretKey.parseTransferable(synthetic.export, hashes: TestHashes()).publicKey
    }()

    /// The exact layout of docs/openpgp-signing.md §2 (RSA-4096 size: 566 bytes, `89 02 33`).
    @Test func layoutMatchesTheDocumentedPacket() throws {
        let value = [UInt8](repeating: 0xA5, count: 512)
        let signer = FakeSigner(value: value)
        let data = Array("header bytes".utf8)
        let now: UInt32 = 0x6B10_0000
        let packet = try OpenPGPSignatureBuilder.detachedSignature(
            over: data,
            key: Self.key4096,
            signer: signer,
            hashes: TestHashes(),
            hash: .sha256,
            now: now
        )
        #expect(packet.count == 566)
        #expect(Array(packet.prefix(3)) == [0x89, 0x02, 0x33])
        #expect(Array(packet[3..<9]) == [0x04, 0x00, 0x01, 0x08, 0x00, 0x1D])
        #expect(Array(packet[9..<12]) == [0x16, 0x21, 0x04])
        #expect(Array(packet[12..<32]) == Self.key4096.fingerprint)
        #expect(Array(packet[32..<38]) == [0x05, 0x02, 0x6B, 0x10, 0x00, 0x00])
        #expect(Array(packet[38..<42]) == [0x00, 0x0A, 0x09, 0x10])
        #expect(Array(packet[42..<50]) == Self.key4096.keyID)
        let digest = try #require(signer.digests.first)
        #expect(Array(packet[50..<52]) == Array(digest.prefix(2)))
        #expect(Array(packet[52..<54]) == [0x10, 0x00])
        #expect(Array(packet[54...]) == value)

        // The digest is SHA-256(data ‖ hashed part ‖ 04 FF 00 00 00 23).
        let hashedPart = Array(packet[3..<38])
        #expect(digest == Crypto.sha256(data + hashedPart + [0x04, 0xFF, 0x00, 0x00, 0x00, 0x23]))

        let parsed = try OpenPGPSignature.parse(packet)
        #expect(parsed.signatureType == 0)
        #expect(parsed.publicKeyAlgorithm == .rsa)
        #expect(parsed.hashAlgorithm == .sha256)
        #expect(parsed.creationTime == now)
        #expect(parsed.issuerKeyID == Self.key4096.keyID)
        #expect(parsed.hasIssuerKeyIDSubpacket)
        #expect(parsed.issuerFingerprint == Self.key4096.fingerprint)
        #expect(parsed.hashedSubpackets.map(\.type) == [33, 2])
        #expect(parsed.unhashedSubpackets.map(\.type) == [16])
        #expect(!parsed.hashedSubpackets.contains { $0.isCritical })
        #expect(parsed.mpis == [value])
        #expect(parsed.packetLength == 566)
        #expect(try parsed.signedDigest(over: data, hashes: TestHashes()) == digest)
    }

    @Test func leadingZerosAreStrippedAndTimeIsNotBeforeTheKey() throws {
        var value = [UInt8](repeating: 0x33, count: 256)
        value[0] = 0
        value[1] = 0x0F  // 2036 bits
        let signer = FakeSigner(value: value)
        let packet = try OpenPGPSignatureBuilder.detachedSignature(
            over: [1, 2, 3],
            key: Self.key,
            signer: signer,
            hashes: TestHashes(),
            hash: .sha512,
            now: Self.key.creationTime - 86_400
        )
        let parsed = try OpenPGPSignature.parse(packet)
        #expect(parsed.hashAlgorithm == .sha512)
        #expect(signer.hashes == [.sha512])
        #expect(signer.digests.first?.count == 64)
        #expect(parsed.creationTime == Self.key.creationTime)
        #expect(parsed.mpis == [Array(value.dropFirst())])
        #expect(packet.count == 310 - 1)
        // Bit count 2036 = 0x07F4.
        #expect(Array(packet[packet.count - 257..<packet.count - 255]) == [0x07, 0xF4])
    }

    @Test func builderRefusesWeakHashesAndSignerFailures() {
        let signer = FakeSigner(value: [1])
        for hash in [OpenPGPHashAlgorithm.sha1, .md5, .sha384, OpenPGPHashAlgorithm(rawValue: 99)] {
            let error = #expect(throws: OpenPGPError.self) {
                try OpenPGPSignatureBuilder.detachedSignature(
                    over: [1],
                    key: Self.key,
                    signer: signer,
                    hashes: TestHashes(),
                    hash: hash,
                    now: 0
                )
            }
            #expect(error?.code == .unsupportedAlgorithm)
        }
        struct Boom: Error {}
        signer.failure = Boom()
        let error = #expect(throws: OpenPGPError.self) {
            try OpenPGPSignatureBuilder.detachedSignature(
                over: [1],
                key: Self.key,
                signer: signer,
                hashes: TestHashes(),
                now: 0
            )
        }
        #expect(error?.code == .signerFailed)
        #expect(error?.underlyingError is Boom)
        let zero = FakeSigner(value: [0, 0, 0])
        #expect(throws: OpenPGPError.self) {
            try OpenPGPSignatureBuilder.detachedSignature(
                over: [1],
                key: Self.key,
                signer: zero,
                hashes: TestHashes(),
                now: 0
            )
        }
    }

    /// Hand-built packets with one rule broken each.
    @Test func parserRefusesBrokenPackets() throws {
        func packet(
            version: UInt8 = 4,
            algorithm: UInt8 = 1,
            hash: UInt8 = 8,
            hashed: [OpenPGPSubpacket],
            unhashed: [OpenPGPSubpacket],
            mpis: [[UInt8]] = [[0x00, 0x09, 0x01, 0xFF]],
            newFormat: Bool = false,
            trailing: [UInt8] = []
        ) -> [UInt8] {
            let hashedArea = hashed.flatMap(\.encoded)
            let unhashedArea = unhashed.flatMap(\.encoded)
            let body =
                [version, 0, algorithm, hash, UInt8(hashedArea.count >> 8), UInt8(hashedArea.count & 0xFF)]
                + hashedArea + [UInt8(unhashedArea.count >> 8), UInt8(unhashedArea.count & 0xFF)] + unhashedArea
                + [0xAB, 0xCD] + mpis.flatMap { $0 } + trailing
            if newFormat, body.count < 192 {
                return [0xC2, UInt8(body.count)] + body
            }
            if newFormat {
                return [0xC2, 0xC0 + UInt8((body.count - 192) >> 8), UInt8((body.count - 192) & 0xFF)] + body
            }
            return OpenPGPPacket.oldFormatHeader(tag: 2, bodyLength: body.count) + body
        }
        let time = OpenPGPSubpacket(type: 2, data: [0, 0, 0, 1])
        let keyID = OpenPGPSubpacket(type: 16, data: Array(Self.key.keyID))
        let fpr = OpenPGPSubpacket(type: 33, data: [4] + Self.key.fingerprint)
        let parsed = try OpenPGPSignature.parse(packet(hashed: [fpr, time], unhashed: [keyID]))
        #expect(parsed.issuerKeyID == Self.key.keyID)
        #expect(parsed.mpis == [[0x01, 0xFF]])

        func code(_ bytes: [UInt8]) -> OpenPGPError.Code? {
            do {
                _ = try OpenPGPSignature.parse(bytes)
                return nil
            } catch {
                return error.code
            }
        }
        let mpi9: [[UInt8]] = [[0x00, 0x09, 0x01, 0xFF]]
        #expect(code(packet(hashed: [fpr, time], unhashed: [keyID], mpis: mpi9)) == nil)
        #expect(code(packet(hashed: [fpr, time], unhashed: [keyID], mpis: mpi9, newFormat: true)) == nil)
        #expect(code(packet(version: 3, hashed: [time], unhashed: [keyID], mpis: mpi9)) == .unsupportedVersion)
        #expect(code(packet(version: 5, hashed: [time], unhashed: [keyID], mpis: mpi9)) == .unsupportedVersion)
        #expect(code(packet(algorithm: 99, hashed: [time], unhashed: [keyID], mpis: mpi9)) == .unsupportedAlgorithm)
        #expect(code(packet(hash: 77, hashed: [time], unhashed: [keyID], mpis: mpi9)) == .unsupportedAlgorithm)
        #expect(code(packet(hashed: [fpr], unhashed: [keyID, time], mpis: mpi9)) == .malformed)
        #expect(code(packet(hashed: [time, time], unhashed: [keyID], mpis: mpi9)) == .malformed)
        #expect(code(packet(hashed: [], unhashed: [keyID], mpis: mpi9)) == .malformed)
        #expect(code(packet(hashed: [time], unhashed: [keyID], mpis: [[0x00, 0x0A, 0x01, 0xFF]])) == .malformed)
        #expect(code(packet(hashed: [time], unhashed: [keyID], mpis: mpi9, trailing: [0])) == .malformed)
        #expect(code(packet(hashed: [time], unhashed: [keyID], mpis: mpi9) + [0]) == .malformed)
        let otherID = OpenPGPSubpacket(type: 16, data: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(code(packet(hashed: [fpr, time], unhashed: [otherID], mpis: mpi9)) == .malformed)
        #expect(
            code(packet(hashed: [time], unhashed: [OpenPGPSubpacket(type: 16, data: [1])], mpis: mpi9)) == .malformed
        )
        #expect(code([0x88, 0x01, 0x04]) == .truncated)
        #expect(code(SyntheticKey().export) == .unexpectedPacket)

        // Fingerprint alone: parses, but there is no key-ID subpacket (rpm 4.18 would say NOKEY).
        let fprOnly = try OpenPGPSignature.parse(packet(hashed: [fpr, time], unhashed: [], mpis: mpi9))
        #expect(!fprOnly.hasIssuerKeyIDSubpacket)
        #expect(fprOnly.issuerKeyID == Self.key.keyID)
        // Critical bits are reported.
        let critical = OpenPGPSubpacket(type: 33, isCritical: true, data: [4] + Self.key.fingerprint)
        let withCritical = try OpenPGPSignature.parse(packet(hashed: [critical, time], unhashed: [keyID], mpis: mpi9))
        #expect(withCritical.hashedSubpackets.first?.isCritical == true)
    }

    @Test func seededMutationsNeverCrash() throws {
        let signer = FakeSigner(value: number(256, seed: 9))
        let packet = try OpenPGPSignatureBuilder.detachedSignature(
            over: [9, 9, 9],
            key: Self.key,
            signer: signer,
            hashes: TestHashes(),
            now: 0x6C00_0000
        )
        var rng = SeededGenerator(seed: 0x5EED_0002)
        var failed = 0
        for _ in 0..<500 {
            do {
                let parsed = try OpenPGPSignature.parse(mutate(packet, using: &rng))
                #expect(parsed.mpis.count == 1)
            } catch {
                failed += 1
            }
        }
        #expect(failed > 300)
        for length in 0..<packet.count {
            #expect(throws: OpenPGPError.self) { try OpenPGPSignature.parse(Array(packet.prefix(length))) }
        }
    }

    @Test func subpacketLengthEncodings() throws {
        for size in [0, 190, 191, 500, 8382, 8383, 9000] {
            let subpacket = OpenPGPSubpacket(type: 20, data: [UInt8](repeating: 7, count: size))
            let encoded = subpacket.encoded
            let expectedHeader = size + 1 < 192 ? 1 : (size + 1 < 8384 ? 2 : 5)
            #expect(encoded.count == size + 1 + expectedHeader)
        }
    }
}

@Suite struct ArmorTests {
    @Test func crc24KnownValues() {
        #expect(OpenPGPArmor.crc24([UInt8]()) == 0xB704CE)
        #expect(OpenPGPArmor.crc24(Array("123456789".utf8)) == 0x21CF02)
    }

    @Test func armorRoundTripsAndIsChecked() throws {
        for length in [0, 1, 2, 3, 47, 48, 49, 1000] {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37) }
            let text = OpenPGPArmor.armor(bytes, kind: .signature)
            #expect(text.hasPrefix("-----BEGIN PGP SIGNATURE-----\n\n"))
            #expect(text.hasSuffix("\n-----END PGP SIGNATURE-----\n"))
            #expect(text.split(separator: "\n").allSatisfy { $0.count <= 64 })
            let decoded = try OpenPGPArmor.dearmor(Array(text.utf8))
            #expect(decoded.kind == .signature)
            #expect(decoded.bytes == bytes)
            // CRLF and armor headers are accepted.
            let crlf = text.replacingOccurrences(of: "\n\n", with: "\nVersion: test\n\n")
                .replacingOccurrences(of: "\n", with: "\r\n")
            #expect(try OpenPGPArmor.dearmor(Array(crlf.utf8)).bytes == bytes)
        }
        let text = OpenPGPArmor.armor([1, 2, 3, 4, 5], kind: .publicKey)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let crcIndex = lines.firstIndex { $0.hasPrefix("=") }!
        lines[crcIndex] = lines[crcIndex] == "=AAAA" ? "=AAAB" : "=AAAA"
        #expect(throws: OpenPGPError.self) { try OpenPGPArmor.dearmor(Array(lines.joined(separator: "\n").utf8)) }
        #expect(throws: OpenPGPError.self) {
            try OpenPGPArmor.dearmor(
                Array(text.replacingOccurrences(of: "-----END PGP PUBLIC KEY BLOCK-----", with: "").utf8)
            )
        }
        #expect(throws: OpenPGPError.self) {
            try OpenPGPArmor.dearmor(
                Array(text.replacingOccurrences(of: "END PGP PUBLIC KEY", with: "END PGP SIGNATURE").utf8)
            )
        }
        #expect(throws: OpenPGPError.self) { try OpenPGPArmor.dearmor(Array("AQID".utf8)) }
    }

    @Test func publicKeyArmorRefusesSecretKeys() throws {
        let armored = try OpenPGPArmor.armorPublicKey(SyntheticKey().publicExport)
        #expect(armored.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"))
        #expect(try OpenPGPArmor.dearmor(Array(armored.utf8)).bytes == SyntheticKey().publicExport)
        let secret = #expect(throws: OpenPGPError.self) { try OpenPGPArmor.armorPublicKey(SyntheticKey().export) }
        #expect(secret?.code == .unexpectedPacket)
        // A secret subkey packet hidden after the public key is refused too.
        let withSubkey = SyntheticKey().publicExport + [0x9D, 0x01, 0x04]
        #expect(throws: OpenPGPError.self) { try OpenPGPArmor.armorPublicKey(withSubkey) }
        #expect(throws: OpenPGPError.self) { try OpenPGPArmor.armorPublicKey([]) }
    }
}
