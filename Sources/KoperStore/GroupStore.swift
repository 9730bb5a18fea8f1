public import Postgres

/// A Copr group (the owner of `@name` projects).
public struct GroupRecord: PGRecord, Equatable {
    public let id: Int
    public let name: String
    /// The group's name in the identity provider.
    public let fasName: String

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.name = try row.decode("name")
        self.fasName = try row.decode("fas_name")
    }
}

/// Groups and their members: all of their SQL.
public enum GroupStore {
    /// The group by its name (without the `@`).
    public static func find(_ c: PGConnection, name: String) throws -> GroupRecord? {
        try c.one("SELECT id, name, fas_name FROM copr_groups WHERE name = \(name)")
    }

    /// Creates a group; false if the name is taken.
    @discardableResult
    public static func create(_ c: PGConnection, name: String, fasName: String) throws -> Bool {
        try c.execute(
            "INSERT INTO copr_groups (name, fas_name) VALUES (\(name), \(fasName)) ON CONFLICT (name) DO NOTHING"
        ) > 0
    }

    public static func isMember(_ c: PGConnection, groupID: Int, userID: Int) throws -> Bool {
        try c.exists("SELECT 1 FROM group_members WHERE group_id = \(groupID) AND user_id = \(userID)")
    }

    /// Adds a user to a group, both by name; false if either does not exist or the user is a member already.
    public static func addMember(_ c: PGConnection, group: String, user: String) throws -> Bool {
        try c.execute(
            """
            INSERT INTO group_members (group_id, user_id) SELECT g.id, u.id FROM copr_groups g, users u
            WHERE g.name = \(group) AND u.name = \(user) ON CONFLICT DO NOTHING
            """
        ) > 0
    }

    /// Removes a user from a group, both by name; false if the user was not a member.
    public static func removeMember(_ c: PGConnection, group: String, user: String) throws -> Bool {
        try c.execute(
            """
            DELETE FROM group_members WHERE group_id = (SELECT id FROM copr_groups WHERE name = \(group))
              AND user_id = (SELECT id FROM users WHERE name = \(user))
            """
        ) > 0
    }
}
