public import CoprModel
public import KoperJSON

/// Everything a builder needs for one task (docs/internal-api.md, "The task description"). The Frontend encodes
/// it from its store; the Backend decodes it on claim, keeps it in its job file and uploads it next to the build;
/// koper-builder decodes the same type. No credentials are ever in it.
///
/// Decoding fills what an older or hand-written description leaves out with the documented defaults; every value
/// that later lands in a path, a command line, a macro or a generated config is checked by `validate()`.
public struct TaskDescription: Sendable, Equatable, Codable {
    /// One dnf repository of the buildroot (`repos`; the first is the project's own `copr_base`).
    public struct Repo: Sendable, Equatable, Codable {
        public var id: String
        public var name: String
        public var baseURL: String
        public var priority: Int?
        public var moduleHotfixes: Bool?

        public init(id: String, name: String, baseURL: String, priority: Int? = nil, moduleHotfixes: Bool? = nil) {
            self.id = id
            self.name = name
            self.baseURL = baseURL
            self.priority = priority
            self.moduleHotfixes = moduleHotfixes
        }

        enum CodingKeys: String, CodingKey {
            case id, name, priority
            case baseURL = "baseurl"
            case moduleHotfixes = "module_hotfixes"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.id = try c.decode(String.self, forKey: .id)
            self.name = try c.decodeIfPresent(String.self, forKey: .name) ?? self.id
            self.baseURL = try c.decode(String.self, forKey: .baseURL)
            self.priority = try c.decodeIfPresent(Int.self, forKey: .priority)
            self.moduleHotfixes = try c.decodeIfPresent(Bool.self, forKey: .moduleHotfixes)
        }
    }

    public static let defaultTimeoutSeconds = 18000
    public static let maxTimeoutSeconds = 7 * 86400

    public var taskID: TaskID
    public var buildID: Int
    /// `nil` for an SRPM build task (URL, SCM and other sources).
    public var chroot: ChrootName?
    public var arch: String
    /// Ticket tags a builder must have (`arch_x86_64`).
    public var tags: [String]
    public var projectOwner: String
    public var projectName: String
    /// `PROJECT` or a CoprDir such as `PROJECT:pr:12`.
    public var projectDirname: String
    public var submitter: String
    /// Builders are reused only within one sandbox (same project and submitter).
    public var sandbox: String
    public var background: Bool
    /// Wall-clock limit of the build in seconds.
    public var timeoutSeconds: Int
    public var enableNet: Bool
    public var sourceType: String
    public var sourceJSON: JSONObject
    public var srpmURL: String?
    /// Lowercase hex, when the Frontend knows it.
    public var srpmSHA256: String?
    public var packageName: String?
    public var packageVersion: String?
    /// The result directory's name inside the chroot (`00000042-hello`) or `srpm-builds/` (`00000042`).
    public var resultDir: String
    public var repos: [Repo]
    public var buildrootPackages: [String]
    public var withOptions: [String]
    public var withoutOptions: [String]
    public var isolation: String?
    public var bootstrap: String?
    public var bootstrapImage: String?
    public var usesDevelRepo: Bool
    public var fedoraReview: Bool
    public var appstream: Bool
    /// Seconds since the epoch.
    public var submittedOn: Int64

    public var kind: TaskKind { self.chroot == nil ? .srpm : .rpm }
    public var isSRPMTask: Bool { self.chroot == nil }

    /// Copr's `%vendor` for this project, in Koper's spelling.
    public var vendor: String { "Koper (\(self.projectOwner)/\(self.projectName))" }

    /// Copr's `%buildtag`: `.copr<BUILD_ID>`.
    public var buildTag: String { ".copr\(self.buildID)" }

    /// `OWNER/DIRNAME/CHROOT/NNNNNNNN-PKG` or `OWNER/DIRNAME/srpm-builds/NNNNNNNN`, below the results root.
    public var relativeResultPath: String {
        if let chroot { return "\(self.projectOwner)/\(self.projectDirname)/\(chroot.raw)/\(self.resultDir)" }
        return "\(self.projectOwner)/\(self.projectDirname)/srpm-builds/\(self.resultDir)"
    }

    public init(
        taskID: TaskID,
        chroot: ChrootName?,
        projectOwner: String,
        projectName: String,
        projectDirname: String,
        submitter: String,
        background: Bool,
        timeoutSeconds: Int,
        enableNet: Bool,
        sourceType: String,
        sourceJSON: JSONObject,
        srpmURL: String?,
        srpmSHA256: String?,
        packageName: String?,
        packageVersion: String?,
        resultDir: String,
        repos: [Repo] = [],
        buildrootPackages: [String] = [],
        withOptions: [String] = [],
        withoutOptions: [String] = [],
        isolation: String? = nil,
        bootstrap: String? = nil,
        bootstrapImage: String? = nil,
        usesDevelRepo: Bool = false,
        fedoraReview: Bool = false,
        appstream: Bool = false,
        submittedOn: Int64
    ) {
        self.taskID = taskID
        self.buildID = taskID.buildID
        self.chroot = chroot
        self.arch = chroot?.arch ?? "x86_64"
        self.tags = ["arch_\(self.arch)"]
        self.projectOwner = projectOwner
        self.projectName = projectName
        self.projectDirname = projectDirname
        self.submitter = submitter
        self.sandbox = "\(projectOwner)/\(projectName)--\(submitter)"
        self.background = background
        self.timeoutSeconds = timeoutSeconds
        self.enableNet = enableNet
        self.sourceType = sourceType
        self.sourceJSON = sourceJSON
        self.srpmURL = srpmURL
        self.srpmSHA256 = srpmSHA256
        self.packageName = packageName
        self.packageVersion = packageVersion
        self.resultDir = resultDir
        self.repos = repos
        self.buildrootPackages = buildrootPackages
        self.withOptions = withOptions
        self.withoutOptions = withoutOptions
        self.isolation = isolation
        self.bootstrap = bootstrap
        self.bootstrapImage = bootstrapImage
        self.usesDevelRepo = usesDevelRepo
        self.fedoraReview = fedoraReview
        self.appstream = appstream
        self.submittedOn = submittedOn
    }

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
        case buildID = "build_id"
        case chroot, arch, tags
        case projectOwner = "project_owner"
        case projectName = "project_name"
        case projectDirname = "project_dirname"
        case submitter, sandbox, background
        case timeoutSeconds = "timeout"
        case enableNet = "enable_net"
        case sourceType = "source_type"
        case sourceJSON = "source_json"
        case srpmURL = "srpm_url"
        case srpmSHA256 = "srpm_sha256"
        case packageName = "package_name"
        case packageVersion = "package_version"
        case resultDir = "result_dir"
        case repos
        case buildrootPackages = "buildroot_pkgs"
        case withOptions = "with_opts"
        case withoutOptions = "without_opts"
        case isolation, bootstrap
        case bootstrapImage = "bootstrap_image"
        case usesDevelRepo = "uses_devel_repo"
        case fedoraReview = "fedora_review"
        case appstream
        case submittedOn = "submitted_on"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func text(_ key: CodingKeys) throws -> String? {
            let value = try c.decodeIfPresent(String.self, forKey: key)
            return value?.isEmpty == true ? nil : value
        }
        func list(_ key: CodingKeys) throws -> [String] { try c.decodeIfPresent([String].self, forKey: key) ?? [] }
        func flag(_ key: CodingKeys) throws -> Bool { try c.decodeIfPresent(Bool.self, forKey: key) ?? false }

        self.taskID = try c.decode(TaskID.self, forKey: .taskID)
        self.buildID = try c.decode(Int.self, forKey: .buildID)
        if let raw = try c.decodeIfPresent(String.self, forKey: .chroot) {
            guard let chroot = ChrootName(raw) else {
                throw DecodingError.dataCorruptedError(forKey: .chroot, in: c, debugDescription: "not a chroot name")
            }
            self.chroot = chroot
        } else {
            self.chroot = nil
        }
        self.arch = try text(.arch) ?? self.chroot?.arch ?? "x86_64"
        self.tags = try c.decodeIfPresent([String].self, forKey: .tags) ?? ["arch_\(self.arch)"]
        self.projectOwner = try c.decode(String.self, forKey: .projectOwner)
        self.projectName = try c.decode(String.self, forKey: .projectName)
        self.projectDirname = try text(.projectDirname) ?? self.projectName
        self.submitter = try text(.submitter) ?? ""
        self.sandbox = try text(.sandbox) ?? "\(self.projectOwner)/\(self.projectName)"
        self.background = try flag(.background)
        // A larger limit than the builders allow is clamped (the Frontend caps it already); zero or less is refused.
        self.timeoutSeconds = min(
            try c.decodeIfPresent(Int.self, forKey: .timeoutSeconds) ?? Self.defaultTimeoutSeconds,
            Self.maxTimeoutSeconds
        )
        self.enableNet = try flag(.enableNet)
        self.sourceType = try text(.sourceType) ?? "upload"
        self.sourceJSON = try c.decodeIfPresent(JSONObject.self, forKey: .sourceJSON) ?? JSONObject()
        self.srpmURL = try text(.srpmURL)
        self.srpmSHA256 = try text(.srpmSHA256)?.lowercased()
        self.packageName = try text(.packageName)
        self.packageVersion = try text(.packageVersion)
        self.resultDir = try text(.resultDir) ?? srpmResultDirName(buildID: self.buildID)
        self.repos = try c.decodeIfPresent([Repo].self, forKey: .repos) ?? []
        self.buildrootPackages = try list(.buildrootPackages)
        self.withOptions = try list(.withOptions)
        self.withoutOptions = try list(.withoutOptions)
        self.isolation = try text(.isolation)
        self.bootstrap = try text(.bootstrap)
        self.bootstrapImage = try text(.bootstrapImage)
        self.usesDevelRepo = try flag(.usesDevelRepo)
        self.fedoraReview = try flag(.fedoraReview)
        self.appstream = try flag(.appstream)
        self.submittedOn = try c.decodeIfPresent(Int64.self, forKey: .submittedOn) ?? 0
    }

    /// Checks every value against the rules of the places it ends up in (paths, command lines, macros, mock and
    /// dnf configs), so those generators never have to escape more than quotes. Throws the first violation.
    public func validate() throws(WireError) {
        func check(_ value: String?, _ field: String, _ rule: (String) -> Bool) throws(WireError) {
            guard let value else { return }
            guard rule(value) else {
                throw WireError("task: \(field) has characters or a length that are not accepted")
            }
        }
        func checkList(_ values: [String], _ field: String, max: Int, _ rule: (String) -> Bool) throws(WireError) {
            guard values.count <= max else {
                throw WireError("task: \(field) must be a list of at most \(max) strings")
            }
            for value in values where !rule(value) {
                throw WireError("task: \(field) has an entry that is not accepted")
            }
        }
        try check(self.taskID.description, "task_id", FieldRules.isTaskID)
        guard self.buildID > 0, self.taskID.buildID == self.buildID else {
            throw WireError("task: build_id must be a positive integer matching task_id")
        }
        guard self.taskID.chroot == self.chroot?.raw else { throw WireError("task: chroot does not match task_id") }
        try check(self.projectOwner, "project_owner", FieldRules.isOwner)
        try check(self.projectName, "project_name", FieldRules.isProjectName)
        try check(self.projectDirname, "project_dirname", FieldRules.isPathComponent)
        try check(self.resultDir, "result_dir", FieldRules.isPathComponent)
        try check(self.arch, "arch", FieldRules.isWord)
        try checkList(self.tags, "tags", max: 100, FieldRules.isRepoID)
        guard self.timeoutSeconds > 0, self.timeoutSeconds <= Self.maxTimeoutSeconds else {
            throw WireError("task: timeout must be a positive number of seconds, at most \(Self.maxTimeoutSeconds)")
        }
        try check(self.sourceType, "source_type", FieldRules.isWord)
        try check(self.srpmURL, "srpm_url", FieldRules.isURL)
        try check(self.srpmSHA256, "srpm_sha256", FieldRules.isSHA256Hex)
        try check(self.packageName, "package_name", FieldRules.isPackageToken)
        try checkList(self.buildrootPackages, "buildroot_pkgs", max: 1000, FieldRules.isPackageToken)
        try checkList(self.withOptions, "with_opts", max: 1000, FieldRules.isBcondName)
        try checkList(self.withoutOptions, "without_opts", max: 1000, FieldRules.isBcondName)
        try check(self.isolation, "isolation") { ["default", "simple", "nspawn", "unchanged"].contains($0) }
        try check(self.bootstrap, "bootstrap") {
            ["default", "on", "off", "image", "custom_image", "unchanged"].contains($0)
        }
        try check(self.bootstrapImage, "bootstrap_image", FieldRules.isImageName)
        guard self.repos.count <= 100 else { throw WireError("task: repos must be a list of at most 100 repositories") }
        for repo in self.repos {
            try check(repo.id, "repos.id", FieldRules.isRepoID)
            try check(repo.name, "repos.name", FieldRules.isRepoName)
            try check(repo.baseURL, "repos.baseurl", FieldRules.isURL)
            if let p = repo.priority, !(1...99).contains(p) {
                throw WireError("task: repo priority must be an integer in 1...99")
            }
        }
    }
}
