public import Postgres

/// A user's roles in one project: each is `nothing` (0), `request` (1) or `approved` (2).
public struct PermissionLevels: Sendable, Equatable {
    public static let nothing = 0
    public static let request = 1
    public static let approved = 2

    public var builder: Int
    public var admin: Int

    public init(builder: Int = PermissionLevels.nothing, admin: Int = PermissionLevels.nothing) {
        self.builder = builder
        self.admin = admin
    }
}

/// One user's roles in a project, with the user's name.
public struct PermissionRecord: PGRecord, Equatable {
    public let userName: String
    public let levels: PermissionLevels

    public init(row: PGRow) throws {
        self.userName = try row.decode("name")
        self.levels = PermissionLevels(builder: try row.decode("builder"), admin: try row.decode("admin"))
    }
}

/// What deciding *can_edit* / *can_build_in* needs beyond the user and the project's owner: group membership and
/// the user's roles in the project.
public struct ProjectAccess: Sendable, Equatable {
    /// Whether the user is a member of the group that owns the project (false for a personal project).
    public let isOwnerGroupMember: Bool
    public let levels: PermissionLevels
}

/// Per-project roles (builder, admin), requests and approvals: all of their SQL.
public enum PermissionStore {
    /// The user's roles in the project; `nothing` for both if none were ever asked for or given.
    public static func levels(_ c: PGConnection, projectID: Int, userID: Int) throws -> PermissionLevels {
        guard
            let row = try c.query(
                "SELECT builder, admin FROM permissions WHERE project_id = \(projectID) AND user_id = \(userID)"
            ).first
        else { return PermissionLevels() }
        return PermissionLevels(builder: try row.decode("builder"), admin: try row.decode("admin"))
    }

    /// Group membership and roles in one statement.
    public static func access(
        _ c: PGConnection,
        projectID: Int,
        ownerGroupID: Int?,
        userID: Int
    ) throws -> ProjectAccess {
        guard
            let row = try c.query(
                """
                SELECT EXISTS (SELECT 1 FROM group_members WHERE group_id = \(ownerGroupID) AND user_id = \(userID)) AS member,
                       coalesce(pe.builder, 0) AS builder, coalesce(pe.admin, 0) AS admin
                FROM (SELECT 1) one
                LEFT JOIN permissions pe ON pe.project_id = \(projectID) AND pe.user_id = \(userID)
                """
            ).first
        else { return ProjectAccess(isOwnerGroupMember: false, levels: PermissionLevels()) }
        return ProjectAccess(
            isOwnerGroupMember: try row.decode("member"),
            levels: PermissionLevels(builder: try row.decode("builder"), admin: try row.decode("admin"))
        )
    }

    /// The users with any role in the project, by name.
    public static func list(_ c: PGConnection, projectID: Int) throws -> [PermissionRecord] {
        try c.all(
            """
            SELECT u.name, pe.builder, pe.admin FROM permissions pe JOIN users u ON u.id = pe.user_id
            WHERE pe.project_id = \(projectID) AND (pe.builder > 0 OR pe.admin > 0) ORDER BY u.name
            """
        )
    }

    /// Stores the user's roles in the project (a request, a withdrawal or an approval).
    public static func set(_ c: PGConnection, projectID: Int, userID: Int, levels: PermissionLevels) throws {
        try c.execute(
            """
            INSERT INTO permissions (project_id, user_id, builder, admin)
            VALUES (\(projectID), \(userID), \(Int32(clamping: levels.builder)), \(Int32(clamping: levels.admin)))
            ON CONFLICT (project_id, user_id) DO UPDATE SET builder = EXCLUDED.builder, admin = EXCLUDED.admin
            """
        )
    }
}
