/// Validation of project, user, group and package names.
///
/// Every name validated here ends up in URL paths, results directory names, dnf repo ids and GPG user ids,
/// so the rules are ASCII-only and never admit `.` or `..` as a whole name.
public enum Names {
    /// The longest project, user or group name (upstream's `String(100)` columns).
    public static let maxNameLength = 100
    /// The longest package name Koper accepts.
    public static let maxPackageNameLength = 200

    /// Project names: upstream's `^[\w.-]+$` and "not just a number", 1...100 characters.
    ///
    /// Koper's decision on `\w`: upstream's Python `\w` is Unicode-aware (it accepts `žluťoučký`), Koper
    /// accepts **ASCII** letters, digits, `_`, `-` and `.` only. Project names become repo ids, directory
    /// names and the e-mail part of the signing key's user id; non-ASCII names would admit visually identical
    /// but different projects (NFC vs NFD) and break `dnf` repo ids. Koper additionally refuses a leading `.`
    /// (no hidden results directories, no `.`/`..`).
    ///
    /// Messages (upstream wording where upstream has the rule):
    /// - empty: "This field is required."
    /// - too long: "Field cannot be longer than 100 characters."
    /// - bad characters: "Name must contain only letters, digits, underscores, dashes and dots."
    /// - leading dot: "Name can not start with a dot."
    /// - all digits: "Project's name can not be just number."
    public static func validateProjectName(_ s: String, field: String = "name") throws(ValidationError) {
        try Self.checkLength(s, max: Self.maxNameLength, field: field)
        guard s.utf8.allSatisfy({ ASCII.isWordByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else {
            throw ValidationError(field: field, "Name must contain only letters, digits, underscores, dashes and dots.")
        }
        if s.utf8.first == UInt8(ascii: ".") {
            throw ValidationError(field: field, "Name can not start with a dot.")
        }
        if s.utf8.allSatisfy(ASCII.isDigit) {
            throw ValidationError(field: field, "Project's name can not be just number.")
        }
    }

    /// User names and group names (a group without its `@`): `[A-Za-z0-9_.-]`, 1...100 characters,
    /// not starting with `.` or `-`.
    public static func validateUserName(_ s: String, field: String = "ownername") throws(ValidationError) {
        try Self.checkLength(s, max: Self.maxNameLength, field: field)
        guard s.utf8.allSatisfy({ ASCII.isWordByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else {
            throw ValidationError(
                field: field,
                "User and group names must contain only letters, digits, underscores, dashes and dots."
            )
        }
        if let first = s.utf8.first, first == UInt8(ascii: ".") || first == UInt8(ascii: "-") {
            throw ValidationError(field: field, "User and group names can not start with a dot or a dash.")
        }
    }

    /// RPM package names: upstream's `^[-+_.a-zA-Z0-9]+$`, 1...200 characters, and (Koper) not starting
    /// with `.` or `-`.
    public static func validatePackageName(_ s: String, field: String = "package_name") throws(ValidationError) {
        try Self.checkLength(s, max: Self.maxPackageNameLength, field: field)
        guard
            s.utf8.allSatisfy({
                ASCII.isWordByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+")
            })
        else {
            throw ValidationError(field: field, "Please enter a valid package name in ^[-+_.a-zA-Z0-9]+$")
        }
        if let first = s.utf8.first, first == UInt8(ascii: ".") || first == UInt8(ascii: "-") {
            throw ValidationError(field: field, "Package name can not start with a dot or a dash.")
        }
    }

    private static func checkLength(_ s: String, max: Int, field: String) throws(ValidationError) {
        if s.isEmpty {
            throw ValidationError(field: field, "This field is required.")
        }
        if s.utf8.count > max {
            throw ValidationError(field: field, "Field cannot be longer than \(max) characters.")
        }
    }
}

/// A project owner as written in Copr URLs and JSON: `"user"` or `"@group"`.
public struct OwnerName: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// `"user"` or `"@group"`, as on the wire.
    public let raw: String

    /// Parses `"user"` or `"@group"`; `nil` when the name (without `@`) breaks ``Names/validateUserName(_:field:)``.
    public init?(_ raw: String) {
        let name = raw.hasPrefix("@") ? String(raw.dropFirst()) : raw
        do {
            try Names.validateUserName(name)
        } catch {
            return nil
        }
        self.raw = raw
    }

    /// A user owner.
    public static func user(_ name: String) -> OwnerName? {
        name.hasPrefix("@") ? nil : OwnerName(name)
    }

    /// A group owner, given the group name without `@`.
    public static func group(_ name: String) -> OwnerName? {
        name.hasPrefix("@") ? nil : OwnerName("@" + name)
    }

    public var isGroup: Bool { self.raw.hasPrefix("@") }

    /// The user or group name without `@`.
    public var name: String { self.isGroup ? String(self.raw.dropFirst()) : self.raw }

    /// The owner part of dnf repo ids: `"user"` or `"group_grp"` (upstream replaces `@` with `group_`).
    public var repoIdPart: String { self.isGroup ? "group_" + self.name : self.raw }

    /// The owner part of web UI paths: `"user"` or `"g/grp"` (`/coprs/g/grp/proj/`).
    public var webPathPart: String { self.isGroup ? "g/" + self.name : self.raw }

    public var description: String { self.raw }

    public static func < (lhs: OwnerName, rhs: OwnerName) -> Bool { lhs.raw < rhs.raw }
}

/// A CoprDir name ("project_dirname"): the project's main directory `proj`, or a side directory
/// `proj:custom:<suffix>` or `proj:pr:<id>` (copr-api-behaviour.md §1 4.3).
///
/// Rules, following upstream's `CoprDirsLogic.validate`:
/// - the part before the first `:` is the project and must be a valid project name;
/// - a side directory is either `proj:custom:…` or `proj:pr:<x>`, where `<x>` is a single colon-free part
///   whose last `-`-separated piece is an ASCII number (`pr:13`, and upstream's fork form `pr:someone-foo-123`);
/// - every `:`-separated part after the project consists of `-`-separated, non-empty runs of Unicode letters
///   and digits (so `custom:žluťoučký` and `custom:123` are fine, `custom:`, `custom:.`, `custom:@`,
///   `custom:foo-`, `pr:13a` and `pr:13:2` are not).
public struct CoprDirName: Sendable, Hashable, CustomStringConvertible {
    /// The project name (the part before the first `:`).
    public let project: String
    /// What follows the project and its `:`, e.g. `"custom:foo"` or `"pr:12"`; `nil` for the main directory.
    public let suffix: String?

    public init(_ s: String) throws(ValidationError) {
        let field = "project_dirname"
        let parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let project = parts[0]
        try Names.validateProjectName(project, field: field)
        if parts.count == 1 {
            self.project = project
            self.suffix = nil
            return
        }
        let formatMessage =
            "Please use directory format \(project):custom:<SUFFIX_OF_CHOICE> "
            + "or \(project):pr:<ID> (for automatically removed directories)"
        switch parts[1] {
        case "custom":
            guard parts.count >= 3 else {
                throw ValidationError(field: field, formatMessage)
            }
        case "pr":
            guard parts.count == 3,
                let last = parts[2].split(separator: "-", omittingEmptySubsequences: false).last,
                !last.isEmpty, last.utf8.allSatisfy(ASCII.isDigit)
            else {
                throw ValidationError(field: field, formatMessage)
            }
        default:
            throw ValidationError(field: field, formatMessage)
        }
        for part in parts.dropFirst() {
            let pieces = part.split(separator: "-", omittingEmptySubsequences: false)
            let ok = pieces.allSatisfy { piece in
                !piece.isEmpty && piece.allSatisfy { $0.isLetter || $0.isNumber }
            }
            if !ok {
                throw ValidationError(
                    field: field,
                    "Wrong directory '\(s)' specified. Directory name can consist of alpha-numeric strings "
                        + "separated by colons."
                )
            }
        }
        if s.utf8.count > 200 {
            throw ValidationError(field: field, "Field cannot be longer than 200 characters.")
        }
        self.project = project
        self.suffix = parts.dropFirst().joined(separator: ":")
    }

    /// The whole directory name, e.g. `"proj:custom:foo"`.
    public var name: String {
        if let suffix = self.suffix {
            return self.project + ":" + suffix
        }
        return self.project
    }

    /// `true` for the project's main directory (no suffix).
    public var isMain: Bool { self.suffix == nil }

    /// `true` for `proj:pr:…` directories, which upstream removes automatically after a while.
    public var isPullRequest: Bool { self.suffix?.hasPrefix("pr:") ?? false }

    public var description: String { self.name }
}

/// ASCII byte classes (locale-independent, like rpm's `risalpha`/`risdigit`).
enum ASCII {
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isAlpha(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
    static func isAlnum(_ b: UInt8) -> Bool { Self.isDigit(b) || Self.isAlpha(b) }
    /// `[A-Za-z0-9_]`
    static func isWordByte(_ b: UInt8) -> Bool { Self.isAlnum(b) || b == UInt8(ascii: "_") }
}
