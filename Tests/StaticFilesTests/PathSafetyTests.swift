import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Nothing outside the root is ever served or revealed: every escape attempt looks exactly like a missing file.
@Suite("StaticFiles: path confinement", .timeLimit(.minutes(2)))
struct PathSafetyTests {
    static let secret = "TOP SECRET outside the root"

    func makeTree() -> ResultsTree {
        let tree = makeSampleTree()
        tree.write("secret.txt", Self.secret, under: tree.outside)
        tree.write("dir/inner.txt", Self.secret, under: tree.outside)
        let build = buildDir
        // Escapes: relative and absolute, to a file and to a directory, and a dangling link.
        tree.symlink(build + "/secret-link.txt", to: "../../../../../outside/secret.txt")
        tree.symlink(build + "/secret-abs.txt", to: tree.outside + "/secret.txt")
        tree.symlink(build + "/escape", to: tree.outside + "/dir")
        tree.symlink("owner/root-escape", to: "../..")  // the directory holding root/ and outside/
        tree.symlink(build + "/dangling.rpm", to: "nowhere.rpm")
        // Links that stay inside the root are fine.
        tree.symlink(build + "/latest.rpm", to: "hello-1.0-1.fc41.x86_64.rpm")
        tree.symlink("owner/proj/fedora-41-x86_64/latest", to: "00000042-hello")
        tree.symlink("owner/proj/key.gpg", to: tree.root + "/owner/proj/pubkey.gpg")
        return tree
    }

    @Test func traversalAttemptsAreRefused() async throws {
        let tree = self.makeTree()
        defer { tree.remove() }
        try await withStaticServer(tree) { _, port in
            let missing = try await fetch(port, "/results/owner/no-such-file")
            #expect(missing.status == 404)
            let attempts = [
                "/results/../outside/secret.txt",
                "/results/owner/../../outside/secret.txt",
                "/results/owner/proj/..",
                "/results/..",
                "/results/../",
                "/results/%2e%2e/outside/secret.txt",
                "/results/%2E%2E/outside/secret.txt",
                "/results/%2E%2e/outside/secret.txt",
                "/results/%2E%2e/",
                "/results/%2e%2e",
                "/results/owner/%2e%2e/%2e%2e/outside/secret.txt",
                "/results/owner/..%2f..%2foutside/secret.txt",
                "/results/..%2Foutside%2Fsecret.txt",
                "/results/.%2e/outside/secret.txt",
                "/results/owner%2fproj/pubkey.gpg",  // encoded slash, even to a file that exists
                "/results/owner%2Fproj/",
                "/results/./owner/proj/pubkey.gpg",
                "/results/owner/%2e/proj/pubkey.gpg",
                "/results/owner/proj/pubkey.gpg%00",
                "/results/owner/proj/pubkey.gpg%00.rpm",
                "/results/%00/",
                "/results//owner/proj/pubkey.gpg",
                "/results/owner//proj/pubkey.gpg",
                "/results/owner/proj/%zz",
                "/results/owner/proj/%ff",
                "/results/" + buildDir + "/secret-link.txt",
                "/results/" + buildDir + "/secret-abs.txt",
                "/results/" + buildDir + "/escape/",
                "/results/" + buildDir + "/escape",
                "/results/" + buildDir + "/escape/inner.txt",
                "/results/owner/root-escape/outside/secret.txt",
                "/results/owner/root-escape/",
                "/results/" + buildDir + "/dangling.rpm",
            ]
            for path in attempts {
                for method in ["GET", "HEAD"] {
                    let r = try await fetch(port, path, method: method)
                    #expect(r.status == 404, "\(method) \(path)")
                    #expect(r.header("Location") == nil, "\(method) \(path)")
                    #expect(!r.bodyString.contains("SECRET"), "\(method) \(path)")
                    if method == "GET" { #expect(r.body == missing.body, "\(path)") }
                }
            }
            // The listing does not show escaping or dangling links either.
            let listing = try await fetch(port, buildURL)
            let links = hrefs(listing.bodyString)
            #expect(!links.contains { $0.hasPrefix("secret") || $0.hasPrefix("escape") || $0.hasPrefix("dangling") })
            #expect(links.contains("latest.rpm"))
            #expect(!hrefs(try await fetch(port, "/results/owner/").bodyString).contains("root-escape/"))
        }
    }

    @Test func symlinksInsideTheRootWork() async throws {
        let tree = self.makeTree()
        defer { tree.remove() }
        try await withStaticServer(tree) { _, port in
            let file = try await fetch(port, buildURL + "latest.rpm")
            #expect(file.status == 200)
            #expect(file.bodyString == "x86_64 rpm payload")
            #expect(file.header("Content-Type") == "application/x-rpm")
            let absolute = try await fetch(port, "/results/owner/proj/key.gpg")
            #expect(absolute.status == 200)
            #expect(absolute.header("Content-Type") == "application/pgp-keys")
            let directory = try await fetch(port, "/results/owner/proj/fedora-41-x86_64/latest/")
            #expect(directory.status == 200)
            #expect(directory.bodyString.contains("Index of /results/owner/proj/fedora-41-x86_64/latest/"))
            #expect(hrefs(directory.bodyString).contains("hello-1.0-1.fc41.src.rpm"))
            let redirect = try await fetch(port, "/results/owner/proj/fedora-41-x86_64/latest")
            #expect(redirect.status == 301)
            #expect(redirect.header("Location") == "/results/owner/proj/fedora-41-x86_64/latest/")
            let listed = hrefs(try await fetch(port, "/results/owner/proj/fedora-41-x86_64/").bodyString)
            #expect(listed == ["../", "00000042-hello/", "latest/", "repodata/"])
        }
    }

    @Test func aRootThatIsItselfASymlinkStillConfines() async throws {
        let tree = self.makeTree()
        defer { tree.remove() }
        // Serve the tree through a symlinked root: the canonical root is what confines.
        let linkedRoot = tree.base + "/linked-root"
        #expect(symlink(tree.root, linkedRoot) == 0)
        try await withStaticServer(tree, root: linkedRoot) { _, port in
            let inside = try await fetch(port, buildURL + "latest.rpm")
            let escape = try await fetch(port, buildURL + "secret-abs.txt")
            let traversal = try await fetch(port, "/results/%2e%2e/outside/secret.txt")
            #expect(inside.status == 200)
            #expect(escape.status == 404)
            #expect(traversal.status == 404)
        }
    }
}
