import CoprModel
import Foundation
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

/// API v3's build and build-chroot objects, from the store's records.
enum Builds {
    static func find(_ c: PGConnection, id: Int) throws -> BuildRecord? {
        try BuildStore.find(c, id: id)
    }

    static func require(_ c: PGConnection, id: Int) throws -> BuildRecord {
        guard let build = try BuildStore.find(c, id: id) else { throw APIError.notFound("Build \(id) does not exist.") }
        return build
    }

    static func chrootRows(_ c: PGConnection, buildID: Int, descending: Bool = false) throws -> [BuildChrootRecord] {
        try BuildStore.chroots(c, buildID: buildID, descending: descending)
    }

    @discardableResult
    static func refreshState(_ c: PGConnection, buildID: Int) throws -> BuildState {
        try BuildStore.refreshState(c, buildID: buildID)
    }

    static func pkgVersion(_ b: BuildRecord) -> String? { b.pkgVersionText }

    static func srpmURL(_ b: BuildRecord, publicBase: String) -> String? {
        TaskDescriptions.srpmURL(path: b.srpmPath, url: b.srpmURL, publicBase: publicBase)
    }

    static func json(_ b: BuildRecord, resultsBase: String, publicBase: String) -> JSON {
        let o: JSONObject = [
            "id": .int(b.id),
            "state": .string(b.state.rawValue),
            "ownername": .string(b.ownername),
            "projectname": .string(b.projectname),
            "project_dirname": .string(b.projectDirname),
            "submitter": JSON(b.submitterName),
            "is_background": .bool(b.isBackground),
            "repo_url": .string("\(resultsBase)/\(b.ownername)/\(b.projectname)"),
            "source_package": [
                "name": JSON(b.pkgName),
                "version": JSON(b.pkgVersionText),
                "url": JSON(srpmURL(b, publicBase: publicBase)),
            ],
            "submitted_on": JSON(b.submittedOn),
            "started_on": JSON(b.startedOn),
            "ended_on": JSON(b.endedOn),
            "chroots": JSON(b.chrootNames),
        ]
        return .object(o)
    }

    static func chrootJSON(_ ch: BuildChrootRecord, build: BuildRecord, resultsBase: String) -> JSON {
        var resultURL: JSON = .null
        if let d = ch.resultDir, !d.isEmpty {
            resultURL = .string("\(resultsBase)/\(build.ownername)/\(build.projectDirname)/\(ch.name)/\(d)/")
        }
        return [
            "name": .string(ch.name),
            "state": .string(ch.state.rawValue),
            "started_on": JSON(ch.startedOn),
            "ended_on": JSON(ch.endedOn),
            "result_url": resultURL,
        ]
    }

    /// `[nevra…]` as API v3's built-packages answers list them.
    static func builtPackages(_ ch: BuildChrootRecord) -> JSON {
        (try? Wire.json(ch.builtPackages)) ?? .array([])
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
    let project: ProjectRecord
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
            selected = try ChrootGlob.select(
                active: project.chroots, chroots: o.chroots, excludeChroots: o.excludeChroots, projectFullName: project.fullName
            )
        } catch {
            throw APIError.badRequest(error.description)
        }
        let ids = try BuildStore.mockChrootIDs(c, names: selected)
        let timeout = o.timeout ?? config.defaultBuildTimeout
        guard timeout >= 1 && timeout <= config.maxBuildTimeout else {
            throw APIError.badRequest("timeout: Number must be between 1 and \(config.maxBuildTimeout).")
        }
        let enableNet = o.enableNet ?? project.enableNet
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
        pkg: NewBuild.Package?,
        srpm: NewBuild.UploadedSRPM?,
        srpmURL: String? = nil
    ) throws -> Int {
        try BuildStore.insert(
            c,
            NewBuild(
                projectID: v.project.id, ownername: v.project.ownername, projectname: v.project.name,
                projectDirname: v.dirname, submitterID: user.id, submitterName: user.name, packageID: packageID,
                sourceType: sourceType, sourceJSON: sourceJSON, sourceState: sourceState, package: pkg, srpm: srpm,
                srpmURL: srpmURL, background: o.background, timeout: v.timeout, enableNet: v.enableNet,
                isolation: o.isolation, bootstrap: o.bootstrap, chroots: v.chroots
            )
        )
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
