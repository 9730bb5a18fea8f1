import KoperJSON
import KoperStore
import LibCrypto
import Postgres

/// Frontend-level wrappers over the store (decision 0009): they run on a pooled connection inside a route's
/// closure, turn a missing record into 404 and a refused check into 401/403, and render records as API v3 JSON.

/// A user as permission checks see it.
typealias User = UserRecord

enum Auth {
    static func unauthorized(_ ctx: RequestContext) -> APIError {
        APIError(401, "Login invalid/expired. Please visit \(ctx.publicBase)/api to get or renew your API token.")
    }

    static func tokenHash(_ token: String) -> String { Crypto.sha256Hex(Array(token.utf8)) }

    /// The user behind HTTP Basic `api_login:api_token`, or 401. Tokens are stored as SHA-256 and compared in
    /// constant time; an expired token is refused like a wrong one.
    static func requireUser(_ c: PGConnection, _ ctx: RequestContext) throws -> User {
        guard let cred = ctx.credentials, !cred.login.isEmpty, !cred.password.isEmpty else { throw unauthorized(ctx) }
        guard let login = try UserStore.find(c, apiLogin: cred.login), let stored = login.tokenSHA256 else {
            throw unauthorized(ctx)
        }
        let presented = tokenHash(cred.password)
        guard Crypto.constantTimeEquals(Array(stored.utf8), Array(presented.utf8)), !login.isExpired else {
            throw unauthorized(ctx)
        }
        return login.user
    }

    /// Mints a new API login + token for a user (30 random lowercase letters, as upstream) and stores the hash.
    static func mintToken(
        _ c: PGConnection,
        userID: Int,
        days: Int
    ) throws -> (login: String, token: String, expiration: String) {
        let login = try Crypto.randomString(length: 20)
        let token = try Crypto.randomString(length: 30)
        guard
            let expiration = try UserStore.storeToken(
                c,
                userID: userID,
                login: login,
                tokenSHA256: tokenHash(token),
                days: days
            )
        else { throw APIError.notFound("User does not exist") }
        return (login, token, expiration)
    }
}

enum Projects {
    static func require(_ c: PGConnection, owner: String, name: String) throws -> ProjectRecord {
        guard let p = try ProjectStore.find(c, owner: owner, name: name) else {
            throw APIError.notFound("Project \(owner)/\(name) does not exist.")
        }
        return p
    }

    static func find(_ c: PGConnection, owner: String, name: String) throws -> ProjectRecord? {
        try ProjectStore.find(c, owner: owner, name: name)
    }

    static func find(_ c: PGConnection, id: Int) throws -> ProjectRecord? {
        try ProjectStore.find(c, id: id)
    }

    static func json(_ p: ProjectRecord, resultsBase: String) -> JSON {
        var chrootRepos = JSONObject()
        for ch in p.chroots {
            chrootRepos[ch] = .string("\(resultsBase)/\(p.ownername)/\(p.name)/\(ch)/")
        }
        var deleteAfterDays: JSON = .null
        if let d = p.deleteAfter {
            // Whole days left, rounded to the nearest day (the stored instant and our clock differ by < 1 s).
            deleteAfterDays = .int(max(0, Int((Double(d - Int(nowEpoch())) / 86_400).rounded())))
        }
        let o: JSONObject = [
            "id": .int(p.id),
            "name": .string(p.name),
            "projectname": .string(p.name),
            "ownername": .string(p.ownername),
            "full_name": .string(p.fullName),
            "description": .string(p.description),
            "instructions": .string(p.instructions),
            "homepage": JSON(p.homepage),
            "contact": JSON(p.contact),
            "devel_mode": .bool(p.develMode),
            "persistent": .bool(p.persistent),
            "unlisted_on_hp": .bool(p.unlistedOnHP),
            "auto_prune": .bool(p.autoPrune),
            "enable_net": .bool(p.enableNet),
            "bootstrap": JSON(p.bootstrap),
            "bootstrap_image": JSON(p.bootstrapImage),
            "isolation": JSON(p.isolation),
            "module_hotfixes": .bool(p.moduleHotfixes),
            "appstream": .bool(p.appstream),
            "follow_fedora_branching": .bool(p.followFedoraBranching),
            "multilib": .bool(p.multilib),
            "fedora_review": .bool(p.fedoraReview),
            "repo_priority": JSON(p.repoPriority),
            "delete_after_days": deleteAfterDays,
            "keep_builds": JSON(p.keepBuilds),
            "additional_repos": JSON(p.additionalRepos),
            "runtime_dependencies": JSON(p.runtimeDependencies),
            "packit_forge_projects_allowed": JSON(p.packitForgeProjectsAllowed),
            "storage": .string(p.storage),
            "chroot_repos": .object(chrootRepos),
        ]
        return .object(o)
    }
}

enum Permissions {
    static func name(_ level: Int) -> String {
        switch level {
        case PermissionLevels.approved: return "approved"
        case PermissionLevels.request: return "request"
        default: return "nothing"
        }
    }

    /// The value of a role in a request body (`nothing`, `request`, `approved`).
    static func level(_ s: String) -> Int? {
        switch s {
        case "nothing": return PermissionLevels.nothing
        case "request": return PermissionLevels.request
        case "approved": return PermissionLevels.approved
        default: return nil
        }
    }

    /// Upstream's *can_edit*: site admin, owner of a personal project, current group member, or approved project admin.
    static func canEdit(_ c: PGConnection, user: User, project: ProjectRecord) throws -> Bool {
        if user.isAdmin || project.ownerUserID == user.id { return true }
        let access = try PermissionStore.access(
            c,
            projectID: project.id,
            ownerGroupID: project.ownerGroupID,
            userID: user.id
        )
        return access.isOwnerGroupMember || access.levels.admin == PermissionLevels.approved
    }

    /// Upstream's *can_build_in*: can_edit, or approved builder.
    static func canBuild(_ c: PGConnection, user: User, project: ProjectRecord) throws -> Bool {
        if user.isAdmin || project.ownerUserID == user.id { return true }
        let access = try PermissionStore.access(
            c,
            projectID: project.id,
            ownerGroupID: project.ownerGroupID,
            userID: user.id
        )
        return access.isOwnerGroupMember || access.levels.admin == PermissionLevels.approved
            || access.levels.builder == PermissionLevels.approved
    }

    static func requireEdit(
        _ c: PGConnection,
        user: User,
        project: ProjectRecord,
        message: String = "Only owners and admins may update their projects."
    ) throws {
        guard try canEdit(c, user: user, project: project) else { throw APIError.forbidden(message) }
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
