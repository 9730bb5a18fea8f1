public import CoprModel
public import KoperJSON
public import KoperProtocol
public import Postgres

/// One task of the build queue as stored: the build, its project and, for an RPM task, the build chroot and the
/// project chroot's settings. The Frontend turns it into the wire contract's `TaskDescription` / `TaskSummary`.
public struct TaskRecord: PGRecord, Equatable {
    public struct Chroot: Sendable, Equatable {
        public let name: String
        public let state: BuildState
        public let resultDir: String?
        public let claimedBy: String?
        public let additionalPackages: [String]
        public let additionalRepos: [String]
        public let withOptions: [String]
        public let withoutOptions: [String]
        public let isolation: String?
        public let bootstrap: String?
    }

    public let buildID: Int
    public let projectDirname: String
    public let sourceType: String
    public let sourceJSON: JSONObject
    public let pkgName: String?
    public let pkgEpoch: Int?
    public let pkgVersion: String?
    public let pkgRelease: String?
    public let srpmPath: String?
    public let srpmURL: String?
    public let srpmSHA256: String?
    public let background: Bool
    public let timeout: Int
    public let enableNet: Bool
    public let isolation: String?
    public let bootstrap: String?
    public let canceled: Bool
    public let sourceState: BuildState
    public let sourceClaimedBy: String?
    public let submittedOn: Int64?
    public let projectID: Int
    public let ownername: String
    public let projectname: String
    public let develMode: Bool
    public let fedoraReview: Bool
    public let appstream: Bool
    public let moduleHotfixes: Bool
    public let projectBootstrap: String?
    public let projectIsolation: String?
    public let additionalRepos: [String]
    public let submitter: String?
    /// Nil for an SRPM build task.
    public let chroot: Chroot?

    public var taskID: TaskID { TaskID(buildID: self.buildID, chroot: self.chroot?.name) }

    /// The task's own state: the chroot's, or the source build's for an SRPM task.
    public var taskState: BuildState { self.chroot?.state ?? self.sourceState }

    static let columns: PGQuery = """
        b.id, b.project_dirname, b.source_type, b.source_json, b.pkg_name, b.pkg_epoch, b.pkg_version, b.pkg_release,
        b.srpm_path, b.srpm_url, b.srpm_sha256, b.is_background, b.timeout, b.enable_net, b.isolation, b.bootstrap, b.canceled,
        b.source_state, b.source_claimed_by, extract(epoch from b.submitted_on)::bigint AS submitted_on,
        p.id AS project_id, p.ownername, p.name AS projectname, p.devel_mode, p.fedora_review, p.appstream, p.module_hotfixes,
        p.bootstrap AS project_bootstrap, p.isolation AS project_isolation, p.additional_repos, u.name AS submitter
        """
    static let from: PGQuery =
        "FROM builds b JOIN projects p ON p.id = b.project_id LEFT JOIN users u ON u.id = b.submitter_id"
    static let chrootColumns: PGQuery = """
        bc.name AS chroot_name, bc.state AS chroot_state, bc.result_dir, bc.claimed_by, pc.additional_packages,
        pc.additional_repos AS chroot_repos, pc.with_opts, pc.without_opts, pc.isolation AS chroot_isolation,
        pc.bootstrap AS chroot_bootstrap
        """
    static let chrootJoin: PGQuery = """
        JOIN build_chroots bc ON bc.build_id = b.id
        LEFT JOIN project_chroots pc ON pc.project_id = b.project_id AND pc.mock_chroot_id = bc.mock_chroot_id
        """

    public init(row: PGRow) throws {
        func words(_ column: String) throws -> [String] {
            (try row.decode(column, as: String?.self) ?? "").split(separator: " ").map(String.init)
        }
        self.buildID = try row.decode("id")
        self.projectDirname = try row.decode("project_dirname")
        self.sourceType = try row.decode("source_type")
        self.sourceJSON = try row.decode("source_json", as: JSON?.self)?.objectValue ?? JSONObject()
        self.pkgName = try row.decode("pkg_name")
        self.pkgEpoch = try row.decode("pkg_epoch")
        self.pkgVersion = try row.decode("pkg_version")
        self.pkgRelease = try row.decode("pkg_release")
        self.srpmPath = try row.decode("srpm_path")
        self.srpmURL = try row.decode("srpm_url")
        self.srpmSHA256 = try row.decode("srpm_sha256")
        self.background = try row.decode("is_background")
        self.timeout = try row.decode("timeout")
        self.enableNet = try row.decode("enable_net")
        self.isolation = try row.decode("isolation")
        self.bootstrap = try row.decode("bootstrap")
        self.canceled = try row.decode("canceled")
        self.sourceState = try row.decode("source_state")
        self.sourceClaimedBy = try row.decode("source_claimed_by")
        self.submittedOn = try row.decode("submitted_on")
        self.projectID = try row.decode("project_id")
        self.ownername = try row.decode("ownername")
        self.projectname = try row.decode("projectname")
        self.develMode = try row.decode("devel_mode")
        self.fedoraReview = try row.decode("fedora_review")
        self.appstream = try row.decode("appstream")
        self.moduleHotfixes = try row.decode("module_hotfixes")
        self.projectBootstrap = try row.decode("project_bootstrap")
        self.projectIsolation = try row.decode("project_isolation")
        self.additionalRepos = try row.decode("additional_repos", as: [String]?.self) ?? []
        self.submitter = try row.decode("submitter")
        if let name = try row.decode("chroot_name", as: String?.self) {
            self.chroot = Chroot(
                name: name,
                state: try row.decode("chroot_state"),
                resultDir: try row.decode("result_dir"),
                claimedBy: try row.decode("claimed_by"),
                additionalPackages: try words("additional_packages"),
                additionalRepos: try row.decode("chroot_repos", as: [String]?.self) ?? [],
                withOptions: try words("with_opts"),
                withoutOptions: try words("without_opts"),
                isolation: try row.decode("chroot_isolation"),
                bootstrap: try row.decode("chroot_bootstrap")
            )
        } else {
            self.chroot = nil
        }
    }
}

/// What a claim found.
public enum ClaimOutcome: Sendable, Equatable {
    case claimed(TaskRecord)
    case canceled
    /// Another worker holds the task, or it is no longer pending.
    case taken(BuildState)
}

/// An upload that waits for DistGitProxy.
public struct ImportRecord: PGRecord, Equatable {
    public let buildID: Int
    public let ownername: String
    public let projectname: String
    public let pkgName: String?
    public let srpmPath: String?
    public let srpmURL: String?
    public let srpmSHA256: String?

    public init(row: PGRow) throws {
        self.buildID = try row.decode("id")
        self.ownername = try row.decode("ownername")
        self.projectname = try row.decode("name")
        self.pkgName = try row.decode("pkg_name")
        self.srpmPath = try row.decode("srpm_path")
        self.srpmURL = try row.decode("srpm_url")
        self.srpmSHA256 = try row.decode("srpm_sha256")
    }
}

/// The build queue as the Backend sees it (docs/internal-api.md): pending tasks, claims, updates, cancel requests,
/// imports. Every change notifies `koper_tasks`, which wakes the Backend's long-poll in every frontend process.
public enum TaskStore {
    public static let channel = "koper_tasks"

    /// Wakes long-polls (delivered when the transaction commits).
    public static func wakeBackend(_ c: PGConnection, reason: String) throws {
        try c.notify(channel: self.channel, payload: reason)
    }

    /// Pending tasks: SRPM builds first (as Copr's dispatcher prefers them), then RPM build chroots, oldest first.
    public static func pending(_ c: PGConnection, limit: Int) throws -> [TaskRecord] {
        var tasks: [TaskRecord] = try c.all(
            """
            SELECT \(TaskRecord.columns), NULL::text AS chroot_name \(TaskRecord.from)
            WHERE b.source_state = 'pending' AND NOT b.canceled ORDER BY b.id LIMIT \(limit)
            """
        )
        tasks += try c.all(
            """
            SELECT \(TaskRecord.columns), \(TaskRecord.chrootColumns) \(TaskRecord.from) \(TaskRecord.chrootJoin)
            WHERE bc.state = 'pending' AND NOT b.canceled AND b.source_state = 'succeeded'
            ORDER BY b.id, bc.name LIMIT \(max(0, limit - tasks.count))
            """
        )
        return tasks
    }

    /// One task; with `lock`, the build row is locked for the rest of the transaction.
    public static func load(_ c: PGConnection, _ id: TaskID, lock: Bool = false) throws -> TaskRecord? {
        let locking: PGQuery = lock ? "FOR UPDATE OF b" : ""
        if let chroot = id.chroot {
            return try c.one(
                """
                SELECT \(TaskRecord.columns), \(TaskRecord.chrootColumns) \(TaskRecord.from) \(TaskRecord.chrootJoin)
                WHERE b.id = \(id.buildID) AND bc.name = \(chroot) \(locking)
                """
            )
        }
        return try c.one(
            """
            SELECT \(TaskRecord.columns), NULL::text AS chroot_name \(TaskRecord.from) WHERE b.id = \(id.buildID) \(locking)
            """
        )
    }

    /// Puts every task claimed by `worker` and still `starting` or `running` back to `pending`, except those in
    /// `keep`; returns them. For a Backend that starts: its job files name every task it still drives.
    public static func releaseClaims(_ c: PGConnection, worker: String, keep: [TaskID]) throws -> [TaskID] {
        let keptBuilds = keep.filter(\.isSRPMTask).map(\.buildID)
        let keptChroots = keep.filter { !$0.isSRPMTask }
        let chrootBuilds = keptChroots.map(\.buildID)
        let chrootNames = keptChroots.map { $0.chroot ?? "" }
        let chroots: [ReleasedTask] = try c.all(
            """
            UPDATE build_chroots bc SET state = 'pending', claimed_by = NULL
            WHERE bc.claimed_by = \(worker) AND bc.state IN ('starting', 'running')
              AND NOT EXISTS (SELECT 1 FROM unnest(\(chrootBuilds), \(chrootNames)) AS k(build_id, name)
                              WHERE k.build_id = bc.build_id AND k.name = bc.name)
            RETURNING bc.build_id, bc.name
            """
        )
        let sources: [ReleasedTask] = try c.all(
            """
            UPDATE builds b SET source_state = 'pending', source_claimed_by = NULL
            WHERE b.source_claimed_by = \(worker) AND b.source_state IN ('starting', 'running')
              AND NOT (b.id = ANY(\(keptBuilds)))
            RETURNING b.id AS build_id, NULL::text AS name
            """
        )
        let released = (sources + chroots).map(\.taskID)
        if !released.isEmpty { try self.wakeBackend(c, reason: "released") }
        return released
    }

    /// Claims a pending task for a worker: `pending → starting`. Claiming again with the same worker id succeeds again
    /// (a retried request); another worker is refused.
    public static func claim(_ c: PGConnection, _ id: TaskID, worker: String) throws -> ClaimOutcome? {
        guard let task = try self.load(c, id, lock: true) else { return nil }
        if task.canceled || task.taskState == .canceled { return .canceled }
        if let chroot = task.chroot {
            if chroot.state == .pending {
                try c.execute(
                    """
                    UPDATE build_chroots SET state = 'starting', claimed_by = \(worker), started_on = coalesce(started_on, now())
                    WHERE build_id = \(id.buildID) AND name = \(chroot.name)
                    """
                )
            } else if !(chroot.claimedBy == worker && [.starting, .running].contains(chroot.state)) {
                return .taken(chroot.state)
            }
        } else {
            if task.sourceState == .pending {
                try c.execute(
                    """
                    UPDATE builds SET source_state = 'starting', source_claimed_by = \(worker),
                      source_started_on = coalesce(source_started_on, now())
                    WHERE id = \(id.buildID)
                    """
                )
            } else if !(task.sourceClaimedBy == worker && [.starting, .running].contains(task.sourceState)) {
                return .taken(task.sourceState)
            }
        }
        try BuildStore.refreshState(c, buildID: id.buildID)
        return .claimed(task)
    }

    /// What applying an update did; `prune` names the package whose retention should run (a build succeeded).
    public struct UpdateResult: Sendable {
        public var answer: UpdateAnswer
        public var prune: (projectID: Int, packageID: Int)?
    }

    /// A refusal of an update's content (the caller answers 400/404).
    public enum UpdateRefusal: Error, Sendable, Equatable {
        case noSuchTask
        case srpmRequired
        case invalidPackageName(String)
    }

    /// Applies a state change of one task. `update_id` makes a retried request a no-op; a final state is never
    /// overwritten; updates for canceled builds are acknowledged and ignored.
    public static func apply(_ c: PGConnection, _ update: BackendUpdate) throws -> UpdateResult {
        if try c.exists("SELECT 1 FROM backend_updates WHERE update_id = \(update.updateID)") {
            return UpdateResult(answer: UpdateAnswer(applied: false, duplicate: true))
        }
        let build = update.taskID.buildID
        guard
            let b = try c.query(
                "SELECT canceled, source_state, project_id, package_id FROM builds WHERE id = \(build) FOR UPDATE"
            ).first
        else { throw UpdateRefusal.noSuchTask }
        try c.execute("INSERT INTO backend_updates (update_id) VALUES (\(update.updateID))")
        if try b.decode("canceled", as: Bool.self) {
            return UpdateResult(answer: UpdateAnswer(applied: false, canceled: true))
        }
        let state = update.state
        let isFinal = state == .succeeded || state == .failed
        var packageID: Int? = try b.decode("package_id")
        if let chroot = update.taskID.chroot {
            guard
                let current = try c.value(
                    "SELECT state FROM build_chroots WHERE build_id = \(build) AND name = \(chroot)",
                    as: BuildState.self
                )
            else { throw UpdateRefusal.noSuchTask }
            if current.isFinal { return UpdateResult(answer: UpdateAnswer(applied: false, final: true)) }
            let packages: String? = try update.builtPackages.map { try Wire.json($0).text }
            try c.execute(
                """
                UPDATE build_chroots SET state = \(state.rawValue),
                  started_on = CASE WHEN \(state.rawValue) IN ('running', 'succeeded', 'failed') THEN coalesce(started_on, now())
                                    ELSE started_on END,
                  ended_on = CASE WHEN \(isFinal) THEN now() ELSE NULL END,
                  result_dir = coalesce(\(update.resultDir), result_dir), built_packages = coalesce(\(packages), built_packages),
                  claimed_by = CASE WHEN \(state.rawValue) = 'pending' THEN NULL ELSE claimed_by END
                WHERE build_id = \(build) AND name = \(chroot)
                """
            )
        } else {
            if try b.decode("source_state", as: BuildState.self).isFinal {
                return UpdateResult(answer: UpdateAnswer(applied: false, final: true))
            }
            try c.execute(
                """
                UPDATE builds SET source_state = \(state.rawValue), source_ended_on = CASE WHEN \(isFinal) THEN now() ELSE NULL END,
                  source_result_dir = coalesce(\(update.resultDir), source_result_dir),
                  source_claimed_by = CASE WHEN \(state.rawValue) = 'pending' THEN NULL ELSE source_claimed_by END
                WHERE id = \(build)
                """
            )
            if state == .succeeded {
                // The SRPM is known now: record its NEVR, name the result dirs and release the chroots.
                guard let srpm = update.srpm else { throw UpdateRefusal.srpmRequired }
                do { try Names.validatePackageName(srpm.name) } catch {
                    throw UpdateRefusal.invalidPackageName("\(error)")
                }
                let package =
                    try packageID
                    ?? PackageStore.ensure(c, projectID: try b.decode("project_id"), name: srpm.name, sourceType: "url")
                packageID = package
                try c.execute(
                    """
                    UPDATE builds SET pkg_name = \(srpm.name), pkg_epoch = \(srpm.epoch), pkg_version = \(srpm.version),
                      pkg_release = \(srpm.release), srpm_url = coalesce(\(srpm.url), srpm_url), package_id = \(package)
                    WHERE id = \(build)
                    """
                )
                try c.execute(
                    """
                    INSERT INTO build_chroots (build_id, mock_chroot_id, name, state, result_dir)
                    SELECT \(build), mc.id, mc.name, 'pending', \(resultDirName(buildID: build, packageName: srpm.name))
                    FROM builds b JOIN mock_chroots mc ON mc.name = ANY(b.selected_chroots) WHERE b.id = \(build)
                    ON CONFLICT (build_id, mock_chroot_id) DO UPDATE SET state = 'pending', result_dir = EXCLUDED.result_dir
                    """
                )
            } else if state == .failed {
                try c.execute(
                    "UPDATE build_chroots SET state = 'failed', ended_on = now() WHERE build_id = \(build) AND state = 'waiting'"
                )
            }
        }
        let newState = try BuildStore.refreshState(c, buildID: build)
        try self.wakeBackend(c, reason: "update")
        var prune: (Int, Int)?
        if newState == .succeeded, let packageID { prune = (try b.decode("project_id"), packageID) }
        return UpdateResult(answer: UpdateAnswer(applied: true, buildState: newState), prune: prune)
    }

    // MARK: Cancel requests

    /// Tasks canceled while a builder held them; the Backend kills them and acknowledges.
    public static func cancelRequests(_ c: PGConnection, limit: Int = 1000) throws -> [TaskID] {
        try c.query("SELECT task_id FROM cancel_requests ORDER BY created_on LIMIT \(limit)").rows.compactMap {
            TaskID(try $0.decode("task_id", as: String.self))
        }
    }

    public static func cancelDone(_ c: PGConnection, _ id: TaskID) throws -> Bool {
        try c.execute("DELETE FROM cancel_requests WHERE task_id = \(id.description)") > 0
    }

    // MARK: Imports (DistGitProxy)

    public static func importing(_ c: PGConnection, limit: Int = 100) throws -> [ImportRecord] {
        try c.all(
            """
            SELECT b.id, b.pkg_name, b.srpm_path, b.srpm_url, b.srpm_sha256, p.ownername, p.name
            FROM builds b JOIN projects p ON p.id = b.project_id
            WHERE b.source_state = 'importing' AND NOT b.canceled ORDER BY b.id LIMIT \(limit)
            """
        )
    }

    /// Moves an import on: `importing → succeeded` (chroots `pending`) or `failed`. Nil if there is no such build;
    /// `.applied == false` when repeated.
    public static func completeImport(_ c: PGConnection, buildID: Int, succeeded: Bool) throws -> UpdateAnswer? {
        guard let row = try c.query("SELECT source_state, canceled FROM builds WHERE id = \(buildID) FOR UPDATE").first
        else {
            return nil
        }
        guard try row.decode("source_state", as: BuildState.self) == .importing,
            try !row.decode("canceled", as: Bool.self)
        else {
            return UpdateAnswer(applied: false)
        }
        let sourceState: BuildState = succeeded ? .succeeded : .failed
        let chrootState: BuildState = succeeded ? .pending : .failed
        try c.execute(
            "UPDATE builds SET source_state = \(sourceState.rawValue), source_ended_on = now() WHERE id = \(buildID)"
        )
        try c.execute(
            """
            UPDATE build_chroots SET state = \(chrootState.rawValue), ended_on = CASE WHEN \(!succeeded) THEN now() END
            WHERE build_id = \(buildID) AND state = 'waiting'
            """
        )
        let state = try BuildStore.refreshState(c, buildID: buildID)
        try self.wakeBackend(c, reason: "import")
        return UpdateAnswer(applied: true, buildState: state)
    }
}

/// A task `TaskStore.releaseClaims` put back.
private struct ReleasedTask: PGRecord {
    let taskID: TaskID

    init(row: PGRow) throws {
        self.taskID = TaskID(buildID: try row.decode("build_id"), chroot: try row.decode("name"))
    }
}
