import Foundation
import Logging

/// `frontend.json`. Every path is absolute; every limit has a default.
struct FrontendConfig: Codable, Sendable {
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
        self.listenHost = try c.decodeIfPresent(String.self, forKey: .listenHost) ?? self.listenHost
        self.listenPort = try c.decodeIfPresent(Int.self, forKey: .listenPort) ?? self.listenPort
        self.databasePoolSize = try c.decodeIfPresent(Int.self, forKey: .databasePoolSize) ?? self.databasePoolSize
        self.publicURL = try c.decodeIfPresent(String.self, forKey: .publicURL)
        self.maxUploadBytes = try c.decodeIfPresent(Int.self, forKey: .maxUploadBytes) ?? self.maxUploadBytes
        self.maxJSONBytes = try c.decodeIfPresent(Int.self, forKey: .maxJSONBytes) ?? self.maxJSONBytes
        self.maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? self.maxConnections
        self.tokenExpirationDays = try c.decodeIfPresent(Int.self, forKey: .tokenExpirationDays) ?? self.tokenExpirationDays
        self.defaultBuildTimeout = try c.decodeIfPresent(Int.self, forKey: .defaultBuildTimeout) ?? self.defaultBuildTimeout
        self.maxBuildTimeout = try c.decodeIfPresent(Int.self, forKey: .maxBuildTimeout) ?? self.maxBuildTimeout
        self.distgitImport = try c.decodeIfPresent(Bool.self, forKey: .distgitImport) ?? self.distgitImport
        self.logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? self.logLevel
        self.portFile = try c.decodeIfPresent(String.self, forKey: .portFile)
        self.keygenURL = try c.decodeIfPresent(String.self, forKey: .keygenURL).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.keygenSecret = try c.decodeIfPresent(String.self, forKey: .keygenSecret)
    }

    static func load(path: String) throws -> FrontendConfig {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(FrontendConfig.self, from: data)
    }

    var resultsBase: String { self.resultsURL.hasSuffix("/") ? String(self.resultsURL.dropLast()) : self.resultsURL }
    var uploadDir: String { self.storageDir + "/srpms" }
    var spoolDir: String { self.storageDir + "/spool" }

    var logLevelValue: Logger.Level { Logger.Level(rawValue: self.logLevel) ?? .info }
}
