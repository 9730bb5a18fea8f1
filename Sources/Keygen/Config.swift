import Foundation
import Logging

/// `keygen.json`.
struct KeygenConfig: Codable, Sendable {
    var listenHost: String = "127.0.0.1"
    /// 0 picks a free port (written to `portFile`).
    var listenPort: Int = 0
    /// Shared secret every request presents as `Authorization: Bearer SECRET`. Never logged.
    var secret: String
    /// Keygen's own GnuPG home (created with mode 0700). Nothing else should use it.
    var gnupgHome: String
    /// gpg's algorithm name: `rsa2048`, `rsa3072` or `rsa4096`.
    var keyType: String = "rsa4096"
    /// Lifetime of a new key, and how far ahead of now a prolonged key's expiry is moved.
    var keyExpiryDays: Int = 5 * 365
    /// A key expiring within this many days is prolonged by the periodic check.
    var prolongBeforeDays: Int = 30
    /// Pre-generated spare keys kept ready for new projects.
    var poolSize: Int = 2
    /// The e-mail domain of user ids: `owner#project@copr.SIGN_DOMAIN` (upstream Copr: `fedorahosted.org`).
    var signDomain: String = "fedorahosted.org"
    /// Keygen-owned state: the key index (`keys.json`).
    var stateDir: String
    var logLevel: String = "info"
    var portFile: String?
    /// How often the expiry check runs, seconds.
    var prolongCheckIntervalSeconds: Int = 6 * 3600
    /// Largest body `POST /keys/O/P/sign` accepts.
    var maxSignBytes: Int = 64 << 20
    /// Bound of one gpg operation (key generation included), seconds.
    var gpgTimeoutSeconds: Int = 600

    enum CodingKeys: String, CodingKey {
        case listenHost = "listen_host"
        case listenPort = "listen_port"
        case secret
        case gnupgHome = "gnupg_home"
        case keyType = "key_type"
        case keyExpiryDays = "key_expiry_days"
        case prolongBeforeDays = "prolong_before_days"
        case poolSize = "pool_size"
        case signDomain = "sign_domain"
        case stateDir = "state_dir"
        case logLevel = "log_level"
        case portFile = "port_file"
        case prolongCheckIntervalSeconds = "prolong_check_interval_seconds"
        case maxSignBytes = "max_sign_bytes"
        case gpgTimeoutSeconds = "gpg_timeout_seconds"
    }

    init(secret: String, gnupgHome: String, stateDir: String) {
        self.secret = secret
        self.gnupgHome = gnupgHome
        self.stateDir = stateDir
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.secret = try c.decode(String.self, forKey: .secret)
        self.gnupgHome = try c.decode(String.self, forKey: .gnupgHome)
        self.stateDir = try c.decode(String.self, forKey: .stateDir)
        self.listenHost = try c.decodeIfPresent(String.self, forKey: .listenHost) ?? self.listenHost
        self.listenPort = try c.decodeIfPresent(Int.self, forKey: .listenPort) ?? self.listenPort
        self.keyType = try c.decodeIfPresent(String.self, forKey: .keyType) ?? self.keyType
        self.keyExpiryDays = try c.decodeIfPresent(Int.self, forKey: .keyExpiryDays) ?? self.keyExpiryDays
        self.prolongBeforeDays = try c.decodeIfPresent(Int.self, forKey: .prolongBeforeDays) ?? self.prolongBeforeDays
        self.poolSize = try c.decodeIfPresent(Int.self, forKey: .poolSize) ?? self.poolSize
        self.signDomain = try c.decodeIfPresent(String.self, forKey: .signDomain) ?? self.signDomain
        self.logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? self.logLevel
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.prolongCheckIntervalSeconds =
            try c.decodeIfPresent(Int.self, forKey: .prolongCheckIntervalSeconds) ?? self.prolongCheckIntervalSeconds
        self.maxSignBytes = try c.decodeIfPresent(Int.self, forKey: .maxSignBytes) ?? self.maxSignBytes
        self.gpgTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .gpgTimeoutSeconds) ?? self.gpgTimeoutSeconds
    }

    static func load(path: String) throws -> KeygenConfig {
        let config = try JSONDecoder().decode(KeygenConfig.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        try config.validate()
        return config
    }

    /// Refuses settings that would make a broken service.
    func validate() throws(KeygenError) {
        func fail(_ message: String) -> KeygenError { KeygenError(.badRequest, message) }
        guard !self.secret.isEmpty else { throw fail("secret must not be empty") }
        guard self.gnupgHome.hasPrefix("/") else { throw fail("gnupg_home must be an absolute path") }
        guard self.stateDir.hasPrefix("/") else { throw fail("state_dir must be an absolute path") }
        guard ["rsa2048", "rsa3072", "rsa4096"].contains(self.keyType) else {
            throw fail("key_type must be rsa2048, rsa3072 or rsa4096")
        }
        guard self.keyExpiryDays >= 2, self.keyExpiryDays <= 100 * 365 else {
            throw fail("key_expiry_days must be between 2 and 36500")
        }
        guard self.prolongBeforeDays >= 1, self.prolongBeforeDays < self.keyExpiryDays else {
            throw fail("prolong_before_days must be at least 1 and less than key_expiry_days")
        }
        guard (0...100).contains(self.poolSize) else { throw fail("pool_size must be between 0 and 100") }
        guard !self.signDomain.isEmpty,
            self.signDomain.utf8.allSatisfy({ isDomainByte($0) })
        else {
            throw fail("sign_domain must be a host name")
        }
        guard self.prolongCheckIntervalSeconds >= 1 else {
            throw fail("prolong_check_interval_seconds must be positive")
        }
        guard self.maxSignBytes >= 1 else { throw fail("max_sign_bytes must be positive") }
        guard self.gpgTimeoutSeconds >= 1 else { throw fail("gpg_timeout_seconds must be positive") }
    }

    var logLevelValue: Logger.Level { Logger.Level(rawValue: self.logLevel) ?? .info }
    var indexPath: String { self.stateDir + "/keys.json" }
    var keyLifetime: Duration { .seconds(Int64(self.keyExpiryDays) * 86_400) }
}

private func isDomainByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"),
        UInt8(ascii: "-"), UInt8(ascii: "."):
        return true
    default:
        return false
    }
}
