import CoprModel
public import Postgres

/// What a new project row needs: its name, its owner (a user or a group) and who made it.
public struct NewProject: Sendable, Equatable {
    public var ownername: String
    public var name: String
    public var ownerUserID: Int?
    public var ownerGroupID: Int?
    public var createdBy: Int
    public var persistent: Bool

    public init(
        ownername: String,
        name: String,
        ownerUserID: Int?,
        ownerGroupID: Int?,
        createdBy: Int,
        persistent: Bool = false
    ) {
        self.ownername = ownername
        self.name = name
        self.ownerUserID = ownerUserID
        self.ownerGroupID = ownerGroupID
        self.createdBy = createdBy
        self.persistent = persistent
    }
}

/// The editable settings of a project. `nil` means "leave as is"; for the columns that may be NULL, `.some(nil)`
/// clears the value.
public struct ProjectSettings: Sendable, Equatable {
    public var description: String?
    public var instructions: String?
    public var homepage: String??
    public var contact: String??
    public var additionalRepos: [String]?
    public var runtimeDependencies: [String]?
    public var packitForgeProjectsAllowed: [String]?
    public var unlistedOnHP: Bool?
    public var enableNet: Bool?
    public var autoPrune: Bool?
    public var persistent: Bool?
    public var bootstrap: String?
    public var bootstrapImage: String?
    public var isolation: String?
    public var followFedoraBranching: Bool?
    public var develMode: Bool?
    public var multilib: Bool?
    public var moduleHotfixes: Bool?
    public var fedoraReview: Bool?
    public var appstream: Bool?
    public var repoPriority: Int??
    /// Days from now until the project is deleted; `.some(nil)` cancels a planned deletion.
    public var deleteAfterDays: Int??
    public var keepBuilds: Int??

    public init() {}

    /// Whether no setting is to change.
    public var isEmpty: Bool { self.assignments.isEmpty }

    /// The SET assignments of the settings that are to change.
    var assignments: [PGQuery] {
        var sets: [PGQuery] = []
        if let v = self.description { sets.append("description = \(v)") }
        if let v = self.instructions { sets.append("instructions = \(v)") }
        if let v = self.homepage { sets.append("homepage = \(v)") }
        if let v = self.contact { sets.append("contact = \(v)") }
        if let v = self.additionalRepos { sets.append("additional_repos = \(v)") }
        if let v = self.runtimeDependencies { sets.append("runtime_dependencies = \(v)") }
        if let v = self.packitForgeProjectsAllowed { sets.append("packit_forge_projects_allowed = \(v)") }
        if let v = self.unlistedOnHP { sets.append("unlisted_on_hp = \(v)") }
        if let v = self.enableNet { sets.append("enable_net = \(v)") }
        if let v = self.autoPrune { sets.append("auto_prune = \(v)") }
        if let v = self.persistent { sets.append("persistent = \(v)") }
        if let v = self.bootstrap { sets.append("bootstrap = \(v)") }
        if let v = self.bootstrapImage { sets.append("bootstrap_image = \(v)") }
        if let v = self.isolation { sets.append("isolation = \(v)") }
        if let v = self.followFedoraBranching { sets.append("follow_fedora_branching = \(v)") }
        if let v = self.develMode { sets.append("devel_mode = \(v)") }
        if let v = self.multilib { sets.append("multilib = \(v)") }
        if let v = self.moduleHotfixes { sets.append("module_hotfixes = \(v)") }
        if let v = self.fedoraReview { sets.append("fedora_review = \(v)") }
        if let v = self.appstream { sets.append("appstream = \(v)") }
        if let v = self.repoPriority { sets.append("repo_priority = \(v)") }
        if let v = self.keepBuilds { sets.append("keep_builds = \(v)") }
        if let v = self.deleteAfterDays {
            if let days = v {
                sets.append("delete_after = now() + \(days) * interval '1 day'")
            } else {
                sets.append("delete_after = NULL")
            }
        }
        return sets
    }
}

/// A project's identity as API v3 addresses it: owner (a user name or `@group`) and name.
public struct ProjectKey: Hashable, Sendable {
    public let owner: String
    public let name: String

    public init(owner: String, name: String) {
        self.owner = owner
        self.name = name
    }
}

/// Projects, their chroot sets and forks: all of their SQL.
public enum ProjectStore {
    /// Sort keys of a project list.
    public enum Order: Sendable {
        case id
        case name

        var sql: PGQuery {
            switch self {
            case .id: return "p.id"
            case .name: return "p.name"
            }
        }
    }

    public static func find(_ c: PGConnection, owner: String, name: String) throws -> ProjectRecord? {
        try c.one("SELECT \(ProjectRecord.columns) FROM projects p WHERE p.ownername = \(owner) AND p.name = \(name)")
    }

    public static func find(_ c: PGConnection, id: Int) throws -> ProjectRecord? {
        try c.one("SELECT \(ProjectRecord.columns) FROM projects p WHERE p.id = \(id)")
    }

    /// Many projects by owner and name in one statement (the project batcher's fetch, decision 0007), keyed.
    public static func find(_ c: PGConnection, keys: [ProjectKey]) throws -> [ProjectKey: ProjectRecord] {
        let records: [ProjectRecord] = try c.all(
            """
            SELECT \(ProjectRecord.columns) FROM projects p
            JOIN unnest(\(keys.map(\.owner)), \(keys.map(\.name))) AS k(owner, name) ON p.ownername = k.owner AND p.name = k.name
            """
        )
        var found: [ProjectKey: ProjectRecord] = [:]
        found.reserveCapacity(records.count)
        for record in records { found[ProjectKey(owner: record.ownername, name: record.name)] = record }
        return found
    }

    /// A page of projects, of one owner or of all; ties are broken by id.
    public static func list(
        _ c: PGConnection,
        owner: String?,
        order: Order = .id,
        descending: Bool = false,
        limit: Int,
        offset: Int
    ) throws -> [ProjectRecord] {
        let direction: PGQuery = descending ? "DESC" : "ASC"
        return try c.all(
            """
            SELECT \(ProjectRecord.columns) FROM projects p WHERE (\(owner)::text IS NULL OR p.ownername = \(owner))
            ORDER BY \(order.sql) \(direction), p.id LIMIT \(limit) OFFSET \(offset)
            """
        )
    }

    /// Projects whose `owner/name` or description contains `text` (case-insensitively, `%` and `_` literal),
    /// newest first.
    public static func search(_ c: PGConnection, text: String, limit: Int, offset: Int) throws -> [ProjectRecord] {
        let escaped = text.replacing("\\", with: "\\\\").replacing("%", with: "\\%").replacing("_", with: "\\_")
        let pattern = "%" + escaped + "%"
        return try c.all(
            """
            SELECT \(ProjectRecord.columns) FROM projects p
            WHERE (p.ownername || '/' || p.name) ILIKE \(pattern) OR p.description ILIKE \(pattern)
            ORDER BY p.created_on DESC, p.id DESC LIMIT \(limit) OFFSET \(offset)
            """
        )
    }

    /// The newest projects not unlisted from the home page.
    public static func listedOnHomepage(_ c: PGConnection, limit: Int) throws -> [ProjectRecord] {
        try c.all(
            "SELECT \(ProjectRecord.columns) FROM projects p WHERE NOT p.unlisted_on_hp ORDER BY p.id DESC LIMIT \(limit)"
        )
    }

    /// Inserts a project with default settings; returns its id.
    public static func insert(_ c: PGConnection, _ p: NewProject) throws -> Int {
        guard
            let id = try c.value(
                """
                INSERT INTO projects (ownername, name, owner_user_id, owner_group_id, created_by, persistent)
                VALUES (\(p.ownername), \(p.name), \(p.ownerUserID), \(p.ownerGroupID), \(p.createdBy), \(p.persistent)) RETURNING id
                """,
                as: Int.self
            )
        else { throw PostgresError(code: .queryFailed, message: "INSERT INTO projects returned no id") }
        return id
    }

    /// Changes the settings that are set in `settings` (nothing if it is empty).
    public static func update(_ c: PGConnection, id: Int, settings: ProjectSettings) throws {
        let sets = settings.assignments
        guard !sets.isEmpty else { return }
        try c.execute("UPDATE projects SET \(sets.joined(separator: ", ")) WHERE id = \(id)")
    }

    /// Adds mock chroots to the project (those it has already are left as they are).
    public static func addChroots(_ c: PGConnection, projectID: Int, mockChrootIDs: [Int]) throws {
        guard !mockChrootIDs.isEmpty else { return }
        try c.execute(
            """
            INSERT INTO project_chroots (project_id, mock_chroot_id) SELECT \(projectID), unnest(\(mockChrootIDs))
            ON CONFLICT DO NOTHING
            """
        )
    }

    /// Makes the project's chroots exactly these mock chroots: others are removed (with their settings), new ones
    /// added, kept ones keep their settings.
    public static func setChroots(_ c: PGConnection, projectID: Int, mockChrootIDs: [Int]) throws {
        try c.execute(
            "DELETE FROM project_chroots WHERE project_id = \(projectID) AND NOT (mock_chroot_id = ANY(\(mockChrootIDs)))"
        )
        try self.addChroots(c, projectID: projectID, mockChrootIDs: mockChrootIDs)
    }

    /// Ids of the project's builds that have not finished, ascending.
    public static func unfinishedBuildIDs(_ c: PGConnection, projectID: Int) throws -> [Int] {
        try c.query(
            """
            SELECT id FROM builds
            WHERE project_id = \(projectID) AND state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked') ORDER BY id
            """
        ).rows.map { try $0.decode("id") }
    }

    /// The stored SRPM uploads of the project's builds (paths below the upload directory).
    public static func uploadPaths(_ c: PGConnection, projectID: Int) throws -> [String] {
        try c.query(
            "SELECT srpm_path FROM builds WHERE project_id = \(projectID) AND srpm_path IS NOT NULL ORDER BY id"
        ).rows.map {
            try $0.decode("srpm_path")
        }
    }

    /// Deletes the project; its chroots, packages, builds and permissions go with it (ON DELETE CASCADE).
    public static func delete(_ c: PGConnection, id: Int) throws {
        try c.execute("DELETE FROM projects WHERE id = \(id)")
    }

    /// Whether the project has builds in the CoprDir `dirname`.
    public static func hasBuilds(_ c: PGConnection, projectID: Int, dirname: String) throws -> Bool {
        try c.exists("SELECT 1 FROM builds WHERE project_id = \(projectID) AND project_dirname = \(dirname) LIMIT 1")
    }

    // MARK: Forks

    /// Inserts a fork of `sourceID` with the source's settings (not its persistence, storage or deletion date) and
    /// returns its id.
    public static func insertFork(_ c: PGConnection, of sourceID: Int, as target: NewProject) throws -> Int {
        guard
            let id = try c.value(
                """
                INSERT INTO projects (ownername, name, owner_user_id, owner_group_id, created_by, persistent, description, instructions,
                    homepage, contact, devel_mode, unlisted_on_hp, auto_prune, enable_net, bootstrap, bootstrap_image, isolation,
                    module_hotfixes, appstream, follow_fedora_branching, multilib, fedora_review, repo_priority, keep_builds,
                    additional_repos, runtime_dependencies, forked_from_id)
                SELECT \(target.ownername), \(target.name), \(target.ownerUserID), \(target.ownerGroupID), \(target.createdBy),
                    \(target.persistent), description, instructions, homepage, contact, devel_mode, unlisted_on_hp, auto_prune,
                    enable_net, bootstrap, bootstrap_image, isolation, module_hotfixes, appstream, follow_fedora_branching, multilib,
                    fedora_review, repo_priority, keep_builds, additional_repos, runtime_dependencies, id
                FROM projects WHERE id = \(sourceID)
                RETURNING id
                """,
                as: Int.self
            )
        else { throw PostgresError(code: .queryFailed, message: "the fork's source project does not exist") }
        return id
    }

    /// Copies the source's chroots (with their packages, repos, modules and options) and packages (with webhook rebuilds off) into the target;
    /// what the target has already is left as it is.
    public static func copyChrootsAndPackages(_ c: PGConnection, from sourceID: Int, to targetID: Int) throws {
        try c.execute(
            """
            INSERT INTO project_chroots (project_id, mock_chroot_id, additional_packages, additional_repos, additional_modules,
                with_opts, without_opts)
            SELECT \(targetID), mock_chroot_id, additional_packages, additional_repos, additional_modules, with_opts, without_opts
            FROM project_chroots WHERE project_id = \(sourceID) ON CONFLICT DO NOTHING
            """
        )
        try c.execute(
            """
            INSERT INTO packages (project_id, name, source_type, source_json, webhook_rebuild, max_builds, chroot_denylist, timeout)
            SELECT \(targetID), name, source_type, source_json, false, max_builds, chroot_denylist, timeout
            FROM packages WHERE project_id = \(sourceID)
            ON CONFLICT DO NOTHING
            """
        )
    }

    /// Copies builds into a fork as upstream does: for every package of the source project, its newest succeeded
    /// build becomes a `forked` build of the target, with one build chroot per succeeded chroot the target also has.
    /// Packages that already have a forked copy of that build in the target are skipped (forking twice adds nothing
    /// twice). Returns the fork action's builds map: chroot → {source result dir → fork result dir}.
    public static func copySucceededBuilds(
        _ c: PGConnection,
        from sourceID: Int,
        to target: ForkTarget
    ) throws -> [String: [String: String]] {
        let builds = try c.query(
            """
            SELECT DISTINCT ON (b.package_id) b.id, k.name AS package_name
            FROM builds b JOIN packages k ON k.id = b.package_id
            WHERE b.project_id = \(sourceID) AND b.state = 'succeeded'
            ORDER BY b.package_id, b.id DESC
            """
        ).rows
        var map: [String: [String: String]] = [:]
        for build in builds {
            let sourceBuild: Int = try build.decode("id")
            let packageName: String = try build.decode("package_name")
            guard
                let targetPackage = try c.value(
                    "SELECT id FROM packages WHERE project_id = \(target.projectID) AND name = \(packageName)",
                    as: Int.self
                )
            else { continue }
            if try c.exists(
                "SELECT 1 FROM builds WHERE project_id = \(target.projectID) AND forked_from_id = \(sourceBuild)"
            ) {
                continue
            }
            let chroots = try c.query(
                """
                SELECT bc.mock_chroot_id, bc.name, bc.result_dir
                FROM build_chroots bc JOIN project_chroots pc ON pc.mock_chroot_id = bc.mock_chroot_id AND pc.project_id = \(target.projectID)
                WHERE bc.build_id = \(sourceBuild) AND bc.state = 'succeeded' AND bc.result_dir IS NOT NULL ORDER BY bc.name
                """
            ).rows.map {
                (
                    mockChrootID: try $0.decode("mock_chroot_id", as: Int.self),
                    name: try $0.decode("name", as: String.self),
                    resultDir: try $0.decode("result_dir", as: String.self)
                )
            }
            guard !chroots.isEmpty else { continue }
            guard
                let newID = try c.value(
                    """
                    INSERT INTO builds (project_id, ownername, projectname, submitter_name, project_dirname, package_id, submitter_id,
                        source_type, source_json, source_state, state, pkg_name, pkg_epoch, pkg_version, pkg_release, srpm_url,
                        srpm_sha256, srpm_size, is_background, timeout, enable_net, isolation, bootstrap, selected_chroots,
                        source_started_on, source_ended_on, forked_from_id)
                    SELECT \(target.projectID), \(target.ownername), \(target.name), \(target.submitterName), \(target.name),
                        \(targetPackage), \(target.submitterID), source_type, source_json, 'succeeded', 'forked', pkg_name, pkg_epoch,
                        pkg_version, pkg_release, srpm_url, srpm_sha256, srpm_size, is_background, timeout, enable_net, isolation,
                        bootstrap, \(chroots.map(\.name)), source_started_on, source_ended_on, id
                    FROM builds WHERE id = \(sourceBuild)
                    RETURNING id
                    """,
                    as: Int.self
                )
            else { continue }
            let newDir = resultDirName(buildID: newID, packageName: packageName)
            for chroot in chroots {
                try c.execute(
                    """
                    INSERT INTO build_chroots (build_id, mock_chroot_id, name, state, started_on, ended_on, result_dir, built_packages)
                    SELECT \(newID), mock_chroot_id, name, 'forked', started_on, ended_on, \(newDir), built_packages
                    FROM build_chroots WHERE build_id = \(sourceBuild) AND mock_chroot_id = \(chroot.mockChrootID)
                    """
                )
                map[chroot.name, default: [:]][chroot.resultDir] = newDir
            }
            try BuildStore.refreshState(c, buildID: newID)
        }
        return map
    }
}

/// The project builds are forked into, and who forks them.
public struct ForkTarget: Sendable, Equatable {
    public var projectID: Int
    public var ownername: String
    public var name: String
    public var submitterID: Int
    public var submitterName: String

    public init(projectID: Int, ownername: String, name: String, submitterID: Int, submitterName: String) {
        self.projectID = projectID
        self.ownername = ownername
        self.name = name
        self.submitterID = submitterID
        self.submitterName = submitterName
    }
}
