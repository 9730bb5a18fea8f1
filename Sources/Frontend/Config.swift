import Foundation
import HTTPServer
import Logging
import ServiceKit

/// `frontend.json`. Every path is absolute; every limit has a default.
struct FrontendConfig: Codable, Sendable, ValidatedConfig {
    var listenHost: String = "127.0.0.1"
    var listenPort: Int = 0
    /// libpq conninfo of the Koper database.
    var database: String
    var databasePoolSize: Int = 8
    /// Public base URL of this frontend (for links). When nil, built from the request's Host header.
    var publicURL: String?
    /// Base URL of the results tree, e.g. `http://127.0.0.1:8081/results` (served by the Backend).
    var resultsURL: String
    /// Frontend-owned files: uploaded SRPMs, temporary bodies.
    var storageDir: String
    /// Shared secret of the internal /backend/ API (Backend, DistGitProxy). Never logged.
    var backendSecret: String
    var maxUploadBytes: Int = 1 << 30
    var maxJSONBytes: Int = 1 << 20
    var maxConnections: Int = 4096
    /// Connections one client (remote IP address) may hold; behind a reverse proxy, raise it (decision 0011).
    var maxConnectionsPerClient: Int = 256
    /// Uploads (spooled bodies) one client may be sending at once.
    var maxUploadsPerClient: Int = 4
    /// Bytes all spooled request bodies together may take in `storage_dir/spool`.
    var spoolQuotaBytes: Int = 8 << 30
    var tokenExpirationDays: Int = 180
    /// Default and maximum build timeout in seconds (Copr: 5 h default).
    var defaultBuildTimeout: Int = 5 * 3600
    var maxBuildTimeout: Int = 48 * 3600
    /// When true, uploaded SRPMs wait in `importing` for DistGitProxy; otherwise they go straight to `pending`.
    var distgitImport: Bool = false
    var logLevel: String = "info"
    /// If set, the bound port is written here once listening (for tooling that starts us on port 0).
    var portFile: String?
    /// Keygen, asked to make each project's key when the project is created (optional).
    var keygenURL: String?
    var keygenSecret: String?

    enum CodingKeys: String, CodingKey {
        case listenHost = "listen_host"
        case listenPort = "listen_port"
        case database
        case databasePoolSize = "database_pool_size"
        case publicURL = "public_url"
        case resultsURL = "results_url"
        case storageDir = "storage_dir"
        case backendSecret = "backend_secret"
        case maxUploadBytes = "max_upload_bytes"
        case maxJSONBytes = "max_json_bytes"
        case maxConnections = "max_connections"
        case maxConnectionsPerClient = "max_connections_per_client"
        case maxUploadsPerClient = "max_uploads_per_client"
        case spoolQuotaBytes = "spool_quota_bytes"
        case tokenExpirationDays = "token_expiration_days"
        case defaultBuildTimeout = "default_build_timeout"
        case maxBuildTimeout = "max_build_timeout"
        case distgitImport = "distgit_import"
        case logLevel = "log_level"
        case portFile = "port_file"
        case keygenURL = "keygen_url"
        case keygenSecret = "keygen_secret"
    }

    init(database: String, resultsURL: String, storageDir: String, backendSecret: String) {
        self.database = database
        self.resultsURL = resultsURL
        self.storageDir = storageDir
        self.backendSecret = backendSecret
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.database = try c.decode(String.self, forKey: .database)
        self.resultsURL = try c.decode(String.self, forKey: .resultsURL)
        self.storageDir = try c.decode(String.self, forKey: .storageDir)
        self.backendSecret = try c.decode(String.self, forKey: .backendSecret)
        self.listenHost = try c.decodeIfPresent(forKey: .listenHost, default: self.listenHost)
        self.listenPort = try c.decodeIfPresent(forKey: .listenPort, default: self.listenPort)
        self.databasePoolSize = try c.decodeIfPresent(forKey: .databasePoolSize, default: self.databasePoolSize)
        self.publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL)
        self.maxUploadBytes = try c.decodeIfPresent(forKey: .maxUploadBytes, default: self.maxUploadBytes)
        self.maxJSONBytes = try c.decodeIfPresent(forKey: .maxJSONBytes, default: self.maxJSONBytes)
        self.maxConnections = try c.decodeIfPresent(forKey: .maxConnections, default: self.maxConnections)
        self.maxConnectionsPerClient = try c.decodeIfPresent(
            forKey: .maxConnectionsPerClient,
            default: self.maxConnectionsPerClient
        )
        self.maxUploadsPerClient = try c.decodeIfPresent(
            forKey: .maxUploadsPerClient,
            default: self.maxUploadsPerClient
        )
        self.spoolQuotaBytes = try c.decodeIfPresent(forKey: .spoolQuotaBytes, default: self.spoolQuotaBytes)
        self.tokenExpirationDays = try c.decodeIfPresent(
            forKey: .tokenExpirationDays,
            default: self.tokenExpirationDays
        )
        self.defaultBuildTimeout = try c.decodeIfPresent(
            forKey: .defaultBuildTimeout,
            default: self.defaultBuildTimeout
        )
        self.maxBuildTimeout = try c.decodeIfPresent(forKey: .maxBuildTimeout, default: self.maxBuildTimeout)
        self.distgitImport = try c.decodeIfPresent(forKey: .distgitImport, default: self.distgitImport)
        self.logLevel = try c.decodeIfPresent(forKey: .logLevel, default: self.logLevel)
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.keygenURL = try c.decodeIfPresent(String.self, forKey: .keygenURL).map {
            $0.hasSuffix("/") ? String($0.dropLast()) : $0
        }
        self.keygenSecret = try c.decodeIfPresent(String.self, forKey: .keygenSecret)
    }

    /// Reads and checks `frontend.json`; errors name the file and the field, never a value.
    static func load(path: String) throws(ConfigError) -> FrontendConfig {
        try ServiceConfig.load(FrontendConfig.self, path: path)
    }

    func validate() throws(ConfigError) {
        try ConfigCheck.port(self.listenPort, "listen_port")
        try ConfigCheck.nonEmpty(self.database, "database")
        try ConfigCheck.range(self.databasePoolSize, 1...256, "database_pool_size")
        try ConfigCheck.httpURL(self.resultsURL, "results_url")
        if let url = self.publicURL { try ConfigCheck.httpURL(url, "public_url") }
        try ConfigCheck.absolutePath(self.storageDir, "storage_dir")
        try ConfigCheck.nonEmpty(self.backendSecret, "backend_secret")
        try ConfigCheck.positive(self.maxUploadBytes, "max_upload_bytes")
        try ConfigCheck.positive(self.maxJSONBytes, "max_json_bytes")
        try ConfigCheck.positive(self.maxConnections, "max_connections")
        try ConfigCheck.positive(self.maxConnectionsPerClient, "max_connections_per_client")
        try ConfigCheck.positive(self.maxUploadsPerClient, "max_uploads_per_client")
        try ConfigCheck.range(self.spoolQuotaBytes, self.maxUploadBytes...Int.max, "spool_quota_bytes")
        try ConfigCheck.positive(self.tokenExpirationDays, "token_expiration_days")
        try ConfigCheck.positive(self.maxBuildTimeout, "max_build_timeout")
        try ConfigCheck.range(self.defaultBuildTimeout, 1...max(1, self.maxBuildTimeout), "default_build_timeout")
        _ = try Logger.Level(configValue: self.logLevel)
        if let url = self.keygenURL { try ConfigCheck.httpURL(url, "keygen_url") }
        if (self.keygenURL == nil) != (self.keygenSecret == nil) {
            throw ConfigError.invalid("keygen_secret", "must be set together with keygen_url")
        }
    }

    var resultsBase: String { self.resultsURL.hasSuffix("/") ? String(self.resultsURL.dropLast()) : self.resultsURL }
    var uploadDir: String { self.storageDir + "/srpms" }
    var spoolDir: String { self.storageDir + "/spool" }

    /// The HTTP server's settings from this file (`serve` and the tests use the same mapping).
    var serverConfiguration: HTTPServerConfiguration {
        HTTPServerConfiguration(
            host: self.listenHost,
            port: self.listenPort,
            maxConnections: self.maxConnections,
            temporaryDirectory: self.spoolDir,
            maxConnectionsPerClient: self.maxConnectionsPerClient,
            maxUploadsPerClient: self.maxUploadsPerClient,
            spoolQuotaBytes: self.spoolQuotaBytes
        )
    }

    /// `validate()` refused unknown levels already.
    var logLevelValue: Logger.Level { (try? Logger.Level(configValue: self.logLevel)) ?? .info }
}
