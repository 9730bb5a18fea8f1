import HTTPCore
import KoperJSON
import KoperStore
import Postgres

/// Per-project builder/admin roles: request → approve (copr-api-behaviour.md §1 4.4 and §2).
enum PermissionAPI {
    static func get(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let json = try await app.db.withConnection { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(
                c,
                user: user,
                project: project,
                message: "Only owners and admins may see permissions of \(project.fullName)."
            )
            let records = try PermissionStore.list(c, projectID: project.id)
            guard !records.isEmpty else { throw APIError.notFound("No permissions set on \(project.fullName) project") }
            var perms = JSONObject()
            for record in records {
                perms[record.userName] = [
                    "admin": .string(Permissions.name(record.levels.admin)),
                    "builder": .string(Permissions.name(record.levels.builder)),
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
            try Permissions.requireEdit(
                c,
                user: user,
                project: project,
                message: "Only owners and admins may change permissions of \(project.fullName)."
            )
            guard !body.pairs.isEmpty else { throw APIError.badRequest("no permission change requested") }
            var updated: [String] = []
            for (who, change) in body.pairs {
                guard let target = try UserStore.find(c, name: who) else {
                    throw APIError.badRequest("user '\(who)' doesn't exist in database")
                }
                if project.ownerUserID == target.id {
                    throw APIError.badRequest("user '\(who)' is owner of the '\(project.fullName)' project")
                }
                guard let o = change.objectValue else {
                    throw APIError.badRequest("invalid permission request for '\(who)'")
                }
                var current = try PermissionStore.levels(c, projectID: project.id, userID: target.id)
                let before = current
                for (role, value) in o.pairs {
                    guard let s = value.stringValue, let l = Permissions.level(s) else {
                        throw APIError.badRequest("invalid permission value for '\(who)': \(role)")
                    }
                    switch role {
                    case "builder": current.builder = l
                    case "admin": current.admin = l
                    default: throw APIError.badRequest("invalid permission '\(role)'")
                    }
                }
                if current != before {
                    try PermissionStore.set(c, projectID: project.id, userID: target.id, levels: current)
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
            if project.ownerUserID == user.id {
                throw APIError.badRequest("user '\(user.name)' is owner of the '\(project.fullName)' project")
            }
            var current = try PermissionStore.levels(c, projectID: project.id, userID: user.id)
            let before = current
            // Asking for a role moves it to `request` (unless already approved); withdrawing drops it to nothing.
            if let b = requested["builder"] {
                current.builder = b ? max(current.builder, PermissionLevels.request) : PermissionLevels.nothing
            }
            if let a = requested["admin"] {
                current.admin = a ? max(current.admin, PermissionLevels.request) : PermissionLevels.nothing
            }
            guard current != before else { return ["updated": false] }
            try PermissionStore.set(c, projectID: project.id, userID: user.id, levels: current)
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
            guard let user = try UserStore.find(c, name: who) else {
                throw APIError.notFound("User \(who) does not exist.")
            }
            return try Permissions.canBuild(c, user: user, project: project)
        }
        return jsonOK([
            "who": .string(who), "ownername": .string(owner), "projectname": .string(name), "can_build_in": .bool(can),
        ])
    }
}
