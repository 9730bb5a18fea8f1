/// Content types for the files a results tree holds, chosen by the file name's last extension.
public enum MediaType {
    public static let fallback = "application/octet-stream"

    /// Extension (lower case, without the dot) to media type. HTML is deliberately absent: build results are
    /// produced by untrusted builds, and a page served from the results origin must never run as HTML.
    static let byExtension: [String: String] = [
        "rpm": "application/x-rpm",
        "gz": "application/gzip",
        "xz": "application/x-xz",
        "bz2": "application/x-bzip2",
        "zst": "application/zstd",
        "xml": "text/xml",
        "gpg": "application/pgp-keys",
        "asc": "application/pgp-signature",
        "json": "application/json",
        "log": "text/plain; charset=utf-8",
        "txt": "text/plain; charset=utf-8",
        "repo": "text/plain",
        "spec": "text/plain; charset=utf-8",
    ]

    /// The media type for `fileName` (`hello-1.0-1.src.rpm` → `application/x-rpm`).
    public static func forFileName(_ fileName: String) -> String {
        guard let dot = fileName.lastIndex(of: "."), dot != fileName.startIndex else { return Self.fallback }
        let ext = fileName[fileName.index(after: dot)...].lowercased()
        return Self.byExtension[ext] ?? Self.fallback
    }
}
