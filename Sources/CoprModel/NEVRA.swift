internal import RPM

/// Name, epoch, version, release and architecture of a built RPM, as listed by `/build/built-packages/ID`
/// (`{name, epoch, version, release, arch}`; `epoch` is `null` or an integer, and is always present).
public struct NEVRA: Sendable, Hashable, Codable, CustomStringConvertible {
    public var name: String
    public var epoch: Int?
    public var version: String
    public var release: String
    public var arch: String

    public init(name: String, epoch: Int? = nil, version: String, release: String, arch: String) {
        self.name = name
        self.epoch = epoch
        self.version = version
        self.release = release
        self.arch = arch
    }

    /// Parses an RPM file name `name-version-release.arch.rpm` (e.g. `hello-copr-1.0-2.fc39.noarch.rpm`,
    /// `hello-1.0-1.src.rpm`). File names carry no epoch, so ``epoch`` is `nil`. `nil` if the name does not
    /// have that shape.
    public init?(rpmFileName: String) {
        guard rpmFileName.hasSuffix(".rpm"), !rpmFileName.contains("/") else {
            return nil
        }
        let stem = rpmFileName.dropLast(".rpm".count)
        guard let dot = stem.lastIndex(of: ".") else {
            return nil
        }
        let arch = stem[stem.index(after: dot)...]
        let nvr = stem[..<dot]
        guard let dash2 = nvr.lastIndex(of: "-") else {
            return nil
        }
        let release = nvr[nvr.index(after: dash2)...]
        let nv = nvr[..<dash2]
        guard let dash1 = nv.lastIndex(of: "-") else {
            return nil
        }
        let version = nv[nv.index(after: dash1)...]
        let name = nv[..<dash1]
        guard !arch.isEmpty, !release.isEmpty, !version.isEmpty, !name.isEmpty else {
            return nil
        }
        self.init(
            name: String(name),
            epoch: nil,
            version: String(version),
            release: String(release),
            arch: String(arch)
        )
    }

    /// `version-release`, or `epoch:version-release` when the epoch is set and non-zero: the
    /// `source_package.version` style ("1.0-1").
    public var evr: String {
        if let epoch = self.epoch, epoch != 0 {
            return "\(epoch):\(self.version)-\(self.release)"
        }
        return "\(self.version)-\(self.release)"
    }

    /// `name-[epoch:]version-release.arch`.
    public var description: String { "\(self.name)-\(self.evr).\(self.arch)" }

    /// The RPM's conventional file name, `name-version-release.arch.rpm`.
    public var fileName: String { "\(self.name)-\(self.version)-\(self.release).\(self.arch).rpm" }

    private enum CodingKeys: String, CodingKey {
        case name, epoch, version, release, arch
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try c.decode(String.self, forKey: .name)
        self.epoch = try c.decodeIfPresent(Int.self, forKey: .epoch)
        self.version = try c.decode(String.self, forKey: .version)
        self.release = try c.decode(String.self, forKey: .release)
        self.arch = try c.decode(String.self, forKey: .arch)
    }

    /// Encodes all five keys; a missing epoch is an explicit `null`, as upstream sends it.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.name, forKey: .name)
        if let epoch = self.epoch {
            try c.encode(epoch, forKey: .epoch)
        } else {
            try c.encodeNil(forKey: .epoch)
        }
        try c.encode(self.version, forKey: .version)
        try c.encode(self.release, forKey: .release)
        try c.encode(self.arch, forKey: .arch)
    }
}

/// RPM version comparison.
public enum RPMVersion {
    /// rpm's `rpmvercmp`: -1 if `a` is older than `b`, 0 if equal, 1 if newer. ``rpmVersionCompare(_:_:)``
    /// (module RPM) on the strings' UTF-8 bytes; its documentation describes the ordering.
    public static func compare(_ a: String, _ b: String) -> Int {
        rpmVersionCompare(a.utf8, b.utf8)
    }

    /// Compares epoch (a missing epoch is 0), then version, then release, each with ``compare(_:_:)``.
    public static func compareEVR(
        _ a: (epoch: Int?, version: String, release: String),
        _ b: (epoch: Int?, version: String, release: String)
    ) -> Int {
        let e1 = a.epoch ?? 0
        let e2 = b.epoch ?? 0
        if e1 != e2 {
            return e1 < e2 ? -1 : 1
        }
        let v = Self.compare(a.version, b.version)
        if v != 0 {
            return v
        }
        return Self.compare(a.release, b.release)
    }

    /// ``compareEVR(_:_:)`` on two packages (names and arches are not compared).
    public static func compareEVR(_ a: NEVRA, _ b: NEVRA) -> Int {
        Self.compareEVR((a.epoch, a.version, a.release), (b.epoch, b.version, b.release))
    }
}

/// The per-build result directory inside a chroot directory: the build id zero-padded to 8 digits, a dash,
/// and the package name, e.g. `00000042-hello`. Ids above 99999999 simply get more digits.
public func resultDirName(buildID: Int, packageName: String) -> String {
    paddedBuildID(buildID) + "-" + packageName
}

/// The build id zero-padded to 8 digits (upstream's `%08d`), e.g. `00000042`: the SRPM build's result directory.
public func paddedBuildID(_ buildID: Int) -> String {
    let digits = String(buildID)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

/// URLs under the results tree (copr-protocol.md §7). `resultsURL` is the public base such as
/// `https://copr.example.org/results`; a trailing slash is ignored.
public enum ResultsLayout {
    /// Build `repo_url`: `<results>/OWNER/PROJECT` (no trailing slash).
    public static func projectURL(resultsURL: String, owner: OwnerName, project: String) -> String {
        "\(RepoURLs.trimmingTrailingSlashes(resultsURL))/\(owner.raw)/\(project)"
    }

    /// Project `chroot_repos[chroot]`: `<results>/OWNER/DIR/CHROOT/`.
    public static func chrootRepoURL(resultsURL: String, owner: OwnerName, dirName: String, chroot: String) -> String {
        "\(RepoURLs.trimmingTrailingSlashes(resultsURL))/\(owner.raw)/\(dirName)/\(chroot)/"
    }

    /// Build chroot `result_url`: `<results>/OWNER/DIR/CHROOT/NNNNNNNN-PKG/` (with the trailing slash wget needs).
    public static func resultURL(
        resultsURL: String,
        owner: OwnerName,
        dirName: String,
        chroot: String,
        buildID: Int,
        packageName: String
    ) -> String {
        Self.chrootRepoURL(resultsURL: resultsURL, owner: owner, dirName: dirName, chroot: chroot)
            + resultDirName(buildID: buildID, packageName: packageName) + "/"
    }

    /// The project's public key: `<results>/OWNER/PROJECT/pubkey.gpg`.
    public static func pubkeyURL(resultsURL: String, owner: OwnerName, project: String) -> String {
        Self.projectURL(resultsURL: resultsURL, owner: owner, project: project) + "/pubkey.gpg"
    }
}
