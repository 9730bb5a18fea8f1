/// A resolved Copr project that the requested project depends on at runtime (`copr://owner/project`),
/// with the settings of *that* project which end up in its `.repo` section.
public struct RepoFileProjectDependency: Sendable, Hashable {
    public var owner: OwnerName
    /// The dependency's project name (its `pubkey.gpg` lives at `<results>/<owner>/<projectName>/`).
    public var projectName: String
    /// The directory the dependency refers to; usually equal to `projectName`.
    public var dirName: String
    public var moduleHotfixes: Bool
    public var repoPriority: Int?

    public init(
        owner: OwnerName,
        projectName: String,
        dirName: String? = nil,
        moduleHotfixes: Bool = false,
        repoPriority: Int? = nil
    ) {
        self.owner = owner
        self.projectName = projectName
        self.dirName = dirName ?? projectName
        self.moduleHotfixes = moduleHotfixes
        self.repoPriority = repoPriority
    }
}

/// One runtime dependency of the requested project, already resolved by the caller (upstream follows
/// dependencies transitively; the caller does that walk and passes the result in the order it wants).
public enum RepoFileDependency: Sendable, Hashable {
    /// A `copr://` dependency on an existing project: a full `[coprdep:HOST:owner:dir]` section, signed.
    case project(RepoFileProjectDependency)
    /// An external URL as the user wrote it (`$chroot`, `$distname`, `?priority=N` allowed): a
    /// `[coprdep:<slug>]` section with `gpgcheck=0`.
    case url(String)
    /// A `copr://owner/project` dependency whose project does not exist: a comment line.
    case missingProject(String)
}

/// Everything needed to render the `.repo` file that `dnf copr enable` downloads.
public struct RepoFileRequest: Sendable, Hashable {
    /// The host name for section ids. Use the host the client asked for (the request's `Host`) or the
    /// configured public hostname; a `:port` suffix is removed when rendering, as the dnf plugin expects.
    public var hostname: String
    /// The public results base, e.g. `http://127.0.0.1:8765/results` (trailing slashes are ignored).
    public var resultsURL: String
    public var owner: OwnerName
    /// The project name: the `gpgkey` is `<results>/<owner>/<projectName>/pubkey.gpg`.
    public var projectName: String
    /// The CoprDir the repo is for (`proj` or `proj:custom:x`): used in the id, the name and the `baseurl`.
    public var dirName: String
    /// The project chroot that matched the request (see ``RepoFile/matchChroot(nameRelease:arch:enabled:)``).
    public var chroot: ChrootName
    public var moduleHotfixes: Bool
    public var repoPriority: Int?
    /// When set, a multilib companion section `:ml` is appended for this arch (see
    /// ``RepoFile/multilibArch(projectMultilib:requestedArch:chroot:activeChroots:)``).
    public var multilibArch: String?
    public var runtimeDependencies: [RepoFileDependency]

    public init(
        hostname: String,
        resultsURL: String,
        owner: OwnerName,
        projectName: String,
        dirName: String? = nil,
        chroot: ChrootName,
        moduleHotfixes: Bool = false,
        repoPriority: Int? = nil,
        multilibArch: String? = nil,
        runtimeDependencies: [RepoFileDependency] = []
    ) {
        self.hostname = hostname
        self.resultsURL = resultsURL
        self.owner = owner
        self.projectName = projectName
        self.dirName = dirName ?? projectName
        self.chroot = chroot
        self.moduleHotfixes = moduleHotfixes
        self.repoPriority = repoPriority
        self.multilibArch = multilibArch
        self.runtimeDependencies = runtimeDependencies
    }
}

/// The dnf `.repo` file served at `/coprs/OWNER/DIR/repo/NAME_RELEASE/…` (copr-protocol.md §6,
/// copr-api-behaviour.md §1 4.5 and §3.12).
public enum RepoFile {
    /// Renders the repo file. Layout, following upstream's `copr_dir.repo` template:
    /// ```
    /// [copr:HOST:OWNERID:DIR]
    /// name=Copr repo for DIR owned by OWNER
    /// baseurl=RESULTS/OWNER/DIR/fedora-$releasever-$basearch/
    /// type=rpm-md
    /// skip_if_unavailable=True
    /// gpgcheck=1
    /// gpgkey=RESULTS/OWNER/PROJECT/pubkey.gpg
    /// repo_gpgcheck=0
    /// enabled=1
    /// enabled_metadata=1
    /// ```
    /// plus `module_hotfixes=1` and `priority=N` when set. Then, each after one empty line:
    /// the multilib section `[…:ml]` (name suffixed ` (i386)`, explicit arch in the `baseurl`, `cost=1100`
    /// after `repo_gpgcheck`); `[coprdep:HOST:OWNERID:DIR]` sections for Copr dependencies, numbered from 1;
    /// `[coprdep:<slug>]` sections for URL dependencies, numbered from 1 (`gpgcheck=0`, `$chroot`
    /// substituted, `priority` moved from the URL into a `priority=N` line); and a comment for each missing
    /// Copr dependency.
    ///
    /// Differences from upstream, all invisible to dnf: every line (the last included) ends in LF (upstream
    /// leaves off the final newline after a `priority=` line); the `gpgkey` always points at the project's
    /// key even for a CoprDir (upstream points into the CoprDir); URL dependencies keep their `?priority=N`
    /// as a `priority=N` line (upstream only uses it for mock configs).
    public static func render(_ r: RepoFileRequest) -> String {
        let host = Self.hostnameForRepoID(r.hostname)
        let results = RepoURLs.trimmingTrailingSlashes(r.resultsURL)
        var sections: [String] = []

        sections.append(
            Self.coprSection(
                id: "copr:\(host):\(r.owner.repoIdPart):\(r.dirName)",
                name: "Copr repo for \(r.dirName) owned by \(r.owner.raw)",
                baseurl: "\(results)/\(r.owner.raw)/\(r.dirName)/\(r.chroot.repoPathComponent())/",
                gpgkey: "\(results)/\(r.owner.raw)/\(r.projectName)/pubkey.gpg",
                cost: nil,
                moduleHotfixes: r.moduleHotfixes,
                priority: r.repoPriority
            )
        )

        if let arch = r.multilibArch {
            sections.append(
                Self.coprSection(
                    id: "copr:\(host):\(r.owner.repoIdPart):\(r.dirName):ml",
                    name: "Copr repo for \(r.dirName) owned by \(r.owner.raw) (\(arch))",
                    baseurl:
                        "\(results)/\(r.owner.raw)/\(r.dirName)/\(r.chroot.repoPathComponent(explicitArch: arch))/",
                    gpgkey: "\(results)/\(r.owner.raw)/\(r.projectName)/pubkey.gpg",
                    cost: 1100,
                    moduleHotfixes: r.moduleHotfixes,
                    priority: r.repoPriority
                )
            )
        }

        var index = 1
        for case .project(let dep) in r.runtimeDependencies {
            sections.append(
                Self.coprSection(
                    id: "coprdep:\(host):\(dep.owner.repoIdPart):\(dep.dirName)",
                    name: "Copr \(host)/\(r.owner.raw)/\(r.projectName) runtime dependency #\(index) - "
                        + "\(dep.owner.raw)/\(dep.dirName)",
                    baseurl: "\(results)/\(dep.owner.raw)/\(dep.dirName)/\(r.chroot.repoPathComponent())/",
                    gpgkey: "\(results)/\(dep.owner.raw)/\(dep.projectName)/pubkey.gpg",
                    cost: nil,
                    moduleHotfixes: dep.moduleHotfixes,
                    priority: dep.repoPriority
                )
            )
            index += 1
        }

        index = 1
        for case .url(let url) in r.runtimeDependencies {
            let slug = RepoURLs.slug(url)
            var lines = [
                "[coprdep:\(slug)]",
                "name=Copr \(host)/\(r.owner.raw)/\(r.projectName) external runtime dependency #\(index) - \(slug)",
                "baseurl=\(RepoURLs.expand(url, chroot: r.chroot, resultsURL: results))",
                "type=rpm-md",
                "skip_if_unavailable=True",
                "repo_gpgcheck=0",
                "gpgcheck=0",
                "enabled=1",
                "enabled_metadata=1",
            ]
            if let priority = RepoURLs.priority(of: url) {
                lines.append("priority=\(priority)")
            }
            sections.append(Self.joinLines(lines))
            index += 1
        }

        for case .missingProject(let reference) in r.runtimeDependencies {
            let name = reference.hasPrefix("copr://") ? String(reference.dropFirst("copr://".count)) : reference
            sections.append(
                "# This repository is configured to have a runtime dependency on a Copr project \(name) "
                    + "but that doesn't exist.\n"
            )
        }

        return sections.joined(separator: "\n")
    }

    /// The host part of section ids: the dnf plugin compares against its hub host with the last `:port`
    /// removed (`rsplit(':', 1)[0]`), so `127.0.0.1:8765` → `127.0.0.1`, `[::1]:8080` → `[::1]`.
    public static func hostnameForRepoID(_ host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            return String(host[...close])
        }
        if let colon = host.lastIndex(of: ":") {
            return String(host[..<colon])
        }
        return host
    }

    /// The download name upstream puts in `Content-Disposition: filename=…`: `OWNER-DIR.repo`.
    public static func fileName(owner: OwnerName, dirName: String) -> String {
        "\(owner.raw)-\(dirName).repo"
    }

    /// Finds the project chroot a `/repo/<nameRelease>/…?arch=<arch>` request refers to: the chroot named
    /// `nameRelease-arch` when `arch` is given, else the first (in ``ChrootName`` order) whose
    /// `name_release` is `nameRelease`. Upstream matches by string prefix; Koper requires whole parts, so
    /// `fedora-3` does not match `fedora-39-x86_64`.
    public static func matchChroot(nameRelease: String, arch: String?, enabled: [String]) -> ChrootName? {
        let candidates = enabled.compactMap(ChrootName.init).filter { chroot in
            guard chroot.nameRelease == nameRelease else {
                return false
            }
            if let arch = arch, !arch.isEmpty {
                return chroot.arch == arch
            }
            return true
        }
        return candidates.min()
    }

    /// Upstream's multilib rule: a `:ml` section only when the project is multilib, the client gave `?arch=`,
    /// and the chroot's 32-bit counterpart (`fedora-39-i386` for `fedora-39-x86_64`) is active in the project.
    /// Returns the arch to pass as ``RepoFileRequest/multilibArch``.
    public static func multilibArch(
        projectMultilib: Bool,
        requestedArch: String?,
        chroot: ChrootName,
        activeChroots: [String]
    ) -> String? {
        guard projectMultilib, let requested = requestedArch, !requested.isEmpty,
            let counterpart = chroot.multilibCounterpart, activeChroots.contains(counterpart.raw)
        else {
            return nil
        }
        return counterpart.arch
    }

    /// The value of the `Copr-Error-Data` header on a 404 for an unknown chroot: base64 of
    /// `{"available chroots": ["fedora-39-x86_64", ...]}` (the dnf plugin decodes it and lists the chroots).
    public static func errorDataHeaderValue(availableChroots: [String]) -> String {
        let items = availableChroots.map(JSONText.quoted).joined(separator: ", ")
        return Base64.encode(Array("{\"available chroots\": [\(items)]}".utf8))
    }

    private static func coprSection(
        id: String,
        name: String,
        baseurl: String,
        gpgkey: String,
        cost: Int?,
        moduleHotfixes: Bool,
        priority: Int?
    ) -> String {
        var lines = [
            "[\(id)]",
            "name=\(name)",
            "baseurl=\(baseurl)",
            "type=rpm-md",
            "skip_if_unavailable=True",
            "gpgcheck=1",
            "gpgkey=\(gpgkey)",
            "repo_gpgcheck=0",
        ]
        if let cost = cost {
            lines.append("cost=\(cost)")
        }
        lines.append("enabled=1")
        lines.append("enabled_metadata=1")
        if moduleHotfixes {
            lines.append("module_hotfixes=1")
        }
        if let priority = priority {
            lines.append("priority=\(priority)")
        }
        return Self.joinLines(lines)
    }

    private static func joinLines(_ lines: [String]) -> String {
        lines.map { Self.singleLine($0) + "\n" }.joined()
    }

    /// Keeps a value on its line: CR and LF (which could inject keys or sections) become spaces.
    private static func singleLine(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else {
            return s
        }
        return String(s.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }
}

/// Minimal JSON string quoting (RFC 8259), for the few JSON snippets built without a full encoder.
enum JSONText {
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Standard base64 with padding (RFC 4648 §4).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(Self.alphabet[Int(n >> 18 & 63)])
            out.append(Self.alphabet[Int(n >> 12 & 63)])
            out.append(Self.alphabet[Int(n >> 6 & 63)])
            out.append(Self.alphabet[Int(n & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out.append(Self.alphabet[Int(n >> 18 & 63)])
            out.append(Self.alphabet[Int(n >> 12 & 63)])
            out.append(UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(Self.alphabet[Int(n >> 18 & 63)])
            out.append(Self.alphabet[Int(n >> 12 & 63)])
            out.append(Self.alphabet[Int(n >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }
}
