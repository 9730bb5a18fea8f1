import HTTPCore
import HTTPServer
import StaticFiles
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

let buildDir = "owner/proj/fedora-41-x86_64/00000042-hello"
let buildURL = "/results/" + buildDir + "/"

/// A small results tree in the copr-protocol.md §7 layout.
func makeSampleTree() -> ResultsTree {
    let tree = ResultsTree()
    tree.write(buildDir + "/hello-1.0-1.fc41.x86_64.rpm", "x86_64 rpm payload")
    tree.write(buildDir + "/hello-1.0-1.fc41.src.rpm", "source rpm payload!")
    tree.write(buildDir + "/builder-live.log.gz", [0x1f, 0x8b, 8, 0])
    tree.write(buildDir + "/notes & <odd> name.txt", "odd")
    tree.write(buildDir + "/c++:weird~v1.0^git.txt", "weird")
    tree.write(buildDir + "/big.bin", [UInt8](repeating: 7, count: 5000))
    tree.mkdirs(buildDir + "/sub dir")
    tree.write("owner/proj/fedora-41-x86_64/repodata/repomd.xml", "<repomd/>")
    tree.write("owner/proj/pubkey.gpg", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    tree.write("@group/proj/fedora-41-x86_64/00000007-x/x.rpm", "x")
    return tree
}

@Suite("StaticFiles: autoindex, redirects, ranges, types", .timeLimit(.minutes(2)))
struct StaticFileHandlerTests {
    @Test func autoindexListsEntriesWithRelativeEncodedLinks() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        tree.setModified(buildDir + "/hello-1.0-1.fc41.x86_64.rpm", seconds: 1_700_000_000)  // 2023-11-14 22:13 UTC
        try await withStaticServer(tree) { _, port in
            let response = try await fetch(port, buildURL)
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/html; charset=utf-8")
            let html = response.bodyString
            #expect(html.contains("<title>Index of /results/owner/proj/fedora-41-x86_64/00000042-hello/</title>"))
            #expect(html.contains("<h1>Index of /results/owner/proj/fedora-41-x86_64/00000042-hello/</h1>"))
            #expect(html.contains(">Parent Directory</a>"))
            // Sorted by name (byte order), relative, percent-encoded; directories end in "/".
            #expect(
                hrefs(html) == [
                    "../",
                    "big.bin",
                    "builder-live.log.gz",
                    "c++%3Aweird~v1.0%5Egit.txt",
                    "hello-1.0-1.fc41.src.rpm",
                    "hello-1.0-1.fc41.x86_64.rpm",
                    "notes%20%26%20%3Codd%3E%20name.txt",
                    "sub%20dir/",
                ]
            )
            #expect(html.contains(">notes &amp; &lt;odd&gt; name.txt</a>"))
            #expect(html.contains(">sub dir/</a>"))
            #expect(html.contains("2023-11-14 22:13"))
            #expect(html.contains(">4.9K</td>"))  // big.bin, 5000 bytes
            #expect(html.contains(">18</td>"))  // the x86_64 rpm, 18 bytes
            // Every link resolves to something the server serves.
            for href in hrefs(html).dropFirst() {
                let target = try await fetch(port, buildURL + href)
                #expect(target.status == 200, "\(href)")
            }
        }
    }

    @Test func prefixRootAndParentLinks() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        try await withStaticServer(tree) { _, port in
            let top = try await fetch(port, "/results/")
            #expect(top.status == 200)
            #expect(top.bodyString.contains("Index of /results/"))
            #expect(!top.bodyString.contains("Parent Directory"))
            #expect(
                hrefs(top.bodyString) == ["%40group/", "owner/"] || hrefs(top.bodyString) == ["@group/", "owner/"]
            )
            let project = try await fetch(port, "/results/owner/proj/")
            #expect(hrefs(project.bodyString) == ["../", "fedora-41-x86_64/", "pubkey.gpg"])
        }
    }

    @Test func directoryWithoutSlashRedirects() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        try await withStaticServer(tree) { _, port in
            let build = try await fetch(port, String(buildURL.dropLast()))
            #expect(build.status == 301)
            #expect(build.header("Location") == buildURL)
            let root = try await fetch(port, "/results")
            #expect(root.status == 301)
            #expect(root.header("Location") == "/results/")
            let group = try await fetch(port, "/results/%40group/proj")
            #expect(group.status == 301)
            #expect(group.header("Location") == "/results/@group/proj/")
            let spaced = try await fetch(port, buildURL + "sub%20dir")
            #expect(spaced.header("Location") == buildURL + "sub%20dir/")
            // A HEAD gets the same answer without a body; a missing directory is a plain 404.
            let head = try await fetch(port, "/results/owner", method: "HEAD")
            #expect(head.status == 301 && head.header("Location") == "/results/owner/" && head.body.isEmpty)
            #expect(try await fetch(port, "/results/owner/nope").status == 404)
            // A file with a trailing slash is not a directory.
            #expect(try await fetch(port, buildURL + "big.bin/").status == 404)
        }
    }

    @Test func rangeRequests() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        tree.write("r.bin", (0..<100).map { UInt8($0) })
        tree.write("empty.bin", [])
        try await withStaticServer(tree) { _, port in
            func get(
                _ range: String,
                path: String = "/results/r.bin",
                extra: [(String, String)] = []
            ) async throws -> TestHTTPResponse {
                try await fetch(port, path, headers: [("Range", range)] + extra)
            }
            let partials: [(String, Int, Int)] = [
                ("bytes=0-9", 0, 9), ("bytes=90-", 90, 99), ("bytes=-5", 95, 99), ("bytes=95-1000", 95, 99),
                ("bytes=-1000", 0, 99), ("bytes=0-0", 0, 0), ("BYTES=10-19", 10, 19), ("bytes= 3-4 ", 3, 4),
            ]
            for (range, first, last) in partials {
                let r = try await get(range)
                #expect(r.status == 206, "\(range)")
                #expect(r.header("Content-Range") == "bytes \(first)-\(last)/100", "\(range)")
                #expect(r.header("Content-Length") == "\(last - first + 1)", "\(range)")
                #expect(r.body == (first...last).map { UInt8($0) }, "\(range)")
            }
            for range in ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=1000-"] {
                let r = try await get(range)
                #expect(r.status == 416, "\(range)")
                #expect(r.header("Content-Range") == "bytes */100", "\(range)")
            }
            let emptyRange = try await get("bytes=0-", path: "/results/empty.bin")
            #expect(emptyRange.status == 416 && emptyRange.header("Content-Range") == "bytes */0")
            // Several ranges, nonsense and other units: the whole file with 200.
            for range in ["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=a-b", "bytes=", "bytes=-"] {
                let r = try await get(range)
                #expect(r.status == 200, "\(range)")
                #expect(r.body.count == 100, "\(range)")
                #expect(r.header("Content-Range") == nil, "\(range)")
            }
            // If-Range: a matching date keeps the range, anything else gets the whole file.
            let full = try await fetch(port, "/results/r.bin")
            let lastModified = try #require(full.header("Last-Modified"))
            #expect(try await get("bytes=0-1", extra: [("If-Range", lastModified)]).status == 206)
            #expect(try await get("bytes=0-1", extra: [("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT")]).status == 200)
            // HEAD ignores Range.
            let head = try await fetch(port, "/results/r.bin", method: "HEAD", headers: [("Range", "bytes=0-9")])
            #expect(head.status == 200 && head.header("Content-Length") == "100" && head.body.isEmpty)
        }
    }

    @Test func headSendsHeadersOnly() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        try await withStaticServer(tree) { _, port in
            let (file, dir, afterwards) = try await blocking {
                let client = try TestHTTPClient(port: port)
                let file = try client.request(method: "HEAD", path: buildURL + "big.bin")
                let dir = try client.request(method: "HEAD", path: buildURL)
                // The connection is still in step: nothing was sent after the heads.
                let afterwards = try client.request(path: buildURL + "hello-1.0-1.fc41.x86_64.rpm")
                return (file, dir, afterwards)
            }
            #expect(file.status == 200)
            #expect(file.header("Content-Length") == "5000")
            #expect(file.header("Accept-Ranges") == "bytes")
            #expect(file.header("Last-Modified") != nil)
            #expect(file.body.isEmpty)
            #expect(dir.status == 200)
            #expect(Int(dir.header("Content-Length") ?? "") ?? 0 > 100)
            #expect(afterwards.bodyString == "x86_64 rpm payload")
        }
    }

    @Test func contentTypesAndHeaders() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        let cases: [(String, String)] = [
            ("a.rpm", "application/x-rpm"), ("a.src.rpm", "application/x-rpm"),
            ("builder-live.log.gz", "application/gzip"),
            ("repomd.xml", "text/xml"), ("pubkey.gpg", "application/pgp-keys"), ("results.json", "application/json"),
            ("backend.log", "text/plain; charset=utf-8"), ("readme.txt", "text/plain; charset=utf-8"),
            ("owner-proj.repo", "text/plain"), ("blob", "application/octet-stream"),
            ("page.html", "application/octet-stream"),
            ("UPPER.RPM", "application/x-rpm"), (".hidden", "application/octet-stream"),
        ]
        for (name, _) in cases { tree.write("types/" + name, "x") }
        tree.setModified("types/a.rpm", seconds: 784_111_777)
        try await withStaticServer(tree) { _, port in
            for (name, type) in cases {
                let r = try await fetch(port, "/results/types/" + name)
                #expect(r.status == 200, "\(name)")
                #expect(r.header("Content-Type") == type, "\(name)")
                #expect(r.header("Accept-Ranges") == "bytes", "\(name)")
            }
            let dated = try await fetch(port, "/results/types/a.rpm")
            #expect(dated.header("Last-Modified") == "Sun, 06 Nov 1994 08:49:37 GMT")
            let notModified = try await fetch(
                port,
                "/results/types/a.rpm",
                headers: [("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]
            )
            #expect(notModified.status == 304 && notModified.body.isEmpty)
            let modified = try await fetch(
                port,
                "/results/types/a.rpm",
                headers: [("If-Modified-Since", "Sun, 06 Nov 1994 08:49:36 GMT")]
            )
            #expect(modified.status == 200 && modified.bodyString == "x")
        }
    }

    @Test func onlyGetAndHead() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        try await withStaticServer(tree) { _, port in
            for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
                let r = try await blocking {
                    let client = try TestHTTPClient(port: port)
                    return try client.request(
                        method: method,
                        path: buildURL + "big.bin",
                        body: method == "POST" || method == "PUT" ? [] : nil
                    )
                }
                #expect(r.status == 405, "\(method)")
                #expect(r.header("Allow") == "GET, HEAD", "\(method)")
            }
        }
    }

    @Test func growingFileIsServedAtItsSizeWhenRequested() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        let path = tree.root + "/" + buildDir + "/builder-live.log"
        let initial = 4 << 20
        tree.write(buildDir + "/builder-live.log", [UInt8](repeating: UInt8(ascii: "a"), count: initial))
        try await withStaticServer(tree) { _, port in
            let body = try await blocking {
                let client = try TestHTTPClient(port: port)
                client.setReceiveBufferSize(32 * 1024)
                try client.send(
                    TestHTTPClient.requestBytes(path: buildURL + "builder-live.log", headers: [("Connection", "close")])
                )
                // Wait until the head is in, then grow the log while the body is still flowing.
                let early = try client.receiveSome(maxBytes: 1024)
                let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
                let more = [UInt8](repeating: UInt8(ascii: "b"), count: 1 << 20)
                _ = more.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                return early + (try client.readUntilClose())
            }
            let end = try #require(headEnd(body))
            let head = String(decoding: body[..<end], as: UTF8.self)
            #expect(head.contains("Content-Length: \(initial)\r\n"))
            #expect(head.contains("Content-Type: text/plain; charset=utf-8\r\n"))
            #expect(body.count - end == initial)
            #expect(body[end...].allSatisfy { $0 == UInt8(ascii: "a") })
            // A later request sees the grown file.
            let later = try await fetch(port, buildURL + "builder-live.log", method: "HEAD")
            #expect(later.header("Content-Length") == "\(initial + (1 << 20))")
        }
    }

    @Test func hiddenNamesAreNeitherServedNorListed() async throws {
        let tree = ResultsTree()
        defer { tree.remove() }
        // A published chroot: repodata/ is public, the publisher's .koper-repodata/ index is not.
        tree.write("o/p/fedora-41-x86_64/repodata/repomd.xml", "<repomd/>")
        tree.write("o/p/fedora-41-x86_64/.koper-repodata/index", "private index")
        tree.write("o/p/fedora-41-x86_64/.koper-repodata/lock", "")
        tree.symlink("o/p/fedora-41-x86_64/alias", to: ".koper-repodata")
        tree.write("o/p/fedora-41-x86_64/.other-dot", "shown")
        let handler = StaticFileHandler(root: tree.root, hiding: [".koper-repodata"], logger: quietLogger)
        func get(_ target: String) async -> HTTPResponse {
            let response = await handler.handle(
                HTTPRequest(head: HTTPRequestHead(method: "GET", target: target), body: .empty)
            )
            response.discardFile()
            return response
        }
        let chroot = "/results/o/p/fedora-41-x86_64/"
        #expect(await get(chroot + "repodata/repomd.xml").status == 200)
        #expect(await get(chroot + ".other-dot").status == 200)
        for hidden in [
            ".koper-repodata/index", ".koper-repodata/", ".koper-repodata", ".koper-repodata/lock", "alias/index",
            "alias/", "%2Ekoper-repodata/index",
        ] {
            #expect(await get(chroot + hidden).status == 404, "\(hidden)")
        }
        let listing = await get(chroot)
        #expect(listing.status == 200)
        let html = String(decoding: listing.body, as: UTF8.self)
        #expect(html.contains("repodata/") && html.contains(".other-dot"))
        #expect(!html.contains("koper-repodata") && !html.contains("alias"))
        // Without `hiding` the same tree is served as it is (the option, not a rule of the tree, hides it).
        let plain = StaticFileHandler(root: tree.root, logger: quietLogger)
        let open = await plain.handle(
            HTTPRequest(head: HTTPRequestHead(method: "GET", target: chroot + ".koper-repodata/index"), body: .empty)
        )
        open.discardFile()
        #expect(open.status == 200)
    }

    @Test func composesWithOtherRoutes() async throws {
        let tree = makeSampleTree()
        defer { tree.remove() }
        let handler = StaticFileHandler(root: tree.root, urlPrefix: "/results/", logger: quietLogger)
        func request(_ target: String, method: String = "GET") -> HTTPRequest {
            HTTPRequest(head: HTTPRequestHead(method: method, target: target), body: .empty)
        }
        #expect(await handler.response(for: request("/api_3/build/1")) == nil)
        #expect(await handler.response(for: request("/resultsX/owner/")) == nil)
        #expect(await handler.response(for: request("/")) == nil)
        let listing = try #require(await handler.response(for: request("/results/owner/?x=1")))
        #expect(listing.status == 200)
        let file = try #require(await handler.response(for: request(buildURL + "big.bin")))
        #expect(file.status == 200)
        #expect(file.file?.length == 5000)
        file.discardFile()  // composed handlers that drop a file response close it
        #expect(await handler.handle(request("/elsewhere")).status == 404)
    }
}

/// The index just past the `\r\n\r\n` that ends a response head.
func headEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4)
    where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i + 4
    }
    return nil
}
