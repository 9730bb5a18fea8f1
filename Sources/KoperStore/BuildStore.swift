public import CoprModel
public import KoperJSON
public import KoperProtocol
public import Postgres

/// One build as API v3 shows it. One row of `builds` holds all of it (migration 2): the hot read
/// (`GET /api_3/build/ID`, decision 0007) is a primary-key lookup with no join.
public struct BuildRecord: PGRecord, Equatable {
    public let id: Int
    public let projectID: Int
    public let projectDirname: String
    public let sourceType: String
    public let sourceState: BuildState
    public let state: BuildState
    public let canceled: Bool
    public let pkgName: String?
    public let pkgEpoch: Int?
    public let pkgVersion: String?
    public let pkgRelease: String?
    /// Below the Frontend's upload directory, for an uploaded SRPM.
    public let srpmPath: String?
    public let srpmURL: String?
    public let isBackground: Bool
    public let packageID: Int?
    public let submittedOn: Int?
    public let startedOn: Int?
    public let endedOn: Int?
    public let ownername: String
    public let projectname: String
    public let submitterName: String?
    public let chrootNames: [String]

    static let columns: PGQuery = """
        b.id, b.project_id, b.project_dirname, b.source_type, b.source_state, b.state, b.canceled, b.pkg_name, b.pkg_epoch,
        b.pkg_version, b.pkg_release, b.srpm_path, b.srpm_url, b.is_background, b.package_id, b.submitted_epoch,
        b.started_epoch, b.ended_epoch, b.ownername, b.projectname, b.submitter_name, b.chroot_names
        """

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.projectID = try row.decode("project_id")
        self.projectDirname = try row.decode("project_dirname")
        self.sourceType = try row.decode("source_type")
        self.sourceState = try row.decode("source_state")
        self.state = try row.decode("state", as: BuildState?.self) ?? .unknown
        self.canceled = try row.decode("canceled")
        self.pkgName = try row.decode("pkg_name")
        self.pkgEpoch = try row.decode("pkg_epoch")
        self.pkgVersion = try row.decode("pkg_version")
        self.pkgRelease = try row.decode("pkg_release")
        self.srpmPath = try row.decode("srpm_path")
        self.srpmURL = try row.decode("srpm_url")
        self.isBackground = try row.decode("is_background")
        self.packageID = try row.decode("package_id")
        self.submittedOn = try row.decode("submitted_epoch")
        self.startedOn = try row.decode("started_epoch")
        self.endedOn = try row.decode("ended_epoch")
        self.ownername = try row.decode("ownername")
        self.projectname = try row.decode("projectname")
        self.submitterName = try row.decode("submitter_name")
        let names = try row.decode("chroot_names", as: String?.self) ?? ""
        self.chrootNames = names.isEmpty ? [] : names.split(separator: ",").map(String.init)
    }

    /// `VERSION-RELEASE`, with `EPOCH:` when the epoch is not 0.
    public var pkgVersionText: String? {
        packageVersionText(epoch: self.pkgEpoch, version: self.pkgVersion, release: self.pkgRelease)
    }
}

/// `VERSION-RELEASE`, with `EPOCH:` when the epoch is not 0; nil without a version.
public func packageVersionText(epoch: Int?, version: String?, release: String?) -> String? {
    guard let version else { return nil }
    let suffix = release.map { "-\($0)" } ?? ""
    if let epoch, epoch != 0 { return "\(epoch):\(version)\(suffix)" }
    return version + suffix
}

/// One chroot of a build.
public struct BuildChrootRecord: PGRecord, Equatable {
    public let name: String
    public let state: BuildState
    public let resultDir: String?
    public let builtPackages: [BuiltPackage]
    public let startedOn: Int?
    public let endedOn: Int?

    public init(row: PGRow) throws {
        self.name = try row.decode("name")
        self.state = try row.decode("state")
        self.resultDir = try row.decode("result_dir")
        if let json = try row.decode("built_packages", as: JSON?.self), !json.isNull {
            self.builtPackages = (try? Wire.decode([BuiltPackage].self, from: json)) ?? []
        } else {
            self.builtPackages = []
        }
        self.startedOn = try row.decode("started_on")
        self.endedOn = try row.decode("ended_on")
    }
}

/// What a new build row needs once the request was validated.
public struct NewBuild: Sendable {
    public struct Package: Sendable {
        public var name: String
        public var epoch: Int?
        public var version: String
        public var release: String

        public init(name: String, epoch: Int?, version: String, release: String) {
            self.name = name
            self.epoch = epoch
            self.version = version
            self.release = release
        }
    }

    public struct UploadedSRPM: Sendable {
        public var path: String
        public var sha256: String
        public var size: Int

        public init(path: String, sha256: String, size: Int) {
            self.path = path
            self.sha256 = sha256
            self.size = size
        }
    }

    public var projectID: Int
    public var ownername: String
    public var projectname: String
    public var projectDirname: String
    public var submitterID: Int
    public var submitterName: String
    public var packageID: Int?
    public var sourceType: String
    public var sourceJSON: JSON
    /// `succeeded` when the SRPM is known (upload), `importing` when DistGitProxy must import it, `pending` when an
    /// SRPM build must run first.
    public var sourceState: BuildState
    public var package: Package?
    public var srpm: UploadedSRPM?
    public var srpmURL: String?
    public var background: Bool
    public var timeout: Int
    public var enableNet: Bool
    public var isolation: String
    public var bootstrap: String?
    /// Mock chroots (id, name) sorted by name.
    public var chroots: [(id: Int, name: String)]

    public init(
        projectID: Int,
        ownername: String,
        projectname: String,
        projectDirname: String,
        submitterID: Int,
        submitterName: String,
        packageID: Int?,
        sourceType: String,
        sourceJSON: JSON,
        sourceState: BuildState,
        package: Package?,
        srpm: UploadedSRPM?,
        srpmURL: String?,
        background: Bool,
        timeout: Int,
        enableNet: Bool,
        isolation: String,
        bootstrap: String?,
        chroots: [(id: Int, name: String)]
    ) {
        self.projectID = projectID
        self.ownername = ownername
        self.projectname = projectname
        self.projectDirname = projectDirname
        self.submitterID = submitterID
        self.submitterName = submitterName
        self.packageID = packageID
        self.sourceType = sourceType
        self.sourceJSON = sourceJSON
        self.sourceState = sourceState
        self.package = package
        self.srpm = srpm
        self.srpmURL = srpmURL
        self.background = background
        self.timeout = timeout
        self.enableNet = enableNet
        self.isolation = isolation
        self.bootstrap = bootstrap
        self.chroots = chroots
    }
}

/// A build as a delete sees it (locked), with what the delete action needs.
public struct BuildDeletionRow: PGRecord, Equatable {
    public let id: Int
    public let projectID: Int
    public let state: BuildState
    public let srpmPath: String?
    public let projectDirname: String
    public let ownername: String
    public let projectname: String

    /// The select list, for `FROM builds b JOIN projects p ON p.id = b.project_id`.
    static let columns: PGQuery = "b.id, b.project_id, b.state, b.srpm_path, b.project_dirname, p.ownername, p.name"

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.projectID = try row.decode("project_id")
        self.state = try row.decode("state", as: BuildState?.self) ?? .unknown
        self.srpmPath = try row.decode("srpm_path")
        self.projectDirname = try row.decode("project_dirname")
        self.ownername = try row.decode("ownername")
        self.projectname = try row.decode("name")
    }
}

/// Builds and build chroots: all of their SQL.
public enum BuildStore {
    static let finalStates: PGQuery = "('succeeded', 'failed', 'canceled', 'skipped', 'forked')"

    public static func find(_ c: PGConnection, id: Int) throws -> BuildRecord? {
        try c.one("SELECT \(BuildRecord.columns) FROM builds b WHERE b.id = \(id)")
    }

    /// Many builds by id in one statement (the build batcher's fetch), keyed by id.
    public static func find(_ c: PGConnection, ids: [Int]) throws -> [Int: BuildRecord] {
        let records: [BuildRecord] = try c.all("SELECT \(BuildRecord.columns) FROM builds b WHERE b.id = ANY(\(ids))")
        var byID: [Int: BuildRecord] = [:]
        byID.reserveCapacity(records.count)
        for record in records { byID[record.id] = record }
        return byID
    }

    /// A project's builds, newest first, optionally of one package name and in one state.
    public static func list(
        _ c: PGConnection,
        projectID: Int,
        packageName: String?,
        state: BuildState?,
        limit: Int,
        offset: Int
    ) throws -> [BuildRecord] {
        try c.all(
            """
            SELECT \(BuildRecord.columns) FROM builds b
            WHERE b.project_id = \(projectID) AND (\(packageName)::text IS NULL OR b.pkg_name = \(packageName))
              AND (\(state?.rawValue)::text IS NULL OR b.state = \(state?.rawValue))
            ORDER BY b.id DESC LIMIT \(limit) OFFSET \(offset)
            """
        )
    }

    /// The newest build of a package (optionally the newest succeeded one).
    public static func latest(_ c: PGConnection, packageID: Int, succeeded: Bool) throws -> BuildRecord? {
        let onlySucceeded: PGQuery = succeeded ? "AND b.state = 'succeeded'" : ""
        return try c.one(
            "SELECT \(BuildRecord.columns) FROM builds b WHERE b.package_id = \(packageID) \(onlySucceeded) ORDER BY b.id DESC LIMIT 1"
        )
    }

    public static func chroots(_ c: PGConnection, buildID: Int, descending: Bool = false) throws -> [BuildChrootRecord]
    {
        let order: PGQuery = descending ? "DESC" : "ASC"
        return try c.all(
            """
            SELECT name, state, result_dir, built_packages, extract(epoch from started_on)::bigint AS started_on,
                   extract(epoch from ended_on)::bigint AS ended_on
            FROM build_chroots WHERE build_id = \(buildID) ORDER BY name \(order)
            """
        )
    }

    /// Mock chroot ids of the given names (unknown names are left out), sorted by name.
    public static func mockChrootIDs(_ c: PGConnection, names: [String]) throws -> [(id: Int, name: String)] {
        try c.query("SELECT id, name FROM mock_chroots WHERE name = ANY(\(names)) ORDER BY name").rows.map {
            (id: try $0.decode("id"), name: try $0.decode("name"))
        }
    }

    /// Inserts the build and its build-chroot rows, stores the derived state and wakes the Backend. Returns the id.
    public static func insert(_ c: PGConnection, _ b: NewBuild) throws -> Int {
        let chrootState: BuildState = b.sourceState == .succeeded ? .pending : .waiting
        guard
            let id = try c.value(
                """
                INSERT INTO builds (project_id, ownername, projectname, submitter_name, project_dirname, package_id, submitter_id,
                                    source_type, source_json, source_state, state, pkg_name, pkg_epoch, pkg_version, pkg_release,
                                    srpm_path, srpm_sha256, srpm_size, srpm_url, is_background, timeout, enable_net, isolation,
                                    bootstrap, selected_chroots, source_ended_on)
                VALUES (\(b.projectID), \(b.ownername), \(b.projectname), \(b.submitterName), \(b.projectDirname), \(b.packageID),
                        \(b.submitterID), \(b.sourceType), \(b.sourceJSON.text), \(b.sourceState.rawValue), \(b.sourceState.rawValue),
                        \(b.package?.name), \(b.package?.epoch), \(b.package?.version), \(b.package?.release), \(b.srpm?.path),
                        \(b.srpm?.sha256), \(b.srpm?.size), \(b.srpmURL), \(b.background), \(b.timeout), \(b.enableNet),
                        \(b.isolation), \(b.bootstrap), \(b.chroots.map(\.name)),
                        CASE WHEN \(b.sourceState == .succeeded) THEN now() END)
                RETURNING id
                """,
                as: Int.self
            )
        else { throw PostgresError(code: .queryFailed, message: "INSERT INTO builds returned no id") }
        for chroot in b.chroots {
            let dir = b.package.map { resultDirName(buildID: id, packageName: $0.name) }
            try c.execute(
                """
                INSERT INTO build_chroots (build_id, mock_chroot_id, name, state, result_dir)
                VALUES (\(id), \(chroot.id), \(chroot.name), \(chrootState.rawValue), \(dir))
                """
            )
        }
        try self.refreshState(c, buildID: id)
        try TaskStore.wakeBackend(c, reason: "build")
        return id
    }

    /// Recomputes and stores the derived build state (copr-protocol.md §5) and the denormalised chroot names and
    /// times of the row the hot read uses. Returns the state.
    @discardableResult
    public static func refreshState(_ c: PGConnection, buildID: Int) throws -> BuildState {
        guard
            let row = try c.query(
                """
                SELECT b.source_state, b.canceled,
                  (SELECT coalesce(array_agg(state::text), '{}') FROM build_chroots WHERE build_id = b.id) AS states
                FROM builds b WHERE b.id = \(buildID)
                """
            ).first
        else { return .unknown }
        let source: BuildState = try row.decode("source_state")
        let states = try row.decode("states", as: [String].self).map { BuildState(rawValue: $0) ?? .unknown }
        let state = BuildStateDerivation.buildState(
            canceled: try row.decode("canceled"),
            sourceState: source,
            chrootStates: states
        )
        try c.execute(
            """
            UPDATE builds b SET state = \(state.rawValue),
              chroot_names = coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM build_chroots WHERE build_id = b.id), ''),
              started_epoch = (SELECT min(x) FROM (SELECT extract(epoch from started_on)::bigint AS x FROM build_chroots
                               WHERE build_id = b.id UNION ALL SELECT extract(epoch from b.source_started_on)::bigint) s),
              ended_epoch = CASE WHEN \(state.isFinal) THEN (SELECT max(x) FROM (SELECT extract(epoch from ended_on)::bigint AS x
                               FROM build_chroots WHERE build_id = b.id UNION ALL SELECT extract(epoch from b.source_ended_on)::bigint) s) END
            WHERE id = \(buildID)
            """
        )
        return state
    }

    // MARK: Cancel

    /// The build's project and state, with the row locked so a concurrent Backend update and a cancel serialise.
    public static func lockForCancel(
        _ c: PGConnection,
        id: Int
    ) throws -> (projectID: Int, state: BuildState, sourceState: BuildState)? {
        guard
            let row = try c.query("SELECT project_id, state, source_state FROM builds WHERE id = \(id) FOR UPDATE")
                .first
        else {
            return nil
        }
        return (try row.decode("project_id"), try row.decode("state"), try row.decode("source_state"))
    }

    /// Cancels a build: the Backend is asked to kill the tasks a builder holds, every unfinished chroot and the
    /// source build end `canceled`, and the derived state is refreshed.
    public static func cancel(_ c: PGConnection, id: Int, sourceState: BuildState) throws {
        var kill = try c.query(
            "SELECT name FROM build_chroots WHERE build_id = \(id) AND state IN ('starting', 'running')"
        ).rows.map {
            TaskID(buildID: id, chroot: try $0.decode("name", as: String.self))
        }
        if sourceState == .starting || sourceState == .running { kill.append(TaskID(buildID: id, chroot: nil)) }
        for task in kill {
            try c.execute("INSERT INTO cancel_requests (task_id) VALUES (\(task.description)) ON CONFLICT DO NOTHING")
        }
        try c.execute(
            "UPDATE build_chroots SET state = 'canceled', ended_on = now() WHERE build_id = \(id) AND state NOT IN \(finalStates)"
        )
        try c.execute(
            """
            UPDATE builds SET canceled = true,
              source_state = CASE WHEN source_state IN \(finalStates) THEN source_state ELSE 'canceled' END,
              source_ended_on = coalesce(source_ended_on, now())
            WHERE id = \(id)
            """
        )
        try self.refreshState(c, buildID: id)
        try TaskStore.wakeBackend(c, reason: "cancel")
    }

    // MARK: Delete

    /// The builds with these ids, locked for a delete.
    public static func lockForDeletion(_ c: PGConnection, ids: [Int]) throws -> [BuildDeletionRow] {
        try c.all(
            """
            SELECT \(BuildDeletionRow.columns)
            FROM builds b JOIN projects p ON p.id = b.project_id WHERE b.id = ANY(\(ids)) ORDER BY b.id FOR UPDATE OF b
            """
        )
    }

    /// Deletes checked, locked builds of one results directory and queues the Backend action that removes their
    /// result directories and republishes each chroot. Returns the stored uploads to remove after commit.
    public static func delete(_ c: PGConnection, _ rows: [BuildDeletionRow]) throws -> [String] {
        guard let first = rows.first else { return [] }
        let ids = rows.map(\.id)
        var dirs: [String: [String]] = [:]
        for row in rows {
            for chroot in try self.chroots(c, buildID: row.id) {
                guard let dir = chroot.resultDir else { continue }
                dirs[chroot.name, default: []].append(dir)
            }
        }
        try c.execute("DELETE FROM builds WHERE id = ANY(\(ids))")
        try ActionStore.enqueue(
            c,
            .deleteBuilds(
                .init(ownername: first.ownername, projectDirname: first.projectDirname, chrootBuilddirs: dirs)
            ),
            ownername: first.ownername,
            projectname: first.projectname
        )
        return rows.compactMap(\.srpmPath)
    }

    // MARK: Retention (decision 0006)

    /// The finished builds of one package that retention removes: those older than the package's `keep`-th newest
    /// succeeded (or forked) build, locked.
    public static func prunable(
        _ c: PGConnection,
        projectID: Int,
        packageID: Int,
        keep: Int
    ) throws -> [BuildDeletionRow] {
        try c.all(
            """
            WITH oldest_kept AS (
                SELECT id FROM builds WHERE project_id = \(projectID) AND package_id = \(packageID) AND state IN ('succeeded', 'forked')
                ORDER BY id DESC OFFSET \(keep - 1) LIMIT 1
            )
            SELECT \(BuildDeletionRow.columns)
            FROM builds b JOIN projects p ON p.id = b.project_id, oldest_kept k
            WHERE b.project_id = \(projectID) AND b.package_id = \(packageID) AND b.id < k.id AND b.state IN \(finalStates)
            ORDER BY b.id FOR UPDATE OF b
            """
        )
    }

    /// Every package id that has builds in the project.
    public static func packageIDs(_ c: PGConnection, projectID: Int) throws -> [Int] {
        try c.query(
            "SELECT DISTINCT package_id FROM builds WHERE project_id = \(projectID) AND package_id IS NOT NULL ORDER BY package_id"
        ).rows.map { try $0.decode("package_id") }
    }

    /// A project's retention limit (nil when off or the project is persistent).
    public static func retentionLimit(_ c: PGConnection, projectID: Int) throws -> Int? {
        guard let row = try c.query("SELECT keep_builds, persistent FROM projects WHERE id = \(projectID)").first else {
            return nil
        }
        guard let keep = try row.decode("keep_builds", as: Int?.self), keep > 0,
            try !row.decode("persistent", as: Bool.self)
        else {
            return nil
        }
        return keep
    }

    /// Sets the SRPM URL of a build whose source is a link to an SRPM.
    public static func setSRPMURL(_ c: PGConnection, buildID: Int, url: String) throws {
        try c.execute("UPDATE builds SET srpm_url = \(url) WHERE id = \(buildID)")
    }
}

extension BuildState: PGDecodable {
    public init?(pgText: String) { self.init(rawValue: pgText) }
    public static var pgTypeName: String { "a build state" }
}

extension BuildStore {
    /// Build retention (decision 0006): a project with `keep_builds = N` keeps, for every package, its newest N
    /// succeeded builds and every build newer than the oldest of those; finished builds older than that are deleted
    /// as `copr-cli delete-build` does (rows go now, the Backend removes the files and republishes the chroots).
    /// So a failed rebuild never costs the repository its last good build, and running builds are never touched.
    /// Persistent projects are never pruned. A forked build counts as a succeeded one (it is a copy of one).
    ///
    /// Prunes one package (after one of its builds succeeded) or, with `packageID` nil, every package of the project
    /// (after `keep_builds` was lowered). Returns the stored uploads to remove after commit.
    public static func prune(_ c: PGConnection, projectID: Int, packageID: Int? = nil) throws -> [String] {
        guard let keep = try self.retentionLimit(c, projectID: projectID) else { return [] }
        let packages = try packageID.map { [$0] } ?? self.packageIDs(c, projectID: projectID)
        var uploads: [String] = []
        for package in packages {
            let rows = try self.prunable(c, projectID: projectID, packageID: package, keep: keep)
            // One delete action per results directory (a package can have builds in several CoprDirs).
            for dirname in Set(rows.map(\.projectDirname)).sorted() {
                uploads += try self.delete(c, rows.filter { $0.projectDirname == dirname })
            }
        }
        return uploads
    }
}
