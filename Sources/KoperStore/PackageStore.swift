import CoprModel
public import KoperJSON
public import Postgres

/// One package of a project and how it is built.
public struct PackageRecord: PGRecord, Equatable {
    public let id: Int
    public let projectID: Int
    public let name: String
    /// `scm`, `url`, `upload`, `pypi`, `rubygems`, `custom` or `distgit`.
    public let sourceType: String
    /// The stored source description (`{}` if the stored text is not a JSON object).
    public let source: JSONObject
    public let webhookRebuild: Bool
    public let maxBuilds: Int?
    public let timeout: Int?
    public let chrootDenylist: [String]

    static let columns: PGQuery = """
        k.id, k.project_id, k.name, k.source_type, k.source_json, k.webhook_rebuild, k.max_builds, k.timeout, k.chroot_denylist
        """

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.projectID = try row.decode("project_id")
        self.name = try row.decode("name")
        self.sourceType = try row.decode("source_type")
        let text = try row.decode("source_json", as: String?.self) ?? "{}"
        self.source = (try? JSONParser.parse(Array(text.utf8)))?.objectValue ?? JSONObject()
        self.webhookRebuild = try row.decode("webhook_rebuild")
        self.maxBuilds = try row.decode("max_builds")
        self.timeout = try row.decode("timeout")
        self.chrootDenylist = try row.decode("chroot_denylist")
    }
}

/// A package to add or change. For an existing package, `nil` leaves a setting as it is; a new one gets the
/// defaults (no webhook rebuilds, no limits, no denied chroots).
public struct PackageChange: Sendable, Equatable {
    public var name: String
    public var sourceType: String
    public var source: JSONObject
    public var webhookRebuild: Bool?
    public var maxBuilds: Int?
    public var timeout: Int?
    public var chrootDenylist: [String]?

    public init(
        name: String,
        sourceType: String,
        source: JSONObject,
        webhookRebuild: Bool? = nil,
        maxBuilds: Int? = nil,
        timeout: Int? = nil,
        chrootDenylist: [String]? = nil
    ) {
        self.name = name
        self.sourceType = sourceType
        self.source = source
        self.webhookRebuild = webhookRebuild
        self.maxBuilds = maxBuilds
        self.timeout = timeout
        self.chrootDenylist = chrootDenylist
    }
}

/// The newest build of one package in one chroot of a CoprDir (`monitor`).
public struct PackageChrootBuild: PGRecord, Equatable {
    public let package: String
    public let chroot: String
    public let buildID: Int
    public let state: String
    public let resultDir: String?
    public let pkgEpoch: Int?
    public let pkgVersion: String?
    public let pkgRelease: String?

    public init(row: PGRow) throws {
        self.package = try row.decode("package")
        self.chroot = try row.decode("chroot")
        self.buildID = try row.decode("build_id")
        self.state = try row.decode("state")
        self.resultDir = try row.decode("result_dir")
        self.pkgEpoch = try row.decode("pkg_epoch")
        self.pkgVersion = try row.decode("pkg_version")
        self.pkgRelease = try row.decode("pkg_release")
    }

    /// `VERSION-RELEASE`, with `EPOCH:` when the epoch is not 0.
    public var pkgVersionText: String? {
        guard let v = self.pkgVersion else { return nil }
        let release = self.pkgRelease.map { "-\($0)" } ?? ""
        if let epoch = self.pkgEpoch, epoch != 0 { return "\(epoch):\(v)\(release)" }
        return v + release
    }
}

/// Packages: all of their SQL.
public enum PackageStore {
    /// The id of the project's package `name`, created with `sourceType` if it does not exist (an SRPM upload, an
    /// SRPM build from a URL). Throws `ValidationError` if `name` is not a valid package name.
    public static func ensure(_ c: PGConnection, projectID: Int, name: String, sourceType: String) throws -> Int {
        do {
            try Names.validatePackageName(name)
        } catch {
            throw ValidationError(field: nil, message: "The SRPM's package name is not valid: \(error.message)")
        }
        guard
            let id = try c.value(
                """
                INSERT INTO packages (project_id, name, source_type) VALUES (\(projectID), \(name), \(sourceType))
                ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id
                """,
                as: Int.self
            )
        else { throw PostgresError(code: .queryFailed, message: "INSERT INTO packages returned no id") }
        return id
    }

    public static func find(_ c: PGConnection, projectID: Int, name: String) throws -> PackageRecord? {
        try c.one(
            "SELECT \(PackageRecord.columns) FROM packages k WHERE k.project_id = \(projectID) AND k.name = \(name)"
        )
    }

    /// A page of the project's packages, by id.
    public static func list(_ c: PGConnection, projectID: Int, limit: Int, offset: Int) throws -> [PackageRecord] {
        try c.all(
            "SELECT \(PackageRecord.columns) FROM packages k WHERE k.project_id = \(projectID) ORDER BY k.id LIMIT \(limit) OFFSET \(offset)"
        )
    }

    /// Adds the package, or changes it if the project has one of that name. Returns it as stored.
    public static func upsert(_ c: PGConnection, projectID: Int, _ p: PackageChange) throws -> PackageRecord {
        guard
            let record = try c.one(
                """
                INSERT INTO packages AS k (project_id, name, source_type, source_json, webhook_rebuild, max_builds, timeout, chroot_denylist)
                VALUES (\(projectID), \(p.name), \(p.sourceType), \(JSON.object(p.source).text), coalesce(\(p.webhookRebuild), false),
                        \(p.maxBuilds), \(p.timeout), coalesce(\(p.chrootDenylist), '{}'))
                ON CONFLICT (project_id, name) DO UPDATE SET source_type = EXCLUDED.source_type, source_json = EXCLUDED.source_json,
                  webhook_rebuild = coalesce(\(p.webhookRebuild), k.webhook_rebuild), max_builds = coalesce(\(p.maxBuilds), k.max_builds),
                  timeout = coalesce(\(p.timeout), k.timeout), chroot_denylist = coalesce(\(p.chrootDenylist), k.chroot_denylist)
                RETURNING \(PackageRecord.columns)
                """,
                as: PackageRecord.self
            )
        else { throw PostgresError(code: .queryFailed, message: "INSERT INTO packages returned no row") }
        return record
    }

    /// Deletes the package (its builds stay, without a package).
    public static func delete(_ c: PGConnection, id: Int) throws {
        try c.execute("DELETE FROM packages WHERE id = \(id)")
    }

    /// Ids of the package's builds, ascending.
    public static func buildIDs(_ c: PGConnection, packageID: Int) throws -> [Int] {
        try c.query("SELECT id FROM builds WHERE package_id = \(packageID) ORDER BY id").rows.map {
            try $0.decode("id")
        }
    }

    /// Ids of the package's builds that have not finished, ascending.
    public static func unfinishedBuildIDs(_ c: PGConnection, packageID: Int) throws -> [Int] {
        try c.query(
            """
            SELECT id FROM builds
            WHERE package_id = \(packageID) AND state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked') ORDER BY id
            """
        ).rows.map { try $0.decode("id") }
    }

    /// The newest build of every package in every chroot of the project's CoprDir `dirname`, by package and chroot.
    public static func latestBuilds(_ c: PGConnection, projectID: Int, dirname: String) throws -> [PackageChrootBuild] {
        try c.all(
            """
            SELECT DISTINCT ON (k.name, bc.name) k.name AS package, bc.name AS chroot, b.id AS build_id, bc.state, bc.result_dir,
                   b.pkg_version, b.pkg_release, b.pkg_epoch
            FROM packages k JOIN builds b ON b.package_id = k.id JOIN build_chroots bc ON bc.build_id = b.id
            WHERE k.project_id = \(projectID) AND b.project_dirname = \(dirname)
            ORDER BY k.name, bc.name, b.id DESC
            """
        )
    }
}
