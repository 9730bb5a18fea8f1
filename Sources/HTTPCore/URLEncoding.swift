/// Percent-decoding and query-string parsing (application/x-www-form-urlencoded rules for queries).
public enum URLEncoding {
    /// Decodes `%XX` escapes; with `plusAsSpace`, `+` becomes a space (query strings). Invalid escapes → nil.
    /// Bytes that are not valid UTF-8 after decoding → nil.
    public static func percentDecode<S: StringProtocol>(_ s: S, plusAsSpace: Bool = false) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let b = it.next() {
            if b == UInt8(ascii: "%") {
                guard let h = it.next(), let l = it.next(), let hv = hexValue(h), let lv = hexValue(l) else {
                    return nil
                }
                out.append(UInt8(hv * 16 + lv))
            } else if plusAsSpace && b == UInt8(ascii: "+") {
                out.append(32)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    /// Splits `a=1&b=&c` into ordered pairs, decoding both sides. Pairs that fail to decode are dropped.
    public static func parseQuery<S: StringProtocol>(_ query: S) -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        for pair in String(query).split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring
            let value: Substring
            if let eq = pair.firstIndex(of: "=") {
                name = pair[..<eq]
                value = pair[pair.index(after: eq)...]
            } else {
                name = pair
                value = ""
            }
            guard let n = percentDecode(name, plusAsSpace: true), let v = percentDecode(value, plusAsSpace: true) else {
                continue
            }
            result.append((name: n, value: v))
        }
        return result
    }

    /// Percent-encodes everything except unreserved characters and the ones in `allowed`.
    public static func percentEncode(_ s: String, allowed: String = "") -> String {
        let allowedSet = Set(allowed.utf8)
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                if allowedSet.contains(b) {
                    out.unicodeScalars.append(Unicode.Scalar(b))
                } else {
                    let hex = Array("0123456789ABCDEF".utf8)
                    out.unicodeScalars.append("%")
                    out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                    out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 15)]))
                }
            }
        }
        return out
    }
}

/// `Authorization: Basic base64(login:password)` (RFC 7617).
public struct BasicCredentials: Sendable, Equatable {
    public let login: String
    public let password: String

    public init(login: String, password: String) {
        self.login = login
        self.password = password
    }

    public init?(authorizationHeader value: String) {
        let trimmed = value.trimmingOWS()
        guard trimmed.count > 6, asciiCaseInsensitiveEquals(trimmed.prefix(6), "Basic ") else { return nil }
        guard let decoded = Base64.decode(trimmed.dropFirst(6).trimmingOWS()),
            let text = String(validating: decoded, as: UTF8.self),
            let colon = text.firstIndex(of: ":")
        else { return nil }
        self.login = String(text[..<colon])
        self.password = String(text[text.index(after: colon)...])
    }
}

public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var it = bytes.makeIterator()
        while let a = it.next() {
            let b = it.next()
            let c = it.next()
            let n = (UInt32(a) << 16) | (UInt32(b ?? 0) << 8) | UInt32(c ?? 0)
            out.append(alphabet[Int((n >> 18) & 63)])
            out.append(alphabet[Int((n >> 12) & 63)])
            out.append(b == nil ? UInt8(ascii: "=") : alphabet[Int((n >> 6) & 63)])
            out.append(c == nil ? UInt8(ascii: "=") : alphabet[Int(n & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard alphabet with padding; whitespace is not allowed. Returns nil for malformed input.
    public static func decode<S: StringProtocol>(_ s: S) -> [UInt8]? {
        let input = Array(s.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            var n: UInt32 = 0
            var pad = 0
            for k in 0..<4 {
                let ch = input[i + k]
                let v: UInt32
                switch ch {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(ch - 65)
                case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(ch - 71)
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(ch) + 4
                case UInt8(ascii: "+"): v = 62
                case UInt8(ascii: "/"): v = 63
                case UInt8(ascii: "="):
                    guard i + 4 == input.count, k >= 2 else { return nil }
                    pad += 1
                    v = 0
                default: return nil
                }
                if pad > 0 && ch != UInt8(ascii: "=") { return nil }
                n = (n << 6) | v
            }
            out.append(UInt8((n >> 16) & 0xFF))
            if pad < 2 { out.append(UInt8((n >> 8) & 0xFF)) }
            if pad < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return out
    }
}
