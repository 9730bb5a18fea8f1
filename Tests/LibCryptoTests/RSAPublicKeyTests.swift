// RSAPublicKey against signatures made by the openssl CLI and by RSAPrivateKey.
import Foundation
import LibCrypto
import TestSupport
import Testing

@Suite(.requires(tools: "/usr/bin/openssl"))
struct RSAPublicKeyTests {
    static let key2048: Result<OpenSSLKey, any Error> = Result { try OpenSSLKey.generate(bits: 2048) }
    static let other2048: Result<OpenSSLKey, any Error> = Result { try OpenSSLKey.generate(bits: 2048) }

    @Test(arguments: [DigestAlgorithm.sha256, .sha512])
    func verifiesOpenSSLSignaturesAndRefusesChanges(_ algorithm: DigestAlgorithm) throws {
        let k = try Self.key2048.get()
        let digest = Crypto.digest(algorithm, Array("koper verifies this".utf8))
        let digestPath = k.directory + "/pub-digest-\(algorithm).bin"
        let sigPath = k.directory + "/pub-sig-\(algorithm).bin"
        _ = FileManager.default.createFile(atPath: digestPath, contents: Data(digest))
        let md = algorithm == .sha256 ? "sha256" : "sha512"
        try shell([
            "openssl", "pkeyutl", "-sign", "-inkey", k.pem, "-pkeyopt", "digest:\(md)", "-in", digestPath,
            "-out", sigPath,
        ])
        let signature = [UInt8](FileManager.default.contents(atPath: sigPath) ?? Data())
        #expect(signature.count == 256)

        let key = try RSAPublicKey(modulus: k.n, exponent: k.e)
        #expect(key.modulusBits == 2048)
        #expect(key.verify(signature: signature, digest: digest, algorithm: algorithm))
        // Our own signer's output verifies too (PKCS#1 v1.5 is deterministic: the same bytes).
        let signer = try RSAPrivateKey(n: k.n, e: k.e, d: k.d, p: k.p, q: k.q)
        #expect(try signer.sign(digest: digest, algorithm: algorithm) == signature)

        var flipped = signature
        flipped[100] ^= 0x01
        #expect(!key.verify(signature: flipped, digest: digest, algorithm: algorithm))
        var otherDigest = digest
        otherDigest[0] ^= 0x80
        #expect(!key.verify(signature: signature, digest: otherDigest, algorithm: algorithm))
        // The DigestInfo names the algorithm: the same bytes under another algorithm do not verify.
        let wrongAlgorithm: DigestAlgorithm = algorithm == .sha256 ? .sha512 : .sha256
        #expect(
            !key.verify(signature: signature, digest: Crypto.digest(wrongAlgorithm, [1]), algorithm: wrongAlgorithm)
        )
        #expect(!key.verify(signature: [], digest: digest, algorithm: algorithm))
        #expect(!key.verify(signature: signature + [0], digest: digest, algorithm: algorithm))
        #expect(!key.verify(signature: signature, digest: Array(digest.dropLast()), algorithm: algorithm))

        let other = try Self.other2048.get()
        let otherKey = try RSAPublicKey(modulus: other.n, exponent: other.e)
        #expect(!otherKey.verify(signature: signature, digest: digest, algorithm: algorithm))
    }

    @Test func shortSignatureValuesAreLeftPadded() throws {
        // OpenPGP stores the signature as an MPI without leading zero bytes; find a digest whose signature starts
        // with a zero byte and check the stripped value verifies.
        let k = try Self.key2048.get()
        let signer = try RSAPrivateKey(n: k.n, e: k.e, d: k.d, p: k.p, q: k.q)
        let key = try RSAPublicKey(modulus: k.n, exponent: k.e)
        var found = false
        for counter in 0..<2000 {
            let digest = Crypto.sha256(Array("message \(counter)".utf8))
            let signature = try signer.sign(digest: digest, algorithm: .sha256)
            guard signature[0] == 0 else { continue }
            let stripped = Array(signature.drop { $0 == 0 })
            #expect(stripped.count < signature.count)
            #expect(key.verify(signature: stripped, digest: digest, algorithm: .sha256))
            found = true
            break
        }
        #expect(found, "no signature with a leading zero byte in 2000 tries (expected about 8)")
    }

    @Test func badComponentsAreRefused() throws {
        let k = try Self.key2048.get()
        #expect(throws: CryptoError.self) { try RSAPublicKey(modulus: [], exponent: k.e) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(modulus: k.n, exponent: []) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(modulus: k.n, exponent: [0x01, 0x00, 0x00]) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(modulus: k.n, exponent: [0x01]) }
        #expect(throws: CryptoError.self) { try RSAPublicKey(modulus: Array(k.n.prefix(128)), exponent: k.e) }
        #expect(throws: CryptoError.self) {
            try RSAPublicKey(modulus: [UInt8](repeating: 0xFF, count: 3000), exponent: k.e)
        }
        // SHA-1 is refused for verification as for signing.
        let key = try RSAPublicKey(modulus: k.n, exponent: k.e)
        #expect(!key.verify(signature: [UInt8](repeating: 1, count: 256), digest: Crypto.sha1([1]), algorithm: .sha1))
    }
}
