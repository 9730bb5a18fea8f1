import HTTPCore

/// What a raw request path means relative to the URL prefix, decided before the file system is touched.
enum RequestPath: Equatable {
    /// Not under the prefix: another handler's business.
    case outside
    /// Under the prefix but not a path we will ever resolve (`.`/`..` segments raw or encoded, an encoded `/`,
    /// NUL, an empty segment, malformed or non-UTF-8 escapes). Answered with 404 so nothing is revealed.
    case refused
    /// Percent-decoded segments below the root; `trailingSlash` when the path ended in `/` (or is the bare prefix
    /// followed by `/`).
    case path(segments: [String], trailingSlash: Bool)

    /// `prefix` is normalised (starts with `/` unless empty, no trailing `/`).
    static func parse(_ rawPath: Substring, prefix: String) -> RequestPath {
        let rest: Substring
        if rawPath == prefix {
            return .path(segments: [], trailingSlash: false)
        } else if rawPath.hasPrefix(prefix + "/") {
            rest = rawPath.dropFirst(prefix.utf8.count + 1)
        } else {
            return .outside
        }
        if rest.isEmpty { return .path(segments: [], trailingSlash: true) }
        var raw = rest.split(separator: "/", omittingEmptySubsequences: false)
        var trailingSlash = false
        if raw.last == "" {
            trailingSlash = true
            raw.removeLast()
        }
        var segments: [String] = []
        segments.reserveCapacity(raw.count)
        for part in raw {
            guard let decoded = URLEncoding.percentDecode(part), Self.isAcceptable(decoded) else { return .refused }
            segments.append(decoded)
        }
        return .path(segments: segments, trailingSlash: trailingSlash)
    }

    /// One decoded path segment that names an entry of a directory and nothing else.
    static func isAcceptable(_ segment: String) -> Bool {
        if segment.isEmpty || segment == "." || segment == ".." { return false }
        // An encoded "/" would smuggle a second segment past the checks above; NUL would cut the C string short.
        return !segment.utf8.contains(UInt8(ascii: "/")) && !segment.utf8.contains(0)
    }
}

/// Path helpers for building URLs and HTML.
enum PathText {
    /// Percent-encodes one path segment for use in an href or a Location. Characters that are harmless in a path
    /// and common in RPM file names (`+`, `@`, `,`, `=`, `~`) stay readable; `:` is encoded so that a relative
    /// reference can never look like a scheme, `&`, `'` and `"` so that it needs no HTML escaping.
    static func encodeSegment(_ segment: String) -> String {
        URLEncoding.percentEncode(segment, allowed: "+@,=")
    }

    /// Escapes text for HTML element content and double-quoted attribute values.
    static func escapeHTML(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
