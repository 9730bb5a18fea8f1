internal import LibCrypto

/// A shared service secret, presented as `Authorization: Bearer SECRET` (Backend → Frontend's `/backend/` API,
/// Backend and Frontend → Keygen).
///
/// The secret never appears in `description`, `debugDescription`, `dump` or string interpolation: all say
/// `<redacted>`. Checking a presented header compares SHA-256 digests with `CRYPTO_memcmp`, so neither the
/// secret's bytes nor its length leak through timing.
public struct BearerSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let secret: String
    private let digest: [UInt8]

    public init(_ secret: String) {
        self.secret = secret
        self.digest = Crypto.sha256(Array(secret.utf8))
    }

    /// True when `header` (the `Authorization` field's value) is `Bearer ` followed by exactly this secret. The
    /// scheme is matched ASCII case-insensitively (RFC 9110 §11.1); a missing header, another scheme, a bare
    /// `Bearer`, and an empty configured secret are refused.
    public func accepts(authorization header: String?) -> Bool {
        guard let header, !self.secret.isEmpty else { return false }
        let scheme = Array("bearer ".utf8)
        let bytes = Array(header.utf8)
        guard bytes.count > scheme.count else { return false }
        for (byte, expected) in zip(bytes, scheme) where asciiLowercase(byte) != expected {
            return false
        }
        let presented = Array(bytes[scheme.count...])
        return Crypto.constantTimeEquals(Crypto.sha256(presented), self.digest)
    }

    /// The header a client sends: `("Authorization", "Bearer SECRET")`.
    public var authorizationField: (name: String, value: String) {
        ("Authorization", "Bearer \(self.secret)")
    }

    /// True for a secret made from an empty string (it accepts nothing).
    public var isEmpty: Bool { self.secret.isEmpty }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "BearerSecret(<redacted>)" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension BearerSecret: Decodable {
    /// Decodes from a JSON string, so a config can hold a `BearerSecret` directly.
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }
}

private func asciiLowercase(_ byte: UInt8) -> UInt8 {
    (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte + 32 : byte
}
