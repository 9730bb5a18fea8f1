/// A small, strict XML reader for the two repodata documents the verifier reads (repomd.xml and primary.xml): no
/// I/O, no allocation per byte, bounded nesting. It checks well-formedness as far as the verifier relies on it
/// (matching start and end tags, quoted attributes, known entities, nothing after the root element) and refuses
/// what repodata never contains and what could expand input (a DOCTYPE with an internal subset, unknown entities).
struct RepoXMLReader {
    enum Event {
        /// A start tag (`selfClosing` for `<a/>`, which is then followed by no end event).
        case start(name: ArraySlice<UInt8>, attributes: [(name: ArraySlice<UInt8>, value: [UInt8])], selfClosing: Bool)
        case end(name: ArraySlice<UInt8>)
        /// Character data (entities decoded, CDATA sections included as they are).
        case text([UInt8])
    }

    struct Failure: Error, CustomStringConvertible {
        var offset: Int
        var reason: String
        var description: String { "malformed XML at byte \(self.offset): \(self.reason)" }
    }

    static let maxDepth = 64

    private let bytes: [UInt8]
    private var position = 0
    private var stack: [ArraySlice<UInt8>] = []
    private var sawRoot = false

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Names of the open elements, outermost first.
    var depth: Int { self.stack.count }

    /// The next event, or nil at the end of a well-formed document.
    mutating func next() throws(Failure) -> Event? {
        while self.position < self.bytes.count {
            if self.bytes[self.position] != UInt8(ascii: "<") {
                let start = self.position
                while self.position < self.bytes.count && self.bytes[self.position] != UInt8(ascii: "<") {
                    self.position += 1
                }
                let raw = self.bytes[start..<self.position]
                if self.stack.isEmpty {
                    guard raw.allSatisfy(Self.isSpace) else { throw self.fail(start, "text outside the root element") }
                    continue
                }
                return .text(try self.decode(raw, at: start))
            }
            let start = self.position
            if self.hasPrefix("<?") {
                self.position = try self.skip(past: "?>", from: start)
                continue
            }
            if self.hasPrefix("<!--") {
                self.position = try self.skip(past: "-->", from: start)
                continue
            }
            if self.hasPrefix("<![CDATA[") {
                guard !self.stack.isEmpty else { throw self.fail(start, "CDATA outside the root element") }
                let end = try self.skip(past: "]]>", from: start)
                self.position = end
                return .text(Array(self.bytes[(start + 9)..<(end - 3)]))
            }
            if self.hasPrefix("<!") {
                // A DOCTYPE without an internal subset is skipped; one with a subset is refused (entity expansion).
                let end = try self.skip(past: ">", from: start)
                guard !self.bytes[start..<end].contains(UInt8(ascii: "[")) else {
                    throw self.fail(start, "DOCTYPE with an internal subset")
                }
                self.position = end
                continue
            }
            if self.hasPrefix("</") {
                self.position += 2
                let name = try self.name()
                self.skipSpace()
                guard self.position < self.bytes.count, self.bytes[self.position] == UInt8(ascii: ">") else {
                    throw self.fail(self.position, "expected > after an end tag")
                }
                self.position += 1
                guard let open = self.stack.popLast(), open.elementsEqual(name) else {
                    throw self.fail(start, "end tag does not match the open element")
                }
                return .end(name: name)
            }
            self.position += 1
            let name = try self.name()
            if self.stack.isEmpty {
                guard !self.sawRoot else { throw self.fail(start, "a second root element") }
                self.sawRoot = true
            }
            var attributes: [(name: ArraySlice<UInt8>, value: [UInt8])] = []
            while true {
                let hadSpace = self.skipSpace()
                guard self.position < self.bytes.count else { throw self.fail(start, "unterminated start tag") }
                let byte = self.bytes[self.position]
                if byte == UInt8(ascii: ">") {
                    self.position += 1
                    guard self.stack.count < Self.maxDepth else { throw self.fail(start, "nesting deeper than 64") }
                    self.stack.append(name)
                    return .start(name: name, attributes: attributes, selfClosing: false)
                }
                if byte == UInt8(ascii: "/") {
                    guard self.position + 1 < self.bytes.count, self.bytes[self.position + 1] == UInt8(ascii: ">")
                    else { throw self.fail(self.position, "expected /> ") }
                    self.position += 2
                    return .start(name: name, attributes: attributes, selfClosing: true)
                }
                guard hadSpace else { throw self.fail(self.position, "expected a space before an attribute") }
                let attributeName = try self.name()
                self.skipSpace()
                guard self.position < self.bytes.count, self.bytes[self.position] == UInt8(ascii: "=") else {
                    throw self.fail(self.position, "expected = after an attribute name")
                }
                self.position += 1
                self.skipSpace()
                guard self.position < self.bytes.count,
                    self.bytes[self.position] == UInt8(ascii: "\"") || self.bytes[self.position] == UInt8(ascii: "'")
                else { throw self.fail(self.position, "attribute value is not quoted") }
                let quote = self.bytes[self.position]
                let valueStart = self.position + 1
                var valueEnd = valueStart
                while valueEnd < self.bytes.count && self.bytes[valueEnd] != quote {
                    guard self.bytes[valueEnd] != UInt8(ascii: "<") else { throw self.fail(valueEnd, "< in a value") }
                    valueEnd += 1
                }
                guard valueEnd < self.bytes.count else { throw self.fail(valueStart, "unterminated attribute value") }
                attributes.append((attributeName, try self.decode(self.bytes[valueStart..<valueEnd], at: valueStart)))
                self.position = valueEnd + 1
            }
        }
        guard self.stack.isEmpty else { throw self.fail(self.position, "document ends inside an element") }
        guard self.sawRoot else { throw self.fail(self.position, "no root element") }
        return nil
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: ":"), UInt8(ascii: "_"), UInt8(ascii: "-"),
            UInt8(ascii: "."), 0x80...0xFF:
            return true
        default:
            return false
        }
    }

    private func fail(_ offset: Int, _ reason: String) -> Failure {
        Failure(offset: offset, reason: reason)
    }

    private func hasPrefix(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard self.position + count <= self.bytes.count else { return false }
        return text.withUTF8Buffer { self.bytes[self.position..<(self.position + count)].elementsEqual($0) }
    }

    /// The position after the first `terminator` at or after `from` + 2.
    private func skip(past terminator: StaticString, from: Int) throws(Failure) -> Int {
        let needle = terminator.withUTF8Buffer { Array($0) }
        var index = from + 2
        while index + needle.count <= self.bytes.count {
            if self.bytes[index] == needle[0] && self.bytes[index..<(index + needle.count)].elementsEqual(needle) {
                return index + needle.count
            }
            index += 1
        }
        throw self.fail(from, "unterminated markup")
    }

    @discardableResult
    private mutating func skipSpace() -> Bool {
        let start = self.position
        while self.position < self.bytes.count && Self.isSpace(self.bytes[self.position]) { self.position += 1 }
        return self.position > start
    }

    private mutating func name() throws(Failure) -> ArraySlice<UInt8> {
        let start = self.position
        while self.position < self.bytes.count && Self.isNameByte(self.bytes[self.position]) { self.position += 1 }
        guard self.position > start else { throw self.fail(start, "expected a name") }
        return self.bytes[start..<self.position]
    }

    /// `raw` with the five predefined entities and character references decoded.
    private func decode(_ raw: ArraySlice<UInt8>, at offset: Int) throws(Failure) -> [UInt8] {
        guard raw.contains(UInt8(ascii: "&")) else { return Array(raw) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var index = raw.startIndex
        while index < raw.endIndex {
            let byte = raw[index]
            guard byte == UInt8(ascii: "&") else {
                out.append(byte)
                index += 1
                continue
            }
            guard let semicolon = raw[index...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else {
                throw self.fail(offset + (index - raw.startIndex), "unterminated entity")
            }
            let entity = Array(raw[(index + 1)..<semicolon])
            switch String(decoding: entity, as: UTF8.self) {
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "amp": out.append(UInt8(ascii: "&"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                let text = String(decoding: entity, as: UTF8.self)
                let value: UInt32?
                if text.hasPrefix("#x") {
                    value = UInt32(text.dropFirst(2), radix: 16)
                } else if text.hasPrefix("#") {
                    value = UInt32(text.dropFirst(), radix: 10)
                } else {
                    value = nil
                }
                guard let value, let scalar = Unicode.Scalar(value), value != 0 else {
                    throw self.fail(offset + (index - raw.startIndex), "unknown entity")
                }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
            index = semicolon + 1
        }
        return out
    }
}

/// One `<data>` record of repomd.xml as the verifier reads it.
struct RepomdEntry: Equatable {
    var type: String
    var checksumType: String
    var checksum: String
    var openChecksumType: String?
    var openChecksum: String?
    var locationHref: String
    var size: Int64?
    var openSize: Int64?
}

/// One `<package>` of primary.xml as the verifier reads it.
struct PrimaryEntry: Equatable {
    var locationHref: String
    var checksumType: String
    var checksum: String
    var pkgid: Bool
    var size: Int64?
}

enum RepodataDocuments {
    /// The `<data>` records of repomd.xml.
    static func repomd(_ bytes: [UInt8]) throws(RepoXMLReader.Failure) -> [RepomdEntry] {
        var reader = RepoXMLReader(bytes)
        var entries: [RepomdEntry] = []
        var current: RepomdEntry?
        var field: String?
        var fieldType: String?
        var text: [UInt8] = []
        var rootChecked = false
        while let event = try reader.next() {
            switch event {
            case .start(let name, let attributes, let selfClosing):
                let name = String(decoding: name, as: UTF8.self)
                if !rootChecked {
                    guard name == "repomd" else {
                        throw RepoXMLReader.Failure(offset: 0, reason: "root element is not <repomd>")
                    }
                    rootChecked = true
                    continue
                }
                if name == "data" && reader.depth == 2 {
                    current = RepomdEntry(
                        type: Self.attribute(attributes, "type") ?? "",
                        checksumType: "",
                        checksum: "",
                        locationHref: ""
                    )
                } else if current != nil && reader.depth == (selfClosing ? 2 : 3) {
                    if name == "location" {
                        current?.locationHref = Self.attribute(attributes, "href") ?? ""
                    }
                    if !selfClosing {
                        field = name
                        fieldType = Self.attribute(attributes, "type")
                        text = []
                    }
                }
            case .text(let bytes):
                if field != nil { text += bytes }
            case .end(let name):
                let name = String(decoding: name, as: UTF8.self)
                if name == "data", reader.depth == 1, let record = current {
                    entries.append(record)
                    current = nil
                } else if let open = field, open == name {
                    let value = String(decoding: text, as: UTF8.self).trimmingSpaces
                    switch name {
                    case "checksum":
                        current?.checksum = value
                        current?.checksumType = fieldType ?? ""
                    case "open-checksum":
                        current?.openChecksum = value
                        current?.openChecksumType = fieldType ?? ""
                    case "size": current?.size = Int64(value)
                    case "open-size": current?.openSize = Int64(value)
                    default: break
                    }
                    field = nil
                }
            }
        }
        return entries
    }

    /// The packages of primary.xml and the `packages` count its root element declares.
    static func primary(_ bytes: [UInt8]) throws(RepoXMLReader.Failure) -> (packages: [PrimaryEntry], declared: Int?) {
        var reader = RepoXMLReader(bytes)
        var packages: [PrimaryEntry] = []
        var declared: Int?
        var current: PrimaryEntry?
        var inChecksum = false
        var text: [UInt8] = []
        var rootChecked = false
        while let event = try reader.next() {
            switch event {
            case .start(let name, let attributes, let selfClosing):
                if !rootChecked {
                    guard name.elementsEqual("metadata".utf8) else {
                        throw RepoXMLReader.Failure(offset: 0, reason: "root element is not <metadata>")
                    }
                    declared = Self.attribute(attributes, "packages").flatMap { Int($0) }
                    rootChecked = true
                    continue
                }
                if reader.depth == 2 && name.elementsEqual("package".utf8) {
                    current = PrimaryEntry(locationHref: "", checksumType: "", checksum: "", pkgid: false)
                    continue
                }
                guard current != nil, reader.depth == (selfClosing ? 2 : 3) else { continue }
                if name.elementsEqual("location".utf8) {
                    current?.locationHref = Self.attribute(attributes, "href") ?? ""
                } else if name.elementsEqual("size".utf8) {
                    current?.size = Self.attribute(attributes, "package").flatMap { Int64($0) }
                } else if name.elementsEqual("checksum".utf8) && !selfClosing {
                    current?.checksumType = Self.attribute(attributes, "type") ?? ""
                    current?.pkgid = Self.attribute(attributes, "pkgid") == "YES"
                    inChecksum = true
                    text = []
                }
            case .text(let bytes):
                if inChecksum { text += bytes }
            case .end(let name):
                if inChecksum && name.elementsEqual("checksum".utf8) {
                    current?.checksum = String(decoding: text, as: UTF8.self).trimmingSpaces
                    inChecksum = false
                } else if reader.depth == 1 && name.elementsEqual("package".utf8), let package = current {
                    packages.append(package)
                    current = nil
                }
            }
        }
        return (packages, declared)
    }

    private static func attribute(_ attributes: [(name: ArraySlice<UInt8>, value: [UInt8])], _ name: String) -> String?
    {
        guard let found = attributes.first(where: { $0.name.elementsEqual(name.utf8) }) else { return nil }
        return String(decoding: found.value, as: UTF8.self)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        let scalars = self.unicodeScalars
        guard let first = scalars.firstIndex(where: { !" \t\r\n".unicodeScalars.contains($0) }),
            let last = scalars.lastIndex(where: { !" \t\r\n".unicodeScalars.contains($0) })
        else { return "" }
        return String(scalars[first...last])
    }
}
