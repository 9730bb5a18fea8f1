import KoperJSON
import KoperStore
import LibCrypto
import Postgres

/// Frontend-level wrappers over the store (decision 0009): they run on a pooled connection inside a route's
/// closure, turn a missing record into 404 and a refused check into 401/403, and render records as API v3 JSON.

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

    /// Upstream's *raise_if_cant_delete*: site admin, owner of a personal project, or current member of the owning
    /// group. An approved project admin may edit a project but not delete it.
    static func canDelete(_ c: PGConnection, user: User, project: ProjectRecord) throws -> Bool {
        if user.isAdmin || project.ownerUserID == user.id { return true }
        guard project.ownerGroupID != nil else { return false }
        return try PermissionStore.access(
            c,
            projectID: project.id,
            ownerGroupID: project.ownerGroupID,
            userID: user.id
        ).isOwnerGroupMember
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
