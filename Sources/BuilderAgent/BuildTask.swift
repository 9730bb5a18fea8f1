import CoprModel
import KoperJSON

/// The task description the Backend uploads next to the build (docs/internal-api.md, "The task description"),
/// parsed and validated.
///
/// Every string that later lands in a command line, a macro, a mock config (Python) or a dnf.conf stanza is
/// checked here against a narrow character set, so the generators never have to escape more than quotes.
/// An invalid task ends the build with status 2.
struct BuildTask: Sendable, Equatable {
    /// One dnf repository of the buildroot (`repos`; the first is the project's own `copr_base`).
    struct Repo: Sendable, Equatable {
        var id: String
        var name: String
        var baseURL: String
        var priority: Int?
        var moduleHotfixes: Bool?
    }

    var taskID: String
    var buildID: Int
    /// `nil` for an SRPM build task (URL and SCM builds).
    var chroot: ChrootName?
    var projectOwner: String
    var projectName: String
    /// Wall-clock limit of the build in seconds.
    var timeoutSeconds: Int
    var enableNet: Bool
    var sourceType: String
    var sourceJSON: JSONObject
    var srpmURL: String?
    /// Lowercase hex, when the Frontend knows it.
    var srpmSHA256: String?
    var packageName: String?
    var repos: [Repo]
    var buildrootPackages: [String]
    var withOptions: [String]
    var withoutOptions: [String]
    var isolation: String?
    var bootstrap: String?
    var bootstrapImage: String?

    var isSRPMTask: Bool { self.chroot == nil }

    /// Copr's `%vendor` for this project, in Koper's spelling.
    var vendor: String { "Koper (\(self.projectOwner)/\(self.projectName))" }

    /// Copr's `%buildtag`: `.copr<BUILD_ID>`.
    var buildTag: String { ".copr\(self.buildID)" }

    static let maxTaskBytes = 1 << 20
    static let defaultTimeoutSeconds = 18000
    static let maxTimeoutSeconds = 7 * 86400

    /// Parses the JSON bytes of a task description.
    static func parse(_ bytes: [UInt8]) throws(BuilderError) -> BuildTask {
        guard bytes.count <= self.maxTaskBytes else {
            throw .infrastructure("task description is larger than \(self.maxTaskBytes) bytes")
        }
        let json: JSON
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            throw .infrastructure("task description is not valid JSON: \(error)")
        }
        guard let o = json.objectValue else {
            throw .infrastructure("task description is not a JSON object")
        }
        return try self.init(o)
    }

    init(_ o: JSONObject) throws(BuilderError) {
        self.taskID = try Self.required(o, "task_id", Validate.isTaskID)
        guard let buildID = o["build_id"]?.intValue, buildID > 0 else {
            throw .infrastructure("task: build_id must be a positive integer")
        }
        self.buildID = buildID
        if let chrootValue = o["chroot"], !chrootValue.isNull {
            guard let raw = chrootValue.stringValue, let chroot = ChrootName(raw) else {
                throw .infrastructure("task: chroot is not a valid chroot name")
            }
            self.chroot = chroot
        } else {
            self.chroot = nil
        }
        self.projectOwner = try Self.required(o, "project_owner", Validate.isOwner)
        self.projectName = try Self.required(o, "project_name", Validate.isProjectName)
        if let t = o["timeout"], !t.isNull {
            guard let seconds = t.intValue, seconds > 0 else {
                throw .infrastructure("task: timeout must be a positive number of seconds")
            }
            self.timeoutSeconds = min(seconds, Self.maxTimeoutSeconds)
        } else {
            self.timeoutSeconds = Self.defaultTimeoutSeconds
        }
        self.enableNet = o["enable_net"]?.boolValue ?? false
        self.sourceType = try Self.optional(o, "source_type", Validate.isWord) ?? "upload"
        self.sourceJSON = o["source_json"]?.objectValue ?? JSONObject()
        self.srpmURL = try Self.optional(o, "srpm_url", Validate.isURL)
        if let sha = try Self.optional(o, "srpm_sha256", Validate.isSHA256Hex) {
            self.srpmSHA256 = sha.lowercased()
        } else {
            self.srpmSHA256 = nil
        }
        self.packageName = try Self.optional(o, "package_name", Validate.isPackageToken)
        self.repos = try Self.repos(o["repos"])
        self.buildrootPackages = try Self.stringList(o, "buildroot_pkgs", Validate.isPackageToken)
        self.withOptions = try Self.stringList(o, "with_opts", Validate.isBcondName)
        self.withoutOptions = try Self.stringList(o, "without_opts", Validate.isBcondName)
        self.isolation = try Self.optional(
            o,
            "isolation",
            { ["default", "simple", "nspawn", "unchanged"].contains($0) }
        )
        self.bootstrap = try Self.optional(
            o,
            "bootstrap",
            { ["default", "on", "off", "image", "custom_image", "unchanged"].contains($0) }
        )
        self.bootstrapImage = try Self.optional(o, "bootstrap_image", Validate.isImageName)
    }

    private static func required(
        _ o: JSONObject,
        _ key: String,
        _ isValid: (String) -> Bool
    ) throws(BuilderError) -> String {
        guard let value = try self.optional(o, key, isValid) else {
            throw .infrastructure("task: \(key) is required")
        }
        return value
    }

    private static func optional(
        _ o: JSONObject,
        _ key: String,
        _ isValid: (String) -> Bool
    ) throws(BuilderError) -> String? {
        guard let value = o[key], !value.isNull else {
            return nil
        }
        guard let s = value.stringValue else {
            throw .infrastructure("task: \(key) must be a string")
        }
        if s.isEmpty {
            return nil
        }
        guard isValid(s) else {
            throw .infrastructure("task: \(key) has characters or a length the builder does not accept")
        }
        return s
    }

    private static func stringList(
        _ o: JSONObject,
        _ key: String,
        _ isValid: (String) -> Bool
    ) throws(BuilderError) -> [String] {
        guard let value = o[key], !value.isNull else {
            return []
        }
        guard let items = value.arrayValue, items.count <= 1000 else {
            throw .infrastructure("task: \(key) must be a list of at most 1000 strings")
        }
        var out: [String] = []
        for item in items {
            guard let s = item.stringValue, isValid(s) else {
                throw .infrastructure("task: \(key) has an entry the builder does not accept")
            }
            out.append(s)
        }
        return out
    }

    private static func repos(_ value: JSON?) throws(BuilderError) -> [Repo] {
        guard let value, !value.isNull else {
            return []
        }
        guard let items = value.arrayValue, items.count <= 100 else {
            throw .infrastructure("task: repos must be a list of at most 100 repositories")
        }
        var out: [Repo] = []
        for item in items {
            guard let r = item.objectValue else {
                throw .infrastructure("task: repos entries must be objects")
            }
            let id = try self.required(r, "id", Validate.isRepoID)
            let name = try self.optional(r, "name", Validate.isRepoName) ?? id
            let baseURL = try self.required(r, "baseurl", Validate.isURL)
            var priority: Int?
            if let p = r["priority"], !p.isNull {
                guard let n = p.intValue, (1...99).contains(n) else {
                    throw .infrastructure("task: repo priority must be an integer in 1...99")
                }
                priority = n
            }
            out.append(
                Repo(
                    id: id,
                    name: name,
                    baseURL: baseURL,
                    priority: priority,
                    moduleHotfixes: r["module_hotfixes"]?.boolValue
                )
            )
        }
        return out
    }
}

/// Character-set checks for values that end up in command lines, macros and generated configs.
enum Validate {
    private static func all(_ s: String, maxBytes: Int, _ allowed: (UInt8) -> Bool) -> Bool {
        !s.isEmpty && s.utf8.count <= maxBytes && s.utf8.allSatisfy(allowed)
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }

    private static func isIn(_ c: UInt8, _ set: String) -> Bool {
        set.utf8.contains(c)
    }

    /// `42-fedora-41-x86_64`, `42`.
    static func isTaskID(_ s: String) -> Bool {
        self.all(s, maxBytes: 200) { self.isAlnum($0) || self.isIn($0, "_.+-") } && !s.hasPrefix("-")
    }

    /// A Copr owner: a user name, or `@group`.
    static func isOwner(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.@-") }
    }

    static func isProjectName(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.+-") }
    }

    /// A short keyword such as a source type.
    static func isWord(_ s: String) -> Bool {
        self.all(s, maxBytes: 50) { self.isAlnum($0) || self.isIn($0, "_-") }
    }

    /// A package name or dependency token for `buildroot_pkgs`: printable ASCII without whitespace, quotes,
    /// backslashes or shell/Python metacharacters (`python3-foo`, `pkgconfig(bar)`, `perl(Foo::Bar)`).
    static func isPackageToken(_ s: String) -> Bool {
        self.all(s, maxBytes: 200) { self.isAlnum($0) || self.isIn($0, "_.+-:()/@~^") } && !s.hasPrefix("-")
    }

    /// A `--with`/`--without` bcond name.
    static func isBcondName(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.+-") } && !s.hasPrefix("-")
    }

    static func isRepoID(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.:-") }
    }

    /// A human repository name: printable ASCII or UTF-8 text without control characters, quotes or backslashes.
    static func isRepoName(_ s: String) -> Bool {
        self.all(s, maxBytes: 200) { $0 >= 0x20 && $0 != 0x7F && !self.isIn($0, "\"'\\") }
    }

    /// An http(s) URL (or a repo URL with `$basearch`-style variables): no whitespace, control characters,
    /// quotes or backslashes.
    static func isURL(_ s: String) -> Bool {
        self.all(s, maxBytes: 4096) { $0 > 0x20 && $0 < 0x7F && !self.isIn($0, "\"'\\`") }
    }

    static func isSHA256Hex(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { self.isIn($0, "0123456789abcdefABCDEF") }
    }

    /// A container image reference for mock's bootstrap image.
    static func isImageName(_ s: String) -> Bool {
        self.all(s, maxBytes: 300) { self.isAlnum($0) || self.isIn($0, "_./:@-") }
    }

    /// A git committish (branch, tag, commit): no whitespace or control characters, no leading `-`.
    static func isCommittish(_ s: String) -> Bool {
        self.all(s, maxBytes: 250) { $0 > 0x20 && $0 < 0x7F && !self.isIn($0, "\"'\\`~^:?*[") } && !s.hasPrefix("-")
    }

    /// A relative path inside a checkout: no leading `/`, no `..` component, no control characters.
    static func isRelativePath(_ s: String) -> Bool {
        guard self.all(s, maxBytes: 1000, { $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\\") }),
            !s.hasPrefix("/"), !s.hasPrefix("-")
        else {
            return false
        }
        return !s.split(separator: "/").contains("..")
    }

    /// A host name for `_buildhost` and the sandbox: letters, digits, dots and dashes.
    static func isHostName(_ s: String) -> Bool {
        self.all(s, maxBytes: 64) { self.isAlnum($0) || self.isIn($0, ".-") } && !s.hasPrefix("-")
    }
}
