import Foundation
import Postgres
import TestSupport
import Testing

@testable import Frontend

/// The authorization matrix (Tests/FrontendTests/Fixtures/authz-matrix.txt): every write route of API v3, the
/// internal /backend/ API and Keygen's HTTP API, probed with every role against a real Frontend on PostgreSQL and a
/// real `koper-keygen` process. Each probe has a valid body and a fresh project, so an allowed probe really
/// succeeds; a refused probe must leave the database, the stored uploads and Keygen's key set unchanged. Any cell
/// that differs from the file fails the test, and every differing cell is printed.
@Suite(.serialized, .requires([.tool(BuildStack.binDir + "/koper-keygen"), .tool("/usr/bin/rpmbuild")]))
struct AuthzMatrixTests {
    static let matrixPath =
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
        + "/Fixtures/authz-matrix.txt"
    static let roles = [
        "anonymous", "stranger", "builder", "padmin", "member", "nonmember", "owner", "siteadmin", "backend", "keygen",
    ]
    static let chroot = "fedora-40-x86_64"
    /// Routes whose allowed probe is a read (or a check) and must not change anything either.
    static let reads: Set<String> = [
        "permissions.get", "build.check-before-build", "backend.poll", "backend.pending-jobs",
        "backend.cancel-requests", "backend.pending-actions", "backend.importing", "keygen.pubkey", "keygen.sign",
        "keygen.health",
    ]

    struct Cell: Hashable, Comparable, CustomStringConvertible {
        let route: String
        let role: String
        var description: String { "\(self.route) × \(self.role)" }
        static func < (a: Cell, b: Cell) -> Bool { (a.route, a.role) < (b.route, b.role) }
    }

    struct Expectation: Equatable, CustomStringConvertible {
        let allow: Bool
        let status: Int
        var description: String { "\(self.allow ? "allow" : "deny") \(self.status)" }
    }

    /// Parses the matrix file: `route role allow|deny status` per line, `#` comments, blank lines.
    static func loadMatrix() throws -> (cells: [Cell: Expectation], order: [Cell]) {
        let text = try String(contentsOfFile: matrixPath, encoding: .utf8)
        var cells: [Cell: Expectation] = [:]
        var order: [Cell] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard f.count == 4, ["allow", "deny"].contains(f[2]), let status = Int(f[3]), roles.contains(f[1]) else {
                throw MatrixError("authz-matrix.txt line \(n + 1) is malformed: \(line)")
            }
            let e = Expectation(allow: f[2] == "allow", status: status)
            guard (200..<300).contains(status) == e.allow else {
                throw MatrixError("authz-matrix.txt line \(n + 1): \(f[2]) does not fit status \(status)")
            }
            let cell = Cell(route: f[0], role: f[1])
            guard cells.updateValue(e, forKey: cell) == nil else {
                throw MatrixError("authz-matrix.txt line \(n + 1): \(cell) is listed twice")
            }
            order.append(cell)
        }
        return (cells, order)
    }

    struct MatrixError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { self.description = d }
    }

    @Test func everyRouteAndRoleMatchesTheMatrix() async throws {
        let (expected, order) = try Self.loadMatrix()
        let routes = Set(order.map(\.route))
        for route in routes { #expect(Probes.known.contains(route), "the matrix lists \(route), which has no probe") }
        for route in Probes.known { #expect(routes.contains(route), "\(route) has a probe but no row in the matrix") }
        for route in routes {
            for role in Self.roles {
                #expect(expected[Cell(route: route, role: role)] != nil, "no cell for \(route) × \(role)")
            }
        }

        let h = try await FrontendHarness { $0.distgitImport = true }
        let keygen = try await KeygenProcess.start()
        let probes = try await Probes(h: h, keygen: keygen)
        var differences: [String] = []
        var unexpectedAllows = 0
        var unexpectedDenies = 0
        var stateViolations = 0
        var count = 0
        for cell in order {
            let outcome: Probes.Outcome
            do {
                outcome = try await probes.run(route: cell.route, role: cell.role)
            } catch {
                differences.append("\(cell): the probe could not run: \(error)")
                continue
            }
            count += 1
            let want = expected[cell]!
            let got = Expectation(allow: (200..<300).contains(outcome.status), status: outcome.status)
            if got != want {
                if got.allow && !want.allow { unexpectedAllows += 1 }
                if !got.allow && want.allow { unexpectedDenies += 1 }
                differences.append("\(cell): expected \(want), got \(got): \(outcome.body.prefix(300))")
            }
            if !got.allow && outcome.changed {
                stateViolations += 1
                differences.append("\(cell): refused with \(got.status) but changed the stored state")
            }
            if got.allow && !Self.reads.contains(cell.route) && !outcome.changed {
                stateViolations += 1
                differences.append("\(cell): allowed but changed nothing (the probe did not do its work)")
            }
            if got.allow && Self.reads.contains(cell.route) && outcome.changed {
                stateViolations += 1
                differences.append("\(cell): a read changed the stored state")
            }
        }
        await keygen.stop()
        await h.stop()
        let summary =
            "authz matrix: \(count) probes, \(unexpectedAllows) unexpected allows, \(unexpectedDenies) unexpected denies, \(stateViolations) state violations"
        print(summary)
        for d in differences { print("authz matrix difference: \(d)") }
        #expect(count == order.count)
        #expect(differences.isEmpty, "\(summary)\n\(differences.joined(separator: "\n"))")
    }
}

/// The probes: per route, the fresh world it needs and one valid request; per role, the credentials it presents.
final class Probes: @unchecked Sendable {
    static let known: Set<String> = [
        "api-token", "project.add", "project.edit", "project.delete", "project.delete-persistent",
        "project.regenerate-repos", "project.fork",
        "permissions.get", "permissions.set", "permissions.request", "chroot.edit", "package.add", "package.edit",
        "package.delete", "package.build", "build.check-before-build", "build.create.upload", "build.create.url",
        "build.create.scm", "build.cancel", "build.delete", "build.delete-list", "package.reset", "build.resubmit",
        "backend.poll", "backend.pending-jobs", "backend.claim", "backend.release-claims", "backend.update",
        "backend.cancel-requests",
        "backend.cancel-request-done", "backend.pending-actions", "backend.action-done", "backend.importing",
        "backend.import-completed", "keygen.ensure", "keygen.pubkey", "keygen.sign", "keygen.health",
    ]

    struct Outcome {
        let status: Int
        let body: String
        let changed: Bool
    }

    /// What one probe works on: a fresh project and, where the route needs them, a package, a build, a task or an
    /// action.
    struct World {
        var owner: String
        var project: String
        var buildID = 0
        var actionID = 0
        var path: String { "\(self.owner)/\(self.project)" }
    }

    let h: FrontendHarness
    let keygen: KeygenProcess
    let srpm: String
    let jsonDir: String
    var users: [String: FrontendHarness.Credentials] = [:]
    var serial = 0

    init(h: FrontendHarness, keygen: KeygenProcess) async throws {
        self.h = h
        self.keygen = keygen
        self.srpm = try await SRPMFixture.make(name: "authz")
        self.jsonDir = try makeTemporaryDirectory(prefix: "koper-authz")
        for name in ["stranger", "builder", "padmin", "member", "nonmember", "owner", "bystander"] {
            self.users[name] = try await h.makeUser(name)
        }
        self.users["siteadmin"] = try await h.makeUser("siteadmin", admin: true)
        try await h.makeGroup("grp", members: ["member"])
        // A project key for the pubkey and sign probes.
        let r = try await curl(
            self.bearer(keygen.secret) + [
                "-H", "Content-Type: application/json", "--data-binary", #"{"owner": "authz", "project": "k0"}"#,
                "\(keygen.url)/keys/ensure",
            ]
        )
        guard r.status == 200 else { throw Failure("keygen ensure failed: \(r.status) \(r.body)") }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { self.description = d }
    }

    func bearer(_ secret: String) -> [String] { ["-H", "Authorization: Bearer \(secret)"] }

    /// The credentials a role presents (curl arguments).
    func auth(_ role: String) -> [String] {
        switch role {
        case "anonymous": return []
        case "backend": return self.bearer(FrontendHarness.backendSecret)
        case "keygen": return self.bearer(self.keygen.secret)
        default:
            let u = self.users[role]!
            return ["-u", "\(u.login):\(u.token)"]
        }
    }

    func json(_ method: String, _ path: String, _ body: String?, as role: String) async throws -> CurlResponse {
        var args = ["-X", method] + self.auth(role)
        if let body { args += ["-H", "Content-Type: application/json", "--data-binary", body] }
        return try await curl(args + ["\(self.h.url)\(path)"])
    }

    /// A setup request that must succeed.
    func must(_ method: String, _ path: String, _ body: String?, as role: String) async throws -> CurlResponse {
        let r = try await self.json(method, path, body, as: role)
        guard r.status == 200 else { throw Failure("setup \(method) \(path) as \(role): \(r.status) \(r.body)") }
        return r
    }

    func upload(_ w: World, as role: String) async throws -> CurlResponse {
        self.serial += 1
        let file = "\(self.jsonDir)/json-\(self.serial)"
        try #"{"ownername": "\#(w.owner)", "projectname": "\#(w.project)"}"#.write(
            toFile: file,
            atomically: true,
            encoding: .utf8
        )
        return try await curl(
            self.auth(role) + [
                "-F", "pkgs=@\(self.srpm)", "-F", "json=@\(file)", "\(self.h.url)/api_3/build/create/upload",
            ]
        )
    }

    /// A fresh project for one probe: group members work on a group project, everyone else on owner's. The
    /// builder and padmin roles are approved on it. Only a site admin may create a persistent project.
    func makeWorld(role: String, persistent: Bool = false) async throws -> (World, creator: String) {
        self.serial += 1
        let group = role == "member" || role == "nonmember"
        let creator = persistent ? "siteadmin" : group ? "member" : "owner"
        let w = World(owner: group ? "@grp" : "owner", project: "p\(self.serial)")
        _ = try await self.must(
            "POST",
            "/api_3/project/add/\(w.owner)",
            #"{"name": "\#(w.project)", "chroots": ["\#(AuthzMatrixTests.chroot)"], "persistent": \#(persistent)}"#,
            as: creator
        )
        _ = try await self.must(
            "PUT",
            "/api_3/project/permissions/set/\(w.path)",
            #"{"builder": {"builder": "approved"}, "padmin": {"admin": "approved"}}"#,
            as: creator
        )
        return (w, creator)
    }

    func urlBuild(_ w: World, as creator: String) async throws -> Int {
        let r = try await self.must(
            "POST",
            "/api_3/build/create/url",
            #"{"ownername": "\#(w.owner)", "projectname": "\#(w.project)", "pkgs": ["https://example.com/x-1.0-1.src.rpm"]}"#,
            as: creator
        )
        guard let id = (r.json?["items"] as? [[String: Any]])?.first?["id"] as? Int else {
            throw Failure("no build id in \(r.body)")
        }
        return id
    }

    func claim(_ id: Int) async throws {
        let r = try await self.must(
            "POST",
            "/backend/claim",
            #"{"task_id": "\#(id)", "worker_id": "w-authz"}"#,
            as: "backend"
        )
        guard r.json?["claimed"] as? Bool == true else { throw Failure("claim of \(id) failed: \(r.body)") }
    }

    /// Everything a refused request could have touched: every table (rows as text, hashed), the stored uploads,
    /// and Keygen's key set.
    func fingerprint() async throws -> String {
        let db =
            try await self.h.sql(
                """
                SELECT md5(concat_ws('#',
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM users t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM copr_groups t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM group_members t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM projects t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM project_chroots t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM permissions t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM packages t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM builds t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM build_chroots t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM backend_updates t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM actions t),
                  (SELECT string_agg(t::text, '|' ORDER BY t::text) FROM cancel_requests t)
                )) AS h
                """
            ).first?["h"] ?? ""
        let uploads = (try? FileManager.default.subpathsOfDirectory(atPath: self.h.config.uploadDir).sorted()) ?? []
        let health = try await curl(self.bearer(self.keygen.secret) + ["\(self.keygen.url)/health"])
        let keys = health.json?["projects"] as? Int ?? -1
        return "\(db) uploads=\(uploads.joined(separator: ",")) keys=\(keys)"
    }

    func run(route: String, role: String) async throws -> Outcome {
        let r: CurlResponse
        let before: String
        self.serial += 1
        let n = self.serial
        if route.hasPrefix("keygen.") {
            before = try await self.fingerprint()
            let k = self.keygen.url
            switch route {
            case "keygen.ensure":
                r = try await curl(
                    self.auth(role) + [
                        "-H", "Content-Type: application/json", "--data-binary",
                        #"{"owner": "authz", "project": "k\#(n)"}"#, "\(k)/keys/ensure",
                    ]
                )
            case "keygen.pubkey": r = try await curl(self.auth(role) + ["\(k)/keys/authz/k0/pubkey.gpg"])
            case "keygen.sign":
                r = try await curl(
                    self.auth(role) + [
                        "-H", "Content-Type: application/octet-stream", "--data-binary", "header bytes",
                        "\(k)/keys/authz/k0/sign?digest=sha256",
                    ]
                )
            case "keygen.health": r = try await curl(self.auth(role) + ["\(k)/health"])
            default: throw Failure("no probe for \(route)")
            }
            return Outcome(status: r.status, body: r.body, changed: try await self.fingerprint() != before)
        }
        if route.hasPrefix("backend.") {
            // The Backend's routes work on owner's projects; the world is made before the fingerprint.
            var w = try await self.makeWorld(role: "owner").0
            switch route {
            case "backend.claim": w.buildID = try await self.urlBuild(w, as: "owner")
            case "backend.update", "backend.release-claims":
                w.buildID = try await self.urlBuild(w, as: "owner")
                try await self.claim(w.buildID)
            case "backend.cancel-request-done":
                w.buildID = try await self.urlBuild(w, as: "owner")
                try await self.claim(w.buildID)
                _ = try await self.must("PUT", "/api_3/build/cancel/\(w.buildID)", nil, as: "owner")
            case "backend.action-done":
                _ = try await self.must("PUT", "/api_3/project/regenerate-repos/\(w.path)", nil, as: "owner")
                w.actionID = try await self.h.count("SELECT max(id) FROM actions")
            case "backend.import-completed":
                let u = try await self.upload(w, as: "owner")
                guard u.status == 200, let id = u.json?["id"] as? Int else {
                    throw Failure("setup upload failed: \(u.status) \(u.body)")
                }
                w.buildID = id
            default: break
            }
            before = try await self.fingerprint()
            switch route {
            case "backend.poll": r = try await self.json("GET", "/backend/poll", nil, as: role)
            case "backend.pending-jobs": r = try await self.json("GET", "/backend/pending-jobs", nil, as: role)
            case "backend.cancel-requests": r = try await self.json("GET", "/backend/cancel-requests", nil, as: role)
            case "backend.pending-actions": r = try await self.json("GET", "/backend/pending-actions", nil, as: role)
            case "backend.importing": r = try await self.json("GET", "/backend/importing", nil, as: role)
            case "backend.claim":
                r = try await self.json(
                    "POST",
                    "/backend/claim",
                    #"{"task_id": "\#(w.buildID)", "worker_id": "w-authz"}"#,
                    as: role
                )
            case "backend.release-claims":
                r = try await self.json(
                    "POST",
                    "/backend/release-claims",
                    #"{"worker_id": "w-authz", "keep": []}"#,
                    as: role
                )
            case "backend.update":
                r = try await self.json(
                    "POST",
                    "/backend/update",
                    #"{"update_id": "authz-\#(n)", "task_id": "\#(w.buildID)", "state": "running"}"#,
                    as: role
                )
            case "backend.cancel-request-done":
                r = try await self.json(
                    "POST",
                    "/backend/cancel-request-done",
                    #"{"task_id": "\#(w.buildID)"}"#,
                    as: role
                )
            case "backend.action-done":
                r = try await self.json(
                    "POST",
                    "/backend/action-done",
                    #"{"id": \#(w.actionID), "result": "success"}"#,
                    as: role
                )
            case "backend.import-completed":
                r = try await self.json(
                    "POST",
                    "/backend/import-completed",
                    #"{"build_id": \#(w.buildID), "result": "success"}"#,
                    as: role
                )
            default: throw Failure("no probe for \(route)")
            }
            return Outcome(status: r.status, body: r.body, changed: try await self.fingerprint() != before)
        }

        // API v3.
        var (w, creator) = try await self.makeWorld(role: role, persistent: route == "project.delete-persistent")
        let pkgURL = #""url": "https://example.com/pkg-1.0-1.src.rpm""#
        let target = #""ownername": "\#(w.owner)", "projectname": "\#(w.project)""#
        switch route {
        case "package.edit", "package.delete", "package.build", "package.reset":
            _ = try await self.must("POST", "/api_3/package/add/\(w.path)/pkg/url", "{\(pkgURL)}", as: creator)
        case "build.cancel", "build.resubmit":
            w.buildID = try await self.urlBuild(w, as: creator)
        case "build.delete", "build.delete-list":
            w.buildID = try await self.urlBuild(w, as: creator)
            _ = try await self.must("PUT", "/api_3/build/cancel/\(w.buildID)", nil, as: creator)
        default: break
        }
        before = try await self.fingerprint()
        switch route {
        case "api-token":
            r = try await self.json("POST", "/api_3/api-token", nil, as: role)
            // A new token replaces the old one: the role goes on with the new credentials.
            if r.status == 200, let login = r.json?["api_login"] as? String, let token = r.json?["api_token"] as? String
            {
                self.users[role] = FrontendHarness.Credentials(user: role, login: login, token: token)
            }
        case "project.add":
            r = try await self.json(
                "POST",
                "/api_3/project/add/\(w.owner)",
                #"{"name": "new\#(n)", "chroots": ["\#(AuthzMatrixTests.chroot)"]}"#,
                as: role
            )
        case "project.edit":
            r = try await self.json("PUT", "/api_3/project/edit/\(w.path)", #"{"description": "changed"}"#, as: role)
        case "project.delete", "project.delete-persistent":
            r = try await self.json("DELETE", "/api_3/project/delete/\(w.path)", nil, as: role)
        case "project.regenerate-repos":
            r = try await self.json("PUT", "/api_3/project/regenerate-repos/\(w.path)", nil, as: role)
        case "project.fork":
            r = try await self.json("PUT", "/api_3/project/fork/\(w.path)", #"{"name": "fork\#(n)"}"#, as: role)
        case "permissions.get":
            r = try await self.json("GET", "/api_3/project/permissions/get/\(w.path)", nil, as: role)
        case "permissions.set":
            r = try await self.json(
                "PUT",
                "/api_3/project/permissions/set/\(w.path)",
                #"{"bystander": {"builder": "approved"}}"#,
                as: role
            )
        case "permissions.request":
            r = try await self.json(
                "PUT",
                "/api_3/project/permissions/request/\(w.path)",
                #"{"builder": true, "admin": true}"#,
                as: role
            )
        case "chroot.edit":
            r = try await self.json(
                "PUT",
                "/api_3/project-chroot/edit/\(w.path)/\(AuthzMatrixTests.chroot)",
                #"{"additional_packages": ["extra"]}"#,
                as: role
            )
        case "package.add":
            r = try await self.json("POST", "/api_3/package/add/\(w.path)/newpkg/url", "{\(pkgURL)}", as: role)
        case "package.edit":
            r = try await self.json(
                "PUT",
                "/api_3/package/edit/\(w.path)/pkg/url",
                #"{"url": "https://example.com/pkg-2.0-1.src.rpm"}"#,
                as: role
            )
        case "package.delete":
            r = try await self.json(
                "DELETE",
                "/api_3/package/delete",
                #"{\#(target), "package_name": "pkg"}"#,
                as: role
            )
        case "package.reset":
            r = try await self.json("PUT", "/api_3/package/reset", #"{\#(target), "package_name": "pkg"}"#, as: role)
        case "package.build":
            r = try await self.json("POST", "/api_3/package/build", #"{\#(target), "package_name": "pkg"}"#, as: role)
        case "build.check-before-build":
            r = try await self.json("POST", "/api_3/build/check-before-build", "{\(target)}", as: role)
        case "build.create.upload": r = try await self.upload(w, as: role)
        case "build.create.url":
            r = try await self.json(
                "POST",
                "/api_3/build/create/url",
                #"{\#(target), "pkgs": ["https://example.com/x-1.0-1.src.rpm"]}"#,
                as: role
            )
        case "build.create.scm":
            r = try await self.json(
                "POST",
                "/api_3/build/create/scm",
                #"{\#(target), "clone_url": "https://example.com/x.git"}"#,
                as: role
            )
        case "build.cancel": r = try await self.json("PUT", "/api_3/build/cancel/\(w.buildID)", nil, as: role)
        case "build.resubmit": r = try await self.json("POST", "/api_3/build/resubmit/\(w.buildID)", "{}", as: role)
        case "build.delete": r = try await self.json("DELETE", "/api_3/build/delete/\(w.buildID)", nil, as: role)
        case "build.delete-list":
            r = try await self.json("DELETE", "/api_3/build/delete/list", #"{"builds": [\#(w.buildID)]}"#, as: role)
        default: throw Failure("no probe for \(route)")
        }
        return Outcome(status: r.status, body: r.body, changed: try await self.fingerprint() != before)
    }
}
