import Foundation
import TestSupport
import Testing

@testable import Frontend

/// API v3 behaviour over real HTTP (curl) against a real Frontend and PostgreSQL.
@Suite(.serialized)
struct APITests {
    @Test func routingAndErrorsAreJSON() async throws {
        let h = try await FrontendHarness()
        var r = try await h.get("/api_3")
        #expect(r.status == 200)
        #expect(r.json?["version"] as? Int == 3)
        r = try await h.get("/api_3/no/such/thing")
        #expect(r.status == 404)
        #expect(r.json?["error"] as? String == "Such API endpoint doesn't exist")
        r = try await h.send("DELETE", "/api_3/project?ownername=a&projectname=b")
        #expect(r.status == 404)
        #expect(r.json?["error"] != nil)
        r = try await h.get("/api_3/build/abc")
        #expect(r.status == 404)
        r = try await h.get("/api_3/build/99999999")
        #expect(r.status == 404)
        #expect(r.json?["error"] as? String == "Build 99999999 does not exist.")
        r = try await h.get("/api_3/project?ownername=x&projectname=y")
        #expect(r.status == 404)
        #expect(r.json?["error"] as? String == "Project x/y does not exist.")
        r = try await h.get("/api_3/project/list?ownername=unknown")
        #expect(r.status == 200)
        #expect((r.json?["items"] as? [Any])?.isEmpty == true)
        #expect((r.json?["meta"] as? [String: Any])?["offset"] as? Int == 0)
        r = try await h.get("/api_3/build-chroot/list")
        #expect(r.status == 400)
        #expect(r.body == #"{"error":"Missing argument build_id"}"#)
        r = try await h.get("/nothing-here")
        #expect(r.status == 404)
        #expect(r.body.contains("Error 404: Page Not Found"))
        // '..' segments (raw or percent-encoded) are refused before routing.
        r = try await curl(["--path-as-is", "\(h.url)/srpm-uploads/../../etc/passwd"])
        #expect(r.status == 400)
        r = try await curl(["--path-as-is", "\(h.url)/api_3/%2e%2e/project/list"])
        #expect(r.status == 400)
        #expect(r.json?["error"] != nil)
        await h.stop()
    }

    @Test func authCheckTokensAndExpiry() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("dave")
        var r = try await h.get("/api_3/auth-check", auth: u)
        #expect(r.status == 200)
        #expect(r.json?["name"] as? String == "dave")
        r = try await h.get("/api_3/auth-check")
        #expect(r.status == 401)
        #expect(r.json?["output"] as? String == "notok")
        #expect(
            (r.json?["error"] as? String)?.hasPrefix("Login invalid/expired. Please visit http://127.0.0.1:") == true
        )
        // Tokens are stored hashed, never in clear.
        let stored = try await h.sql("SELECT api_token_sha256 FROM users WHERE name = 'dave'").first![
            "api_token_sha256"
        ]!
        #expect(stored != u.token)
        #expect(stored.count == 64)
        // A new token replaces the old one.
        r = try await h.send("POST", "/api_3/api-token", auth: u)
        #expect(r.status == 200)
        let login = try #require(r.json?["api_login"] as? String)
        let token = try #require(r.json?["api_token"] as? String)
        #expect(token.count == 30)
        #expect(try await h.get("/api_3/auth-check", auth: u).status == 401)
        let fresh = FrontendHarness.Credentials(user: "dave", login: login, token: token)
        #expect(try await h.get("/api_3/auth-check", auth: fresh).status == 200)
        // An expired token is refused like a wrong one.
        try await h.sql("UPDATE users SET api_token_expiration = current_date - 1 WHERE name = 'dave'")
        #expect(try await h.get("/api_3/auth-check", auth: fresh).status == 401)
        await h.stop()
    }

    @Test func projectValidationChangesNothing() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("erin")
        let cases: [(String, String)] = [
            (
                #"{"name": "bad name!", "chroots": ["fedora-39-x86_64"]}"#,
                "name: Name must contain only letters, digits, underscores, dashes and dots."
            ),
            (#"{"name": "1234", "chroots": ["fedora-39-x86_64"]}"#, "name: Project's name can not be just number."),
            (#"{"name": "ok", "chroots": null}"#, "chroots: '[]' is not a valid choice for this field."),
            (#"{"name": "ok", "chroots": ["fedora-39-x86_64"], "homepage": "not a url"}"#, "homepage: Invalid URL"),
            (
                #"{"name": "ok", "chroots": ["fedora-39-x86_64"], "contact": "nobody"}"#,
                "contact: Contact must be email address or URL"
            ),
            (
                #"{"name": "ok", "chroots": ["fedora-39-x86_64"], "persistent": true}"#,
                "persistent: Only admins may create persistent projects."
            ),
            (
                #"{"name": "ok", "chroots": ["fedora-39-x86_64", "fedora-39-x86_64"]}"#,
                "chroots: 'fedora-39-x86_64' is listed more than once"
            ),
            ("{not json", "Request body is not valid JSON"),
        ]
        for (body, message) in cases {
            let r = try await h.send(
                "POST",
                "/api_3/project/add/erin?ownername=erin&exist_ok=False",
                json: body,
                auth: u
            )
            #expect(r.status == 400, "\(body) → \(r.body)")
            #expect((r.json?["error"] as? String)?.contains(message) == true, "\(body) → \(r.body)")
        }
        #expect(try await h.count("SELECT count(*) FROM projects") == 0)
        // exist_ok returns the existing project.
        let ok = #"{"name": "ok", "chroots": ["fedora-39-x86_64"]}"#
        #expect(try await h.send("POST", "/api_3/project/add/erin", json: ok, auth: u).status == 200)
        let again = try await h.send("POST", "/api_3/project/add/erin?exist_ok=True", json: ok, auth: u)
        #expect(again.status == 200)
        #expect(again.json?["full_name"] as? String == "erin/ok")
        #expect(again.json?["instructions"] as? String == "")
        #expect(again.json?["storage"] as? String == "backend")
        // Edit leaves unsent fields untouched and never changes persistent.
        var r = try await h.send("PUT", "/api_3/project/edit/erin/ok", json: #"{"fedora_review": true}"#, auth: u)
        #expect(r.status == 200)
        r = try await h.send(
            "PUT",
            "/api_3/project/edit/erin/ok",
            json: #"{"delete_after_days": "5", "persistent": true, "bootstrap": "default"}"#,
            auth: u
        )
        #expect(r.status == 200, "\(r.body)")
        #expect(r.json?["fedora_review"] as? Bool == true)
        #expect(r.json?["persistent"] as? Bool == false)
        #expect(r.json?["delete_after_days"] as? Int == 5)
        await h.stop()
    }

    @Test func groupMembersShareProjectsAndRolesNeedApproval() async throws {
        let h = try await FrontendHarness()
        let member = try await h.makeUser("member")
        let outsider = try await h.makeUser("outsider")
        let admin = try await h.makeUser("root", admin: true)
        try await h.makeGroup("crew", members: ["member"])
        var r = try await h.send(
            "POST",
            "/api_3/project/add/@crew",
            json: #"{"name": "gp", "chroots": ["fedora-39-x86_64"]}"#,
            auth: outsider
        )
        #expect(r.status == 403)
        #expect((r.json?["error"] as? String)?.contains("doesn't have access to the copr group 'crew'") == true)
        r = try await h.send(
            "POST",
            "/api_3/project/add/@crew",
            json: #"{"name": "gp", "chroots": ["fedora-39-x86_64"]}"#,
            auth: member
        )
        #expect(r.status == 200, "\(r.body)")
        // The outsider can neither edit nor build, until a project admin approves a builder request.
        r = try await h.send(
            "POST",
            "/api_3/build/check-before-build",
            json: #"{"ownername": "@crew", "projectname": "gp"}"#,
            auth: outsider
        )
        #expect(r.status == 403)
        r = try await h.send(
            "PUT",
            "/api_3/project/permissions/request/@crew/gp",
            json: #"{"builder": true}"#,
            auth: outsider
        )
        #expect(r.json?["updated"] as? Bool == true)
        r = try await h.send(
            "PUT",
            "/api_3/project/permissions/request/@crew/gp",
            json: #"{"builder": true}"#,
            auth: outsider
        )
        #expect(r.json?["updated"] as? Bool == false)
        r = try await h.send(
            "PUT",
            "/api_3/project/permissions/request/@crew/gp",
            json: #"{"builder": "yes"}"#,
            auth: outsider
        )
        #expect(r.status == 400)
        r = try await h.get("/api_3/project/permissions/get/@crew/gp", auth: outsider)
        #expect(r.status == 403)
        r = try await h.get("/api_3/project/permissions/get/@crew/gp", auth: member)
        #expect(r.status == 200)
        #expect(((r.json?["permissions"] as? [String: Any])?["outsider"] as? [String: String])?["builder"] == "request")
        r = try await h.get("/api_3/project/permissions/can_build_in/outsider/@crew/gp")
        #expect(r.json?["can_build_in"] as? Bool == false)
        r = try await h.send(
            "PUT",
            "/api_3/project/permissions/set/@crew/gp",
            json: #"{"outsider": {"builder": "approved"}}"#,
            auth: member
        )
        #expect(r.status == 200)
        #expect(r.json?["updated"] as? [String] == ["outsider"])
        r = try await h.send(
            "PUT",
            "/api_3/project/permissions/set/@crew/gp",
            json: #"{"ghost": {"builder": "approved"}}"#,
            auth: member
        )
        #expect(r.status == 400)
        #expect(r.json?["error"] as? String == "user 'ghost' doesn't exist in database")
        r = try await h.get("/api_3/project/permissions/can_build_in/outsider/@crew/gp")
        #expect(r.json?["can_build_in"] as? Bool == true)
        r = try await h.send(
            "POST",
            "/api_3/build/check-before-build",
            json: #"{"ownername": "@crew", "projectname": "gp"}"#,
            auth: outsider
        )
        #expect(r.status == 200, "\(r.body)")
        // A builder still cannot edit; the site admin can.
        r = try await h.send("PUT", "/api_3/project/edit/@crew/gp", json: #"{"description": "x"}"#, auth: outsider)
        #expect(r.status == 403)
        r = try await h.send("PUT", "/api_3/project/edit/@crew/gp", json: #"{"description": "by admin"}"#, auth: admin)
        #expect(r.status == 200)
        // Leaving the group removes the member's rights.
        try await h.sql("DELETE FROM group_members")
        r = try await h.send("DELETE", "/api_3/project/delete/@crew/gp", json: #"{"verify": true}"#, auth: member)
        #expect(r.status == 403)
        #expect(try await h.count("SELECT count(*) FROM projects") == 1)
        await h.stop()
    }

    @Test func chrootGlobsAndURLBuilds() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("gina")
        var r = try await h.send(
            "POST",
            "/api_3/project/add/gina",
            json:
                #"{"name": "globs", "chroots": ["fedora-39-x86_64", "fedora-39-i386", "fedora-40-x86_64", "epel-9-x86_64"]}"#,
            auth: u
        )
        #expect(r.status == 200)
        let body =
            #"{"ownername": "gina", "projectname": "globs", "chroots": ["fedora-*"], "exclude_chroots": ["*-i386"], "pkgs": ["https://example.org/x-1.0-1.src.rpm"], "timeout": "3600"}"#
        r = try await h.send("POST", "/api_3/build/create/url", json: body, auth: u)
        #expect(r.status == 200, "\(r.body)")
        let items = try #require(r.json?["items"] as? [[String: Any]])
        #expect(items.count == 1)
        let id = try #require(items[0]["id"] as? Int)
        #expect(items[0]["state"] as? String == "pending")
        let selected = try await h.sql(
            "SELECT array_to_string(selected_chroots, ',') AS s, source_state, timeout FROM builds WHERE id = \(String(id))"
        ).first!
        #expect(selected["s"] == "fedora-39-x86_64,fedora-40-x86_64")
        #expect(selected["source_state"] == "pending")
        #expect(selected["timeout"] == "3600")
        // A pattern that matches nothing, and a bad URL, are refused without a build row.
        let before = try await h.count("SELECT count(*) FROM builds")
        r = try await h.send(
            "POST",
            "/api_3/build/create/url",
            json:
                #"{"ownername": "gina", "projectname": "globs", "chroots": ["rhel-*"], "pkgs": ["https://e.org/a.src.rpm"]}"#,
            auth: u
        )
        #expect(r.status == 400)
        #expect((r.json?["error"] as? String)?.contains("rhel-*") == true)
        r = try await h.send(
            "POST",
            "/api_3/build/create/url",
            json: #"{"ownername": "gina", "projectname": "globs", "pkgs": ["file:///etc/passwd"]}"#,
            auth: u
        )
        #expect(r.status == 400)
        r = try await h.send(
            "POST",
            "/api_3/build/create/url",
            json:
                #"{"ownername": "gina", "projectname": "globs", "pkgs": ["https://e.org/a.src.rpm"], "timeout": "999999999"}"#,
            auth: u
        )
        #expect(r.status == 400)
        #expect(try await h.count("SELECT count(*) FROM builds") == before)
        await h.stop()
    }

    @Test func uploadLimitsLeaveNoPartialState() async throws {
        let h = try await FrontendHarness { $0.maxUploadBytes = 64 * 1024 }
        let u = try await h.makeUser("hank")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/hank",
                json: #"{"name": "up", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let dir = try makeTemporaryDirectory()
        let big = "\(dir)/big-1-1.src.rpm"
        try Data(repeating: 0x41, count: 200 * 1024).write(to: URL(fileURLWithPath: big))
        try #"{"ownername": "hank", "projectname": "up"}"#.write(
            toFile: "\(dir)/json",
            atomically: true,
            encoding: .utf8
        )
        var r = try await curl([
            "-u", "\(u.login):\(u.token)", "-F", "pkgs=@\(big);type=application/x-rpm", "-F",
            "json=@\(dir)/json;type=application/json", "\(h.url)/api_3/build/create/upload",
        ])
        #expect(r.status == 413)
        #expect(r.json?["error"] as? String == "Request body too large")
        // A real SRPM without credentials is refused and nothing is stored.
        let srpm = try await SRPMFixture.make(name: "tiny")
        r = try await curl([
            "-F", "pkgs=@\(srpm);type=application/x-rpm", "-F", "json=@\(dir)/json;type=application/json",
            "\(h.url)/api_3/build/create/upload",
        ])
        #expect(r.status == 401)
        // Missing json part.
        r = try await curl([
            "-u", "\(u.login):\(u.token)", "-F", "pkgs=@\(srpm);type=application/x-rpm",
            "\(h.url)/api_3/build/create/upload",
        ])
        #expect(r.status == 400)
        #expect(r.json?["error"] as? String == "Missing the 'json' part")
        // A binary RPM is not a source RPM.
        #expect(try await h.count("SELECT count(*) FROM builds") == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.spoolDir).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.uploadDir).isEmpty)
        // And a good upload works and is downloadable by builders.
        r = try await curl([
            "-u", "\(u.login):\(u.token)", "-F", "pkgs=@\(srpm);type=application/x-rpm", "-F",
            "json=@\(dir)/json;type=application/json", "\(h.url)/api_3/build/create/upload",
        ])
        #expect(r.status == 200, "\(r.body)")
        let url = try #require((r.json?["source_package"] as? [String: Any])?["url"] as? String)
        #expect(url.hasSuffix("/tiny-1.0-1.src.rpm"))
        let download = try makeTemporaryDirectory() + "/got.src.rpm"
        let d = try await Command.run("/usr/bin/curl", ["-s", "-f", "-o", download, url])
        #expect(d.status == 0, "\(d)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: download)) == Data(contentsOf: URL(fileURLWithPath: srpm)))
        await h.stop()
    }

    @Test func repoFileAndErrorData() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("ivy")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/ivy",
                json:
                    #"{"name": "r", "chroots": ["fedora-39-x86_64", "fedora-39-i386", "epel-9-x86_64"], "multilib": true, "module_hotfixes": true, "repo_priority": "7", "runtime_dependencies": ["https://example.org/dep/$chroot/"]}"#,
                auth: u
            ).status == 200
        )
        var r = try await curl([
            "-H", "Host: copr.example.test:8080", "\(h.url)/coprs/ivy/r/repo/fedora-39/dnf.repo?arch=x86_64",
        ])
        #expect(r.status == 200)
        #expect(r.body.hasPrefix("[copr:copr.example.test:ivy:r]\nname=Copr repo for r owned by ivy\n"))
        #expect(r.body.contains("module_hotfixes=1\n"))
        #expect(r.body.contains("priority=7\n"))
        #expect(r.body.contains("[copr:copr.example.test:ivy:r:ml]\n"))
        #expect(r.body.contains("cost=1100\n"))
        #expect(r.body.contains("baseurl=https://example.org/dep/fedora-39-x86_64/\n"))
        #expect(!r.body.contains("\r"))
        #expect(r.headers.contains("Content-Disposition: filename=ivy-r.repo"))
        // epel keeps its literal version
        r = try await h.get("/coprs/ivy/r/repo/epel-9/ivy-r-epel-9.repo")
        #expect(r.body.contains("/results/ivy/r/epel-9-$basearch/"))
        // unknown chroot: 404 + Copr-Error-Data (base64 JSON of available chroots)
        r = try await h.get("/coprs/ivy/r/repo/fedora-40/dnf.repo?arch=x86_64")
        #expect(r.status == 404)
        let header = try #require(
            r.headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("copr-error-data:") }
        )
        let value = header.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
        let decoded = try #require(Data(base64Encoded: value))
        let obj = try JSONSerialization.jsonObject(with: decoded) as? [String: [String]]
        #expect(obj?["available chroots"]?.contains("fedora-39-x86_64") == true)
        r = try await h.get("/coprs/ivy/nope/repo/fedora-39/dnf.repo")
        #expect(r.status == 404)
        #expect(!r.headers.lowercased().contains("copr-error-data"))
        await h.stop()
    }

    @Test func monitorSearchForkAndChrootEdit() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("jack")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/jack",
                json: #"{"name": "mon", "chroots": ["fedora-39-x86_64"], "description": "findme here"}"#,
                auth: u
            ).status == 200
        )
        let srpm = try await SRPMFixture.make(name: "mpkg", version: "3.0", release: "2")
        let dir = try makeTemporaryDirectory()
        try #"{"ownername": "jack", "projectname": "mon"}"#.write(
            toFile: "\(dir)/json",
            atomically: true,
            encoding: .utf8
        )
        var r = try await curl([
            "-u", "\(u.login):\(u.token)", "-F", "pkgs=@\(srpm)", "-F", "json=@\(dir)/json",
            "\(h.url)/api_3/build/create/upload",
        ])
        #expect(r.status == 200, "\(r.body)")
        let id = try #require(r.json?["id"] as? Int)
        r = try await h.get("/api_3/monitor?ownername=jack&projectname=mon&additional_fields[]=url_build_log")
        #expect(r.status == 200)
        let pkgs = try #require(r.json?["packages"] as? [[String: Any]])
        let cell = try #require((pkgs.first?["chroots"] as? [String: Any])?["fedora-39-x86_64"] as? [String: Any])
        #expect(cell["build_id"] as? Int == id)
        #expect(cell["state"] as? String == "pending")
        #expect(cell["pkg_version"] as? String == "3.0-2")
        #expect(
            (cell["url_build_log"] as? String)?.hasSuffix(String(format: "%08d-mpkg/builder-live.log.gz", id)) == true
        )
        r = try await h.get("/api_3/monitor?ownername=jack&projectname=mon&additional_fields[]=bogus")
        #expect(r.status == 400)
        #expect(r.json?["error"] as? String == "Wrong additional_fields argument(s): bogus")
        r = try await h.get("/api_3/project/search?query=findme")
        #expect((r.json?["items"] as? [[String: Any]])?.first?["full_name"] as? String == "jack/mon")
        r = try await h.get("/api_3/build-chroot/list?build_id=\(id)")
        let ch = try #require((r.json?["items"] as? [[String: Any]])?.first)
        #expect(ch["name"] as? String == "fedora-39-x86_64")
        #expect(
            (ch["result_url"] as? String)?.hasSuffix(String(format: "/jack/mon/fedora-39-x86_64/%08d-mpkg/", id))
                == true
        )
        // fork: a new project with the same chroots and packages; forking onto it again needs confirm.
        r = try await h.send("PUT", "/api_3/project/fork/jack/mon", json: #"{"name": "mon2"}"#, auth: u)
        #expect(r.status == 200, "\(r.body)")
        #expect(
            try await h.count(
                "SELECT count(*) FROM packages k JOIN projects p ON p.id = k.project_id WHERE p.name = 'mon2'"
            ) == 1
        )
        r = try await h.send("PUT", "/api_3/project/fork/jack/mon", json: #"{"name": "mon2"}"#, auth: u)
        #expect(r.status == 400)
        // project-chroot edit and get
        r = try await h.send(
            "PUT",
            "/api_3/project-chroot/edit/jack/mon/fedora-39-x86_64",
            json: #"{"additional_packages": ["make", "gcc"], "with_opts": ["x"]}"#,
            auth: u
        )
        #expect(r.status == 200, "\(r.body)")
        r = try await h.get("/api_3/project-chroot?ownername=jack&projectname=mon&chrootname=fedora-39-x86_64")
        #expect(r.json?["additional_packages"] as? [String] == ["make", "gcc"])
        r = try await h.send(
            "PUT",
            "/api_3/project-chroot/edit/jack/mon/fedora-39-x86_64",
            json: #"{"reset_fields": ["nonsense"]}"#,
            auth: u
        )
        #expect(r.status == 400)
        #expect((r.json?["error"] as? String)?.hasPrefix("Trying to reset an invalid attribute: nonsense") == true)
        await h.stop()
    }
}
