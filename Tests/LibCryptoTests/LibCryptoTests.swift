import LibCrypto
import Testing

@Suite struct LibCryptoTests {
    @Test func sha256KnownVectors() {
        #expect(Crypto.sha256Hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Crypto.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
    }

    @Test func incrementalEqualsOneShot() {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let h = DigestHasher(.sha256)
        var i = 0
        while i < data.count {
            let j = min(data.count, i + 7919)
            h.update(data[i..<j])
            i = j
        }
        #expect(h.finalize() == Crypto.sha256(data))
    }

    @Test func randomStringUsesAlphabetAndDiffers() throws {
        let a = try Crypto.randomString(length: 30)
        let b = try Crypto.randomString(length: 30)
        #expect(a.count == 30)
        #expect(a.allSatisfy { $0 >= "a" && $0 <= "z" })
        #expect(a != b)
    }

    @Test func constantTimeEquals() {
        #expect(Crypto.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEquals([1, 2, 3], [1, 2]))
    }
}
