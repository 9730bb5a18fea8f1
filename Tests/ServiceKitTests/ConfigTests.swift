import Foundation
import Logging
import Testing

@testable import ServiceKit

/// A config shaped like the services' own: required strings, defaults, a nested list, validation.
struct SampleConfig: Decodable, ValidatedConfig {
    var secret: String
    var stateDir: String
    var listenPort: Int = 0
    var maxWorkers: Int = 16
    var logLevel: String = "info"
    var portFile: String?
    var pools: [Pool] = []

    struct Pool: Decodable {
        var name: String
        var max: Int
    }

    enum CodingKeys: String, CodingKey {
        case secret
        case stateDir = "state_dir"
        case listenPort = "listen_port"
        case maxWorkers = "max_workers"
        case logLevel = "log_level"
        case portFile = "port_file"
        case pools
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.secret = try c.decode(String.self, forKey: .secret)
        self.stateDir = try c.decode(String.self, forKey: .stateDir)
        self.listenPort = try c.decodeIfPresent(forKey: .listenPort, default: self.listenPort)
        self.maxWorkers = try c.decodeIfPresent(forKey: .maxWorkers, default: self.maxWorkers)
        self.logLevel = try c.decodeIfPresent(forKey: .logLevel, default: self.logLevel)
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.pools = try c.decodeIfPresent(forKey: .pools, default: [])
    }

    func validate() throws(ConfigError) {
        try ConfigCheck.nonEmpty(self.secret, "secret")
        try ConfigCheck.absolutePath(self.stateDir, "state_dir")
        try ConfigCheck.port(self.listenPort, "listen_port")
        try ConfigCheck.positive(self.maxWorkers, "max_workers")
        _ = try Logger.Level(configValue: self.logLevel)
    }
}

/// A decodable without validation.
struct PlainConfig: Decodable {
    var name: String
}

private let secretValue = "s3cr3t-Value-7f9a"

/// A fresh directory per test.
private final class TempDir {
    let path: String

    init() throws {
        self.path = FileManager.default.temporaryDirectory.path + "/servicekit-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: self.path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: self.path) }

    /// Writes `text` as `name` and returns its path.
    func write(_ name: String, _ text: String) throws -> String {
        let file = self.path + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }
}

/// The error `load` throws for this document, which must not quote the secret.
private func loadError(_ json: String, as name: String = "backend.json", in dir: TempDir) throws -> ConfigError {
    let path = try dir.write(name, json)
    let error = try #require(throws: ConfigError.self) { try ServiceConfig.load(SampleConfig.self, path: path) }
    #expect(!error.description.contains(secretValue))
    #expect(!String(reflecting: error).contains(secretValue))
    return error
}

@Suite struct ConfigLoadingTests {
    @Test func defaultsApplyAndValuesOverride() throws {
        let dir = try TempDir()
        let path = try dir.write(
            "a.json",
            #"{"secret": "\#(secretValue)", "state_dir": "/var/lib/x", "max_workers": 4}"#
        )
        let config = try ServiceConfig.load(SampleConfig.self, path: path)
        #expect(config.secret == secretValue && config.stateDir == "/var/lib/x")
        #expect(config.maxWorkers == 4)
        #expect(config.listenPort == 0 && config.logLevel == "info" && config.portFile == nil && config.pools.isEmpty)

        // null means "use the default", as an absent key does.
        let withNull = try dir.write(
            "b.json",
            #"{"secret": "x", "state_dir": "/s", "listen_port": null, "log_level": null}"#
        )
        let second = try ServiceConfig.load(SampleConfig.self, path: withNull)
        #expect(second.listenPort == 0 && second.logLevel == "info")
    }

    @Test func missingFile() throws {
        let dir = try TempDir()
        let path = dir.path + "/nope/frontend.json"
        let error = try #require(throws: ConfigError.self) { try ServiceConfig.load(SampleConfig.self, path: path) }
        #expect(error.code == .unreadable)
        #expect(error.description == "cannot read \(path): No such file or directory")
    }

    @Test func directoryInsteadOfFile() throws {
        let dir = try TempDir()
        let error = try #require(throws: ConfigError.self) { try ServiceConfig.load(PlainConfig.self, path: dir.path) }
        #expect(error.code == .unreadable)
        #expect(error.description == "cannot read \(dir.path): Is a directory")
    }

    @Test func fileTooLarge() throws {
        let dir = try TempDir()
        let path = try dir.write("big.json", #"{"name": "\#(String(repeating: "x", count: 100))"}"#)
        let error = try #require(throws: ConfigError.self) {
            try ServiceConfig.load(PlainConfig.self, path: path, maxBytes: 64)
        }
        #expect(error.code == .tooLarge)
        #expect(error.description == "\(path): is larger than 64 bytes")
        #expect(try ServiceConfig.load(PlainConfig.self, path: path, maxBytes: 200).name.count == 100)
    }

    @Test func invalidJSON() throws {
        let dir = try TempDir()
        for text in [#"{"secret": "\#(secretValue)", "#, "", "secret = \(secretValue)", #"{"a": 1} trailing"#] {
            let error = try loadError(text, as: "keygen.json", in: dir)
            #expect(error.code == .invalidJSON)
            #expect(error.description == dir.path + "/keygen.json: not valid JSON")
        }
        let array = try loadError(#"["\#(secretValue)"]"#, in: dir)
        #expect(array.description == dir.path + "/backend.json: must be a JSON object")
    }

    @Test func missingRequiredField() throws {
        let dir = try TempDir()
        let error = try loadError(#"{"secret": "\#(secretValue)"}"#, as: "frontend.json", in: dir)
        #expect(error.code == .missingField && error.field == "state_dir")
        #expect(error.description == dir.path + "/frontend.json: state_dir is required")
        #expect(error.description.hasSuffix("frontend.json: state_dir is required"))

        let nested = try loadError(
            #"{"secret": "\#(secretValue)", "state_dir": "/s", "pools": [{"name": "a", "max": 1}, {"max": 2}]}"#,
            in: dir
        )
        #expect(nested.description == dir.path + "/backend.json: pools[1].name is required")

        let null = try loadError(#"{"secret": null, "state_dir": "/s"}"#, in: dir)
        #expect(null.code == .wrongType && null.field == "secret")
        #expect(null.description == dir.path + "/backend.json: secret must be a string, not null")
    }

    @Test func wrongType() throws {
        let dir = try TempDir()
        let cases: [(String, String)] = [
            (#""max_workers": "many""#, "max_workers must be an integer"),
            (#""max_workers": 3.5"#, "max_workers must be an integer"),
            (#""max_workers": 1e30"#, "max_workers must be an integer"),
            (#""listen_port": true"#, "listen_port must be an integer"),
            (#""port_file": 7"#, "port_file must be a string"),
            (#""pools": {"a": 1}"#, "pools must be a list"),
            (#""pools": [7]"#, "pools[0] must be an object"),
            (#""pools": [{"name": "a", "max": "\#(secretValue)"}]"#, "pools[0].max must be an integer"),
        ]
        for (fields, message) in cases {
            let error = try loadError(#"{"secret": "\#(secretValue)", "state_dir": "/s", \#(fields)}"#, in: dir)
            #expect(error.code == .wrongType)
            #expect(error.description == dir.path + "/backend.json: " + message)
        }
        // The secret's own field with a wrong type: its value is not echoed.
        let secretAsList = try loadError(#"{"secret": ["\#(secretValue)"], "state_dir": "/s"}"#, in: dir)
        #expect(secretAsList.description == dir.path + "/backend.json: secret must be a string")
        let secretAsNumber = try loadError(#"{"secret": 918273645, "state_dir": "/s"}"#, in: dir)
        #expect(!secretAsNumber.description.contains("918273645"))
    }

    @Test func numberOutOfRangeInASynthesizedField() throws {
        // Foundation loses the path for a number that does not fit a field of a synthesized Decodable; the
        // ServiceKit helper that read the enclosing field names it.
        let dir = try TempDir()
        let nested = try loadError(
            #"{"secret": "x", "state_dir": "/s", "pools": [{"name": "a", "max": 123456789012345678901234567890}]}"#,
            in: dir
        )
        #expect(nested.code == .wrongType)
        #expect(
            nested.description == dir.path
                + "/backend.json: pools holds a number that is not an integer or is out of range"
        )
        #expect(!nested.description.contains("1234567890"))

        // Without the helper anywhere on the path, the file is still named and the value still hidden.
        struct Synthesized: Decodable { var port: Int }
        let path = try dir.write("s.json", #"{"port": 12345.5}"#)
        let error = try #require(throws: ConfigError.self) { try ServiceConfig.load(Synthesized.self, path: path) }
        #expect(error.code == .wrongType)
        #expect(error.description == path + ": a number is not an integer or is out of range for its field")
        #expect(!error.description.dropFirst(path.count).contains("12345"))
    }

    @Test func failedValidation() throws {
        let dir = try TempDir()
        let cases: [(String, String)] = [
            (#""state_dir": "relative/dir""#, "state_dir must be an absolute path"),
            (#""state_dir": "/s", "listen_port": 70000"#, "listen_port must be between 0 and 65535"),
            (#""state_dir": "/s", "listen_port": -1"#, "listen_port must be between 0 and 65535"),
            (#""state_dir": "/s", "max_workers": 0"#, "max_workers must be positive"),
            (
                #""state_dir": "/s", "log_level": "loud""#,
                "log_level must be one of trace, debug, info, notice, warning, error, critical"
            ),
        ]
        for (fields, message) in cases {
            let error = try loadError(#"{"secret": "\#(secretValue)", \#(fields)}"#, in: dir)
            #expect(error.code == .invalidValue)
            #expect(error.description == dir.path + "/backend.json: " + message)
        }
        let empty = try loadError(#"{"secret": "", "state_dir": "/s"}"#, as: "keygen.json", in: dir)
        #expect(empty.description == dir.path + "/keygen.json: secret must not be empty")
    }

    @Test func validationOfAValueInMemoryHasNoFile() throws {
        var config = try ServiceConfig.decode(
            SampleConfig.self,
            from: Array(#"{"secret":"x","state_dir":"/s"}"#.utf8),
            file: "t.json"
        )
        config.maxWorkers = -3
        let error = try #require(throws: ConfigError.self) { try config.validate() }
        #expect(error.file == nil && error.field == "max_workers")
        #expect(error.description == "max_workers must be positive")
    }

    @Test func checks() throws {
        #expect(throws: Never.self) { try ConfigCheck.oneOf("rsa4096", ["rsa2048", "rsa4096"], "key_type") }
        let oneOf = try #require(throws: ConfigError.self) {
            try ConfigCheck.oneOf("ed25519", ["rsa2048", "rsa3072", "rsa4096"], "key_type")
        }
        #expect(oneOf.description == "key_type must be rsa2048, rsa3072 or rsa4096")
        #expect(throws: Never.self) { try ConfigCheck.httpURL("http://127.0.0.1:8080/x", "frontend_url") }
        #expect(throws: Never.self) { try ConfigCheck.httpURL("https://copr.example", "frontend_url") }
        for bad in ["ftp://x", "http://", "http:///x", "127.0.0.1:80", "http://a b"] {
            let error = try #require(throws: ConfigError.self) { try ConfigCheck.httpURL(bad, "frontend_url") }
            #expect(error.description == "frontend_url must be an http:// or https:// URL")
        }
        #expect(throws: Never.self) { try ConfigCheck.range(5, 1...5, "n") }
        #expect(throws: ConfigError.self) { try ConfigCheck.range(6, 1...5, "n") }
    }
}

@Suite struct LoggingTests {
    @Test func levelsFromConfig() throws {
        #expect(try Logger.Level(configValue: "debug") == .debug)
        #expect(try Logger.Level(configValue: "WARNING") == .warning)
        #expect(try Logger.Level(configValue: "trace") == .trace)
        let error = try #require(throws: ConfigError.self) { try Logger.Level(configValue: "verbose") }
        #expect(error.field == "log_level" && error.code == .invalidValue)
        let named = try #require(throws: ConfigError.self) { try Logger.Level(configValue: "", field: "builder_log") }
        #expect(named.description.hasPrefix("builder_log must be one of trace, debug"))
    }

    @Test func handlerHasTheLevel() {
        let handler = ServiceLogging.makeHandler(label: "koper.test", level: .notice)
        #expect(handler.logLevel == .notice)
    }
}
