import Foundation
import TestSupport
import Testing

@testable import Frontend

let dnfWithCoprPlugin: [IntegrationRequirement] = [
    .tool("/usr/bin/dnf"), .file("/usr/lib/python3/dist-packages/dnf-plugins/copr.py"),
]

/// A dnf kept out of the host (copr-protocol.md §9): private reposdir/cache/persistdir/pluginconfpath and
/// installroot, only the copr plugin loaded.
struct DnfBox {
    let dir: String
    let conf: String
    let reposdir: String
    var root: String { "\(self.dir)/root" }

    static func make(gpgcheck: Bool = false) throws -> DnfBox {
        let dir = try makeTemporaryDirectory(prefix: "koper-dnf")
        let fm = FileManager.default
        for sub in ["repos", "cache", "persist", "log", "plugins/copr.d", "vars", "root"] {
            try fm.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/etc/dnf/plugins/copr.conf", toPath: "\(dir)/plugins/copr.conf")
        let conf = """
            [main]
            reposdir=\(dir)/repos
            cachedir=\(dir)/cache
            persistdir=\(dir)/persist
            logdir=\(dir)/log
            pluginconfpath=\(dir)/plugins
            varsdir=\(dir)/vars
            \(gpgcheck ? "gpgcheck=1\nlocalpkg_gpgcheck=0\ninstall_weak_deps=False\n" : "")
            """
        try conf.write(toFile: "\(dir)/dnf.conf", atomically: true, encoding: .utf8)
        return DnfBox(dir: dir, conf: "\(dir)/dnf.conf", reposdir: "\(dir)/repos")
    }

    func run(_ args: [String]) async throws -> Command.Result {
        try await Command.run(
            "/usr/bin/dnf",
            ["-c", self.conf, "--installroot", self.root, "--disableplugin=*", "--enableplugin=copr", "-y"] + args,
            environment: ["HOME": self.dir],
            timeout: 120
        )
    }
}

/// `dnf copr enable --hub URL OWNER/PROJECT CHROOT` against the Frontend, with dnf kept out of the host
/// (copr-protocol.md §9): private reposdir/cache/persistdir/pluginconfpath, only the copr plugin loaded.
@Suite(.serialized, .requires(dnfWithCoprPlugin))
struct DnfCoprTests {
    @Test func enableWritesRepoFileWithTheRightID() async throws {
        let h = try await FrontendHarness()
        let alice = try await h.makeUser("alice")
        try await h.makeGroup("team", members: ["alice"])
        for (owner, name) in [("alice", "tools"), ("@team", "shared")] {
            let r = try await h.send(
                "POST",
                "/api_3/project/add/\(owner)",
                json: #"{"name": "\#(name)", "chroots": ["fedora-39-x86_64", "epel-9-x86_64"], "description": "d"}"#,
                auth: alice
            )
            #expect(r.status == 200, "\(r.body)")
        }

        let box = try DnfBox.make()
        var r = try await box.run(["copr", "enable", "--hub", h.url, "alice/tools", "fedora-39-x86_64"])
        #expect(r.status == 0, "\(r)")
        let file = "\(box.reposdir)/_copr:127.0.0.1:alice:tools.repo"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.hasPrefix("[copr:127.0.0.1:alice:tools]\n"))
        #expect(text.contains("baseurl=http://127.0.0.1:9/results/alice/tools/fedora-$releasever-$basearch/\n"))
        #expect(text.contains("gpgkey=http://127.0.0.1:9/results/alice/tools/pubkey.gpg\n"))
        #expect(text.contains("gpgcheck=1\n"))

        // A group project: the id spells the owner group_team, the name keeps @team.
        r = try await box.run(["copr", "enable", "--hub", h.url, "@team/shared", "epel-9-x86_64"])
        #expect(r.status == 0, "\(r)")
        let gtext = try String(
            contentsOfFile: "\(box.reposdir)/_copr:127.0.0.1:group_team:shared.repo",
            encoding: .utf8
        )
        #expect(gtext.hasPrefix("[copr:127.0.0.1:group_team:shared]\n"))
        #expect(gtext.contains("name=Copr repo for shared owned by @team\n"))
        #expect(gtext.contains("baseurl=http://127.0.0.1:9/results/@team/shared/epel-9-$basearch/\n"))

        // A chroot the project lacks: 404 with Copr-Error-Data, the plugin lists what exists and writes nothing.
        let before = try FileManager.default.contentsOfDirectory(atPath: box.reposdir).count
        r = try await box.run(["copr", "enable", "--hub", h.url, "alice/tools", "fedora-40-x86_64"])
        #expect(r.status != 0)
        #expect(r.output.contains("does not exist"), "\(r)")
        #expect(r.output.contains("fedora-39-x86_64"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: box.reposdir).count == before)

        // A missing project.
        r = try await box.run(["copr", "enable", "--hub", h.url, "alice/nothere", "fedora-39-x86_64"])
        #expect(r.status != 0)
        #expect(r.output.contains("does not exist"))

        // `dnf copr list --available-by-user` reads /api_3/project/list.
        r = try await box.run(["copr", "list", "--hub", h.url, "--available-by-user=alice"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("alice/tools"))
        await h.stop()
    }
}
