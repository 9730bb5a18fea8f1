/// Character-set checks for values that end up in command lines, macros, generated configs and paths. The
/// Backend and koper-builder apply the same rules to a task description (`TaskDescription.validate()`).
public enum FieldRules {
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
    public static func isTaskID(_ s: String) -> Bool {
        self.all(s, maxBytes: 200) { self.isAlnum($0) || self.isIn($0, "_.+-") } && !s.hasPrefix("-")
    }

    /// A Copr owner: a user name, or `@group`.
    public static func isOwner(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.@-") }
    }

    public static func isProjectName(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.+-") }
    }

    /// A short keyword such as a source type.
    public static func isWord(_ s: String) -> Bool {
        self.all(s, maxBytes: 50) { self.isAlnum($0) || self.isIn($0, "_-") }
    }

    /// A package name or dependency token for `buildroot_pkgs`: printable ASCII without whitespace, quotes,
    /// backslashes or shell/Python metacharacters (`python3-foo`, `pkgconfig(bar)`, `perl(Foo::Bar)`).
    public static func isPackageToken(_ s: String) -> Bool {
        self.all(s, maxBytes: 200) { self.isAlnum($0) || self.isIn($0, "_.+-:()/@~^") } && !s.hasPrefix("-")
    }

    /// A `--with`/`--without` bcond name.
    public static func isBcondName(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.+-") } && !s.hasPrefix("-")
    }

    public static func isRepoID(_ s: String) -> Bool {
        self.all(s, maxBytes: 100) { self.isAlnum($0) || self.isIn($0, "_.:-") }
    }

    /// A human repository name: printable ASCII or UTF-8 text without control characters, quotes or backslashes.
    public static func isRepoName(_ s: String) -> Bool {
        self.all(s, maxBytes: 200) { $0 >= 0x20 && $0 != 0x7F && !self.isIn($0, "\"'\\") }
    }

    /// An http(s) URL (or a repo URL with `$basearch`-style variables): no whitespace, control characters,
    /// quotes or backslashes.
    public static func isURL(_ s: String) -> Bool {
        self.all(s, maxBytes: 4096) { $0 > 0x20 && $0 < 0x7F && !self.isIn($0, "\"'\\`") }
    }

    public static func isSHA256Hex(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { self.isIn($0, "0123456789abcdefABCDEF") }
    }

    /// A container image reference for mock's bootstrap image.
    public static func isImageName(_ s: String) -> Bool {
        self.all(s, maxBytes: 300) { self.isAlnum($0) || self.isIn($0, "_./:@-") }
    }

    /// A git committish (branch, tag, commit): no whitespace or control characters, no leading `-`.
    public static func isCommittish(_ s: String) -> Bool {
        self.all(s, maxBytes: 250) { $0 > 0x20 && $0 < 0x7F && !self.isIn($0, "\"'\\`~^:?*[") } && !s.hasPrefix("-")
    }

    /// A relative path inside a checkout: no leading `/`, no `..` component, no control characters.
    public static func isRelativePath(_ s: String) -> Bool {
        guard self.all(s, maxBytes: 1000, { $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\\") }),
            !s.hasPrefix("/"), !s.hasPrefix("-")
        else {
            return false
        }
        return !s.split(separator: "/").contains("..")
    }

    /// A host name for `_buildhost` and the sandbox: letters, digits, dots and dashes.
    public static func isHostName(_ s: String) -> Bool {
        self.all(s, maxBytes: 64) { self.isAlnum($0) || self.isIn($0, ".-") } && !s.hasPrefix("-")
    }
}

extension FieldRules {
    /// One path component of the results tree (owner, dirname, chroot, result dir): not empty, `.` or `..`, no
    /// `/` or NUL, at most 255 bytes.
    public static func isPathComponent(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("\0") && s.utf8.count <= 255
    }
}
