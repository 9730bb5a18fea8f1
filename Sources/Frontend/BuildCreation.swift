import CoprModel
import Foundation
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

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
        guard let owner = o["ownername"]?.stringValue, !owner.isEmpty else {
            throw APIError.badRequest("Missing argument ownername")
        }
        guard let project = o["projectname"]?.stringValue, !project.isEmpty else {
            throw APIError.badRequest("Missing argument projectname")
        }
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
        if let a = o["after_build_id"], !a.isNull {
            throw APIError.badRequest("after_build_id: build batches are not supported by this Koper version")
        }
        if let w = o["with_build_id"], !w.isNull {
            throw APIError.badRequest("with_build_id: build batches are not supported by this Koper version")
        }
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
    static func validate(
        _ c: PGConnection,
        user: User,
        options o: BuildOptions,
        config: FrontendConfig
    ) throws -> ValidatedBuild {
        let project = try Projects.require(c, owner: o.ownername, name: o.projectname)
        guard try Permissions.canBuild(c, user: user, project: project) else {
            throw APIError.forbidden(
                "User '\(user.name)' doesn't have the build permissions in project '\(project.fullName)'"
            )
        }
        let dir: CoprDirName
        do {
            dir = try CoprDirName(o.projectDirname)
        } catch {
            throw APIError.badRequest("project_dirname: \(error.message)")
        }
        guard dir.project == project.name else {
            throw APIError.badRequest(
                "project_dirname: '\(o.projectDirname)' does not belong to project '\(project.name)'"
            )
        }
        let selected: [String]
        do {
            selected = try ChrootGlob.select(
                active: project.chroots,
                chroots: o.chroots,
                excludeChroots: o.excludeChroots,
                projectFullName: project.fullName
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
        return ValidatedBuild(
            project: project,
            dirname: o.projectDirname,
            chroots: ids,
            timeout: timeout,
            enableNet: enableNet
        )
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
                projectID: v.project.id,
                ownername: v.project.ownername,
                projectname: v.project.name,
                projectDirname: v.dirname,
                submitterID: user.id,
                submitterName: user.name,
                packageID: packageID,
                sourceType: sourceType,
                sourceJSON: sourceJSON,
                sourceState: sourceState,
                package: pkg,
                srpm: srpm,
                srpmURL: srpmURL,
                background: o.background,
                timeout: v.timeout,
                enableNet: v.enableNet,
                isolation: o.isolation,
                bootstrap: o.bootstrap,
                chroots: v.chroots
            )
        )
    }
}
