// Test doubles: LibCrypto hashing behind OpenPGP's protocols, a recording RSA signer, synthetic key packets and
// mutations (the seeded generator is TestSupport.SeededGenerator).
import LibCrypto
import OpenPGP
import TestSupport

struct TestHashes: OpenPGPHashProvider {
    final class Hasher: OpenPGPHasher {
        let inner: DigestHasher
        init(_ algorithm: DigestAlgorithm) { self.inner = DigestHasher(algorithm) }
        func update(_ bytes: UnsafeRawBufferPointer) { self.inner.update(bytes) }
        func finalize() -> [UInt8] { self.inner.finalize() }
    }

    func makeHasher(_ algorithm: OpenPGPHashAlgorithm) -> (any OpenPGPHasher)? {
        switch algorithm {
        case .sha1: return Hasher(.sha1)
        case .sha256: return Hasher(.sha256)
        case .sha512: return Hasher(.sha512)
        default: return nil
        }
    }
}

/// Returns a fixed value and records the digest it was asked to sign.
final class FakeSigner: OpenPGPRSASigner {
    let value: [UInt8]
    var digests: [[UInt8]] = []
    var hashes: [OpenPGPHashAlgorithm] = []
    var failure: (any Error)?

    init(value: [UInt8]) { self.value = value }

    func signPKCS1v15(digest: [UInt8], hash: OpenPGPHashAlgorithm) throws -> [UInt8] {
        if let failure { throw failure }
        self.digests.append(digest)
        self.hashes.append(hash)
        return self.value
    }
}

/// Random mutations of `bytes`: flips, overwrites, truncations, insertions, deletions and length-byte pokes.
func mutate(_ bytes: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
    var out = bytes
    let rounds = Int.random(in: 1...4, using: &rng)
    for _ in 0..<rounds {
        guard !out.isEmpty else { break }
        let position = Int.random(in: 0..<out.count, using: &rng)
        switch Int.random(in: 0..<7, using: &rng) {
        case 0: out[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
        case 1: out[position] = UInt8.random(in: 0...255, using: &rng)
        case 2: out = Array(out[0..<position])
        case 3: out.insert(UInt8.random(in: 0...255, using: &rng), at: position)
        case 4: out.remove(at: position)
        case 5: out[min(position, 5) % out.count] = [0x00, 0xFF, 0x7F, 0x80, 0xC0][Int.random(in: 0..<5, using: &rng)]
        default: out[position] = out[position] &+ 1
        }
    }
    return out
}

func mpi(_ value: [UInt8]) -> [UInt8] {
    let stripped = Array(value.drop { $0 == 0 })
    guard let top = stripped.first else { return [0, 0] }
    let bits = 8 * (stripped.count - 1) + (8 - top.leadingZeroBitCount)
    return [UInt8(bits >> 8), UInt8(bits & 0xFF)] + stripped
}

/// Pseudo-random bytes with the top bit set (a "number" of exactly 8·count bits).
func number(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededGenerator(seed: seed)
    var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    bytes[0] |= 0x80
    return bytes
}

/// A synthetic gpg-style export: secret-key packet (old format, tag 5), user ID, and a dummy signature packet.
/// The numbers are not a real key (the parser does not do RSA math).
struct SyntheticKey {
    var creationTime: UInt32 = 0x6B03_997C
    var algorithm: UInt8 = 1
    var version: UInt8 = 4
    var s2kUsage: UInt8 = 0
    var n = number(256, seed: 1)
    var e: [UInt8] = [0x01, 0x00, 0x01]
    var d = number(255, seed: 2)
    var p = number(128, seed: 3)
    var q = number(128, seed: 4)
    var u = number(127, seed: 5)
    var checksumDelta: UInt16 = 0
    var userID = "owner_proj (Copr) <owner#proj@copr.test>"

    var publicBody: [UInt8] {
        [self.version] + [
            UInt8(self.creationTime >> 24), UInt8((self.creationTime >> 16) & 0xFF),
            UInt8((self.creationTime >> 8) & 0xFF), UInt8(self.creationTime & 0xFF),
        ] + [self.algorithm] + mpi(self.n) + mpi(self.e)
    }

    var secretKeyBody: [UInt8] {
        let secret = mpi(self.d) + mpi(self.p) + mpi(self.q) + mpi(self.u)
        let sum = secret.reduce(UInt16(0)) { $0 &+ UInt16($1) } &+ self.checksumDelta
        return self.publicBody + [self.s2kUsage] + secret + [UInt8(sum >> 8), UInt8(sum & 0xFF)]
    }

    var export: [UInt8] {
        let body = self.secretKeyBody
        let uid = Array(self.userID.utf8)
        return [0x95, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
            + [0xB4, UInt8(uid.count)] + uid
            + [0x89, 0x00, 0x03, 0x04, 0x13, 0x01]
    }

    /// The matching transferable public key (tag 6 + user ID).
    var publicExport: [UInt8] {
        let body = self.publicBody
        let uid = Array(self.userID.utf8)
        return [0x99, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body + [0xB4, UInt8(uid.count)] + uid
    }
}
