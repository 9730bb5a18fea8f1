import Foundation
import HTTPServer
import KoperStore
import Logging
import Postgres
import TestSupport

@testable import Frontend

let coprCLI: String? = {
    if let p = ProcessInfo.processInfo.environment["KOPER_COPR_CLI"], FileManager.default.isExecutableFile(atPath: p) {
        return p
    }
    return nil
}()

/// A real Frontend (in-process server on 127.0.0.1:0) over a fresh PostgreSQL database.
final class FrontendHarness: Sendable {
    let config: FrontendConfig
    let pool: PGPool
    let app: FrontendApp
    let server: Server
    let port: Int

    var url: String { "http://127.0.0.1:\(self.port)" }
    static let backendSecret = "test-backend-secret-0123456789"
    static let chroots = [
        "fedora-39-x86_64", "fedora-39-i386", "fedora-40-x86_64", "fedora-rawhide-x86_64", "epel-9-x86_64",
    ]

    /// `conninfo`: a database of the test's own (a dedicated cluster it stops and starts); by default a fresh one.
    init(conninfo given: String? = nil, configure: (inout FrontendConfig) -> Void = { _ in }) async throws {
        let conninfo: String
        if let given { conninfo = given } else { conninfo = try await PostgresFixture.makeDatabaseAsync() }
        let storage = try makeTemporaryDirectory(prefix: "koper-frontend")
        var config = FrontendConfig(
            database: conninfo,
            resultsURL: "http://127.0.0.1:9/results",
            storageDir: storage,
            backendSecret: Self.backendSecret
        )
        configure(&config)
        self.config = config
        let logger = Logger(label: "koper.test") { _ in SwiftLogNoOpLogHandler() }
        try FileManager.default.createDirectory(atPath: config.spoolDir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: config.uploadDir, withIntermediateDirectories: true)
        self.pool = PGPool(conninfo: conninfo, size: 4, logger: logger)
        _ = try await PGMigrator.migrate(self.pool, migrations: Schema.migrations, logger: logger)
        self.app = FrontendApp(config: config, db: self.pool, logger: logger)
        self.server = Server(
            configuration: config.serverConfiguration,
            handler: self.app,
            logger: logger
        )
        self.port = try self.server.start()
        for ch in Self.chroots {
            let p = ChrootNameParts(ch)
            _ = try await self.sql(
                "INSERT INTO mock_chroots (name, os, version, arch, comment) VALUES (\(ch), \(p.os), \(p.version), \(p.arch), \(ch == "epel-9-x86_64" ? "EPEL 9 *with* notes" : ""))"
            )
        }
    }

    struct Credentials: Sendable {
        let user: String
        let login: String
        let token: String
    }

    /// Creates a user and mints an API token for it.
    func makeUser(_ name: String, admin: Bool = false) async throws -> Credentials {
        let t = try await self.pool.transaction { c in
            let id = try c.query(
                "INSERT INTO users (name, is_admin, api_login) VALUES (\(name), \(admin), \("x-\(name)")) RETURNING id"
            ).first!.int("id")
            return try Auth.mintToken(c, userID: id, days: 30)
        }
        return Credentials(user: name, login: t.login, token: t.token)
    }

    func makeGroup(_ name: String, members: [String]) async throws {
        _ = try await self.sql("INSERT INTO copr_groups (name, fas_name) VALUES (\(name), \(name))")
        for m in members {
            _ = try await self.sql(
                "INSERT INTO group_members SELECT g.id, u.id FROM copr_groups g, users u WHERE g.name = \(name) AND u.name = \(m)"
            )
        }
    }

    @discardableResult
    func sql(_ query: PGQuery) async throws -> PGResult {
        try await self.pool.withConnection { c in try c.query(query) }
    }

    func count(_ query: PGQuery) async throws -> Int {
        try await self.sql(query).first.map { Int($0[0] ?? "0") ?? 0 } ?? 0
    }

    /// Writes a copr-cli config for these credentials and returns its path.
    func coprConfig(_ cred: Credentials, token: String? = nil) throws -> String {
        let dir = try makeTemporaryDirectory(prefix: "koper-coprcli")
        let path = "\(dir)/copr"
        let text = """
            [copr-cli]
            login = \(cred.login)
            username = \(cred.user)
            token = \(token ?? cred.token)
            copr_url = \(self.url)
            encrypted = False

            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func stop() async {
        await self.server.shutdown(gracePeriod: .seconds(2))
        self.pool.close()
        try? FileManager.default.removeItem(atPath: self.config.storageDir)
    }
}

struct ChrootNameParts {
    let os: String
    let version: String
    let arch: String
    init(_ s: String) {
        let parts = s.split(separator: "-").map(String.init)
        self.arch = parts.last!
        self.version = parts[parts.count - 2]
        self.os = parts.dropLast(2).joined(separator: "-")
    }
}

/// One HTTP exchange through curl (a real client on a real socket).
struct CurlResponse: Sendable {
    let status: Int
    let body: String
    let headers: String

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(self.body.utf8))) as? [String: Any]
    }
}

func curl(_ args: [String]) async throws -> CurlResponse {
    let dir = try makeTemporaryDirectory(prefix: "koper-curl")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try await Command.run(
        "/usr/bin/curl",
        ["-s", "-S", "-D", "\(dir)/h", "-o", "\(dir)/b", "-w", "%{http_code}"] + args,
        timeout: 60
    )
    let body = (try? String(contentsOfFile: "\(dir)/b", encoding: .utf8)) ?? ""
    let headers = (try? String(contentsOfFile: "\(dir)/h", encoding: .utf8)) ?? ""
    return CurlResponse(
        status: Int(r.output.trimmingCharacters(in: .whitespacesAndNewlines).suffix(3)) ?? 0,
        body: body,
        headers: headers
    )
}

extension FrontendHarness {
    func get(_ path: String, auth: Credentials? = nil) async throws -> CurlResponse {
        try await curl((auth.map { ["-u", "\($0.login):\($0.token)"] } ?? []) + ["\(self.url)\(path)"])
    }

    func send(
        _ method: String,
        _ path: String,
        json: String? = nil,
        auth: Credentials? = nil,
        headers: [String] = []
    ) async throws -> CurlResponse {
        var args = ["-X", method]
        if let auth { args += ["-u", "\(auth.login):\(auth.token)"] }
        if let json { args += ["-H", "Content-Type: application/json", "--data-binary", json] }
        for h in headers { args += ["-H", h] }
        return try await curl(args + ["\(self.url)\(path)"])
    }
}
