public import Postgres

/// One project (a Copr) with every setting API v3 and the pages show, and the names of its active chroots.
public struct ProjectRecord: PGRecord, Equatable {
    public let id: Int
    public let ownername: String
    public let name: String
    /// Exactly one owner is set: a user (`ownername` is the user's name) or a group (`ownername` is `@group`).
    public let ownerUserID: Int?
    public let ownerGroupID: Int?
    public let description: String
    public let instructions: String
    public let homepage: String?
    public let contact: String?
    public let develMode: Bool
    public let persistent: Bool
    public let unlistedOnHP: Bool
    public let autoPrune: Bool
    public let enableNet: Bool
    public let bootstrap: String?
    public let bootstrapImage: String?
    public let isolation: String?
    public let moduleHotfixes: Bool
    public let appstream: Bool
    public let followFedoraBranching: Bool
    public let multilib: Bool
    public let fedoraReview: Bool
    public let repoPriority: Int?
    /// Retention (decision 0006): the newest N succeeded builds per package are kept; nil keeps all.
    public let keepBuilds: Int?
    public let storage: String
    /// When the project is due for deletion, in seconds since the epoch; nil if never.
    public let deleteAfter: Int?
    public let additionalRepos: [String]
    public let runtimeDependencies: [String]
    public let packitForgeProjectsAllowed: [String]
    /// Names of the project's chroots whose mock chroot is active, sorted.
    public let chroots: [String]

    /// `owner/name`.
    public var fullName: String { "\(self.ownername)/\(self.name)" }

    /// The select list for `FROM projects p`: one statement reads the project and its chroot names.
    static let columns: PGQuery = """
        p.id, p.ownername, p.name, p.owner_user_id, p.owner_group_id, p.description, p.instructions, p.homepage, p.contact,
        p.devel_mode, p.persistent, p.unlisted_on_hp, p.auto_prune, p.enable_net, p.bootstrap, p.bootstrap_image, p.isolation,
        p.module_hotfixes, p.appstream, p.follow_fedora_branching, p.multilib, p.fedora_review, p.repo_priority, p.keep_builds,
        p.storage, extract(epoch from p.delete_after)::bigint AS delete_after,
        p.additional_repos, p.runtime_dependencies, p.packit_forge_projects_allowed,
        ARRAY(SELECT mc.name FROM project_chroots pc JOIN mock_chroots mc ON mc.id = pc.mock_chroot_id
              WHERE pc.project_id = p.id AND mc.is_active ORDER BY mc.name) AS chroot_names
        """

    public init(row: PGRow) throws {
        self.id = try row.decode("id")
        self.ownername = try row.decode("ownername")
        self.name = try row.decode("name")
        self.ownerUserID = try row.decode("owner_user_id")
        self.ownerGroupID = try row.decode("owner_group_id")
        self.description = try row.decode("description", as: String?.self) ?? ""
        self.instructions = try row.decode("instructions", as: String?.self) ?? ""
        self.homepage = try row.decode("homepage")
        self.contact = try row.decode("contact")
        self.develMode = try row.decode("devel_mode")
        self.persistent = try row.decode("persistent")
        self.unlistedOnHP = try row.decode("unlisted_on_hp")
        self.autoPrune = try row.decode("auto_prune")
        self.enableNet = try row.decode("enable_net")
        self.bootstrap = try row.decode("bootstrap")
        self.bootstrapImage = try row.decode("bootstrap_image")
        self.isolation = try row.decode("isolation")
        self.moduleHotfixes = try row.decode("module_hotfixes")
        self.appstream = try row.decode("appstream")
        self.followFedoraBranching = try row.decode("follow_fedora_branching")
        self.multilib = try row.decode("multilib")
        self.fedoraReview = try row.decode("fedora_review")
        self.repoPriority = try row.decode("repo_priority")
        self.keepBuilds = try row.decode("keep_builds")
        self.storage = try row.decode("storage", as: String?.self) ?? "backend"
        self.deleteAfter = try row.decode("delete_after")
        self.additionalRepos = try row.decode("additional_repos")
        self.runtimeDependencies = try row.decode("runtime_dependencies")
        self.packitForgeProjectsAllowed = try row.decode("packit_forge_projects_allowed")
        self.chroots = try row.decode("chroot_names")
    }
}
