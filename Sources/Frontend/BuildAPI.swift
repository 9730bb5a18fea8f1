import CoprModel
import Foundation
import HTTPCore
import HTTPServer
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

enum BuildAPI {
    static func buildID(_ ctx: RequestContext, _ key: String = "id") throws -> Int {
        guard let id = Int(ctx.param(key)), id > 0 else { throw APIError.notFound("Such API endpoint doesn't exist") }
        return id
    }

    static func checkBeforeBuild(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let options = try BuildOptions(try ctx.jsonBody())
        let config = app.config
        try await app.db.withConnection { c in
            let user = try Auth.requireUser(c, ctx)
            _ = try BuildCreation.validate(c, user: user, options: options, config: config)
        }
        return jsonOK(["message": "It should be safe to submit a build like this"])
    }

    /// `GET /api_3/build/ID` through the build batcher (decision 0007).
    static func get(
        _ app: FrontendApp,
        _ ctx: RequestContext,
        _ done: @escaping @Sendable (Result<HTTPResponse, any Error>) -> Void
    ) {
        let id: Int
        do { id = try buildID(ctx) } catch { return done(.failure(error)) }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        app.buildReader.lookup(id) { row in
            done(
                Result {
                    guard let row = try row.get() else { throw APIError.notFound("Build \(id) does not exist.") }
                    return jsonOK(Builds.json(row, resultsBase: results, publicBase: base))
                }
            )
        }
    }

    static func list(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else {
            throw APIError.badRequest("Missing argument ownername")
        }
        guard let name = ctx.q("projectname"), !name.isEmpty else {
            throw APIError.badRequest("Missing argument projectname")
        }
        let page = try Page(ctx)
        let packageName = ctx.q("packagename").flatMap { $0.isEmpty ? nil : $0 }
        let status = ctx.q("status").flatMap { $0.isEmpty ? nil : $0 }
        if let status, BuildState(rawValue: status) == nil { throw APIError.badRequest("status: Not a valid choice") }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let items = try await app.db.withConnection { c -> [JSON] in
            let project = try Projects.require(c, owner: owner, name: name)
            return try BuildStore.list(
                c,
                projectID: project.id,
                packageName: packageName,
                state: status.flatMap(BuildState.init(rawValue:)),
                limit: page.limit,
                offset: page.offset
            ).map { Builds.json($0, resultsBase: results, publicBase: base) }
        }
        // Newest first, and the meta says so (upstream says ASC while returning DESC; we stay consistent).
        return jsonOK(["items": .array(items), "meta": page.meta(orderType: "DESC")])
    }

    static func builtPackages(_ app: FrontendApp, _ ctx: RequestContext, _ c: PGConnection) throws -> HTTPResponse {
        let id = try buildID(ctx)
        _ = try Builds.require(c, id: id)
        var o = JSONObject()
        for chroot in try Builds.chrootRows(c, buildID: id) where !chroot.builtPackages.isEmpty {
            o[chroot.name] = ["packages": Builds.builtPackages(chroot)]
        }
        return jsonOK(.object(o))
    }

    static func chrootList(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let raw = ctx.parameters["id"] ?? ctx.q("build_id")
        guard let raw, !raw.isEmpty else { throw APIError.badRequest("Missing argument build_id") }
        guard let id = Int(raw) else { throw APIError.badRequest("build_id: Not a valid integer value.") }
        let page = try Page(ctx)
        let descending = ctx.q("order_type")?.uppercased() == "DESC"
        let results = app.config.resultsBase
        let items = try await app.db.withConnection { c -> [JSON] in
            let build = try Builds.require(c, id: id)
            return try Builds.chrootRows(c, buildID: id, descending: descending).dropFirst(page.offset).prefix(
                page.limit
            ).map {
                Builds.chrootJSON($0, build: build, resultsBase: results)
            }
        }
        return jsonOK([
            "items": .array(items), "meta": page.meta(order: "name", orderType: descending ? "DESC" : "ASC"),
        ])
    }

    static func chrootRow(
        _ c: PGConnection,
        _ ctx: RequestContext
    ) throws -> (build: BuildRecord, chroot: BuildChrootRecord) {
        guard let raw = ctx.q("build_id"), !raw.isEmpty else { throw APIError.badRequest("Missing argument build_id") }
        guard let id = Int(raw) else { throw APIError.badRequest("build_id: Not a valid integer value.") }
        guard let name = ctx.q("chrootname"), !name.isEmpty else {
            throw APIError.badRequest("Missing argument chrootname")
        }
        let build = try Builds.require(c, id: id)
        guard let row = try Builds.chrootRows(c, buildID: id).first(where: { $0.name == name }) else {
            throw APIError.notFound("Build chroot \(name) of build \(id) does not exist.")
        }
        return (build, row)
    }

    static func chrootGet(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let results = app.config.resultsBase
        let json = try await app.db.withConnection { c -> JSON in
            let (build, row) = try chrootRow(c, ctx)
            return Builds.chrootJSON(row, build: build, resultsBase: results)
        }
        return jsonOK(json)
    }

    static func chrootBuiltPackages(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let json = try await app.db.withConnection { c -> JSON in
            let (_, row) = try chrootRow(c, ctx)
            return ["packages": Builds.builtPackages(row)]
        }
        return jsonOK(json)
    }

    // MARK: Creating builds

    static func createUpload(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard case .file(let path, _) = ctx.request.body else {
            throw APIError.badRequest("Expected a multipart/form-data body with 'pkgs' and 'json' parts")
        }
        guard let ct = ctx.head.headers["Content-Type"], let boundary = MultipartParser.boundary(fromContentType: ct)
        else {
            throw APIError.badRequest("Expected a multipart/form-data body with 'pkgs' and 'json' parts")
        }
        let config = app.config
        // Authenticate before touching the upload.
        _ = try await app.db.withConnection { c in try Auth.requireUser(c, ctx) }
        let upload = try await Uploads.receive(bodyPath: path, boundary: boundary, config: config)
        var keep = false
        defer { if !keep { unlink(upload.storedPath) } }
        let jsonPart: JSONObject
        do {
            guard case .object(let o) = try JSONParser.parse(upload.json) else {
                throw APIError.badRequest("The 'json' part must be a JSON object")
            }
            jsonPart = o
        } catch let e as JSONParseError {
            throw APIError.badRequest("The 'json' part is not valid JSON: \(e.message)")
        }
        let options = try BuildOptions(jsonPart)
        let srpm = upload.package
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let v = try BuildCreation.validate(c, user: user, options: options, config: config)
            let packageID = try PackageStore.ensure(c, projectID: v.project.id, name: srpm.name, sourceType: "upload")
            let relative = try Uploads.commit(upload, config: config)
            let id = try BuildCreation.insert(
                c,
                user: user,
                v: v,
                options: options,
                sourceType: "upload",
                sourceJSON: ["pkg": .string(upload.filename), "sha256": .string(upload.sha256)],
                sourceState: config.distgitImport ? .importing : .succeeded,
                packageID: packageID,
                pkg: NewBuild.Package(name: srpm.name, epoch: srpm.epoch, version: srpm.version, release: srpm.release),
                srpm: NewBuild.UploadedSRPM(path: relative, sha256: upload.sha256, size: upload.size)
            )
            return Builds.json(try Builds.require(c, id: id), resultsBase: results, publicBase: base)
        }
        keep = true
        app.tasks.bump()
        return jsonOK(json)
    }

    static func createURL(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        let options = try BuildOptions(body)
        guard let urls = try optionalStringList(body["pkgs"], field: "pkgs"), !urls.isEmpty else {
            throw APIError.badRequest("pkgs: At least one URL is required.")
        }
        for u in urls {
            guard let parsed = URL(string: u), let scheme = parsed.scheme?.lowercased(),
                ["http", "https", "ftp"].contains(scheme), parsed.host != nil
            else {
                throw APIError.badRequest("pkgs: '\(u)' is not a valid http(s) URL")
            }
        }
        let items = try await createSourceBuilds(
            app,
            ctx,
            options: options,
            sources: urls.map { ("link", ["url": .string($0)]) }
        )
        return jsonOK(["items": .array(items), "meta": ["limit": nil, "offset": nil, "order": nil, "order_type": nil]])
    }

    static func createSCM(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        let options = try BuildOptions(body)
        let source = try PackageJSON.scmSource(body)
        let items = try await createSourceBuilds(app, ctx, options: options, sources: [("scm", source)])
        return jsonOK(items[0])
    }

    /// Builds whose SRPM must first be produced by an SRPM-build task (URL, SCM): source state `pending`, chroots `waiting`.
    static func createSourceBuilds(
        _ app: FrontendApp,
        _ ctx: RequestContext,
        options: BuildOptions,
        sources: [(String, JSONObject)],
        packageID: Int? = nil
    ) async throws -> [JSON] {
        let config = app.config
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let items = try await app.db.transaction { c -> [JSON] in
            let user = try Auth.requireUser(c, ctx)
            let v = try BuildCreation.validate(c, user: user, options: options, config: config)
            return try sources.map { (type, json) in
                let id = try BuildCreation.insert(
                    c,
                    user: user,
                    v: v,
                    options: options,
                    sourceType: type,
                    sourceJSON: .object(json),
                    sourceState: .pending,
                    packageID: packageID,
                    pkg: nil,
                    srpm: nil,
                    srpmURL: type == "link" ? json["url"]?.stringValue : nil
                )
                return Builds.json(try Builds.require(c, id: id), resultsBase: results, publicBase: base)
            }
        }
        app.tasks.bump()
        return items
    }

    // MARK: Cancel and delete

    static func cancel(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let id = try buildID(ctx)
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            // The build row is locked so a concurrent backend update and this cancel serialise.
            guard let locked = try BuildStore.lockForCancel(c, id: id),
                let project = try Projects.find(c, id: locked.projectID)
            else {
                throw APIError.notFound("Build \(id) does not exist.")
            }
            guard try Permissions.canBuild(c, user: user, project: project) else {
                throw APIError.forbidden("You are not allowed to cancel this build.")
            }
            if locked.state.isFinal { throw APIError(409, "Cannot cancel build \(id)") }
            try BuildStore.cancel(c, id: id, sourceState: locked.sourceState)
            return Builds.json(try Builds.require(c, id: id), resultsBase: results, publicBase: base)
        }
        app.tasks.bump()
        return jsonOK(json)
    }

    static func deleteOne(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let id = try buildID(ctx)
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let (json, uploads) = try await app.db.transaction { c -> (JSON, [String]) in
            let user = try Auth.requireUser(c, ctx)
            let row = try Builds.require(c, id: id)
            // One build: a refusal is 403, as upstream (the list form aggregates every refusal into one 400).
            if let project = try Projects.find(c, id: row.projectID) {
                try Permissions.requireEdit(
                    c,
                    user: user,
                    project: project,
                    message: "You don't have permissions to delete build \(id)."
                )
            }
            let json = Builds.json(row, resultsBase: results, publicBase: base)
            let uploads = try deleteBuilds(c, user: user, ids: [id])
            return (json, uploads)
        }
        Uploads.remove(paths: uploads, config: app.config)
        app.tasks.bump()
        return jsonOK(json)
    }

    static func deleteList(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let body = try ctx.jsonBody()
        guard let raw = body["builds"]?.arrayValue, !raw.isEmpty else {
            throw APIError.badRequest("builds: At least one build id is required.")
        }
        let ids = try raw.map { v -> Int in
            guard let i = v.intValue ?? v.stringValue.flatMap({ Int($0) }) else {
                throw APIError.badRequest("builds: Not a valid integer value.")
            }
            return i
        }
        let uploads = try await app.db.transaction { c in
            let user = try Auth.requireUser(c, ctx)
            return try deleteBuilds(c, user: user, ids: ids)
        }
        Uploads.remove(paths: uploads, config: app.config)
        app.tasks.bump()
        return jsonOK(["builds": .array(ids.map { .int($0) })])
    }

    /// Deletes builds of one project after every check passed (errors aggregated as upstream does), and queues
    /// one backend action that removes their result directories. Returns the stored uploads to remove after commit.
    static func deleteBuilds(_ c: PGConnection, user: User, ids: [Int]) throws -> [String] {
        let rows = try BuildStore.lockForDeletion(c, ids: ids)
        var errors: [String] = []
        let found = Set(rows.map(\.id))
        let missing = ids.filter { !found.contains($0) }
        if !missing.isEmpty {
            errors.append("Build(s) \(missing.map(String.init).joined(separator: ", ")) don't exist")
        }
        let projectIDs = Set(rows.map(\.projectID))
        if projectIDs.count > 1 { errors.append("Can not delete builds from more project") }
        let running = rows.filter { !$0.state.isFinal }.map(\.id)
        if !running.isEmpty {
            errors.append("Build(s) \(running.map(String.init).joined(separator: ", ")) are still running")
        }
        if let pid = projectIDs.first, projectIDs.count == 1, let project = try Projects.find(c, id: pid) {
            if try !Permissions.canEdit(c, user: user, project: project) {
                errors.append(
                    "You don't have permissions to delete build(s) \(rows.map { String($0.id) }.joined(separator: ", "))"
                )
            } else if project.persistent {
                errors.append("Cannot delete build(s) of a persistent project")
            }
        }
        if !errors.isEmpty {
            let status = missing.count == ids.count ? 404 : 400
            throw APIError(status, errors.joined(separator: "\n"))
        }
        return try BuildStore.delete(c, rows)
    }

    // MARK: Stored uploads (builders fetch the SRPM here until DistGitProxy exists)

    static func downloadUpload(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let dir = ctx.param("dir")
        let file = ctx.param("file")
        guard FieldRules.isPathComponent(dir), FieldRules.isPathComponent(file) else {
            throw APIError.notFound("No such file")
        }
        let path = "\(app.config.uploadDir)/\(dir)/\(file)"
        guard let data = FileManager.default.contents(atPath: path) else { throw APIError.notFound("No such file") }
        return HTTPResponse(status: 200, headers: ["Content-Type": "application/x-rpm"], body: [UInt8](data))
    }
}
