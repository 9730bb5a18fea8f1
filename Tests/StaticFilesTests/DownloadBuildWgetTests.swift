import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `wget` from PATH, if installed (copr-protocol.md §9: the copr-cli machine needs it).
let wgetPath: String? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/wget"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}()

/// `copr-cli download-build` runs wget over the build's `result_url` (copr-protocol.md §4 "download-build", §7).
///
/// The argument vector is copr-cli's, element for element (python-copr-cli `download_build`):
/// `wget -r -nH --no-parent --reject '"index.html*"' -e robots=off --no-verbose -P DEST/CHROOT --cut-dirs 6
/// -A '*.rpm' RESULT_URL` — the reject pattern carries its double quotes literally. The arithmetic: `-nH` drops the
/// host, and `result_url` = `/results/OWNER/PROJECT/CHROOT/NNNNNNNN-PKG/` has 5 directory components, all of which
/// `--cut-dirs 6` removes (wget cuts at most what there is), so the files land directly in `DEST/CHROOT/`.
@Suite(
    "StaticFiles: copr-cli download-build through wget",
    .serialized,
    .requires(tools: "wget"),
    .timeLimit(.minutes(2))
)
struct DownloadBuildWgetTests {
    static let chroot = "fedora-41-x86_64"
    static let rpms = [
        "hello-1.0-1.fc41.src.rpm", "hello-1.0-1.fc41.x86_64.rpm", "hello-debuginfo-1.0-1.fc41.x86_64.rpm",
    ]
    static let logs = ["backend.log.gz", "builder-live.log.gz"]

    func makeTree() -> ResultsTree {
        let tree = ResultsTree()
        let build = "owner/proj/\(Self.chroot)/00000042-hello"
        for name in Self.rpms { tree.write(build + "/" + name, "rpm \(name) " + String(repeating: "x", count: 3000)) }
        for name in Self.logs { tree.write(build + "/" + name, [0x1f, 0x8b, 8, 0] + Array(name.utf8)) }
        tree.write(build + "/hello.spec", "Name: hello\n")
        tree.write(build + "/results.json", "{}")
        // Neighbours that --no-parent must keep wget away from.
        tree.write("owner/proj/\(Self.chroot)/00000041-hello/hello-0.9-1.fc41.x86_64.rpm", "old build")
        tree.write("owner/proj/\(Self.chroot)/repodata/repomd.xml", "<repomd/>")
        tree.write("owner/proj/pubkey.gpg", "key")
        tree.write("owner/proj/fedora-40-x86_64/00000042-hello/hello-1.0-1.fc40.x86_64.rpm", "other chroot")
        return tree
    }

    /// Every regular file below `dir`, as paths relative to it ("sub/name" for nested ones).
    func files(under dir: String, prefix: String = "") -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out: [String] = []
        for name in names {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: dir + "/" + name, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                out += self.files(under: dir + "/" + name, prefix: prefix + name + "/")
            } else {
                out.append(prefix + name)
            }
        }
        return out.sorted()
    }

    func runWget(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wgetPath!)
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    @Test(arguments: [("*.rpm", rpms), ("*.log.gz", logs)])
    func downloadBuildFetchesExactlyTheSelectedFiles(accept: String, expected: [String]) async throws {
        let tree = self.makeTree()
        defer { tree.remove() }
        let dest = tree.base + "/dest"
        mkdir(dest, 0o755)
        try await withStaticServer(tree) { _, port in
            let resultURL = "http://127.0.0.1:\(port)/results/owner/proj/\(Self.chroot)/00000042-hello/"
            let argv = [
                "wget", "-r", "-nH", "--no-parent", "--reject", "\"index.html*\"", "-e", "robots=off", "--no-verbose",
                "-P", dest + "/" + Self.chroot, "--cut-dirs", "6", "-A", accept, resultURL,
            ]
            let (status, output) = try await blocking { try self.runWget(argv) }
            #expect(status == 0, "wget failed: \(output)")
            // Exactly the selected files, directly in DEST/CHROOT/: no host or path directories, no index.html.
            #expect(self.files(under: dest) == expected.map { Self.chroot + "/" + $0 }.sorted(), "\(output)")
            for name in expected {
                let got = FileManager.default.contents(atPath: dest + "/" + Self.chroot + "/" + name)
                let want = FileManager.default.contents(
                    atPath: tree.root + "/owner/proj/\(Self.chroot)/00000042-hello/" + name
                )
                #expect(got != nil && got == want, "\(name)")
            }
        }
    }
}
