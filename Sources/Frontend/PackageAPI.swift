import CoprModel
import HTTPCore
import KoperJSON
import Postgres

enum PackageStore {
    static let sourceTypes = ["scm", "url", "upload", "pypi", "rubygems", "custom", "distgit"]

    /// The package row for an SRPM upload: found by name, or created with source type `upload`.
    static func ensure(_ c: PGConnection, projectID: Int, name: String, sourceType: String) throws -> Int {
        do {
            try Names.validatePackageName(name)
        } catch {
            throw APIError.badRequest("The SRPM's package name is not valid: \(error.message)")
        }
        let r = try c.query(
            """
            INSERT INTO packages (project_id, name, source_type) VALUES (\(projectID), \(name), \(sourceType))
            ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id
            """
        )
        return try r.first!.int("id")
    }

    /// Source description of an SCM package or build (copr-cli's add-package-scm / build-scm body).
    static func scmSource(_ o: JSONObject) throws -> JSONObject {
        guard let url = o["clone_url"]?.stringValue, !url.isEmpty else { throw APIError.badRequest("clone_url: This field is required.") }
        guard url.hasPrefix("https://") || url.hasPrefix("http://") || url.hasPrefix("git://") || url.hasPrefix("ssh://") || url.contains("@") else {
            throw APIError.badRequest("clone_url: Invalid URL")
        }
        let type = o["scm_type"]?.stringValue ?? o["type"]?.stringValue ?? "git"
        guard ["git", "svn"].contains(type) else { throw APIError.badRequest("scm_type: Not a valid choice") }
        let method = o["source_build_method"]?.stringValue ?? "rpkg"
        guard ["rpkg", "tito", "tito_test", "make_srpm"].contains(method) else {
            throw APIError.badRequest("source_build_method: Not a valid choice")
        }
        return [
            "clone_url": .string(url),
            "committish": .string(o["committish"]?.stringValue ?? ""),
            "subdirectory": .string(o["subdirectory"]?.stringValue ?? ""),
            "spec": .string(o["spec"]?.stringValue ?? ""),
            "type": .string(type),
            "source_build_method": .string(method),
        ]
    }

    static func source(type: String, _ o: JSONObject) throws -> JSONObject {
        switch type {
        case "scm":
            return try scmSource(o)
        case "url":
            guard let u = o["url"]?.stringValue, u.hasPrefix("http://") || u.hasPrefix("https://") else {
                throw APIError.badRequest("url: A valid http(s) URL is required.")
            }
            return ["url": .string(u)]
        case "upload":
            return [:]
        default:
            // pypi, rubygems, custom, distgit: stored as sent (minus client-side keys); built in a later issue.
            var copy = o
            for k in ["package_name", "max_builds", "timeout", "chroot_denylist", "webhook_rebuild"] { copy[k] = nil }
            return copy
        }
    }

    static let columns: PGQuery = "k.id, k.name, k.source_type, k.source_json, k.webhook_rebuild, k.max_builds, k.timeout, array_to_json(k.chroot_denylist)::text AS denylist"

    static func json(_ c: PGConnection, _ row: PGRow, project: Project, withLatest: Bool, withLatestSucceeded: Bool, resultsBase: String, publicBase: String) throws -> JSON {
        let id = try row.int("id")
        func latest(_ succeeded: Bool) throws -> JSON {
            let onlySucceeded: PGQuery = succeeded ? "AND b.state = 'succeeded'" : ""
            let r = try c.query(
                "SELECT \(Builds.columns) \(Builds.from) WHERE b.package_id = \(id) \(onlySucceeded) ORDER BY b.id DESC LIMIT 1"
            )
            return try r.first.map { try Builds.json($0, resultsBase: resultsBase, publicBase: publicBase) } ?? .null
        }
        let sourceDict = (try? JSONParser.parse(Array((row.optionalString("source_json") ?? "{}").utf8))) ?? [:]
        var dict = sourceDict.objectValue ?? JSONObject()
        dict["max_builds"] = JSON((try? row.optionalInt("max_builds")) ?? nil)
        dict["timeout"] = JSON((try? row.optionalInt("timeout")) ?? nil)
        dict["chroot_denylist"] = JSON(Projects.jsonList(row.optionalString("denylist")))
        return [
            "id": .int(id),
            "name": .string(try row.string("name")),
            "ownername": .string(project.ownername),
            "projectname": .string(project.name),
            "source_type": .string(try row.string("source_type")),
            "source_dict": .object(dict),
            "auto_rebuild": .bool(row["webhook_rebuild"] == "t"),
            "webhook_rebuild": .bool(row["webhook_rebuild"] == "t"),
            "builds": [
                "latest": withLatest ? try latest(false) : .null,
                "latest_succeeded": withLatestSucceeded ? try latest(true) : .null,
            ],
        ]
    }
}

enum PackageAPI {
    static func flag(_ ctx: RequestContext, _ name: String) -> Bool {
        ["true", "1", "yes", "on"].contains((ctx.q(name) ?? "").lowercased())
    }

    static func addOrEdit(_ app: FrontendApp, _ ctx: RequestContext, isAdd: Bool) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let projectName = ctx.param("project")
        let name = ctx.param("package")
        let type = ctx.param("type")
        guard PackageStore.sourceTypes.contains(type) else { throw APIError.badRequest("Unsupported source type: \(type)") }
        do { try Names.validatePackageName(name) } catch { throw APIError.badRequest("package_name: \(error.message)") }
        let body = try ctx.jsonBody()
        let source = try PackageStore.source(type: type, body)
        let webhook = try optionalBool(body["webhook_rebuild"], field: "webhook_rebuild")
        let maxBuilds = try optionalInt(body["max_builds"], field: "max_builds")
        let timeout = try optionalInt(body["timeout"], field: "timeout")
        let denylist = try optionalStringList(body["chroot_denylist"], field: "chroot_denylist")
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: projectName)
            guard try Permissions.canBuild(c, user: user, project: project) else {
                throw APIError.forbidden("User '\(user.name)' doesn't have the build permissions in project '\(project.fullName)'")
            }
            let existing = try c.query("SELECT id FROM packages WHERE project_id = \(project.id) AND name = \(name)").first
            if isAdd, existing != nil { throw APIError.badRequest("Package \(name) already exists in copr \(project.fullName).") }
            if !isAdd, existing == nil { throw APIError.notFound("Package \(name) does not exist in project \(project.fullName).") }
            let r = try c.query(
                """
                INSERT INTO packages (project_id, name, source_type, source_json, webhook_rebuild, max_builds, timeout, chroot_denylist)
                VALUES (\(project.id), \(name), \(type), \(JSON.object(source).text), coalesce(\(webhook)::boolean, false), \(maxBuilds), \(timeout), coalesce(\(denylist)::text[], '{}'))
                ON CONFLICT (project_id, name) DO UPDATE SET source_type = EXCLUDED.source_type, source_json = EXCLUDED.source_json,
                  webhook_rebuild = coalesce(\(webhook)::boolean, packages.webhook_rebuild), max_builds = coalesce(\(maxBuilds), packages.max_builds),
                  timeout = coalesce(\(timeout), packages.timeout), chroot_denylist = coalesce(\(denylist)::text[], packages.chroot_denylist)
                RETURNING id, name, source_type, source_json, webhook_rebuild, max_builds, timeout, array_to_json(chroot_denylist)::text AS denylist
                """
            )
            return try PackageStore.json(c, r.first!, project: project, withLatest: false, withLatestSucceeded: false, resultsBase: results, publicBase: base)
        }
        return jsonOK(json)
    }

    static func add(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse { try await addOrEdit(app, ctx, isAdd: true) }
    static func edit(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse { try await addOrEdit(app, ctx, isAdd: false) }

    static func list(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else { throw APIError.badRequest("Missing argument ownername") }
        guard let name = ctx.q("projectname"), !name.isEmpty else { throw APIError.badRequest("Missing argument projectname") }
        let page = try Page(ctx)
        let withLatest = flag(ctx, "with_latest_build")
        let withSucceeded = flag(ctx, "with_latest_succeeded_build")
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let items = try await app.db.withConnection { c -> [JSON] in
            let project = try Projects.require(c, owner: owner, name: name)
            let rows = try c.query(
                "SELECT \(PackageStore.columns) FROM packages k WHERE k.project_id = \(project.id) ORDER BY k.id LIMIT \(page.limit) OFFSET \(page.offset)"
            ).rows
            return try rows.map {
                try PackageStore.json(c, $0, project: project, withLatest: withLatest, withLatestSucceeded: withSucceeded, resultsBase: results, publicBase: base)
            }
        }
        return jsonOK(["items": .array(items), "meta": page.meta(orderType: "ASC")])
    }

    static func get(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else { throw APIError.badRequest("Missing argument ownername") }
        guard let name = ctx.q("projectname"), !name.isEmpty else { throw APIError.badRequest("Missing argument projectname") }
        guard let pkg = ctx.q("packagename"), !pkg.isEmpty else { throw APIError.badRequest("Missing argument packagename") }
        let withLatest = flag(ctx, "with_latest_build")
        let withSucceeded = flag(ctx, "with_latest_succeeded_build")
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.withConnection { c -> JSON in
            let project = try Projects.require(c, owner: owner, name: name)
            guard let row = try c.query("SELECT \(PackageStore.columns) FROM packages k WHERE k.project_id = \(project.id) AND k.name = \(pkg)").first else {
                throw APIError.notFound("No package with name \(pkg) in copr \(project.fullName)")
            }
            return try PackageStore.json(c, row, project: project, withLatest: withLatest, withLatestSucceeded: withSucceeded, resultsBase: results, publicBase: base)
        }
        return jsonOK(json)
    }

    static func delete(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        guard let owner = body["ownername"]?.stringValue ?? ctx.q("ownername") else { throw APIError.badRequest("Missing argument ownername") }
        guard let name = body["projectname"]?.stringValue ?? ctx.q("projectname") else { throw APIError.badRequest("Missing argument projectname") }
        guard let pkg = body["package_name"]?.stringValue ?? ctx.q("package_name") else { throw APIError.badRequest("Missing argument package_name") }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project, message: "You are not allowed to delete packages in \(project.fullName).")
            guard let row = try c.query("SELECT \(PackageStore.columns) FROM packages k WHERE k.project_id = \(project.id) AND k.name = \(pkg)").first else {
                throw APIError.notFound("No package with name \(pkg) in copr \(project.fullName)")
            }
            let id = try row.int("id")
            let running = try c.query(
                "SELECT id FROM builds WHERE package_id = \(id) AND state NOT IN \(BuildAPI.finalStates) ORDER BY id"
            ).rows.map { try $0.int("id") }
            if !running.isEmpty {
                throw APIError.badRequest("Package \(pkg) has unfinished builds: \(running.map(String.init).joined(separator: ", "))")
            }
            let json = try PackageStore.json(c, row, project: project, withLatest: false, withLatestSucceeded: false, resultsBase: results, publicBase: base)
            let buildIDs = try c.query("SELECT id FROM builds WHERE package_id = \(id)").rows.map { try $0.int("id") }
            if !buildIDs.isEmpty { _ = try BuildAPI.deleteBuilds(c, user: user, ids: buildIDs) }
            try c.execute("DELETE FROM packages WHERE id = \(id)")
            return json
        }
        app.tasks.bump()
        return jsonOK(json)
    }

    static func build(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        var options = try BuildOptions(body)
        if options.chroots?.isEmpty == true { options.chroots = nil }  // `chroots: []` builds all project chroots
        guard let pkg = body["package_name"]?.stringValue, !pkg.isEmpty else { throw APIError.badRequest("Missing argument package_name") }
        let opts = options
        let (packageID, type, source) = try await app.db.withConnection { c -> (Int, String, JSONObject) in
            let project = try Projects.require(c, owner: opts.ownername, name: opts.projectname)
            guard let row = try c.query("SELECT id, source_type, source_json FROM packages WHERE project_id = \(project.id) AND name = \(pkg)").first else {
                throw APIError.notFound("No package with name \(pkg) in copr \(project.fullName)")
            }
            let source = (try? JSONParser.parse(Array((row.optionalString("source_json") ?? "{}").utf8)))?.objectValue ?? JSONObject()
            return (try row.int("id"), try row.string("source_type"), source)
        }
        let buildType: String
        switch type {
        case "scm": buildType = "scm"
        case "url": buildType = "link"
        default: throw APIError.badRequest("Package \(pkg) has source type '\(type)', which cannot be rebuilt from its stored source")
        }
        let items = try await BuildAPI.createSourceBuilds(app, ctx, options: options, sources: [(buildType, source)], packageID: packageID)
        return jsonOK(items[0])
    }

    static func monitor(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else { throw APIError.badRequest("Missing argument ownername") }
        guard let name = ctx.q("projectname"), !name.isEmpty else { throw APIError.badRequest("Missing argument projectname") }
        let dirname = ctx.q("project_dirname").flatMap { $0.isEmpty ? nil : $0 } ?? name
        let fields = ctx.qs("additional_fields[]") + ctx.qs("additional_fields")
        let allowed = ["url_build_log", "url_backend_log", "url_build"]
        let wrong = fields.filter { !allowed.contains($0) }
        if !wrong.isEmpty { throw APIError.badRequest("Wrong additional_fields argument(s): \(wrong.joined(separator: ", "))") }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let packages = try await app.db.withConnection { c -> [JSON] in
            let project = try Projects.require(c, owner: owner, name: name)
            if dirname != name, try c.query("SELECT 1 FROM builds WHERE project_id = \(project.id) AND project_dirname = \(dirname) LIMIT 1").first == nil {
                throw APIError.notFound("'\(dirname)' doesn't exist in '\(project.fullName)' project")
            }
            // Latest build per (package, chroot) in this dir.
            let rows = try c.query(
                """
                SELECT DISTINCT ON (k.name, bc.name) k.name AS package, bc.name AS chroot, b.id AS build_id, bc.state, bc.result_dir,
                       b.pkg_version, b.pkg_release, b.pkg_epoch
                FROM packages k JOIN builds b ON b.package_id = k.id JOIN build_chroots bc ON bc.build_id = b.id
                WHERE k.project_id = \(project.id) AND b.project_dirname = \(dirname)
                ORDER BY k.name, bc.name, b.id DESC
                """
            ).rows
            var order: [String] = []
            var byPackage: [String: JSONObject] = [:]
            for row in rows {
                let pkg = try row.string("package")
                let chroot = try row.string("chroot")
                let state = try row.string("state")
                var cell: JSONObject = [
                    "build_id": .int(try row.int("build_id")),
                    "state": .string(state),
                    "status": .int(BuildState(rawValue: state)?.number ?? 1000),
                    "pkg_version": JSON(Builds.pkgVersion(row)),
                ]
                let dir = row.optionalString("result_dir")
                let resultURL = dir.map { "\(results)/\(owner)/\(dirname)/\(chroot)/\($0)/" }
                if fields.contains("url_build_log") { cell["url_build_log"] = JSON(resultURL.map { $0 + "builder-live.log.gz" }) }
                if fields.contains("url_backend_log") { cell["url_backend_log"] = JSON(resultURL.map { $0 + "backend.log.gz" }) }
                if fields.contains("url_build") { cell["url_build"] = .string("\(base)/coprs/build/\(try row.int("build_id"))/") }
                if byPackage[pkg] == nil {
                    order.append(pkg)
                    byPackage[pkg] = JSONObject()
                }
                byPackage[pkg]![chroot] = .object(cell)
            }
            return order.map { ["name": .string($0), "chroots": .object(byPackage[$0]!)] }
        }
        return jsonOK(["message": "Project monitor request successful", "output": "ok", "packages": .array(packages)])
    }
}

import Foundation
