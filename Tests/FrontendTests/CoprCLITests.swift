import Foundation
import TestSupport
import Testing

@testable import Frontend

/// Drives the real, unmodified copr-cli 2.6 against an in-process Frontend. deploy/koper-test installs it and
/// exports KOPER_COPR_CLI; CI sets KOPER_REQUIRE_INTEGRATION=1 so its absence fails instead of skipping.
@Suite(.serialized, .requires(.tool(fromEnvironment: "KOPER_COPR_CLI")))
struct CoprCLITests {
    func cli(_ config: String, _ args: [String], timeout: Double = 120) async throws -> Command.Result {
        let exe = try #require(coprCLI, "KOPER_COPR_CLI must point at copr-cli 2.6")
        let home = try makeTemporaryDirectory(prefix: "koper-home")
        return try await Command.run(exe, ["--config", config] + args, environment: ["HOME": home], timeout: timeout)
    }

    @Test func projectAndBuildLifecycle() async throws {
        let h = try await FrontendHarness()
        let alice = try await h.makeUser("alice")
        _ = try await h.makeUser("bob")
        try await h.makeGroup("devs", members: ["alice"])
        let cfg = try h.coprConfig(alice)

        // create, including a group project
        var r = try await cli(
            cfg,
            [
                "create", "proj", "--chroot", "fedora-39-x86_64", "--chroot", "epel-9-x86_64", "--description",
                "My project", "--repo", "https://example.org/repo/",
            ]
        )
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("New project was successfully created: \(h.url)/coprs/alice/proj/"))
        r = try await cli(cfg, ["create", "@devs/gproj", "--chroot", "fedora-40-x86_64"])
        #expect(r.status == 0, "\(r)")
        #expect(try await h.count("SELECT count(*) FROM projects WHERE ownername = '@devs' AND name = 'gproj'") == 1)
        // a duplicate is refused with the server's message
        r = try await cli(cfg, ["create", "proj", "--chroot", "fedora-39-x86_64"])
        #expect(r.status != 0)
        #expect(r.output.contains("You already have a project named 'proj'"))
        // an unknown chroot is refused
        r = try await cli(cfg, ["create", "other", "--chroot", "fedora-99-x86_64"])
        #expect(r.status != 0)
        #expect(r.output.contains("'fedora-99-x86_64' is not a valid choice"))
        #expect(try await h.count("SELECT count(*) FROM projects WHERE name = 'other'") == 0)

        // get, list, list-chroots
        r = try await cli(cfg, ["get", "proj"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("My project"))
        #expect(r.output.contains("http://127.0.0.1:9/results/alice/proj/fedora-39-x86_64/"))
        #expect(r.output.contains("https://example.org/repo/"))
        r = try await cli(cfg, ["list", "alice"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("Name: proj"))
        r = try await cli(cfg, ["list-chroots"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("fedora-39-x86_64"))
        #expect(r.output.contains("EPEL 9 *with* notes"))

        // modify leaves other fields untouched
        r = try await cli(cfg, ["modify", "proj", "--description", "Changed", "--chroot", "fedora-39-x86_64"])
        #expect(r.status == 0, "\(r)")
        let row = try await h.sql(
            "SELECT description, array_to_string(additional_repos, ' ') AS repos FROM projects WHERE name = 'proj'"
        ).first!
        #expect(row["description"] == "Changed")
        #expect(row["repos"] == "https://example.org/repo/")
        #expect(
            try await h.count(
                "SELECT count(*) FROM project_chroots pc JOIN projects p ON p.id = pc.project_id WHERE p.name = 'proj'"
            ) == 1
        )

        // build of an uploaded SRPM, --nowait
        let srpm = try await SRPMFixture.make(name: "hello-koper", version: "2.1", release: "3", epoch: 1)
        r = try await cli(cfg, ["build", "proj", srpm, "--nowait"])
        #expect(r.status == 0, "\(r)")
        let buildID = try #require(
            r.output.split(separator: "\n").first { $0.hasPrefix("Created builds:") }.flatMap {
                Int($0.split(separator: " ").last!)
            }
        )
        r = try await cli(cfg, ["status", String(buildID)])
        #expect(r.status == 0, "\(r)")
        #expect(["pending", "importing"].contains(r.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        let b = try await h.sql(
            "SELECT pkg_name, pkg_epoch, pkg_version, pkg_release, srpm_sha256, srpm_path FROM builds WHERE id = \(String(buildID))"
        ).first!
        #expect(b["pkg_name"] == "hello-koper")
        #expect(b["pkg_epoch"] == "1")
        #expect(b["pkg_version"] == "2.1")
        #expect(b["pkg_release"] == "3")
        let sha = try await Command.run("/usr/bin/sha256sum", [srpm])
        #expect(sha.output.hasPrefix(b["srpm_sha256"] ?? "missing"))
        #expect(FileManager.default.fileExists(atPath: "\(h.config.uploadDir)/\(b["srpm_path"] ?? "x")"))
        #expect(
            try await h.count(
                "SELECT count(*) FROM build_chroots WHERE build_id = \(String(buildID)) AND state = 'pending'"
            ) == 1
        )

        // a non-SRPM upload fails with the server's message and leaves nothing behind
        let notRPM = try makeTemporaryDirectory() + "/fake-1.0-1.src.rpm"
        try "this is not an rpm".write(toFile: notRPM, atomically: true, encoding: .utf8)
        let buildsBefore = try await h.count("SELECT count(*) FROM builds")
        r = try await cli(cfg, ["build", "proj", notRPM, "--nowait"])
        #expect(r.status != 0)
        #expect(r.output.contains("is not a valid source RPM"), "\(r)")
        #expect(try await h.count("SELECT count(*) FROM builds") == buildsBefore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.spoolDir).isEmpty)

        // list-builds paginates (copr-cli asks 1000 at a time): add 1100 more builds directly
        try await h.sql(
            """
            INSERT INTO builds (project_id, ownername, projectname, project_dirname, source_type, source_state, state, canceled, timeout, enable_net, pkg_name)
            SELECT p.id, p.ownername, p.name, 'proj', 'upload', 'succeeded', 'succeeded', false, 3600, false, 'bulk' FROM projects p, generate_series(1, 1100)
            WHERE p.name = 'proj' AND p.ownername = 'alice'
            """
        )
        r = try await cli(cfg, ["list-builds", "proj"], timeout: 300)
        #expect(r.status == 0, "\(r)")
        let rows = r.output.split(separator: "\n").filter { $0.first?.isNumber == true }
        #expect(rows.count == 1101)
        #expect(rows.contains { $0.hasPrefix("\(buildID)") && $0.contains("hello-koper") && $0.contains("pending") })

        // cancel, then cancel again is refused; delete-build
        r = try await cli(cfg, ["cancel", String(buildID)])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("canceled"))
        r = try await cli(cfg, ["cancel", String(buildID)])
        #expect(r.status != 0)
        #expect(r.output.contains("Cannot cancel build \(buildID)"))
        r = try await cli(cfg, ["delete-build", String(buildID)])
        #expect(r.status == 0, "\(r)")
        #expect(try await h.count("SELECT count(*) FROM builds WHERE id = \(String(buildID))") == 0)
        #expect(
            try await h.count("SELECT count(*) FROM actions WHERE action_type = 'delete' AND data LIKE '%builds%'") == 1
        )
        #expect(!FileManager.default.fileExists(atPath: "\(h.config.uploadDir)/\(b["srpm_path"] ?? "x")"))

        // packages
        r = try await cli(
            cfg,
            [
                "add-package-scm", "proj", "--name", "tool", "--clone-url", "https://example.org/tool.git", "--commit",
                "main", "--spec", "tool.spec",
            ]
        )
        #expect(r.status == 0, "\(r)")
        r = try await cli(cfg, ["list-packages", "proj"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("\"name\": \"tool\""))
        #expect(r.output.contains("https://example.org/tool.git"))
        r = try await cli(cfg, ["get-package", "proj", "--name", "tool"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("\"source_type\": \"scm\""))
        r = try await cli(cfg, ["delete-package", "proj", "--name", "tool"])
        #expect(r.status == 0, "\(r)")
        r = try await cli(cfg, ["get-package", "proj", "--name", "tool"])
        #expect(r.status != 0)

        // a stranger cannot touch alice's project
        let bob = try h.coprConfig(
            FrontendHarness.Credentials(
                user: "bob",
                login: (try await h.sql("SELECT api_login FROM users WHERE name = 'bob'")).first!["api_login"]!,
                token: "wrong"
            )
        )
        r = try await cli(bob, ["modify", "alice/proj", "--description", "hacked"])
        #expect(r.status != 0)
        #expect(r.output.contains("Login invalid/expired"))

        // delete
        r = try await cli(cfg, ["delete", "proj"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("Project proj has been deleted."))
        r = try await cli(cfg, ["get", "proj"])
        #expect(r.status != 0)
        #expect(r.output.contains("does not exist"))
        await h.stop()
    }

    @Test func wrongTokenFailsAndCreatesNothing() async throws {
        let h = try await FrontendHarness()
        let carol = try await h.makeUser("carol")
        let cfg = try h.coprConfig(carol, token: "notthetokenatallxxxxxxxxxxxxxx")
        let r = try await cli(cfg, ["create", "p1", "--chroot", "fedora-39-x86_64"])
        #expect(r.status != 0)
        #expect(r.output.contains("Login invalid/expired"), "\(r)")
        #expect(try await h.count("SELECT count(*) FROM projects") == 0)
        await h.stop()
    }

    @Test func strangerIsForbidden() async throws {
        let h = try await FrontendHarness()
        let owner = try await h.makeUser("owner")
        let stranger = try await h.makeUser("stranger")
        var r = try await cli(try h.coprConfig(owner), ["create", "mine", "--chroot", "fedora-39-x86_64"])
        #expect(r.status == 0, "\(r)")
        let scfg = try h.coprConfig(stranger)
        r = try await cli(scfg, ["modify", "owner/mine", "--description", "x"])
        #expect(r.status == 7, "\(r)")  // 403 → CoprAuthException
        #expect(r.output.contains("Only owners and admins may update their projects"))
        let srpm = try await SRPMFixture.make(name: "intruder")
        r = try await cli(scfg, ["build", "owner/mine", srpm, "--nowait"])
        #expect(r.status != 0)
        #expect(try await h.count("SELECT count(*) FROM builds") == 0)
        r = try await cli(scfg, ["create", "owner/evil", "--chroot", "fedora-39-x86_64"])
        #expect(r.status != 0)
        #expect(r.output.contains("without permissions to access projects of user 'owner'"))
        await h.stop()
    }
}
