import Logging
import ServiceKit

/// `keygen.json`.
struct KeygenConfig: Codable, Sendable, ValidatedConfig {
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
        self.listenHost = try c.decodeIfPresent(forKey: .listenHost, default: self.listenHost)
        self.listenPort = try c.decodeIfPresent(forKey: .listenPort, default: self.listenPort)
        self.keyType = try c.decodeIfPresent(forKey: .keyType, default: self.keyType)
        self.keyExpiryDays = try c.decodeIfPresent(forKey: .keyExpiryDays, default: self.keyExpiryDays)
        self.prolongBeforeDays = try c.decodeIfPresent(forKey: .prolongBeforeDays, default: self.prolongBeforeDays)
        self.poolSize = try c.decodeIfPresent(forKey: .poolSize, default: self.poolSize)
        self.signDomain = try c.decodeIfPresent(forKey: .signDomain, default: self.signDomain)
        self.logLevel = try c.decodeIfPresent(forKey: .logLevel, default: self.logLevel)
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.prolongCheckIntervalSeconds = try c.decodeIfPresent(
            forKey: .prolongCheckIntervalSeconds,
            default: self.prolongCheckIntervalSeconds
        )
        self.maxSignBytes = try c.decodeIfPresent(forKey: .maxSignBytes, default: self.maxSignBytes)
        self.gpgTimeoutSeconds = try c.decodeIfPresent(forKey: .gpgTimeoutSeconds, default: self.gpgTimeoutSeconds)
    }

    /// Reads, decodes and validates `keygen.json`; errors name the file and the field, never a value.
    static func load(path: String) throws(ConfigError) -> KeygenConfig {
        try ServiceConfig.load(KeygenConfig.self, path: path)
    }

    /// Refuses settings that would make a broken service.
    func validate() throws(ConfigError) {
        try ConfigCheck.nonEmpty(self.secret, "secret")
        try ConfigCheck.port(self.listenPort, "listen_port")
        try ConfigCheck.absolutePath(self.gnupgHome, "gnupg_home")
        try ConfigCheck.absolutePath(self.stateDir, "state_dir")
        try ConfigCheck.oneOf(self.keyType, ["rsa2048", "rsa3072", "rsa4096"], "key_type")
        try ConfigCheck.range(self.keyExpiryDays, 2...(100 * 365), "key_expiry_days")
        guard self.prolongBeforeDays >= 1, self.prolongBeforeDays < self.keyExpiryDays else {
            throw .invalid("prolong_before_days", "must be at least 1 and less than key_expiry_days")
        }
        try ConfigCheck.range(self.poolSize, 0...100, "pool_size")
        guard !self.signDomain.isEmpty, self.signDomain.utf8.allSatisfy({ isDomainByte($0) }) else {
            throw .invalid("sign_domain", "must be a host name")
        }
        _ = try Logger.Level(configValue: self.logLevel)
        try ConfigCheck.positive(self.prolongCheckIntervalSeconds, "prolong_check_interval_seconds")
        try ConfigCheck.positive(self.maxSignBytes, "max_sign_bytes")
        try ConfigCheck.positive(self.gpgTimeoutSeconds, "gpg_timeout_seconds")
    }

    /// `log_level` as a level (`validate()` has refused unknown names).
    var logLevelValue: Logger.Level { (try? Logger.Level(configValue: self.logLevel)) ?? .info }
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
