/// Shell-style chroot patterns, as accepted in `chroots` and `exclude_chroots` of build requests
/// (copr-api-behaviour.md §1 4.3: `epel-*-i386`, `fedora-2?-*` minus `fedora-2[123]-*`).
public enum ChrootGlob {
    /// fnmatch-style whole-string match, case-sensitive:
    /// - `*` matches any run of characters (also empty, also `/`), `?` exactly one character;
    /// - `[abc]`, `[a-z]` a set; `[!x]` and `[^x]` its complement (Python's fnmatch only knows `!`;
    ///   Koper follows the shell and accepts both); a `]` right after `[`, `[!` or `[^` is a literal member,
    ///   and a `-` first or last is literal;
    /// - a `[` without a closing `]` is a literal `[`.
    public static func matches(pattern: String, _ name: String) -> Bool {
        let p = Array(pattern)
        let s = Array(name)
        var pi = 0
        var si = 0
        // Position after the most recent `*` in the pattern, and the name position it is currently matched up to.
        var starPattern: Int? = nil
        var starName = 0
        while si < s.count {
            if pi < p.count {
                switch p[pi] {
                case "*":
                    starPattern = pi + 1
                    starName = si
                    pi += 1
                    continue
                case "?":
                    pi += 1
                    si += 1
                    continue
                case "[":
                    if let (matched, next) = Self.matchSet(p, from: pi, s[si]) {
                        if matched {
                            pi = next
                            si += 1
                            continue
                        }
                    } else if s[si] == "[" {
                        pi += 1
                        si += 1
                        continue
                    }
                default:
                    if p[pi] == s[si] {
                        pi += 1
                        si += 1
                        continue
                    }
                }
            }
            // Mismatch: let the last `*` swallow one more character, or fail.
            guard let star = starPattern else {
                return false
            }
            starName += 1
            si = starName
            pi = star
        }
        while pi < p.count && p[pi] == "*" {
            pi += 1
        }
        return pi == p.count
    }

    /// Matches `c` against the bracket expression starting at `p[start] == "["`.
    /// Returns (matched, index after `]`), or `nil` when the bracket is not closed (then `[` is literal).
    private static func matchSet(_ p: [Character], from start: Int, _ c: Character) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < p.count && (p[i] == "!" || p[i] == "^") {
            negate = true
            i += 1
        }
        var matched = false
        var first = true
        while i < p.count {
            if p[i] == "]" && !first {
                return (matched != negate, i + 1)
            }
            first = false
            if i + 2 < p.count && p[i + 1] == "-" && p[i + 2] != "]" {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true
                }
                i += 3
            } else {
                if p[i] == c {
                    matched = true
                }
                i += 1
            }
        }
        return nil
    }

    /// Whether `s` contains glob metacharacters (`*`, `?`, `[`).
    public static func isPattern(_ s: String) -> Bool {
        s.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// Upstream's build chroot selection (`expand_chroots` in `forms.py`):
    /// - `chroots` (names or patterns) select the matching `active` chroots; `nil` or empty selects all;
    /// - then every chroot matching one of `excludeChroots` is removed.
    ///
    /// Errors, all ``ValidationError``:
    /// - a project without active chroots: "Can't create build - project <owner>/<project> has no active chroots";
    /// - a pattern (in either list) that matches no active chroot: field `chroots` or `exclude_chroots`,
    ///   upstream's form message "'<pattern>' is not a valid choice for this field.";
    /// - (Koper) nothing left after the exclusions: field `exclude_chroots`, "No chroot of <owner>/<project>
    ///   is left to build in." Upstream silently falls back to building in every chroot in that case.
    ///
    /// The result is sorted (plain string order, as upstream's `chroots_list.sort()`) and free of duplicates.
    public static func select(
        active: [String],
        chroots: [String]?,
        excludeChroots: [String]?,
        projectFullName: String
    ) throws(ValidationError) -> [String] {
        let available = Array(Set(active)).sorted()
        if available.isEmpty {
            throw ValidationError(
                field: nil,
                "Can't create build - project \(projectFullName) has no active chroots"
            )
        }
        var selected: Set<String>
        if let chroots = chroots, !chroots.isEmpty {
            selected = try Self.expand(chroots, available: available, field: "chroots")
        } else {
            selected = Set(available)
        }
        if let excludes = excludeChroots, !excludes.isEmpty {
            selected.subtract(try Self.expand(excludes, available: available, field: "exclude_chroots"))
            if selected.isEmpty {
                throw ValidationError(
                    field: "exclude_chroots",
                    "No chroot of \(projectFullName) is left to build in."
                )
            }
        }
        return selected.sorted()
    }

    private static func expand(
        _ patterns: [String],
        available: [String],
        field: String
    ) throws(ValidationError) -> Set<String> {
        var result = Set<String>()
        for pattern in patterns {
            if available.contains(pattern) {
                result.insert(pattern)
                continue
            }
            let matched = available.filter { Self.matches(pattern: pattern, $0) }
            if matched.isEmpty {
                throw ValidationError(field: field, "'\(pattern)' is not a valid choice for this field.")
            }
            result.formUnion(matched)
        }
        return result
    }
}
