import Dispatch
import HTTPCore
import HTTPServer
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Serves a directory tree read-only under a URL prefix: the backend's `/results/OWNER/PROJECT/CHROOT/NNNNNNNN-PKG/`
/// layout (copr-protocol.md §7), fetched by `dnf` and by `wget -r` from `copr-cli download-build`.
///
/// - GET and HEAD only (405 otherwise, with `Allow`).
/// - A directory without its trailing slash answers 301 to the slashed path; a directory gets an Apache-style
///   autoindex page with relative, percent-encoded links.
/// - Files are streamed from disk by the server (`HTTPResponse.file`), never read into memory, with a content type
///   chosen by extension, `Last-Modified`, `Accept-Ranges: bytes` and single byte ranges (206 / 416). A file that
///   grows while it is served (a live log) is sent at its size when the request arrived.
/// - `.`/`..` segments (raw or percent-encoded), encoded slashes, NUL, and symlinks that resolve outside the root all
///   answer 404, exactly like a missing file, so nothing outside the tree is revealed. So do hidden names (`hiding`,
///   e.g. the publisher's `.koper-repodata/` index), which listings leave out as well.
///
/// Blocking file-system calls run on the handler's own queue, never on the cooperative pool.
public struct StaticFileHandler: HTTPHandler {
    /// The most entries an index page lists.
    public static let maxListingEntries = 50_000

    let fileSystem: ConfinedFileSystem
    /// Normalised: empty (serve at `/`) or `/segment...` without a trailing slash.
    let urlPrefix: String
    let logger: Logger
    let queue: DispatchQueue

    /// `root` is the directory served; it may not exist yet (requests answer 404 until it does). `urlPrefix` is
    /// the path it appears under. Names in `hiding` are neither served nor listed at any depth (404, like a
    /// missing file).
    public init(root: String, urlPrefix: String = "/results", hiding: Set<String> = [], logger: Logger) {
        self.fileSystem = ConfinedFileSystem(root: root, hiddenNames: hiding)
        var prefix = urlPrefix
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if !prefix.isEmpty && !prefix.hasPrefix("/") { prefix = "/" + prefix }
        self.urlPrefix = prefix
        self.logger = logger
        self.queue = DispatchQueue(label: "koper.static-files", attributes: .concurrent)
    }

    public func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy {
        .memory(maxBytes: 0)  // GET and HEAD carry no body
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        await self.response(for: request) ?? Self.notFound()
    }

    /// The response for a request under the URL prefix, or nil when the path is not under it (so that a service
    /// can try its other routes). A returned response may carry an open file (see `HTTPFileBody`): send it, or
    /// call `discardFile()` on it.
    public func response(for request: HTTPRequest) async -> HTTPResponse? {
        let head = request.head
        let parsed = RequestPath.parse(head.rawPath, prefix: self.urlPrefix)
        if parsed == .outside { return nil }
        return await withCheckedContinuation { continuation in
            self.queue.async {
                continuation.resume(returning: self.respond(to: head, path: parsed))
            }
        }
    }

    // MARK: Answering (on `queue`)

    func respond(to head: HTTPRequestHead, path: RequestPath) -> HTTPResponse {
        guard head.method == "GET" || head.method == "HEAD" else {
            var response = HTTPResponse(
                status: 405,
                contentType: "text/plain; charset=utf-8",
                body: "Method Not Allowed\n"
            )
            response.headers.add(name: "Allow", value: "GET, HEAD")
            return response
        }
        guard case .path(let segments, let trailingSlash) = path else {
            self.logger.debug("static path refused", metadata: ["http.path": "\(head.rawPath)"])
            return Self.notFound()
        }
        guard let node = self.fileSystem.open(segments: segments) else {
            return Self.notFound()
        }
        switch node {
        case .directory(let fd, let modified):
            guard trailingSlash else {
                Glibc.close(fd)
                return self.redirectToSlashed(segments)
            }
            return self.index(fd: fd, modified: modified, segments: segments)
        case .file(let fd, let size, let modified):
            guard !trailingSlash else {
                Glibc.close(fd)
                return Self.notFound()
            }
            return self.file(fd: fd, size: size, modified: modified, name: segments.last ?? "", head: head)
        }
    }

    /// 301 to the canonical, re-encoded slashed path. It is an absolute path that always starts with the prefix
    /// (never `//`), so it cannot point at another host.
    func redirectToSlashed(_ segments: [String]) -> HTTPResponse {
        let location = self.urlPath(segments, encoded: true)
        var response = HTTPResponse(
            status: 301,
            contentType: "text/html; charset=utf-8",
            body: """
                <!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
                <html><head><title>301 Moved Permanently</title></head><body>
                <h1>Moved Permanently</h1>
                <p>The document has moved <a href="\(PathText.escapeHTML(location))">here</a>.</p>
                </body></html>

                """
        )
        response.headers.add(name: "Location", value: location)
        return response
    }

    func index(fd: Int32, modified: Int, segments: [String]) -> HTTPResponse {
        let (entries, truncated) = self.fileSystem.list(directoryFD: fd, limit: Self.maxListingEntries)
        let html = Autoindex.render(
            urlPath: self.urlPath(segments, encoded: false),
            hasParent: !segments.isEmpty,
            entries: entries,
            truncated: truncated
        )
        var response = HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: html)
        response.headers.add(name: "Last-Modified", value: HTTPDate.format(modified))
        return response
    }

    func file(fd: Int32, size: Int, modified: Int, name: String, head: HTTPRequestHead) -> HTTPResponse {
        let lastModified = HTTPDate.format(modified)
        var headers: HTTPHeaders = [
            "Content-Type": MediaType.forFileName(name),
            "Last-Modified": lastModified,
            "Accept-Ranges": "bytes",
            "X-Content-Type-Options": "nosniff",
        ]
        // If-Modified-Since (RFC 9110 §13.1.3) only when no Range is involved.
        if head.headers["Range"] == nil, let since = head.headers["If-Modified-Since"].flatMap(HTTPDate.parse),
            modified <= since
        {
            Glibc.close(fd)
            return HTTPResponse(status: 304, headers: headers)
        }
        // Ranges apply to GET only (RFC 9110 §14.2); If-Range must match our date exactly, else send it all.
        var range = ByteRangeRequest.whole
        if head.method == "GET", let rangeHeader = head.headers["Range"] {
            let ifRange = head.headers["If-Range"]
            if ifRange == nil || ifRange == lastModified {
                range = ByteRangeRequest.evaluate(rangeHeader, size: size)
            }
        }
        switch range {
        case .whole:
            return .file(status: 200, headers: headers, HTTPFileBody(descriptor: fd, offset: 0, length: size))
        case .partial(let first, let last):
            headers.add(name: "Content-Range", value: "bytes \(first)-\(last)/\(size)")
            return .file(
                status: 206,
                headers: headers,
                HTTPFileBody(descriptor: fd, offset: first, length: last - first + 1)
            )
        case .unsatisfiable:
            Glibc.close(fd)
            var response = HTTPResponse(
                status: 416,
                contentType: "text/plain; charset=utf-8",
                body: "Range Not Satisfiable\n"
            )
            response.headers.add(name: "Content-Range", value: "bytes */\(size)")
            return response
        }
    }

    /// `/results/a/b/` for segments `a`, `b` (always with the trailing slash).
    func urlPath(_ segments: [String], encoded: Bool) -> String {
        var path = self.urlPrefix + "/"
        for segment in segments {
            path += (encoded ? PathText.encodeSegment(segment) : segment) + "/"
        }
        return path
    }

    static func notFound() -> HTTPResponse {
        HTTPResponse(status: 404, contentType: "text/plain; charset=utf-8", body: "Not Found\n")
    }
}
