/// An ordered list of header fields. Lookups are ASCII case-insensitive; order and duplicates are kept.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: String)]

    public init() { self.fields = [] }

    public init(_ fields: [(name: String, value: String)]) { self.fields = fields }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { (name: $0.0, value: $0.1) }
    }

    public var count: Int { self.fields.count }

    public mutating func add(name: String, value: String) {
        self.fields.append((name: name, value: value))
    }

    /// Replaces every field called `name` with one field.
    public mutating func replaceOrAdd(name: String, value: String) {
        self.remove(name: name)
        self.fields.append((name: name, value: value))
    }

    public mutating func remove(name: String) {
        self.fields.removeAll { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// The first value of `name`, if any.
    public subscript(_ name: String) -> String? {
        for field in self.fields where asciiCaseInsensitiveEquals(field.name, name) {
            return field.value
        }
        return nil
    }

    public func values(_ name: String) -> [String] {
        self.fields.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        self.fields.makeIterator()
    }

    /// True if a comma-separated header (e.g. `Connection`) lists `token`, case-insensitively.
    public func hasToken(_ token: String, in name: String) -> Bool {
        for value in self.values(name) {
            for part in value.split(separator: ",") {
                if asciiCaseInsensitiveEquals(part.trimmingOWS(), token) { return true }
            }
        }
        return false
    }
}

@inlinable
func asciiLower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }

public func asciiCaseInsensitiveEquals<A: StringProtocol, B: StringProtocol>(_ a: A, _ b: B) -> Bool {
    let ua = a.utf8
    let ub = b.utf8
    guard ua.count == ub.count else { return false }
    for (x, y) in zip(ua, ub) where asciiLower(x) != asciiLower(y) {
        return false
    }
    return true
}

extension StringProtocol {
    /// Trims optional whitespace (SP / HTAB) at both ends.
    func trimmingOWS() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
