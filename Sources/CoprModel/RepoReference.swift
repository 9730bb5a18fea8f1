/// An external repository or runtime dependency as users write it in `additional_repos`,
/// `runtime_dependencies` or a chroot's repos: a `copr://owner/project` reference or a plain URL.
public enum RepoReference: Sendable, Hashable {
    /// `copr://owner/dir` (`owner` may be `@group`; `dir` may be a CoprDir such as `proj:custom:x`).
    /// Query parameters such as `?priority=N` are not part of the reference; read them with
    /// ``RepoURLs/priority(of:)`` on the original string.
    case copr(owner: OwnerName, dir: CoprDirName)
    /// Any other `scheme://…` URL, unchanged (it may contain `$chroot`, `$distname` and `?priority=N`).
    case url(String)

    /// `nil` for a string without `scheme://`, or a `copr://` reference without a valid owner and directory.
    public init?(_ s: String) {
        if s.hasPrefix("copr://") {
            var rest = s.dropFirst("copr://".count)
            if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
                rest = rest[..<q]
            }
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 2, let owner = OwnerName(String(parts[0])),
                let dir = try? CoprDirName(String(parts[1]))
            else {
                return nil
            }
            self = .copr(owner: owner, dir: dir)
            return
        }
        guard let sep = s.firstRange(of: "://"), sep.lowerBound > s.startIndex,
            s[..<sep.lowerBound].utf8.allSatisfy({
                ASCII.isAlnum($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
            })
        else {
            return nil
        }
        self = .url(s)
    }
}

/// Pure helpers for repository URLs in `.repo` files and mock configs (upstream `coprs/repos.py`).
public enum RepoURLs {
    /// The value of a numeric `priority` query parameter (`http://x/repo?priority=10`, `copr://o/p?priority=5`).
    public static func priority(of url: String) -> Int? {
        for (key, value) in Self.queryItems(of: url) where key == "priority" {
            if !value.isEmpty, value.utf8.count <= 9, value.utf8.allSatisfy(ASCII.isDigit) {
                return Int(value)
            }
            return nil
        }
        return nil
    }

    /// Upstream's `pre_process_repo_url`, used for the `baseurl` of URL runtime dependencies and for mock
    /// configs:
    /// - `copr://owner/dir…` becomes `<resultsURL>/owner/dir/<chroot>/` (any query is dropped);
    /// - otherwise a `priority` query parameter is removed (other parameters are kept, in order);
    /// - then `$chroot` becomes the chroot name (`fedora-rawhide-x86_64`) and `$distname` its
    ///   `name_release` (`fedora-rawhide`).
    public static func expand(_ url: String, chroot: ChrootName, resultsURL: String) -> String {
        var result: String
        if url.hasPrefix("copr://") {
            var rest = url.dropFirst("copr://".count)
            if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
                rest = rest[..<q]
            }
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            let owner = parts.first.map(String.init) ?? ""
            let dir = parts.count > 1 ? String(parts[1]) : ""
            result = "\(Self.trimmingTrailingSlashes(resultsURL))/\(owner)/\(dir)/\(chroot.raw)/"
        } else {
            result = Self.removingQueryItem("priority", from: url)
        }
        result = result.replacing("$chroot", with: chroot.raw)
        result = result.replacing("$distname", with: chroot.nameRelease)
        return result
    }

    /// Upstream's `generate_repo_name`: every character outside `[A-Za-z0-9]` becomes `_`, runs of `_` are
    /// collapsed, and leading and trailing `_` removed. `https://url.to/external/repo` →
    /// `https_url_to_external_repo`.
    public static func slug(_ url: String) -> String {
        var out = ""
        var lastUnderscore = false
        for scalar in url.unicodeScalars {
            if scalar.isASCII && ASCII.isAlnum(UInt8(scalar.value)) {
                out.unicodeScalars.append(scalar)
                lastUnderscore = false
            } else if !lastUnderscore {
                out.append("_")
                lastUnderscore = true
            }
        }
        while out.hasPrefix("_") {
            out.removeFirst()
        }
        while out.hasSuffix("_") {
            out.removeLast()
        }
        return out
    }

    static func trimmingTrailingSlashes(_ s: String) -> String {
        var s = Substring(s)
        while s.hasSuffix("/") {
            s = s.dropLast()
        }
        return String(s)
    }

    /// `(key, value)` pairs of the query string, split on `&` (no percent-decoding).
    static func queryItems(of url: String) -> [(String, String)] {
        var s = Substring(url)
        if let hash = s.firstIndex(of: "#") {
            s = s[..<hash]
        }
        guard let q = s.firstIndex(of: "?") else {
            return []
        }
        return s[s.index(after: q)...].split(separator: "&").map { item in
            if let eq = item.firstIndex(of: "=") {
                return (String(item[..<eq]), String(item[item.index(after: eq)...]))
            }
            return (String(item), "")
        }
    }

    static func removingQueryItem(_ key: String, from url: String) -> String {
        var body = Substring(url)
        var fragment = Substring("")
        if let hash = body.firstIndex(of: "#") {
            fragment = body[hash...]
            body = body[..<hash]
        }
        guard let q = body.firstIndex(of: "?") else {
            return url
        }
        let base = body[..<q]
        let kept = body[body.index(after: q)...].split(separator: "&").filter { item in
            let name = item.firstIndex(of: "=").map { item[..<$0] } ?? item
            return name != key
        }
        if kept.isEmpty {
            return String(base) + String(fragment)
        }
        return String(base) + "?" + kept.joined(separator: "&") + String(fragment)
    }
}
