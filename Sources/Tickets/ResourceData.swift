internal import KoperJSON

/// How to reach a builder machine: what the allocate hook printed, or one entry of a pool's `static_hosts`.
///
/// As JSON it is a flat object: `host`, `port`, `user`, `host_key` (a path or the key text), and any other
/// members (e.g. `key`, a private key path) land in `extra`. The short text form is `[user@]host[:port]` (IPv6
/// as `[addr]:port`); user and port default to `root` and 22.
public struct ResourceData: Codable, Sendable, Hashable {
    public var host: String
    public var port: Int
    public var user: String
    /// The builder's SSH host public key, as a path or the key text; nil when unknown.
    public var hostPublicKey: String?
    /// Other members of the JSON object, as strings (non-string scalars and nested values as JSON text).
    public var extra: [String: String]

    public static let defaultUser = "root"
    public static let defaultPort = 22

    public init(
        host: String,
        port: Int = ResourceData.defaultPort,
        user: String = ResourceData.defaultUser,
        hostPublicKey: String? = nil,
        extra: [String: String] = [:]
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.hostPublicKey = hostPublicKey
        self.extra = extra
    }

    /// Identifies a static host within its pool: `user@host:port`.
    var identity: String { "\(self.user)@\(self.host):\(self.port)" }

    // MARK: Codable (flat object, or the short text form)

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            do {
                self = try ResourceData(parsing: text)
            } catch {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: error.message)
                )
            }
            return
        }
        let container = try decoder.container(keyedBy: Key.self)
        var members: [(String, JSON)] = []
        for key in container.allKeys {
            if let text = try? container.decode(String.self, forKey: key) {
                members.append((key.stringValue, .string(text)))
            } else if let number = try? container.decode(Int.self, forKey: key) {
                members.append((key.stringValue, .int(number)))
            } else if let flag = try? container.decode(Bool.self, forKey: key) {
                members.append((key.stringValue, .bool(flag)))
            } else if try container.decodeNil(forKey: key) {
                members.append((key.stringValue, .null))
            } else {
                throw DecodingError.dataCorruptedError(
                    forKey: key,
                    in: container,
                    debugDescription: "resource data members must be strings, numbers or booleans"
                )
            }
        }
        do {
            self = try ResourceData(object: JSONObject(members))
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(self.host, forKey: Key(stringValue: "host"))
        try container.encode(self.port, forKey: Key(stringValue: "port"))
        try container.encode(self.user, forKey: Key(stringValue: "user"))
        try container.encodeIfPresent(self.hostPublicKey, forKey: Key(stringValue: "host_key"))
        for (key, value) in self.extra.sorted(by: { $0.key < $1.key }) {
            try container.encode(value, forKey: Key(stringValue: key))
        }
    }

    // MARK: JSON text (database column, KOPER_RESOURCE_DATA)

    /// Compact JSON with the members in a fixed order.
    var jsonText: String {
        var members: [(String, JSON)] = [
            ("host", .string(self.host)), ("port", .int(self.port)), ("user", .string(self.user)),
        ]
        if let hostPublicKey { members.append(("host_key", .string(hostPublicKey))) }
        for (key, value) in self.extra.sorted(by: { $0.key < $1.key }) {
            members.append((key, .string(value)))
        }
        return JSON.object(JSONObject(members)).text
    }

    /// Parses `jsonText` (or any flat JSON object in the same shape).
    init(jsonText: String) throws(TicketError) {
        let value: JSON
        do {
            value = try JSONParser.parse(Array(jsonText.utf8), maxDepth: 4)
        } catch {
            throw TicketError(code: .invalidResourceData, message: "resource data is not valid JSON")
        }
        guard let object = value.objectValue else {
            throw TicketError(code: .invalidResourceData, message: "resource data is not a JSON object")
        }
        try self.init(object: object)
    }

    /// Parses what an allocate hook printed: a JSON object, or `[user@]host[:port]` on the last non-empty line.
    /// Nil if the output is empty.
    static func parse(hookOutput bytes: [UInt8]) throws(TicketError) -> ResourceData? {
        let text = String(decoding: bytes, as: UTF8.self)
        let trimmed = Self.trimmed(Substring(text))
        guard !trimmed.isEmpty else { return nil }
        if trimmed.hasPrefix("{") {
            return try ResourceData(jsonText: String(trimmed))
        }
        let lastLine = trimmed.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).last.map { Self.trimmed($0) } ?? ""
        if lastLine.hasPrefix("{") {
            return try ResourceData(jsonText: String(lastLine))
        }
        return try ResourceData(parsing: String(lastLine))
    }

    /// Parses `[user@]host[:port]`.
    init(parsing text: String) throws(TicketError) {
        var rest = Self.trimmed(Substring(text))
        var user = Self.defaultUser
        var port = Self.defaultPort
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw TicketError(code: .invalidResourceData, message: "unterminated '[' in host")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let tail = rest[rest.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":"), let number = Int(tail.dropFirst()) else {
                    throw TicketError(code: .invalidResourceData, message: "invalid port")
                }
                port = number
            }
        } else if rest.filter({ $0 == ":" }).count == 1, let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            guard let number = Int(rest[rest.index(after: colon)...]) else {
                throw TicketError(code: .invalidResourceData, message: "invalid port")
            }
            port = number
        } else {
            host = rest  // a bare name, IPv4 or IPv6 address
        }
        try self.init(validating: String(host), port: port, user: user, hostPublicKey: nil, extra: [:])
    }

    private init(object: JSONObject) throws(TicketError) {
        var host: String?
        var port = Self.defaultPort
        var user = Self.defaultUser
        var hostPublicKey: String?
        var extra: [String: String] = [:]
        for (key, value) in object.pairs {
            switch key {
            case "host":
                host = value.stringValue
                if host == nil {
                    throw TicketError(code: .invalidResourceData, message: "\"host\" must be a string")
                }
            case "port":
                if let number = value.intValue {
                    port = number
                } else if let text = value.stringValue, let number = Int(text) {
                    port = number
                } else {
                    throw TicketError(code: .invalidResourceData, message: "\"port\" must be an integer")
                }
            case "user":
                guard let text = value.stringValue else {
                    throw TicketError(code: .invalidResourceData, message: "\"user\" must be a string")
                }
                user = text
            case "host_key":
                if value.isNull { continue }
                guard let text = value.stringValue else {
                    throw TicketError(code: .invalidResourceData, message: "\"host_key\" must be a string")
                }
                hostPublicKey = text
            default:
                switch value {
                case .null: continue
                case .string(let text): extra[key] = text
                default: extra[key] = value.text
                }
            }
        }
        guard let host else { throw TicketError(code: .invalidResourceData, message: "\"host\" is missing") }
        try self.init(validating: host, port: port, user: user, hostPublicKey: hostPublicKey, extra: extra)
    }

    private init(
        validating host: String,
        port: Int,
        user: String,
        hostPublicKey: String?,
        extra: [String: String]
    ) throws(TicketError) {
        // Host and user end up on an ssh command line or in a libssh option: no spaces, no option-like values.
        guard !host.isEmpty, host.utf8.count <= 253, !host.hasPrefix("-"),
            host.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7f && $0 != "@" && $0 != "/" })
        else {
            throw TicketError(code: .invalidResourceData, message: "invalid host name")
        }
        guard (1...65535).contains(port) else { throw TicketError(code: .invalidResourceData, message: "invalid port") }
        guard !user.isEmpty, user.utf8.count <= 64, !user.hasPrefix("-"),
            user.utf8.allSatisfy({
                Validation.isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
                    || $0 == UInt8(ascii: "-")
            })
        else {
            throw TicketError(code: .invalidResourceData, message: "invalid user name")
        }
        self.init(host: host, port: port, user: user, hostPublicKey: hostPublicKey, extra: extra)
    }

    private static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}
