import Foundation
import Logging
import ServiceKit
import Tickets

/// `backend.json`.
struct BackendConfig: Codable, Sendable, ValidatedConfig {
    /// Base URL of the Frontend (its internal /backend/ API).
    var frontendURL: String
    /// Shared secret of the Frontend's internal API. Never logged.
    var backendSecret: String
    var listenHost: String = "127.0.0.1"
    var listenPort: Int = 0
    /// Public base URL of the results tree this Backend serves, e.g. http://127.0.0.1:8081/results.
    var resultsURL: String
    /// Root of the results tree on disk.
    var resultsDir: String
    /// Backend-owned state: in-flight job records, temp dirs.
    var stateDir: String
    /// libpq conninfo of the ticket service's own database (never the Frontend's).
    var ticketsDatabase: String
    var pools: [PoolConfig]
    /// Private key the workers use to reach builders (public key installed on them).
    var sshPrivateKey: String
    /// `koper-builder` on the builder hosts.
    var builderCommand: String = "koper-builder"
    /// Extra arguments for `koper-builder build` (e.g. `["--cgroup", "koper-builds", "--cgroup-memory", "4294967296"]`).
    var builderArguments: [String] = []
    /// Where builds run on a builder, relative to the builder user's home unless absolute.
    var remoteWorkDir: String = "koper-builds"
    var maxWorkers: Int = 16
    var maxPerOwner: Int = 0
    var maxPerArch: Int = 0
    var maxPerOwnerArch: Int = 0
    var blockedOwners: [String] = []
    /// Admin maximum for any build's timeout, seconds.
    var maxBuildTimeout: Int = 48 * 3600
    /// A build whose builder dies is retried on another builder at most this many times in all.
    var maxAttempts: Int = 3
    /// Infrastructure failures of one claimed task (the builder could not download the SRPM, a builder could not
    /// be reached, collecting or publishing failed) retried by the worker, with a delay doubling from
    /// `infra_retry_delay` up to `infra_retry_max_delay` seconds; after that the task is handed back to the queue
    /// (`pending`), never failed.
    var maxInfraRetries: Int = 5
    var infraRetryDelay: Double = 10
    var infraRetryMaxDelay: Double = 300
    /// The final report of a build (and a hand-back) is kept in the job file and retried until the Frontend answers,
    /// across restarts: first after `report_retry_delay` seconds, doubling up to `report_retry_max_delay`.
    var reportRetryDelay: Double = 1
    var reportRetryMaxDelay: Double = 60
    /// The status probe of a running build: every `probe_interval` seconds at first, growing by half each probe
    /// up to `probe_max_interval` (each probe is one command over the builder's SSH connection).
    var probeInterval: Double = 1
    var probeMaxInterval: Double = 10
    /// A warning or error with the same message is logged at most once per this many seconds (doubling while it
    /// keeps recurring, up to 16 times), with the number of suppressed repeats.
    var warningInterval: Double = 30
    var logLevel: String = "info"
    var portFile: String?
    /// Keygen's base URL and shared secret. Without them builds are not signed (a warning at start).
    var keygenURL: String?
    var keygenSecret: String?

    enum CodingKeys: String, CodingKey {
        case frontendURL = "frontend_url"
        case backendSecret = "backend_secret"
        case listenHost = "listen_host"
        case listenPort = "listen_port"
        case resultsURL = "results_url"
        case resultsDir = "results_dir"
        case stateDir = "state_dir"
        case ticketsDatabase = "tickets_database"
        case pools
        case sshPrivateKey = "ssh_private_key"
        case builderCommand = "builder_command"
        case builderArguments = "builder_arguments"
        case remoteWorkDir = "remote_work_dir"
        case maxWorkers = "max_workers"
        case maxPerOwner = "max_per_owner"
        case maxPerArch = "max_per_arch"
        case maxPerOwnerArch = "max_per_owner_arch"
        case blockedOwners = "blocked_owners"
        case maxBuildTimeout = "max_build_timeout"
        case maxAttempts = "max_attempts"
        case maxInfraRetries = "max_infra_retries"
        case infraRetryDelay = "infra_retry_delay"
        case infraRetryMaxDelay = "infra_retry_max_delay"
        case reportRetryDelay = "report_retry_delay"
        case reportRetryMaxDelay = "report_retry_max_delay"
        case probeInterval = "probe_interval"
        case probeMaxInterval = "probe_max_interval"
        case warningInterval = "warning_interval"
        case logLevel = "log_level"
        case portFile = "port_file"
        case keygenURL = "keygen_url"
        case keygenSecret = "keygen_secret"
    }

    init(
        frontendURL: String,
        backendSecret: String,
        resultsURL: String,
        resultsDir: String,
        stateDir: String,
        ticketsDatabase: String,
        pools: [PoolConfig],
        sshPrivateKey: String
    ) {
        self.frontendURL = frontendURL
        self.backendSecret = backendSecret
        self.resultsURL = resultsURL
        self.resultsDir = resultsDir
        self.stateDir = stateDir
        self.ticketsDatabase = ticketsDatabase
        self.pools = pools
        self.sshPrivateKey = sshPrivateKey
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.frontendURL = try c.decode(String.self, forKey: .frontendURL)
        self.backendSecret = try c.decode(String.self, forKey: .backendSecret)
        self.resultsURL = try c.decode(String.self, forKey: .resultsURL)
        self.resultsDir = try c.decode(String.self, forKey: .resultsDir)
        self.stateDir = try c.decode(String.self, forKey: .stateDir)
        self.ticketsDatabase = try c.decode(String.self, forKey: .ticketsDatabase)
        self.pools = try c.decodeIfPresent([PoolConfig].self, forKey: .pools) ?? []
        self.sshPrivateKey = try c.decode(String.self, forKey: .sshPrivateKey)
        self.listenHost = try c.decodeIfPresent(forKey: .listenHost, default: self.listenHost)
        self.listenPort = try c.decodeIfPresent(forKey: .listenPort, default: self.listenPort)
        self.builderCommand = try c.decodeIfPresent(forKey: .builderCommand, default: self.builderCommand)
        self.builderArguments = try c.decodeIfPresent(forKey: .builderArguments, default: self.builderArguments)
        self.remoteWorkDir = try c.decodeIfPresent(forKey: .remoteWorkDir, default: self.remoteWorkDir)
        self.maxWorkers = try c.decodeIfPresent(forKey: .maxWorkers, default: self.maxWorkers)
        self.maxPerOwner = try c.decodeIfPresent(forKey: .maxPerOwner, default: self.maxPerOwner)
        self.maxPerArch = try c.decodeIfPresent(forKey: .maxPerArch, default: self.maxPerArch)
        self.maxPerOwnerArch = try c.decodeIfPresent(forKey: .maxPerOwnerArch, default: self.maxPerOwnerArch)
        self.blockedOwners = try c.decodeIfPresent([String].self, forKey: .blockedOwners) ?? []
        self.maxBuildTimeout = try c.decodeIfPresent(forKey: .maxBuildTimeout, default: self.maxBuildTimeout)
        self.maxAttempts = try c.decodeIfPresent(forKey: .maxAttempts, default: self.maxAttempts)
        self.maxInfraRetries = try c.decodeIfPresent(forKey: .maxInfraRetries, default: self.maxInfraRetries)
        self.infraRetryDelay = try c.decodeIfPresent(forKey: .infraRetryDelay, default: self.infraRetryDelay)
        self.infraRetryMaxDelay = try c.decodeIfPresent(forKey: .infraRetryMaxDelay, default: self.infraRetryMaxDelay)
        self.reportRetryDelay = try c.decodeIfPresent(forKey: .reportRetryDelay, default: self.reportRetryDelay)
        self.reportRetryMaxDelay = try c.decodeIfPresent(
            forKey: .reportRetryMaxDelay,
            default: self.reportRetryMaxDelay
        )
        self.probeInterval = try c.decodeIfPresent(forKey: .probeInterval, default: self.probeInterval)
        self.probeMaxInterval = try c.decodeIfPresent(forKey: .probeMaxInterval, default: self.probeMaxInterval)
        self.warningInterval = try c.decodeIfPresent(forKey: .warningInterval, default: self.warningInterval)
        self.logLevel = try c.decodeIfPresent(forKey: .logLevel, default: self.logLevel)
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.keygenURL = try c.decodeIfPresent(String.self, forKey: .keygenURL).map {
            $0.hasSuffix("/") ? String($0.dropLast()) : $0
        }
        self.keygenSecret = try c.decodeIfPresent(String.self, forKey: .keygenSecret)
    }

    /// Reads and checks `backend.json`; errors name the file and the field, never a value.
    static func load(path: String) throws(ConfigError) -> BackendConfig {
        try ServiceConfig.load(BackendConfig.self, path: path)
    }

    func validate() throws(ConfigError) {
        try ConfigCheck.httpURL(self.frontendURL, "frontend_url")
        try ConfigCheck.nonEmpty(self.backendSecret, "backend_secret")
        try ConfigCheck.port(self.listenPort, "listen_port")
        try ConfigCheck.httpURL(self.resultsURL, "results_url")
        try ConfigCheck.absolutePath(self.resultsDir, "results_dir")
        try ConfigCheck.absolutePath(self.stateDir, "state_dir")
        try ConfigCheck.nonEmpty(self.ticketsDatabase, "tickets_database")
        try ConfigCheck.nonEmpty(self.sshPrivateKey, "ssh_private_key")
        try ConfigCheck.nonEmpty(self.builderCommand, "builder_command")
        try ConfigCheck.range(self.maxWorkers, 1...10_000, "max_workers")
        try ConfigCheck.range(self.maxPerOwner, 0...10_000, "max_per_owner")
        try ConfigCheck.range(self.maxPerArch, 0...10_000, "max_per_arch")
        try ConfigCheck.range(self.maxPerOwnerArch, 0...10_000, "max_per_owner_arch")
        try ConfigCheck.positive(self.maxBuildTimeout, "max_build_timeout")
        try ConfigCheck.range(self.maxAttempts, 1...100, "max_attempts")
        try ConfigCheck.range(self.maxInfraRetries, 0...1000, "max_infra_retries")
        for (value, field, limit) in [
            (self.infraRetryDelay, "infra_retry_delay", 86400.0),
            (self.infraRetryMaxDelay, "infra_retry_max_delay", 86400),
            (self.reportRetryDelay, "report_retry_delay", 3600),
            (self.reportRetryMaxDelay, "report_retry_max_delay", 3600),
            (self.probeInterval, "probe_interval", 600),
            (self.probeMaxInterval, "probe_max_interval", 600),
            (self.warningInterval, "warning_interval", 86400),
        ] where !(value > 0 && value <= limit) {
            throw ConfigError.invalid(field, "must be more than 0 and at most \(Int(limit)) seconds")
        }
        for (maximum, first, field) in [
            (self.infraRetryMaxDelay, self.infraRetryDelay, "infra_retry_max_delay"),
            (self.reportRetryMaxDelay, self.reportRetryDelay, "report_retry_max_delay"),
            (self.probeMaxInterval, self.probeInterval, "probe_max_interval"),
        ] where maximum < first {
            throw ConfigError.invalid(field, "must be at least the first delay")
        }
        _ = try Logger.Level(configValue: self.logLevel)
        if let url = self.keygenURL { try ConfigCheck.httpURL(url, "keygen_url") }
        if (self.keygenURL == nil) != (self.keygenSecret == nil) {
            throw ConfigError.invalid("keygen_secret", "must be set together with keygen_url")
        }
    }

    var frontendBase: String {
        self.frontendURL.hasSuffix("/") ? String(self.frontendURL.dropLast()) : self.frontendURL
    }
    var resultsBase: String { self.resultsURL.hasSuffix("/") ? String(self.resultsURL.dropLast()) : self.resultsURL }
    var jobsDir: String { self.stateDir + "/jobs" }

    static func duration(_ seconds: Double) -> Duration { .milliseconds(Int64((seconds * 1000).rounded())) }
    /// `validate()` refused unknown levels already.
    var logLevelValue: Logger.Level { (try? Logger.Level(configValue: self.logLevel)) ?? .info }
}
