import Foundation
import Logging
import Tickets

/// `backend.json`.
struct BackendConfig: Codable, Sendable {
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
        case logLevel = "log_level"
        case portFile = "port_file"
        case keygenURL = "keygen_url"
        case keygenSecret = "keygen_secret"
    }

    init(
        frontendURL: String, backendSecret: String, resultsURL: String, resultsDir: String, stateDir: String,
        ticketsDatabase: String, pools: [PoolConfig], sshPrivateKey: String
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
        self.listenHost = try c.decodeIfPresent(String.self, forKey: .listenHost) ?? self.listenHost
        self.listenPort = try c.decodeIfPresent(Int.self, forKey: .listenPort) ?? self.listenPort
        self.builderCommand = try c.decodeIfPresent(String.self, forKey: .builderCommand) ?? self.builderCommand
        self.builderArguments = try c.decodeIfPresent([String].self, forKey: .builderArguments) ?? self.builderArguments
        self.remoteWorkDir = try c.decodeIfPresent(String.self, forKey: .remoteWorkDir) ?? self.remoteWorkDir
        self.maxWorkers = try c.decodeIfPresent(Int.self, forKey: .maxWorkers) ?? self.maxWorkers
        self.maxPerOwner = try c.decodeIfPresent(Int.self, forKey: .maxPerOwner) ?? self.maxPerOwner
        self.maxPerArch = try c.decodeIfPresent(Int.self, forKey: .maxPerArch) ?? self.maxPerArch
        self.maxPerOwnerArch = try c.decodeIfPresent(Int.self, forKey: .maxPerOwnerArch) ?? self.maxPerOwnerArch
        self.blockedOwners = try c.decodeIfPresent([String].self, forKey: .blockedOwners) ?? []
        self.maxBuildTimeout = try c.decodeIfPresent(Int.self, forKey: .maxBuildTimeout) ?? self.maxBuildTimeout
        self.maxAttempts = try c.decodeIfPresent(Int.self, forKey: .maxAttempts) ?? self.maxAttempts
        self.logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? self.logLevel
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.keygenURL = try c.decodeIfPresent(String.self, forKey: .keygenURL).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.keygenSecret = try c.decodeIfPresent(String.self, forKey: .keygenSecret)
    }

    static func load(path: String) throws -> BackendConfig {
        try JSONDecoder().decode(BackendConfig.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    var frontendBase: String { self.frontendURL.hasSuffix("/") ? String(self.frontendURL.dropLast()) : self.frontendURL }
    var resultsBase: String { self.resultsURL.hasSuffix("/") ? String(self.resultsURL.dropLast()) : self.resultsURL }
    var jobsDir: String { self.stateDir + "/jobs" }
    var logLevelValue: Logger.Level { Logger.Level(rawValue: self.logLevel) ?? .info }
}
