public import Postgres

/// A mock chroot a project can build in (`fedora-41-x86_64`).
public struct MockChrootRecord: PGRecord, Equatable {
    public let id: Int
    public let name: String
    public let os: String
    public let version: String
    public let arch: String
    public let comment: String
    public let isActive: Bool

    static let columns: PGQuery = "id, name, os, version, arch, comment, is_active"

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.name = try row.decode("name")
        self.os = try row.decode("os")
        self.version = try row.decode("version")
        self.arch = try row.decode("arch")
        self.comment = try row.decode("comment", as: String?.self) ?? ""
        self.isActive = try row.decode("is_active")
    }
}

/// Mock chroots: all of their SQL.
public enum MockChrootStore {
    /// The active mock chroots, by name.
    public static func active(_ c: PGConnection) throws -> [MockChrootRecord] {
        try c.all("SELECT \(MockChrootRecord.columns) FROM mock_chroots WHERE is_active ORDER BY name")
    }

    /// Every mock chroot, active or not, by name.
    public static func all(_ c: PGConnection) throws -> [MockChrootRecord] {
        try c.all("SELECT \(MockChrootRecord.columns) FROM mock_chroots ORDER BY name")
    }

    /// Adds a mock chroot, or updates its arch and comment and activates it if it exists.
    public static func upsert(
        _ c: PGConnection,
        name: String,
        os: String,
        version: String,
        arch: String,
        comment: String
    ) throws {
        try c.execute(
            """
            INSERT INTO mock_chroots (name, os, version, arch, comment, is_active) VALUES (\(name), \(os), \(version), \(arch), \(comment), true)
            ON CONFLICT (name) DO UPDATE SET arch = EXCLUDED.arch, comment = EXCLUDED.comment, is_active = true
            """
        )
    }

    /// Activates or deactivates a mock chroot; false if there is no such chroot.
    public static func setActive(_ c: PGConnection, name: String, active: Bool) throws -> Bool {
        try c.execute("UPDATE mock_chroots SET is_active = \(active) WHERE name = \(name)") > 0
    }
}
