/// A service configuration that could not be read, decoded or validated.
///
/// The description names the file and the field and says what is wrong; it never contains a value from the file
/// (a config holds secrets and conninfo strings):
///
///     cannot read /etc/koper/keygen.json: No such file or directory
///     /etc/koper/keygen.json: not valid JSON
///     /etc/koper/frontend.json: backend_secret is required
///     /etc/koper/backend.json: max_workers must be an integer
///     /etc/koper/keygen.json: pool_size must be between 0 and 100
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case unreadable
            case tooLarge
            case invalidJSON
            case missingField
            case wrongType
            case invalidValue
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The file could not be opened or read (the problem is `strerror`'s text).
        public static let unreadable = Code(.unreadable)
        /// The file is larger than the loader's bound.
        public static let tooLarge = Code(.tooLarge)
        /// The file is not syntactically valid JSON.
        public static let invalidJSON = Code(.invalidJSON)
        /// A required field is absent.
        public static let missingField = Code(.missingField)
        /// A field holds a value of the wrong JSON type (or `null`, or a number that does not fit).
        public static let wrongType = Code(.wrongType)
        /// A field is well-typed but out of range or otherwise refused by validation.
        public static let invalidValue = Code(.invalidValue)

        public var description: String {
            switch self.base {
            case .unreadable: "unreadable"
            case .tooLarge: "tooLarge"
            case .invalidJSON: "invalidJSON"
            case .missingField: "missingField"
            case .wrongType: "wrongType"
            case .invalidValue: "invalidValue"
            }
        }
    }

    public let code: Code
    /// The config file as the caller named it; nil for an error raised while validating a value built in memory.
    public internal(set) var file: String?
    /// The field's JSON path (`pool_size`, `pools[0].name`); nil when the problem is the whole file.
    public let field: String?
    /// What is wrong, without file or field: `is required`, `must be an integer`, `must be between 0 and 100`.
    public let problem: String

    public init(code: Code, file: String? = nil, field: String?, problem: String) {
        self.code = code
        self.file = file
        self.field = field
        self.problem = problem
    }

    /// A validation failure: `field` is the JSON key, `problem` reads after it (`"must be an absolute path"`).
    public static func invalid(_ field: String, _ problem: String) -> ConfigError {
        ConfigError(code: .invalidValue, field: field, problem: problem)
    }

    /// The same error, attributed to `file` (unless it already names one).
    public func inFile(_ file: String) -> ConfigError {
        var copy = self
        if copy.file == nil { copy.file = file }
        return copy
    }

    public var description: String {
        if self.code == .unreadable {
            return "cannot read \(self.file ?? "config"): \(self.problem)"
        }
        let what = self.field.map { "\($0) \(self.problem)" } ?? self.problem
        return self.file.map { "\($0): \(what)" } ?? what
    }
}
