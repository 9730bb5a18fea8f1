import HTTPCore
import KoperJSON
import Postgres

/// Per-project builder/admin roles: request → approve (copr-api-behaviour.md §1 4.4 and §2).
enum PermissionAPI {
    static func level(_ s: String) -> Int? {
        switch s {
        case "nothing": return 0
        case "request": return 1
        case "approved": return 2
        default: return nil
        }
    }

    static func get(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let json = try await app.db.withConnection { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project, message: "Only owners and admins may see permissions of \(project.fullName).")
            let rows = try c.query(
                "SELECT u.name, pe.builder, pe.admin FROM permissions pe JOIN users u ON u.id = pe.user_id WHERE pe.project_id = \(project.id) AND (pe.builder > 0 OR pe.admin > 0) ORDER BY u.name"
            ).rows
            guard !rows.isEmpty else { throw APIError.notFound("No permissions set on \(project.fullName) project") }
            var perms = JSONObject()
            for row in rows {
                perms[try row.string("name")] = [
                    "admin": .string(Permissions.name(try row.int("admin"))),
                    "builder": .string(Permissions.name(try row.int("builder"))),
                ]
            }
            return ["permissions": .object(perms)]
        }
        return jsonOK(json)
    }

    static func set(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let body = try ctx.jsonBody()
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project, message: "Only owners and admins may change permissions of \(project.fullName).")
            guard !body.pairs.isEmpty else { throw APIError.badRequest("no permission change requested") }
            var updated: [String] = []
            for (who, change) in body.pairs {
                guard let target = try c.query("SELECT id FROM users WHERE name = \(who)").first else {
                    throw APIError.badRequest("user '\(who)' doesn't exist in database")
                }
                let targetID = try target.int("id")
                if project.ownerUserID == targetID { throw APIError.badRequest("user '\(who)' is owner of the '\(project.fullName)' project") }
                guard let o = change.objectValue else { throw APIError.badRequest("invalid permission request for '\(who)'") }
                var current = try Permissions.levels(c, project: project, userID: targetID)
                let before = current
                for (role, value) in o.pairs {
                    guard let s = value.stringValue, let l = level(s) else { throw APIError.badRequest("invalid permission value for '\(who)': \(role)") }
                    switch role {
                    case "builder": current.builder = l
                    case "admin": current.admin = l
                    default: throw APIError.badRequest("invalid permission '\(role)'")
                    }
                }
                if current != before {
                    try c.execute(
                        """
                        INSERT INTO permissions (project_id, user_id, builder, admin) VALUES (\(project.id), \(targetID), \(current.builder), \(current.admin))
                        ON CONFLICT (project_id, user_id) DO UPDATE SET builder = \(current.builder), admin = \(current.admin)
                        """
                    )
                    updated.append(who)
                }
            }
            return ["updated": JSON(updated)]
        }
        return jsonOK(json)
    }

    static func request(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let body = try ctx.jsonBody()
        var wanted: [String: Bool] = [:]
        for (k, v) in body.pairs {
            guard k == "admin" || k == "builder" else { throw APIError.badRequest("invalid permission '\(k)'") }
            guard let b = v.boolValue else { throw APIError.badRequest("invalid '\(k)' permission request") }
            wanted[k] = b
        }
        guard !wanted.isEmpty else { throw APIError.badRequest("no permission requested") }
        let requested = wanted
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            if project.ownerUserID == user.id { throw APIError.badRequest("user '\(user.name)' is owner of the '\(project.fullName)' project") }
            var current = try Permissions.levels(c, project: project, userID: user.id)
            let before = current
            // Asking for a role moves it to `request` (unless already approved); withdrawing drops it to nothing.
            if let b = requested["builder"] { current.builder = b ? max(current.builder, Permissions.request) : Permissions.nothing }
            if let a = requested["admin"] { current.admin = a ? max(current.admin, Permissions.request) : Permissions.nothing }
            guard current != before else { return ["updated": false] }
            try c.execute(
                """
                INSERT INTO permissions (project_id, user_id, builder, admin) VALUES (\(project.id), \(user.id), \(current.builder), \(current.admin))
                ON CONFLICT (project_id, user_id) DO UPDATE SET builder = \(current.builder), admin = \(current.admin)
                """
            )
            return ["updated": true]
        }
        return jsonOK(json)
    }

    static func canBuildIn(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let who = ctx.param("who")
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let can = try await app.db.withConnection { c -> Bool in
            let project = try Projects.require(c, owner: owner, name: name)
            guard let u = try c.query("SELECT id, name, is_admin FROM users WHERE name = \(who)").first else {
                throw APIError.notFound("User \(who) does not exist.")
            }
            let user = User(id: try u.int("id"), name: try u.string("name"), isAdmin: try u.bool("is_admin"))
            return try Permissions.canBuild(c, user: user, project: project)
        }
        return jsonOK(["who": .string(who), "ownername": .string(owner), "projectname": .string(name), "can_build_in": .bool(can)])
    }
}

enum ChrootAPI {
    static let resettable = ["additional_packages", "additional_repos", "additional_modules", "with_opts", "without_opts", "isolation", "bootstrap", "bootstrap_image", "delete_comps"]

    static func row(_ c: PGConnection, project: Project, chroot: String) throws -> PGRow {
        guard let row = try c.query(
            """
            SELECT mc.name, pc.additional_packages, array_to_json(pc.additional_repos)::text AS additional_repos, pc.additional_modules,
                   pc.with_opts, pc.without_opts, pc.isolation, pc.bootstrap, pc.bootstrap_image, pc.delete_comps, pc.mock_chroot_id
            FROM project_chroots pc JOIN mock_chroots mc ON mc.id = pc.mock_chroot_id WHERE pc.project_id = \(project.id) AND mc.name = \(chroot)
            """
        ).first else {
            throw APIError.notFound("Chroot \(chroot) does not exist in \(project.fullName)")
        }
        return row
    }

    static func render(_ row: PGRow, project: Project) throws -> JSON {
        func split(_ s: String?) -> JSON { JSON((s ?? "").split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)) }
        return [
            "mock_chroot": .string(try row.string("name")),
            "ownername": .string(project.ownername),
            "projectname": .string(project.name),
            "comps_name": .null,
            "additional_packages": split(row.optionalString("additional_packages")),
            "additional_repos": JSON(Projects.jsonList(row.optionalString("additional_repos"))),
            "additional_modules": split(row.optionalString("additional_modules")),
            "with_opts": split(row.optionalString("with_opts")),
            "without_opts": split(row.optionalString("without_opts")),
            "isolation": JSON(row.optionalString("isolation")),
            "bootstrap": JSON(row.optionalString("bootstrap")),
            "bootstrap_image": JSON(row.optionalString("bootstrap_image")),
            "delete_comps": .bool(row["delete_comps"] == "t"),
        ]
    }

    static func get(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), let name = ctx.q("projectname"), let chroot = ctx.q("chrootname") else {
            throw APIError.badRequest("Missing argument ownername, projectname or chrootname")
        }
        let json = try await app.db.withConnection { c -> JSON in
            let project = try Projects.require(c, owner: owner, name: name)
            return try render(try row(c, project: project, chroot: chroot), project: project)
        }
        return jsonOK(json)
    }

    /// Accepts JSON, or multipart with a `json` part (copr-cli edit-chroot) — an `upload_comps` part is refused clearly.
    static func body(_ ctx: RequestContext) async throws -> JSONObject {
        switch ctx.request.body {
        case .file(let path, _):
            guard let ct = ctx.head.headers["Content-Type"], let boundary = MultipartParser.boundary(fromContentType: ct) else {
                let data = try await runBlocking { try readFile(path, limit: 1 << 20) }
                guard case .object(let o) = (try? JSONParser.parse(data)) ?? .null else { throw APIError.badRequest("Request body must be a JSON object") }
                return o
            }
            let parts = try await runBlocking { try readMultipart(path, boundary: boundary) }
            if parts["upload_comps"] != nil { throw APIError.badRequest("upload_comps: comps files are not supported by this Koper version") }
            guard let data = parts["json"] else { return JSONObject() }
            guard case .object(let o) = (try? JSONParser.parse(data)) ?? .null else { throw APIError.badRequest("The 'json' part must be a JSON object") }
            return o
        default:
            return try ctx.jsonBody()
        }
    }

    static func edit(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let chroot = ctx.param("chroot")
        let o = try await body(ctx)
        var sets: [PGQuery] = []
        func add(_ col: PGQuery, _ v: String) {
            sets.append(col + " = \(v)")
        }
        if let v = try optionalStringList(o["additional_packages"], field: "additional_packages") { add("additional_packages", v.joined(separator: " ")) }
        if let v = try optionalStringList(o["additional_repos"], field: "additional_repos") { sets.append("additional_repos = \(v)") }
        if let m = o["additional_modules"], !m.isNull {
            if let s = m.stringValue {
                add("additional_modules", s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ","))
            } else if let a = try optionalStringList(m, field: "additional_modules"), !a.isEmpty {
                add("additional_modules", a.joined(separator: ","))
            }
        }
        if let v = try optionalStringList(o["with_opts"], field: "with_opts") { add("with_opts", v.joined(separator: " ")) }
        if let v = try optionalStringList(o["without_opts"], field: "without_opts") { add("without_opts", v.joined(separator: " ")) }
        if let v = o["isolation"]?.stringValue {
            guard ["default", "unchanged", "nspawn", "simple"].contains(v) else { throw APIError.badRequest("isolation: Not a valid choice") }
            add("isolation", v)
        }
        if let v = o["bootstrap"]?.stringValue {
            guard ["default", "unchanged", "on", "off", "image"].contains(v) else { throw APIError.badRequest("bootstrap: Not a valid choice") }
            add("bootstrap", v)
        }
        if let v = o["bootstrap_image"]?.stringValue { add("bootstrap_image", v) }
        if let v = try optionalBool(o["delete_comps"], field: "delete_comps") { sets.append("delete_comps = \(v)") }
        for field in try optionalStringList(o["reset_fields"], field: "reset_fields") ?? [] {
            guard resettable.contains(field) else {
                throw APIError.badRequest("Trying to reset an invalid attribute: \(field)\nSee `copr-cli get-chroot \(owner)/\(name)/\(chroot)' for all the possible attributes")
            }
            switch field {
            case "additional_repos": sets.append("additional_repos = '{}'")
            case "isolation": sets.append("isolation = 'unchanged'")
            case "bootstrap": sets.append("bootstrap = NULL")
            case "bootstrap_image": sets.append("bootstrap_image = NULL")
            case "delete_comps": sets.append("delete_comps = false")
            case "additional_packages": sets.append("additional_packages = ''")
            case "additional_modules": sets.append("additional_modules = ''")
            case "with_opts": sets.append("with_opts = ''")
            case "without_opts": sets.append("without_opts = ''")
            default: throw APIError.badRequest("Trying to reset an invalid attribute: \(field)")
            }
        }
        let json = try await app.db.transaction { [sets] c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project)
            let existing = try row(c, project: project, chroot: chroot)
            if !sets.isEmpty {
                let mockChrootID: Int = try existing.decode("mock_chroot_id")
                try c.execute(
                    "UPDATE project_chroots SET \(sets.joined(separator: ", ")) WHERE project_id = \(project.id) AND mock_chroot_id = \(mockChrootID)"
                )
            }
            return try render(try row(c, project: project, chroot: chroot), project: project)
        }
        return jsonOK(json)
    }

    static func readFile(_ path: String, limit: Int) throws -> [UInt8] {
        guard let h = FileHandle(forReadingAtPath: path) else { throw APIError(500, "Cannot read the request body") }
        defer { try? h.close() }
        let data = try h.read(upToCount: limit + 1) ?? Data()
        guard data.count <= limit else { throw APIError(413, "Request body too large") }
        return [UInt8](data)
    }

    static func readMultipart(_ path: String, boundary: String) throws -> [String: [UInt8]] {
        let bytes = try readFile(path, limit: 4 << 20)
        var parser = MultipartParser(boundary: boundary, maxParts: 8)
        var parts: [String: [UInt8]] = [:]
        var current: String? = nil
        do {
            for e in try parser.feed(bytes[...]) {
                switch e {
                case .partBegin(let h):
                    current = h.name
                    if let n = h.name { parts[n] = [] }
                case .partData(let d): if let n = current { parts[n]!.append(contentsOf: d) }
                case .partEnd: current = nil
                }
            }
            try parser.finish()
        } catch {
            throw APIError.badRequest("Malformed multipart body: \(error.message)")
        }
        return parts
    }
}

import Foundation
