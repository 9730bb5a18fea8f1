/// A JSON value. Objects keep insertion order (output is deterministic and matches the order handlers build).
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)

    public subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: return nil
        }
    }

    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// Serialised compactly as UTF-8.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        self.write(to: &out)
        return out
    }

    public var text: String { String(decoding: self.serialized(), as: UTF8.self) }

    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            if d.isFinite { out.append(contentsOf: "\(d)".utf8) } else { out.append(contentsOf: "null".utf8) }
        case .string(let s): writeString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            for (i, (k, v)) in o.pairs.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(k, to: &out)
                out.append(UInt8(ascii: ":"))
                v.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }
}

public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(String, JSON)]

    public init() { self.pairs = [] }

    public init(dictionaryLiteral elements: (String, JSON)...) { self.pairs = elements }

    public init(_ pairs: [(String, JSON)]) { self.pairs = pairs }

    public subscript(key: String) -> JSON? {
        get {
            for (k, v) in self.pairs where k == key { return v }
            return nil
        }
        set {
            if let i = self.pairs.firstIndex(where: { $0.0 == key }) {
                if let newValue { self.pairs[i].1 = newValue } else { self.pairs.remove(at: i) }
            } else if let newValue {
                self.pairs.append((key, newValue))
            }
        }
    }

    public var keys: [String] { self.pairs.map(\.0) }

    /// Objects are equal when they have the same members, in any order (JSON objects are unordered; the order is
    /// kept only so output is deterministic).
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.pairs.count == b.pairs.count else { return false }
        if a.pairs.elementsEqual(b.pairs, by: { $0.0 == $1.0 && $0.1 == $1.1 }) { return true }
        for (key, value) in a.pairs where b[key] != value { return false }
        return true
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByNilLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(JSONObject(elements)) }

    public init(_ s: String?) { self = s.map { .string($0) } ?? .null }
    public init(_ i: Int?) { self = i.map { .int($0) } ?? .null }
    public init(_ b: Bool?) { self = b.map { .bool($0) } ?? .null }
    public init(_ strings: [String]) { self = .array(strings.map { .string($0) }) }
}

func writeString(_ s: String, to out: inout [UInt8]) {
    var s = s
    s.withUTF8 { bytes in
        out.reserveCapacity(out.count + bytes.count + 2)
        out.append(UInt8(ascii: "\""))
        // Runs that need no escaping are copied in one go.
        var start = 0
        for i in 0..<bytes.count {
            let b = bytes[i]
            guard b < 32 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
            if start < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i])) }
            start = i + 1
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 10: out.append(contentsOf: "\\n".utf8)
            case 13: out.append(contentsOf: "\\r".utf8)
            case 9: out.append(contentsOf: "\\t".utf8)
            default:
                let hex: StaticString = "0123456789abcdef"
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex.utf8Start[Int(b >> 4)])
                out.append(hex.utf8Start[Int(b & 15)])
            }
        }
        if start < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count])) }
        out.append(UInt8(ascii: "\""))
    }
}

public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "Invalid JSON at byte \(self.offset): \(self.message)" }
}

/// A strict RFC 8259 parser with a nesting bound.
public struct JSONParser {
    let bytes: [UInt8]
    var i = 0
    let maxDepth: Int

    public static func parse<C: Collection>(_ input: C, maxDepth: Int = 64) throws(JSONParseError) -> JSON
    where C.Element == UInt8 {
        var p = JSONParser(bytes: Array(input), maxDepth: maxDepth)
        p.skipWS()
        let v = try p.value(depth: 0)
        p.skipWS()
        guard p.i == p.bytes.count else { throw p.error("trailing characters") }
        return v
    }

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func error(_ m: String) -> JSONParseError { JSONParseError(message: m, offset: self.i) }

    mutating func skipWS() {
        while self.i < self.bytes.count, [32, 9, 10, 13].contains(self.bytes[self.i]) { self.i += 1 }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSON {
        guard depth < self.maxDepth else { throw self.error("nesting too deep") }
        guard self.i < self.bytes.count else { throw self.error("unexpected end") }
        switch self.bytes[self.i] {
        case UInt8(ascii: "{"):
            self.i += 1
            var obj = JSONObject()
            self.skipWS()
            if self.peek(UInt8(ascii: "}")) {
                self.i += 1
                return .object(obj)
            }
            while true {
                self.skipWS()
                guard self.peek(UInt8(ascii: "\"")) else { throw self.error("expected string key") }
                let k = try self.string()
                self.skipWS()
                guard self.peek(UInt8(ascii: ":")) else { throw self.error("expected ':'") }
                self.i += 1
                self.skipWS()
                let v = try self.value(depth: depth + 1)
                obj[k] = v
                self.skipWS()
                if self.peek(UInt8(ascii: ",")) {
                    self.i += 1
                    continue
                }
                if self.peek(UInt8(ascii: "}")) {
                    self.i += 1
                    return .object(obj)
                }
                throw self.error("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            self.i += 1
            var arr: [JSON] = []
            self.skipWS()
            if self.peek(UInt8(ascii: "]")) {
                self.i += 1
                return .array(arr)
            }
            while true {
                self.skipWS()
                arr.append(try self.value(depth: depth + 1))
                self.skipWS()
                if self.peek(UInt8(ascii: ",")) {
                    self.i += 1
                    continue
                }
                if self.peek(UInt8(ascii: "]")) {
                    self.i += 1
                    return .array(arr)
                }
                throw self.error("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try self.string())
        case UInt8(ascii: "t"):
            try self.literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.literal("null")
            return .null
        default:
            return try self.number()
        }
    }

    func peek(_ b: UInt8) -> Bool { self.i < self.bytes.count && self.bytes[self.i] == b }

    mutating func literal(_ s: String) throws(JSONParseError) {
        let u = Array(s.utf8)
        guard self.i + u.count <= self.bytes.count, Array(self.bytes[self.i..<(self.i + u.count)]) == u else {
            throw self.error("invalid literal")
        }
        self.i += u.count
    }

    mutating func number() throws(JSONParseError) -> JSON {
        let start = self.i
        if self.peek(UInt8(ascii: "-")) { self.i += 1 }
        var isInt = true
        func digits(_ p: inout JSONParser) -> Int {
            var n = 0
            while p.i < p.bytes.count, p.bytes[p.i] >= 48, p.bytes[p.i] <= 57 {
                p.i += 1
                n += 1
            }
            return n
        }
        guard digits(&self) > 0 else { throw self.error("invalid number") }
        if self.peek(UInt8(ascii: ".")) {
            self.i += 1
            isInt = false
            guard digits(&self) > 0 else { throw self.error("invalid number") }
        }
        if self.peek(UInt8(ascii: "e")) || self.peek(UInt8(ascii: "E")) {
            self.i += 1
            isInt = false
            if self.peek(UInt8(ascii: "+")) || self.peek(UInt8(ascii: "-")) { self.i += 1 }
            guard digits(&self) > 0 else { throw self.error("invalid number") }
        }
        let text = String(decoding: self.bytes[start..<self.i], as: UTF8.self)
        if isInt, let v = Int(text) { return .int(v) }
        guard let d = Double(text) else { throw self.error("invalid number") }
        // 1e400 would become infinity, which JSON cannot express (it would be written back as null).
        guard d.isFinite else { throw JSONParseError(message: "number out of range", offset: start) }
        return .double(d)
    }

    mutating func string() throws(JSONParseError) -> String {
        self.i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard self.i < self.bytes.count else { throw self.error("unterminated string") }
            let b = self.bytes[self.i]
            self.i += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw self.error("invalid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                guard self.i < self.bytes.count else { throw self.error("unterminated escape") }
                let e = self.bytes[self.i]
                self.i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(34)
                case UInt8(ascii: "\\"): out.append(92)
                case UInt8(ascii: "/"): out.append(47)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "u"):
                    var scalar = try self.hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard self.peek(UInt8(ascii: "\\")), self.i + 1 < self.bytes.count,
                            self.bytes[self.i + 1] == UInt8(ascii: "u")
                        else {
                            throw self.error("lone surrogate")
                        }
                        self.i += 2
                        let low = try self.hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw self.error("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw self.error("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw self.error("bad escape") }
                    out.append(contentsOf: String(Character(u)).utf8)
                default:
                    throw self.error("bad escape")
                }
            case 0..<32:
                throw self.error("control character in string")
            default:
                out.append(b)
            }
        }
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard self.i + 4 <= self.bytes.count else { throw self.error("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = self.bytes[self.i]
            self.i += 1
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw self.error("bad \\u escape")
            }
            v = v * 16 + d
        }
        return v
    }
}
