import Foundation
import CoprModel
import KoperJSON
import Postgres

/// SQL and JSON for builds and build chroots.
enum Builds {
    /// One row of `builds` holds everything the Build object needs (migration 2): the hot read is a primary-key
    /// lookup with no join.
    static let columns: PGQuery = """
        b.id, b.project_id, b.project_dirname, b.source_type, b.source_state, b.state, b.canceled, b.pkg_name, b.pkg_epoch,
        b.pkg_version, b.pkg_release, b.srpm_path, b.srpm_url, b.is_background, b.package_id, b.submitted_epoch,
        b.started_epoch, b.ended_epoch, b.ownername, b.projectname, b.submitter_name, b.chroot_names
        """
    static let from: PGQuery = "FROM builds b"

    static func find(_ c: PGConnection, id: Int) throws -> PGRow? {
        try c.query("SELECT \(columns) \(from) WHERE b.id = \(id)").first
    }

    /// Many builds by id in one statement (the build batcher's fetch); rows keyed by id.
    static func find(_ c: PGConnection, ids: [Int]) throws -> [Int: PGRow] {
        let rows = try c.query("SELECT \(columns) \(from) WHERE b.id = ANY(\(ids)::bigint[])").rows
        var byID: [Int: PGRow] = [:]
        byID.reserveCapacity(rows.count)
        for row in rows { byID[try row.int("id")] = row }
        return byID
    }

    static func require(_ c: PGConnection, id: Int) throws -> PGRow {
        guard let row = try find(c, id: id) else { throw APIError.notFound("Build \(id) does not exist.") }
        return row
    }

    static func pkgVersion(_ row: PGRow) -> String? {
        guard let v = row.optionalString("pkg_version") else { return nil }
        let rel = row.optionalString("pkg_release").map { "-\($0)" } ?? ""
        if let epoch = try? row.optionalInt("pkg_epoch"), epoch != 0 { return "\(epoch):\(v)\(rel)" }
        return v + rel
    }

    static func srpmURL(_ row: PGRow, publicBase: String) -> String? {
        if let path = row.optionalString("srpm_path") { return "\(publicBase)/srpm-uploads/\(path)" }
        return row.optionalString("srpm_url")
    }

    static func json(_ row: PGRow, resultsBase: String, publicBase: String) throws -> JSON {
        let names = row.optionalString("chroot_names") ?? ""
        let owner = try row.string("ownername")
        let project = try row.string("projectname")
        let o: JSONObject = [
            "id": .int(try row.int("id")),
            "state": .string(row.optionalString("state") ?? "unknown"),
            "ownername": .string(owner),
            "projectname": .string(project),
            "project_dirname": .string(try row.string("project_dirname")),
            "submitter": JSON(row.optionalString("submitter_name")),
            "is_background": .bool(try row.bool("is_background")),
            "repo_url": .string("\(resultsBase)/\(owner)/\(project)"),
            "source_package": [
                "name": JSON(row.optionalString("pkg_name")),
                "version": JSON(pkgVersion(row)),
                "url": JSON(srpmURL(row, publicBase: publicBase)),
            ],
            "submitted_on": JSON(try row.optionalInt("submitted_epoch")),
            "started_on": JSON(try row.optionalInt("started_epoch")),
            "ended_on": JSON(try row.optionalInt("ended_epoch")),
            "chroots": JSON(names.isEmpty ? [] : names.split(separator: ",").map(String.init)),
        ]
        return .object(o)
    }

    /// Recomputes and stores the derived build state (copr-protocol.md §5). Returns it.
    @discardableResult
    static func refreshState(_ c: PGConnection, buildID: Int) throws -> BuildState {
        let r = try c.query(
            """
            SELECT b.source_state, b.canceled,
              (SELECT coalesce(string_agg(state, ','), '') FROM build_chroots WHERE build_id = b.id) AS states
            FROM builds b WHERE b.id = \(buildID)
            """
        )
        guard let row = r.first else { return .unknown }
        let source = BuildState(rawValue: try row.string("source_state")) ?? .unknown
        let statesText = row.optionalString("states") ?? ""
        let states = statesText.isEmpty ? [] : statesText.split(separator: ",").map { BuildState(rawValue: String($0)) ?? .unknown }
        let state = BuildStateDerivation.buildState(canceled: try row.bool("canceled"), sourceState: source, chrootStates: states)
        try c.execute(
            """
            UPDATE builds b SET state = \(state.rawValue),
              chroot_names = coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM build_chroots WHERE build_id = b.id), ''),
              started_epoch = (SELECT min(x) FROM (SELECT extract(epoch from started_on)::bigint AS x FROM build_chroots WHERE build_id = b.id
                               UNION ALL SELECT extract(epoch from b.source_started_on)::bigint) s),
              ended_epoch = CASE WHEN \(state.isFinal) THEN (SELECT max(x) FROM (SELECT extract(epoch from ended_on)::bigint AS x FROM build_chroots
                               WHERE build_id = b.id UNION ALL SELECT extract(epoch from b.source_ended_on)::bigint) s) END
            WHERE id = \(buildID)
            """
        )
        return state
    }

    static func chrootJSON(name: String, state: String, startedOn: Int?, endedOn: Int?, resultDir: String?, owner: String, dirname: String, resultsBase: String) -> JSON {
        var resultURL: JSON = .null
        if let d = resultDir, !d.isEmpty {
            resultURL = .string("\(resultsBase)/\(owner)/\(dirname)/\(name)/\(d)/")
        }
        return [
            "name": .string(name),
            "state": .string(state),
            "started_on": JSON(startedOn),
            "ended_on": JSON(endedOn),
            "result_url": resultURL,
        ]
    }

    static func chrootRows(_ c: PGConnection, buildID: Int, descending: Bool = false) throws -> [PGRow] {
        try c.query(
            """
            SELECT name, state, result_dir, built_packages, extract(epoch from started_on)::bigint AS started_on,
                   extract(epoch from ended_on)::bigint AS ended_on
            FROM build_chroots WHERE build_id = \(buildID) ORDER BY name \(descending ? "DESC" : "ASC")
            """
        ).rows
    }

    /// `{"packages": [nevra…]}` from the stored built_packages JSON text.
    static func builtPackages(_ text: String?) -> JSON {
        guard let text, let v = try? JSONParser.parse(Array(text.utf8)), v.arrayValue != nil else { return .array([]) }
        return v
    }
}

/// Options common to every build-creating endpoint (check-before-build, upload, url, scm, package/build).
struct BuildOptions: Sendable {
    var ownername: String
    var projectname: String
    var projectDirname: String
    var chroots: [String]?
    var excludeChroots: [String]?
    var timeout: Int?
    var background: Bool
    var enableNet: Bool?
    var isolation: String
    var bootstrap: String?

    /// Reads the JSON object copr-cli sends (pre-check object, or the `json` part of an upload).
    init(_ o: JSONObject) throws {
        guard let owner = o["ownername"]?.stringValue, !owner.isEmpty else { throw APIError.badRequest("Missing argument ownername") }
        guard let project = o["projectname"]?.stringValue, !project.isEmpty else { throw APIError.badRequest("Missing argument projectname") }
        self.ownername = owner
        self.projectname = project
        self.projectDirname = o["project_dirname"]?.stringValue ?? project
        self.chroots = try optionalStringList(o["chroots"], field: "chroots")
        self.excludeChroots = try optionalStringList(o["exclude_chroots"], field: "exclude_chroots")
        self.timeout = try optionalInt(o["timeout"], field: "timeout")
        self.background = try optionalBool(o["background"], field: "background") ?? false
        self.enableNet = try optionalBool(o["enable_net"], field: "enable_net")
        self.isolation = o["isolation"]?.stringValue ?? "unchanged"
        self.bootstrap = o["bootstrap"]?.stringValue
        if let a = o["after_build_id"], !a.isNull { throw APIError.badRequest("after_build_id: build batches are not supported by this Koper version") }
        if let w = o["with_build_id"], !w.isNull { throw APIError.badRequest("with_build_id: build batches are not supported by this Koper version") }
        guard ["unchanged", "default", "nspawn", "simple"].contains(self.isolation) else {
            throw APIError.badRequest("isolation: Not a valid choice")
        }
    }
}

/// Everything a new build row needs once options are validated.
struct ValidatedBuild: Sendable {
    let project: Project
    let dirname: String
    let chroots: [(id: Int, name: String)]
    let timeout: Int
    let enableNet: Bool
}

enum BuildCreation {
    /// The checks of `check-before-build` and every create: project exists (404), user may build (403), dirname and
    /// chroots valid (400), timeout in range (400).
    static func validate(_ c: PGConnection, user: User, options o: BuildOptions, config: FrontendConfig) throws -> ValidatedBuild {
        let project = try Projects.require(c, owner: o.ownername, name: o.projectname)
        guard try Permissions.canBuild(c, user: user, project: project) else {
            throw APIError.forbidden("User '\(user.name)' doesn't have the build permissions in project '\(project.fullName)'")
        }
        let dir: CoprDirName
        do {
            dir = try CoprDirName(o.projectDirname)
        } catch {
            throw APIError.badRequest("project_dirname: \(error.message)")
        }
        guard dir.project == project.name else {
            throw APIError.badRequest("project_dirname: '\(o.projectDirname)' does not belong to project '\(project.name)'")
        }
        let selected: [String]
        do {
            selected = try ChrootGlob.select(active: project.chroots, chroots: o.chroots, excludeChroots: o.excludeChroots, projectFullName: project.fullName)
        } catch {
            throw APIError.badRequest(error.description)
        }
        let ids = try c.query("SELECT id, name FROM mock_chroots WHERE name = ANY(\(selected)::text[])").rows.map {
            (id: try $0.int("id"), name: try $0.string("name"))
        }.sorted { $0.name < $1.name }
        let timeout = o.timeout ?? config.defaultBuildTimeout
        guard timeout >= 1 && timeout <= config.maxBuildTimeout else {
            throw APIError.badRequest("timeout: Number must be between 1 and \(config.maxBuildTimeout).")
        }
        let enableNet = o.enableNet ?? (project.row["enable_net"] == "t")
        return ValidatedBuild(project: project, dirname: o.projectDirname, chroots: ids, timeout: timeout, enableNet: enableNet)
    }

    /// Inserts the build and its build-chroot rows. `sourceState` is `succeeded` when the SRPM is already known
    /// (upload, no import step), `importing` when DistGitProxy must import it, `pending` when an SRPM build must run.
    static func insert(
        _ c: PGConnection,
        user: User,
        v: ValidatedBuild,
        options o: BuildOptions,
        sourceType: String,
        sourceJSON: JSON,
        sourceState: BuildState,
        packageID: Int?,
        pkg: (name: String, epoch: Int?, version: String, release: String)?,
        srpm: (path: String, sha256: String, size: Int)?
    ) throws -> Int {
        let chrootState: BuildState = sourceState == .succeeded ? .pending : .waiting
        let r = try c.query(
            """
            INSERT INTO builds (project_id, ownername, projectname, submitter_name, project_dirname, package_id, submitter_id, source_type, source_json, source_state, state,
                                pkg_name, pkg_epoch, pkg_version, pkg_release, srpm_path, srpm_sha256, srpm_size,
                                is_background, timeout, enable_net, isolation, bootstrap, selected_chroots,
                                source_ended_on)
            VALUES (\(v.project.id), \(v.project.ownername), \(v.project.name), \(user.name), \(v.dirname), \(packageID), \(user.id), \(sourceType), \(sourceJSON.text), \(sourceState.rawValue), \(sourceState.rawValue), \(pkg?.name), \(pkg?.epoch), \(pkg?.version), \(pkg?.release), \(srpm?.path), \(srpm?.sha256), \(srpm?.size), \(o.background), \(v.timeout), \(v.enableNet), \(o.isolation), \(o.bootstrap), \(v.chroots.map(\.name)),
                    CASE WHEN \(sourceState.rawValue) = 'succeeded' THEN now() END)
            RETURNING id
            """
        )
        let id = try r.first!.int("id")
        if sourceState == .succeeded || sourceState == .importing || sourceState == .pending {
            for ch in v.chroots {
                let dir = pkg.map { resultDirName(buildID: id, packageName: $0.name) }
                try c.execute(
                    "INSERT INTO build_chroots (build_id, mock_chroot_id, name, state, result_dir) VALUES (\(id), \(ch.id), \(ch.name), \(chrootState.rawValue), \(dir))"
                )
            }
        }
        try Builds.refreshState(c, buildID: id)
        try c.notify(channel: "koper_tasks", payload: String(id))
        return id
    }
}



func optionalStringList(_ v: JSON?, field: String) throws -> [String]? {
    guard let v, !v.isNull else { return nil }
    if let s = v.stringValue { return s.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" }).map(String.init) }
    guard let a = v.arrayValue else { throw APIError.badRequest("\(field): must be a list of strings") }
    return try a.map {
        guard let s = $0.stringValue else { throw APIError.badRequest("\(field): must be a list of strings") }
        return s
    }
}

/// copr-cli sends numbers typed by the user as strings ("3600").
func optionalInt(_ v: JSON?, field: String) throws -> Int? {
    guard let v, !v.isNull else { return nil }
    if let i = v.intValue { return i }
    if let s = v.stringValue {
        if s.isEmpty { return nil }
        if let i = Int(s) { return i }
    }
    throw APIError.badRequest("\(field): Not a valid integer value.")
}

func optionalBool(_ v: JSON?, field: String) throws -> Bool? {
    guard let v, !v.isNull else { return nil }
    if let b = v.boolValue { return b }
    if let s = v.stringValue?.lowercased() {
        if ["true", "on", "yes", "1", "y"].contains(s) { return true }
        if ["false", "off", "no", "0", "n"].contains(s) { return false }
    }
    if let i = v.intValue { return i != 0 }
    throw APIError.badRequest("\(field): Not a valid boolean value.")
}
