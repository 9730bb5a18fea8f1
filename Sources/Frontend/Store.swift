import CoprModel
import KoperJSON
import LibCrypto
import Postgres

/// Rows and SQL used by several routes. Every function runs on a pooled connection inside a route's closure.

struct User: Sendable {
    let id: Int
    let name: String
    let isAdmin: Bool
}

enum Auth {
    static func unauthorized(_ ctx: RequestContext) -> APIError {
        APIError(401, "Login invalid/expired. Please visit \(ctx.publicBase)/api to get or renew your API token.")
    }

    static func tokenHash(_ token: String) -> String { Crypto.sha256Hex(Array(token.utf8)) }

    /// The user behind HTTP Basic `api_login:api_token`, or 401. Tokens are stored as SHA-256 and compared in
    /// constant time; an expired token is refused like a wrong one.
    static func requireUser(_ c: PGConnection, _ ctx: RequestContext) throws -> User {
        guard let cred = ctx.credentials, !cred.login.isEmpty, !cred.password.isEmpty else { throw unauthorized(ctx) }
        let r = try c.query(
            "SELECT id, name, is_admin, api_token_sha256, (api_token_expiration IS NULL OR api_token_expiration < current_date) AS expired FROM users WHERE api_login = \(cred.login)"
        )
        guard let row = r.first, let stored = row.optionalString("api_token_sha256") else { throw unauthorized(ctx) }
        let presented = tokenHash(cred.password)
        guard Crypto.constantTimeEquals(Array(stored.utf8), Array(presented.utf8)), try !row.bool("expired") else {
            throw unauthorized(ctx)
        }
        return User(id: try row.int("id"), name: try row.string("name"), isAdmin: try row.bool("is_admin"))
    }

    /// Mints a new API login + token for a user (30 random lowercase letters, as upstream) and stores the hash.
    static func mintToken(_ c: PGConnection, userID: Int, days: Int) throws -> (login: String, token: String, expiration: String) {
        let login = try Crypto.randomString(length: 20)
        let token = try Crypto.randomString(length: 30)
        let r = try c.query(
            "UPDATE users SET api_login = \(login), api_token_sha256 = \(tokenHash(token)), api_token_expiration = current_date + \(days)::int WHERE id = \(userID) RETURNING api_token_expiration::text AS exp"
        )
        guard let exp = r.first?.optionalString("exp") else { throw APIError.notFound("User does not exist") }
        return (login, token, exp)
    }
}

struct Project: Sendable {
    let id: Int
    let ownername: String
    let name: String
    let ownerUserID: Int?
    let ownerGroupID: Int?
    let row: PGRow
    /// Names of the project's chroots whose mock chroot is active, sorted.
    let chroots: [String]

    var fullName: String { "\(self.ownername)/\(self.name)" }
    var persistent: Bool { (try? self.row.bool("persistent")) ?? false }
}

enum Projects {
    static let columns: PGQuery = """
        p.id, p.ownername, p.name, p.owner_user_id, p.owner_group_id, p.description, p.instructions, p.homepage, p.contact,
        p.devel_mode, p.persistent, p.unlisted_on_hp, p.auto_prune, p.enable_net, p.bootstrap, p.bootstrap_image, p.isolation,
        p.module_hotfixes, p.appstream, p.follow_fedora_branching, p.multilib, p.fedora_review, p.repo_priority, p.keep_builds, p.storage,
        extract(epoch from p.delete_after)::bigint AS delete_after,
        array_to_json(p.additional_repos)::text AS additional_repos,
        array_to_json(p.runtime_dependencies)::text AS runtime_dependencies,
        array_to_json(p.packit_forge_projects_allowed)::text AS packit_forge_projects_allowed,
        (SELECT coalesce(string_agg(mc.name, ',' ORDER BY mc.name), '') FROM project_chroots pc JOIN mock_chroots mc ON mc.id = pc.mock_chroot_id
           WHERE pc.project_id = p.id AND mc.is_active) AS chroot_names
        """

    static func make(_ row: PGRow) throws -> Project {
        let names = row.optionalString("chroot_names") ?? ""
        return Project(
            id: try row.int("id"),
            ownername: try row.string("ownername"),
            name: try row.string("name"),
            ownerUserID: try row.optionalInt("owner_user_id"),
            ownerGroupID: try row.optionalInt("owner_group_id"),
            row: row,
            chroots: names.isEmpty ? [] : names.split(separator: ",").map(String.init)
        )
    }

    static func find(_ c: PGConnection, owner: String, name: String) throws -> Project? {
        let r = try c.query("SELECT \(columns) FROM projects p WHERE p.ownername = \(owner) AND p.name = \(name)")
        return try r.first.map(make)
    }

    static func find(_ c: PGConnection, id: Int) throws -> Project? {
        let r = try c.query("SELECT \(columns) FROM projects p WHERE p.id = \(id)")
        return try r.first.map(make)
    }

    static func require(_ c: PGConnection, owner: String, name: String) throws -> Project {
        guard let p = try find(c, owner: owner, name: name) else {
            throw APIError.notFound("Project \(owner)/\(name) does not exist.")
        }
        return p
    }

    static func jsonList(_ text: String?) -> [String] {
        guard let text, let v = try? JSONParser.parse(Array(text.utf8)), let a = v.arrayValue else { return [] }
        return a.compactMap(\.stringValue)
    }

    static func json(_ p: Project, resultsBase: String) -> JSON {
        let r = p.row
        var chrootRepos = JSONObject()
        for ch in p.chroots {
            chrootRepos[ch] = .string("\(resultsBase)/\(p.ownername)/\(p.name)/\(ch)/")
        }
        let deleteAfter = try? r.optionalInt("delete_after")
        var deleteAfterDays: JSON = .null
        if let d = deleteAfter ?? nil {
            // Whole days left, rounded to the nearest day (the stored instant and our clock differ by < 1 s).
            deleteAfterDays = .int(max(0, Int((Double(d - Int(nowEpoch())) / 86_400).rounded())))
        }
        let o: JSONObject = [
            "id": .int(p.id),
            "name": .string(p.name),
            "projectname": .string(p.name),
            "ownername": .string(p.ownername),
            "full_name": .string(p.fullName),
            "description": .string(r.optionalString("description") ?? ""),
            "instructions": .string(r.optionalString("instructions") ?? ""),
            "homepage": JSON(r.optionalString("homepage")),
            "contact": JSON(r.optionalString("contact")),
            "devel_mode": .bool(r["devel_mode"] == "t"),
            "persistent": .bool(r["persistent"] == "t"),
            "unlisted_on_hp": .bool(r["unlisted_on_hp"] == "t"),
            "auto_prune": .bool(r["auto_prune"] == "t"),
            "enable_net": .bool(r["enable_net"] == "t"),
            "bootstrap": JSON(r.optionalString("bootstrap")),
            "bootstrap_image": JSON(r.optionalString("bootstrap_image")),
            "isolation": JSON(r.optionalString("isolation")),
            "module_hotfixes": .bool(r["module_hotfixes"] == "t"),
            "appstream": .bool(r["appstream"] == "t"),
            "follow_fedora_branching": .bool(r["follow_fedora_branching"] == "t"),
            "multilib": .bool(r["multilib"] == "t"),
            "fedora_review": .bool(r["fedora_review"] == "t"),
            "repo_priority": JSON((try? r.optionalInt("repo_priority")) ?? nil),
            "delete_after_days": deleteAfterDays,
            "keep_builds": JSON((try? r.optionalInt("keep_builds")) ?? nil),
            "additional_repos": JSON(jsonList(r.optionalString("additional_repos"))),
            "runtime_dependencies": JSON(jsonList(r.optionalString("runtime_dependencies"))),
            "packit_forge_projects_allowed": JSON(jsonList(r.optionalString("packit_forge_projects_allowed"))),
            "storage": .string(r.optionalString("storage") ?? "backend"),
            "chroot_repos": .object(chrootRepos),
        ]
        return .object(o)
    }
}

enum Permissions {
    static let nothing = 0
    static let request = 1
    static let approved = 2

    static func name(_ level: Int) -> String {
        switch level {
        case 2: return "approved"
        case 1: return "request"
        default: return "nothing"
        }
    }

    static func isGroupMember(_ c: PGConnection, userID: Int, groupID: Int) throws -> Bool {
        try c.query("SELECT 1 FROM group_members WHERE group_id = \(groupID) AND user_id = \(userID)").first != nil
    }

    static func levels(_ c: PGConnection, project: Project, userID: Int) throws -> (builder: Int, admin: Int) {
        guard let row = try c.query("SELECT builder, admin FROM permissions WHERE project_id = \(project.id) AND user_id = \(userID)").first
        else { return (0, 0) }
        return (try row.int("builder"), try row.int("admin"))
    }

    /// Upstream's *can_edit*: site admin, owner of a personal project, current group member, or approved project admin.
    static func canEdit(_ c: PGConnection, user: User, project: Project) throws -> Bool {
        if user.isAdmin { return true }
        if let owner = project.ownerUserID, owner == user.id { return true }
        if let g = project.ownerGroupID, try isGroupMember(c, userID: user.id, groupID: g) { return true }
        return try levels(c, project: project, userID: user.id).admin == approved
    }

    /// Upstream's *can_build_in*: can_edit, or approved builder.
    static func canBuild(_ c: PGConnection, user: User, project: Project) throws -> Bool {
        if try canEdit(c, user: user, project: project) { return true }
        return try levels(c, project: project, userID: user.id).builder == approved
    }

    static func requireEdit(_ c: PGConnection, user: User, project: Project, message: String = "Only owners and admins may update their projects.") throws {
        guard try canEdit(c, user: user, project: project) else { throw APIError.forbidden(message) }
    }
}

enum MockChroots {
    /// Active mock chroots: name → (id, comment).
    static func active(_ c: PGConnection) throws -> [(id: Int, name: String, comment: String)] {
        try c.query("SELECT id, name, comment FROM mock_chroots WHERE is_active ORDER BY name").rows.map {
            (try $0.int("id"), try $0.string("name"), $0.optionalString("comment") ?? "")
        }
    }
}

func nowEpoch() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec)
}

#if canImport(Glibc)
import Glibc
#endif
