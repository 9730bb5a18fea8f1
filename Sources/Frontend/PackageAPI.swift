import CoprModel
import HTTPCore
import KoperJSON
import KoperStore
import Postgres

enum PackageAPI {
    static func flag(_ ctx: RequestContext, _ name: String) -> Bool {
        ["true", "1", "yes", "on"].contains((ctx.q(name) ?? "").lowercased())
    }

    static func addOrEdit(_ app: FrontendApp, _ ctx: RequestContext, isAdd: Bool) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let projectName = ctx.param("project")
        let name = ctx.param("package")
        let type = ctx.param("type")
        guard PackageJSON.sourceTypes.contains(type) else {
            throw APIError.badRequest("Unsupported source type: \(type)")
        }
        do { try Names.validatePackageName(name) } catch { throw APIError.badRequest("package_name: \(error.message)") }
        let body = try ctx.jsonBody()
        let change = PackageChange(
            name: name,
            sourceType: type,
            source: try PackageJSON.source(type: type, body),
            webhookRebuild: try optionalBool(body["webhook_rebuild"], field: "webhook_rebuild"),
            maxBuilds: try optionalInt(body["max_builds"], field: "max_builds"),
            timeout: try optionalInt(body["timeout"], field: "timeout"),
            chrootDenylist: try optionalStringList(body["chroot_denylist"], field: "chroot_denylist")
        )
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: projectName)
            // Upstream's can_edit, not can_build_in: a builder may rebuild packages but not change their sources.
            try Permissions.requireEdit(
                c,
                user: user,
                project: project,
                message: "You are not allowed to add or edit packages in \(project.fullName)."
            )
            let existing = try PackageStore.find(c, projectID: project.id, name: name)
            if isAdd, existing != nil {
                throw APIError.badRequest("Package \(name) already exists in copr \(project.fullName).")
            }
            if !isAdd, existing == nil {
                throw APIError.notFound("Package \(name) does not exist in project \(project.fullName).")
            }
            let package = try PackageStore.upsert(c, projectID: project.id, change)
            return try PackageJSON.json(
                c,
                package,
                project: project,
                withLatest: false,
                withLatestSucceeded: false,
                resultsBase: results,
                publicBase: base
            )
        }
        return jsonOK(json)
    }

    static func add(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await addOrEdit(app, ctx, isAdd: true)
    }
    static func edit(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try await addOrEdit(app, ctx, isAdd: false)
    }

    static func list(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else {
            throw APIError.badRequest("Missing argument ownername")
        }
        guard let name = ctx.q("projectname"), !name.isEmpty else {
            throw APIError.badRequest("Missing argument projectname")
        }
        let page = try Page(ctx)
        let withLatest = flag(ctx, "with_latest_build")
        let withSucceeded = flag(ctx, "with_latest_succeeded_build")
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let items = try await app.db.withConnection { c -> [JSON] in
            let project = try Projects.require(c, owner: owner, name: name)
            return try PackageStore.list(c, projectID: project.id, limit: page.limit, offset: page.offset).map {
                try PackageJSON.json(
                    c,
                    $0,
                    project: project,
                    withLatest: withLatest,
                    withLatestSucceeded: withSucceeded,
                    resultsBase: results,
                    publicBase: base
                )
            }
        }
        return jsonOK(["items": .array(items), "meta": page.meta(orderType: "ASC")])
    }

    static func require(_ c: PGConnection, project: ProjectRecord, name: String) throws -> PackageRecord {
        guard let package = try PackageStore.find(c, projectID: project.id, name: name) else {
            throw APIError.notFound("No package with name \(name) in copr \(project.fullName)")
        }
        return package
    }

    static func get(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else {
            throw APIError.badRequest("Missing argument ownername")
        }
        guard let name = ctx.q("projectname"), !name.isEmpty else {
            throw APIError.badRequest("Missing argument projectname")
        }
        guard let pkg = ctx.q("packagename"), !pkg.isEmpty else {
            throw APIError.badRequest("Missing argument packagename")
        }
        let withLatest = flag(ctx, "with_latest_build")
        let withSucceeded = flag(ctx, "with_latest_succeeded_build")
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.withConnection { c -> JSON in
            let project = try Projects.require(c, owner: owner, name: name)
            let package = try require(c, project: project, name: pkg)
            return try PackageJSON.json(
                c,
                package,
                project: project,
                withLatest: withLatest,
                withLatestSucceeded: withSucceeded,
                resultsBase: results,
                publicBase: base
            )
        }
        return jsonOK(json)
    }

    static func delete(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        guard let owner = body["ownername"]?.stringValue ?? ctx.q("ownername") else {
            throw APIError.badRequest("Missing argument ownername")
        }
        guard let name = body["projectname"]?.stringValue ?? ctx.q("projectname") else {
            throw APIError.badRequest("Missing argument projectname")
        }
        guard let pkg = body["package_name"]?.stringValue ?? ctx.q("package_name") else {
            throw APIError.badRequest("Missing argument package_name")
        }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(
                c,
                user: user,
                project: project,
                message: "You are not allowed to delete packages in \(project.fullName)."
            )
            let package = try require(c, project: project, name: pkg)
            let running = try PackageStore.unfinishedBuildIDs(c, packageID: package.id)
            if !running.isEmpty {
                throw APIError.badRequest(
                    "Package \(pkg) has unfinished builds: \(running.map(String.init).joined(separator: ", "))"
                )
            }
            let json = try PackageJSON.json(
                c,
                package,
                project: project,
                withLatest: false,
                withLatestSucceeded: false,
                resultsBase: results,
                publicBase: base
            )
            let buildIDs = try PackageStore.buildIDs(c, packageID: package.id)
            if !buildIDs.isEmpty { _ = try BuildAPI.deleteBuilds(c, user: user, ids: buildIDs) }
            try PackageStore.delete(c, id: package.id)
            return json
        }
        app.tasks.bump()
        return jsonOK(json)
    }

    static func build(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        var options = try BuildOptions(body)
        if options.chroots?.isEmpty == true { options.chroots = nil }  // `chroots: []` builds all project chroots
        guard let pkg = body["package_name"]?.stringValue, !pkg.isEmpty else {
            throw APIError.badRequest("Missing argument package_name")
        }
        let opts = options
        let package = try await app.db.withConnection { c -> PackageRecord in
            let project = try Projects.require(c, owner: opts.ownername, name: opts.projectname)
            return try require(c, project: project, name: pkg)
        }
        let buildType: String
        switch package.sourceType {
        case "scm": buildType = "scm"
        case "url": buildType = "link"
        default:
            throw APIError.badRequest(
                "Package \(pkg) has source type '\(package.sourceType)', which cannot be rebuilt from its stored source"
            )
        }
        let items = try await BuildAPI.createSourceBuilds(
            app,
            ctx,
            options: options,
            sources: [(buildType, package.source)],
            packageID: package.id
        )
        return jsonOK(items[0])
    }

    static func monitor(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else {
            throw APIError.badRequest("Missing argument ownername")
        }
        guard let name = ctx.q("projectname"), !name.isEmpty else {
            throw APIError.badRequest("Missing argument projectname")
        }
        let dirname = ctx.q("project_dirname").flatMap { $0.isEmpty ? nil : $0 } ?? name
        let fields = ctx.qs("additional_fields[]") + ctx.qs("additional_fields")
        let allowed = ["url_build_log", "url_backend_log", "url_build"]
        let wrong = fields.filter { !allowed.contains($0) }
        if !wrong.isEmpty {
            throw APIError.badRequest("Wrong additional_fields argument(s): \(wrong.joined(separator: ", "))")
        }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let packages = try await app.db.withConnection { c -> [JSON] in
            let project = try Projects.require(c, owner: owner, name: name)
            if dirname != name, try !ProjectStore.hasBuilds(c, projectID: project.id, dirname: dirname) {
                throw APIError.notFound("'\(dirname)' doesn't exist in '\(project.fullName)' project")
            }
            // Latest build per (package, chroot) in this dir.
            var order: [String] = []
            var byPackage: [String: JSONObject] = [:]
            for row in try PackageStore.latestBuilds(c, projectID: project.id, dirname: dirname) {
                var cell: JSONObject = [
                    "build_id": .int(row.buildID),
                    "state": .string(row.state),
                    "status": .int(BuildState(rawValue: row.state)?.number ?? 1000),
                    "pkg_version": JSON(row.pkgVersionText),
                ]
                let resultURL = row.resultDir.map { "\(results)/\(owner)/\(dirname)/\(row.chroot)/\($0)/" }
                if fields.contains("url_build_log") {
                    cell["url_build_log"] = JSON(resultURL.map { $0 + "builder-live.log.gz" })
                }
                if fields.contains("url_backend_log") {
                    cell["url_backend_log"] = JSON(resultURL.map { $0 + "backend.log.gz" })
                }
                if fields.contains("url_build") { cell["url_build"] = .string("\(base)/coprs/build/\(row.buildID)/") }
                if byPackage[row.package] == nil {
                    order.append(row.package)
                    byPackage[row.package] = JSONObject()
                }
                byPackage[row.package]![row.chroot] = .object(cell)
            }
            return order.map { ["name": .string($0), "chroots": .object(byPackage[$0]!)] }
        }
        return jsonOK(["message": "Project monitor request successful", "output": "ok", "packages": .array(packages)])
    }
}
