internal import CLibcrypto

/// An error from libcrypto. The description carries the failing call and, for key checks, which check failed, never
/// input data or key material.
public struct CryptoError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    /// Why it failed (a fixed phrase, or OpenSSL's reason string for the first queued error); never key material.
    public let detail: String?

    public init(operation: String, detail: String? = nil) {
        self.operation = operation
        self.detail = detail
    }

    public var description: String {
        if let detail = self.detail { return "libcrypto: \(self.operation) failed: \(detail)" }
        return "libcrypto: \(self.operation) failed"
    }
}

public enum Crypto {
    public static func sha256<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        let h = DigestHasher(.sha256)
        h.update(bytes)
        return h.finalize()
    }

    public static func sha256Hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        hex(sha256(bytes))
    }

    /// Cryptographically secure random bytes (`RAND_bytes`).
    public static func randomBytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count == 0 || RAND_bytes(&out, Int32(count)) == 1 else { throw CryptoError(operation: "RAND_bytes") }
        return out
    }

    /// A random string over `alphabet` without modulo bias.
    public static func randomString(
        length: Int,
        alphabet: String = "abcdefghijklmnopqrstuvwxyz"
    ) throws(CryptoError) -> String {
        let chars = Array(alphabet.unicodeScalars)
        precondition(!chars.isEmpty && chars.count <= 256)
        let limit = 256 - (256 % chars.count)
        var result = String.UnicodeScalarView()
        while result.count < length {
            for b in try randomBytes(length * 2) where Int(b) < limit && result.count < length {
                result.append(chars[Int(b) % chars.count])
            }
        }
        return String(result)
    }

    /// Compares in time independent of where the inputs differ (`CRYPTO_memcmp`).
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    public static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
