/// Validation of free-form project fields (copr-api-behaviour.md §1 4.2).
public enum FieldValidation {
    /// An `http://` or `https://` URL with a host; otherwise field `homepage`, "Invalid URL".
    ///
    /// Koper is a little stricter than upstream's WTForms `URL()` on the scheme (http(s) only) and a little
    /// looser on the host (no top-level domain required, so `http://localhost/` is fine for self-hosting).
    public static func validateHomepage(_ s: String, field: String = "homepage") throws(ValidationError) {
        guard Self.isHTTPURL(s) else {
            throw ValidationError(field: field, "Invalid URL")
        }
    }

    /// An e-mail address or an `http(s)` URL; otherwise field `contact`, "Contact must be email address or URL".
    public static func validateContact(_ s: String, field: String = "contact") throws(ValidationError) {
        guard Self.isEmailAddress(s) || Self.isHTTPURL(s) else {
            throw ValidationError(field: field, "Contact must be email address or URL")
        }
    }

    /// An external repository or runtime dependency: `http(s)://host/...` or `copr://owner/project`
    /// (upstream's `UrlRepoListValidator`; whether the Copr project exists is the caller's business).
    public static func validateRepoURL(_ s: String, field: String = "additional_repos") throws(ValidationError) {
        let ok: Bool
        switch RepoReference(s) {
        case .copr:
            ok = true
        case .url(let url):
            ok = Self.isHTTPURL(url)
        case nil:
            ok = false
        }
        if !ok {
            throw ValidationError(
                field: field,
                "A list of http[s] URLs separated by whitespace characters is needed "
                    + "('\(s)' doesn't seem to be a valid URL)."
            )
        }
    }

    /// `http://` or `https://` (any case), then a non-empty host (optionally with `user@` and `:port`), then
    /// nothing or `/`, `?`, `#` and the rest; no whitespace or control characters anywhere.
    public static func isHTTPURL(_ s: String) -> Bool {
        guard !s.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F })
        else {
            return false
        }
        guard let afterScheme = Self.dropHTTPScheme(s) else {
            return false
        }
        let authority = afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var hostPort = Substring(authority)
        if let at = hostPort.lastIndex(of: "@") {
            hostPort = hostPort[hostPort.index(after: at)...]
        }
        let host: Substring
        if hostPort.hasPrefix("[") {
            // IPv6 literal: [hex:digits], then optional :port
            guard let close = hostPort.firstIndex(of: "]") else {
                return false
            }
            let inner = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                return false
            }
            let rest = hostPort[hostPort.index(after: close)...]
            return rest.isEmpty || Self.isPortSuffix(rest)
        } else if let colon = hostPort.lastIndex(of: ":") {
            guard Self.isPortSuffix(hostPort[colon...]) else {
                return false
            }
            host = hostPort[..<colon]
        } else {
            host = hostPort
        }
        return Self.isHostName(host)
    }

    /// A pragmatic e-mail check: `local@domain`, a non-empty local part without spaces or `@`, and a domain
    /// of at least two dot-separated labels.
    public static func isEmailAddress(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            return false
        }
        let local = parts[0]
        let domain = parts[1]
        guard !local.isEmpty, local.utf8.count <= 64,
            !local.unicodeScalars.contains(where: {
                $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F
                    || "()<>[]\\,;:\"".unicodeScalars.contains($0)
            }),
            !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..")
        else {
            return false
        }
        return domain.contains(".") && Self.isHostName(domain)
    }

    private static func dropHTTPScheme(_ s: String) -> Substring? {
        for scheme in ["https://", "http://"] {
            if s.count > scheme.count && s.prefix(scheme.count).lowercased() == scheme {
                return s.dropFirst(scheme.count)
            }
        }
        return nil
    }

    private static func isPortSuffix(_ s: Substring) -> Bool {
        // ":" followed by 1...5 digits
        let digits = s.dropFirst()
        return s.first == ":" && !digits.isEmpty && digits.count <= 5 && digits.utf8.allSatisfy(ASCII.isDigit)
    }

    /// Dot-separated labels of letters (any script), digits and inner hyphens; an optional trailing dot.
    private static func isHostName(_ host: Substring) -> Bool {
        var h = host
        if h.hasSuffix(".") {
            h = h.dropLast()
        }
        guard !h.isEmpty, h.utf8.count <= 253 else {
            return false
        }
        for label in h.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-"),
                label.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            else {
                return false
            }
        }
        return true
    }
}
