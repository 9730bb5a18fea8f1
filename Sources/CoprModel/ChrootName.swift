/// A mock chroot name such as `fedora-39-x86_64`: operating system, version and architecture.
///
/// Parsing rule: at least three `-`-separated parts; the architecture is the last part, the version the one
/// before, and the operating system everything before that (`centos-stream-9-x86_64` has os
/// `centos-stream`). Each part is non-empty and made of ASCII letters, digits, `_`, `.` and `+`
/// (upstream forbids `-` in versions too), so a chroot name is always a safe single path component.
public struct ChrootName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let raw: String
    public let os: String
    public let version: String
    public let arch: String

    public init?(_ s: String) {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, s.utf8.count <= 100 else {
            return nil
        }
        for part in parts {
            guard !part.isEmpty,
                part.utf8.allSatisfy({
                    ASCII.isWordByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "+")
                }),
                part.utf8.contains(where: ASCII.isAlnum)
            else {
                return nil
            }
        }
        self.raw = s
        self.arch = String(parts[parts.count - 1])
        self.version = String(parts[parts.count - 2])
        self.os = parts[0..<(parts.count - 2)].joined(separator: "-")
    }

    /// Builds `os-version-arch`; `nil` if the result does not parse back into the same three parts.
    public init?(os: String, version: String, arch: String) {
        guard let parsed = ChrootName("\(os)-\(version)-\(arch)"),
            parsed.os == os, parsed.version == version, parsed.arch == arch
        else {
            return nil
        }
        self = parsed
    }

    /// `os-version`, e.g. `"fedora-39"`: what `dnf copr enable` puts in `/repo/<name_release>/`.
    public var nameRelease: String { "\(self.os)-\(self.version)" }

    public var description: String { self.raw }

    /// The value of the RPM `%dist` macro inside this chroot:
    /// `fedora-41` → `.fc41`; `epel-9` and `centos-stream-9` → `.el9`.
    ///
    /// `nil` for everything else, including `fedora-rawhide`: its release number moves every six months and
    /// is not part of the chroot name (use ``distTag(rawhideRelease:)``). For `epel-10` and later, EPEL's real
    /// tag carries the minor version (`.el10_1`); this returns the major-only `.el10`.
    public var distTag: String? {
        let numeric = !self.version.isEmpty && self.version.utf8.allSatisfy(ASCII.isDigit)
        switch self.os {
        case "fedora" where numeric:
            return ".fc\(self.version)"
        case "epel" where numeric, "centos-stream" where numeric:
            return ".el\(self.version)"
        default:
            return nil
        }
    }

    /// ``distTag``, with `fedora-rawhide` mapped to `.fc<rawhideRelease>`.
    public func distTag(rawhideRelease: Int) -> String? {
        if self.os == "fedora" && self.version == "rawhide" {
            return ".fc\(rawhideRelease)"
        }
        return self.distTag
    }

    /// Whether dnf's `$releasever` stands for the version in `.repo` base URLs: upstream does this for
    /// `fedora` (rawhide included), `centos-stream`, `opensuse-leap` and `mageia` except `cauldron`.
    public var usesReleaseverInRepoURL: Bool {
        switch self.os {
        case "fedora", "centos-stream", "opensuse-leap":
            return true
        case "mageia":
            return self.version != "cauldron"
        default:
            return false
        }
    }

    /// The last path component of a `.repo` `baseurl`, without a slash: `fedora-$releasever-$basearch`,
    /// `epel-9-$basearch`, `mageia-cauldron-$basearch`; with `explicitArch` in place of `$basearch` when given
    /// (the multilib section uses `i386`).
    public func repoPathComponent(explicitArch: String? = nil) -> String {
        let version = self.usesReleaseverInRepoURL ? "$releasever" : self.version
        return "\(self.os)-\(version)-\(explicitArch ?? "$basearch")"
    }

    /// Upstream's multilib pairs: `x86_64` has the 32-bit counterpart `i386`; no other arch has one.
    public static let multilibPairs: [String: String] = ["x86_64": "i386"]

    /// The 32-bit multilib architecture for this chroot's arch (`i386` for `x86_64`), or `nil`.
    public var multilibArch: String? { Self.multilibPairs[self.arch] }

    /// The multilib counterpart chroot (`fedora-39-x86_64` → `fedora-39-i386`), or `nil`.
    public var multilibCounterpart: ChrootName? {
        guard let arch = self.multilibArch else {
            return nil
        }
        return ChrootName(os: self.os, version: self.version, arch: arch)
    }

    /// Orders by os, then version, then arch. Versions compare with ``RPMVersion/compare(_:_:)`` (so `9` <
    /// `39`, `15.5` < `15.6`), except that a version without any digit (`rawhide`, `cauldron`, `tumbleweed`)
    /// sorts after every numbered one.
    public static func < (lhs: ChrootName, rhs: ChrootName) -> Bool {
        if lhs.os != rhs.os {
            return lhs.os < rhs.os
        }
        if lhs.version != rhs.version {
            let lhsNumbered = lhs.version.utf8.contains(where: ASCII.isDigit)
            let rhsNumbered = rhs.version.utf8.contains(where: ASCII.isDigit)
            if lhsNumbered != rhsNumbered {
                return lhsNumbered
            }
            let c = RPMVersion.compare(lhs.version, rhs.version)
            if c != 0 {
                return c < 0
            }
            return lhs.version < rhs.version
        }
        return lhs.arch < rhs.arch
    }
}

extension ChrootName: Codable {
    /// On the wire a chroot name is its string (`fedora-41-x86_64`).
    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let name = ChrootName(raw) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a chroot name")
            )
        }
        self = name
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.raw)
    }
}
