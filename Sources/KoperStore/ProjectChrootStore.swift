public import Postgres

/// One chroot of a project, with its per-chroot build settings.
public struct ProjectChrootRecord: PGRecord, Equatable {
    public let mockChrootID: Int
    /// The mock chroot's name (`fedora-41-x86_64`).
    public let name: String
    /// Space-separated package names.
    public let additionalPackages: String
    public let additionalRepos: [String]
    /// Comma-separated module specs.
    public let additionalModules: String
    /// Space-separated `--with` options.
    public let withOpts: String
    /// Space-separated `--without` options.
    public let withoutOpts: String
    public let isolation: String?
    public let bootstrap: String?
    public let bootstrapImage: String?
    public let deleteComps: Bool

    public init(row: PGRow) throws {
        self.mockChrootID = try row.decode("mock_chroot_id")
        self.name = try row.decode("name")
        self.additionalPackages = try row.decode("additional_packages", as: String?.self) ?? ""
        self.additionalRepos = try row.decode("additional_repos")
        self.additionalModules = try row.decode("additional_modules", as: String?.self) ?? ""
        self.withOpts = try row.decode("with_opts", as: String?.self) ?? ""
        self.withoutOpts = try row.decode("without_opts", as: String?.self) ?? ""
        self.isolation = try row.decode("isolation")
        self.bootstrap = try row.decode("bootstrap")
        self.bootstrapImage = try row.decode("bootstrap_image")
        self.deleteComps = try row.decode("delete_comps")
    }
}

/// The editable settings of a project chroot. `nil` means "leave as is"; for the columns that may be NULL,
/// `.some(nil)` clears the value.
public struct ProjectChrootSettings: Sendable, Equatable {
    /// Space-separated.
    public var additionalPackages: String?
    public var additionalRepos: [String]?
    /// Comma-separated.
    public var additionalModules: String?
    /// Space-separated.
    public var withOpts: String?
    /// Space-separated.
    public var withoutOpts: String?
    public var isolation: String?
    public var bootstrap: String??
    public var bootstrapImage: String??
    public var deleteComps: Bool?

    public init() {}

    /// Whether no setting is to change.
    public var isEmpty: Bool { self.assignments.isEmpty }

    var assignments: [PGQuery] {
        var sets: [PGQuery] = []
        if let v = self.additionalPackages { sets.append("additional_packages = \(v)") }
        if let v = self.additionalRepos { sets.append("additional_repos = \(v)") }
        if let v = self.additionalModules { sets.append("additional_modules = \(v)") }
        if let v = self.withOpts { sets.append("with_opts = \(v)") }
        if let v = self.withoutOpts { sets.append("without_opts = \(v)") }
        if let v = self.isolation { sets.append("isolation = \(v)") }
        if let v = self.bootstrap { sets.append("bootstrap = \(v)") }
        if let v = self.bootstrapImage { sets.append("bootstrap_image = \(v)") }
        if let v = self.deleteComps { sets.append("delete_comps = \(v)") }
        return sets
    }
}

/// Project chroots and their settings: all of their SQL.
public enum ProjectChrootStore {
    /// The project's chroot of this mock chroot name (active or not).
    public static func find(_ c: PGConnection, projectID: Int, chroot: String) throws -> ProjectChrootRecord? {
        try c.one(
            """
            SELECT pc.mock_chroot_id, mc.name, pc.additional_packages, pc.additional_repos, pc.additional_modules, pc.with_opts,
                   pc.without_opts, pc.isolation, pc.bootstrap, pc.bootstrap_image, pc.delete_comps
            FROM project_chroots pc JOIN mock_chroots mc ON mc.id = pc.mock_chroot_id
            WHERE pc.project_id = \(projectID) AND mc.name = \(chroot)
            """
        )
    }

    /// Changes the settings that are set in `settings` (nothing if it is empty).
    public static func update(
        _ c: PGConnection,
        projectID: Int,
        mockChrootID: Int,
        settings: ProjectChrootSettings
    ) throws {
        let sets = settings.assignments
        guard !sets.isEmpty else { return }
        try c.execute(
            "UPDATE project_chroots SET \(sets.joined(separator: ", ")) WHERE project_id = \(projectID) AND mock_chroot_id = \(mockChrootID)"
        )
    }
}
