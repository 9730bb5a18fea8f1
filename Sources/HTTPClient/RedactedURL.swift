internal import CCurl

/// A URL as it may appear in errors and logs: `scheme://host:port/path`, without user name, password, query or
/// fragment. Parsed with libcurl's own URL parser (`curl_url`), so it agrees with what the transfer used.
struct RedactedURL: CustomStringConvertible, Sendable {
    let description: String
    /// Credential strings (raw and decoded) to remove from any libcurl message about this URL.
    private let secrets: [String]

    init(_ url: String) {
        guard let parsed = curl_url() else {
            self.description = "<URL>"
            self.secrets = []
            return
        }
        defer { curl_url_cleanup(parsed) }
        guard curl_url_set(parsed, CURLUPART_URL, url, 0) == CURLUE_OK else {
            self.description = "<invalid URL>"
            self.secrets = Self.rawUserInfo(url).map { [$0] } ?? []
            return
        }
        func part(_ which: CURLUPart, _ flags: UInt32 = 0) -> String? {
            var value: UnsafeMutablePointer<CChar>?
            guard curl_url_get(parsed, which, &value, flags) == CURLUE_OK, let value else { return nil }
            defer { curl_free(value) }
            return String(cString: value)
        }
        let scheme = part(CURLUPART_SCHEME) ?? "?"
        let host = part(CURLUPART_HOST) ?? "?"
        let port = part(CURLUPART_PORT).map { ":\($0)" } ?? ""
        let path = part(CURLUPART_PATH) ?? "/"
        self.description = "\(scheme)://\(host)\(port)\(path)"
        var secrets: [String] = []
        for which in [CURLUPART_USER, CURLUPART_PASSWORD] {
            for flags in [UInt32(0), UInt32(CURLU_URLDECODE)] {
                if let value = part(which, flags), !value.isEmpty { secrets.append(value) }
            }
        }
        if let raw = Self.rawUserInfo(url) { secrets.append(raw) }
        if let query = part(CURLUPART_QUERY), !query.isEmpty { secrets.append(query) }
        // Longest first, so a password is removed before a user name that might be a part of it.
        self.secrets = secrets.sorted { $0.count > $1.count }
    }

    /// `text` with every credential of this URL replaced by `***`.
    func scrub(_ text: String) -> String {
        var text = text
        for secret in self.secrets {
            text = text.replacing(secret, with: "***")
        }
        return text
    }

    /// The text between `://` and the last `@` before the path, if any.
    private static func rawUserInfo(_ url: String) -> String? {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard let at = authority.lastIndex(of: "@") else { return nil }
        let info = String(authority[..<at])
        return info.isEmpty ? nil : info
    }
}
