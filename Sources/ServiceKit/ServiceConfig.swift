internal import Foundation

#if canImport(Glibc)
internal import Glibc
#endif

/// A config type with checks beyond what decoding enforces (ranges, absolute paths, one-of lists).
/// `ServiceConfig.load` runs `validate()` after decoding and attributes its error to the file.
public protocol ValidatedConfig {
    /// Throws `ConfigError.invalid(field, problem)` for the first refused setting; see `ConfigCheck`.
    func validate() throws(ConfigError)
}

/// Loads a service's JSON config file (`frontend.json`, `backend.json`, `keygen.json`).
public enum ServiceConfig {
    /// Config files larger than this are refused before parsing.
    public static let defaultMaxBytes = 1 << 20

    /// Reads at most `maxBytes` of `path` and decodes it as `T` with Foundation's `JSONDecoder`.
    ///
    /// Errors name the file and the field, never a value (see `ConfigError`). Use
    /// `KeyedDecodingContainer.decodeIfPresent(_:forKey:default:)` for fields with defaults: besides being short,
    /// it names the field when a number does not fit its type (Foundation's decoder loses the path there).
    public static func load<T: Decodable>(
        _ type: T.Type,
        path: String,
        maxBytes: Int = ServiceConfig.defaultMaxBytes
    ) throws(ConfigError) -> T {
        let bytes = try readFile(path, maxBytes: maxBytes)
        return try decode(type, from: bytes, file: path)
    }

    /// As `load(_:path:maxBytes:)`, then runs the type's `validate()`.
    public static func load<T: Decodable & ValidatedConfig>(
        _ type: T.Type,
        path: String,
        maxBytes: Int = ServiceConfig.defaultMaxBytes
    ) throws(ConfigError) -> T {
        let bytes = try readFile(path, maxBytes: maxBytes)
        let value = try decode(type, from: bytes, file: path)
        do {
            try value.validate()
        } catch {
            throw error.inFile(path)
        }
        return value
    }

    /// Decodes config bytes; `file` is the name errors carry.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], file: String) throws(ConfigError) -> T
    {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw DecodingErrorText.configError(error, bytes: bytes).inFile(file)
        } catch let error as ConfigError {
            // Thrown by a hand-written init(from:) for a cross-field rule.
            throw error.inFile(file)
        } catch {
            // Another error type from a custom init(from:); its text might quote a value, so it is not shown.
            throw ConfigError(code: .invalidValue, file: file, field: nil, problem: "cannot be decoded")
        }
    }

    /// The whole file, bounded; `open(2)` and `read(2)` with EINTR retried.
    static func readFile(_ path: String, maxBytes: Int) throws(ConfigError) -> [UInt8] {
        func failure(_ err: Int32) -> ConfigError {
            ConfigError(code: .unreadable, file: path, field: nil, problem: String(cString: strerror(err)))
        }
        var fd: Int32
        repeat {
            fd = open(path, O_RDONLY | O_CLOEXEC)
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw failure(errno) }
        defer { close(fd) }

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure(errno)
            }
            if n == 0 { return bytes }
            guard bytes.count + n <= maxBytes else {
                throw ConfigError(code: .tooLarge, file: path, field: nil, problem: "is larger than \(maxBytes) bytes")
            }
            bytes.append(contentsOf: chunk[0..<n])
        }
    }
}

/// Range and shape checks for `ValidatedConfig.validate()`, in the config error style
/// (`listen_port must be between 0 and 65535`). The value itself never appears in the message.
public enum ConfigCheck {
    public static func port(_ value: Int, _ field: String) throws(ConfigError) {
        try self.range(value, 0...65535, field)
    }

    public static func range(_ value: Int, _ range: ClosedRange<Int>, _ field: String) throws(ConfigError) {
        guard range.contains(value) else {
            throw .invalid(field, "must be between \(range.lowerBound) and \(range.upperBound)")
        }
    }

    /// At least 1 (sizes, counts, intervals).
    public static func positive(_ value: Int, _ field: String) throws(ConfigError) {
        guard value >= 1 else { throw .invalid(field, "must be positive") }
    }

    public static func nonEmpty(_ value: String, _ field: String) throws(ConfigError) {
        guard !value.isEmpty else { throw .invalid(field, "must not be empty") }
    }

    public static func absolutePath(_ value: String, _ field: String) throws(ConfigError) {
        guard value.hasPrefix("/") else { throw .invalid(field, "must be an absolute path") }
    }

    /// One of `allowed` (the allowed words are listed; the refused value is not).
    public static func oneOf(_ value: String, _ allowed: [String], _ field: String) throws(ConfigError) {
        guard allowed.contains(value) else {
            let list: String
            if allowed.count <= 1 {
                list = allowed.first ?? "(nothing)"
            } else {
                list = allowed.dropLast().joined(separator: ", ") + " or " + allowed[allowed.count - 1]
            }
            throw .invalid(field, "must be \(list)")
        }
    }

    /// An `http://` or `https://` URL with a host.
    public static func httpURL(_ value: String, _ field: String) throws(ConfigError) {
        let rest: Substring
        if value.hasPrefix("http://") {
            rest = value.dropFirst(7)
        } else if value.hasPrefix("https://") {
            rest = value.dropFirst(8)
        } else {
            throw .invalid(field, "must be an http:// or https:// URL")
        }
        guard let first = rest.first, first != "/", first != ":", !rest.contains(where: { $0 == " " }) else {
            throw .invalid(field, "must be an http:// or https:// URL")
        }
    }
}

/// Turns `DecodingError`s into messages that name the field (its JSON path) and the problem, never the value.
enum DecodingErrorText {
    /// `pools[0].name`, or nil for the top level.
    static func path(_ codingPath: [any CodingKey]) -> String? {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out.isEmpty ? nil : out
    }

    static func path(_ codingPath: [any CodingKey], appending key: any CodingKey) -> String {
        self.path(codingPath + [key]) ?? key.stringValue
    }

    /// The debug description `decodeIfPresent(_:forKey:default:)` gives a number that does not fit its field.
    static let numberDoesNotFit = "a number does not fit its type"

    /// `an integer`, `a string`, … for `must be …`.
    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is any BinaryInteger.Type: return "an integer"
        case is any BinaryFloatingPoint.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is any ListMarker.Type: return "a list"
        default: return "an object"
        }
    }

    /// `(field, problem, code)` of a decoding error; `field` nil means the whole document.
    static func parts(_ error: DecodingError) -> (field: String?, problem: String, code: ConfigError.Code) {
        switch error {
        case .keyNotFound(let key, let context):
            return (self.path(context.codingPath, appending: key), "is required", .missingField)
        case .valueNotFound(let type, let context):
            return (self.path(context.codingPath), "must be \(self.typeName(type)), not null", .wrongType)
        case .typeMismatch(let type, let context):
            guard let field = self.path(context.codingPath) else {
                return (nil, "must be a JSON object", .wrongType)
            }
            return (field, "must be \(self.typeName(type))", .wrongType)
        case .dataCorrupted(let context):
            guard let field = self.path(context.codingPath) else {
                return (nil, "not valid JSON", .invalidJSON)
            }
            if context.debugDescription == self.numberDoesNotFit {
                return (field, "holds a number that is not an integer or is out of range", .wrongType)
            }
            return (field, "is invalid", .invalidValue)
        @unknown default:
            return (nil, "cannot be decoded", .invalidValue)
        }
    }

    static func configError(_ error: DecodingError, bytes: [UInt8]) -> ConfigError {
        var (field, problem, code) = self.parts(error)
        if code == .invalidJSON,
            (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
        {
            // Foundation reports a number that does not fit the field's type (3.5 or 1e30 for an Int) as invalid
            // JSON without a path; fields read through `decodeIfPresent(_:forKey:default:)` never get here.
            code = .wrongType
            problem = "a number is not an integer or is out of range for its field"
            field = nil
        }
        return ConfigError(code: code, field: field, problem: problem)
    }

    /// For a wire answer: `ok is required`, `not valid JSON`.
    static func message(_ error: DecodingError) -> String {
        let (field, problem, _) = self.parts(error)
        return field.map { "\($0) \(problem)" } ?? problem
    }
}

/// Lets `typeName` recognise any array type (`[Pool].self is [Any].Type` is false).
protocol ListMarker {}
extension Array: ListMarker {}
extension ContiguousArray: ListMarker {}
extension Set: ListMarker {}
