import CoprModel
import HTTPCore
import KoperJSON
import LibCrypto
import Postgres

/// The internal API the Backend and DistGitProxy use (docs/internal-api.md). Authenticated with the shared
/// secret in `Authorization: Bearer …`, separate from user tokens. Every write is idempotent.
enum InternalAPI {
    static func register(_ r: inout Router<RouteHandler>) {
        r.add(["GET"], "/backend/pending-jobs", pendingJobs)
        r.add(["POST"], "/backend/claim", claim)
        r.add(["POST"], "/backend/update", update)
        r.add(["GET"], "/backend/cancel-requests", cancelRequests)
        r.add(["POST"], "/backend/cancel-request-done", cancelRequestDone)
        r.add(["GET"], "/backend/pending-actions", pendingActions)
        r.add(["POST"], "/backend/action-done", actionDone)
        r.add(["GET"], "/backend/importing", importing)
        r.add(["POST"], "/backend/import-completed", importCompleted)
        // Public and read-only, as upstream Copr: the task description without secrets.
        r.add(["GET"], "/backend/get-build-task/:task", getBuildTask)
        r.add(["GET"], "/backend/get-srpm-build-task/:build", getSRPMTask)
    }

    static func requireSecret(_ app: FrontendApp, _ ctx: RequestContext) throws {
        let header = ctx.head.headers["Authorization"] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix),
            Crypto.constantTimeEquals(Array(Crypto.sha256(Array(header.dropFirst(prefix.count).utf8))), Crypto.sha256(Array(app.config.backendSecret.utf8)))
        else { throw APIError(401, "Backend authentication failed") }
    }

    // MARK: Task descriptions

    static let taskColumns: PGQuery = """
        b.id, b.project_dirname, b.source_type, b.source_json, b.pkg_name, b.pkg_epoch, b.pkg_version, b.pkg_release, b.srpm_path, b.srpm_url,
        b.srpm_sha256, b.is_background, b.timeout, b.enable_net, b.isolation, b.bootstrap, b.canceled, b.source_state,
        extract(epoch from b.submitted_on)::bigint AS submitted_on,
        p.id AS project_id, p.ownername, p.name AS projectname, p.devel_mode, p.fedora_review, p.appstream, p.module_hotfixes,
        p.bootstrap AS project_bootstrap, p.isolation AS project_isolation,
        array_to_json(p.additional_repos)::text AS additional_repos, u.name AS submitter
        """
    static let taskFrom: PGQuery = "FROM builds b JOIN projects p ON p.id = b.project_id LEFT JOIN users u ON u.id = b.submitter_id"

    /// The description a builder needs for one task (no credentials in it). `chroot` nil means the SRPM build.
    static func taskJSON(_ c: PGConnection, _ row: PGRow, chroot: PGRow?, resultsBase: String, publicBase: String) throws -> JSON {
        let id = try row.int("id")
        let owner = try row.string("ownername")
        let project = try row.string("projectname")
        let dirname = try row.string("project_dirname")
        let submitter = row.optionalString("submitter") ?? ""
        var o: JSONObject = [
            "task_id": .string(chroot == nil ? String(id) : "\(id)-\(try chroot!.string("name"))"),
            "build_id": .int(id),
            "project_owner": .string(owner),
            "project_name": .string(project),
            "project_dirname": .string(dirname),
            "submitter": .string(submitter),
            "sandbox": .string("\(owner)/\(project)--\(submitter)"),
            "background": .bool(row["is_background"] == "t"),
            "timeout": .int(try row.int("timeout")),
            "enable_net": .bool(row["enable_net"] == "t"),
            "source_type": .string(try row.string("source_type")),
            "source_json": (try? JSONParser.parse(Array((row.optionalString("source_json") ?? "{}").utf8))) ?? [:],
            "srpm_url": JSON(Builds.srpmURL(row, publicBase: publicBase)),
            "srpm_sha256": JSON(row.optionalString("srpm_sha256")),
            "package_name": JSON(row.optionalString("pkg_name")),
            "package_version": JSON(Builds.pkgVersion(row)),
            "submitted_on": JSON(try row.optionalInt("submitted_on")),
            "fedora_review": .bool(row["fedora_review"] == "t"),
            "appstream": .bool(row["appstream"] == "t"),
            "uses_devel_repo": .bool(row["devel_mode"] == "t"),
        ]
        if let ch = chroot {
            let name = try ch.string("name")
            let parsed = ChrootName(name)
            var repos: [JSON] = [
                ["id": "copr_base", "name": "Copr repository", "baseurl": .string("\(resultsBase)/\(owner)/\(dirname)/\(name)/"), "module_hotfixes": .bool(row["module_hotfixes"] == "t")]
            ]
            let additional = Projects.jsonList(row.optionalString("additional_repos")) + Projects.jsonList(ch.optionalString("chroot_repos"))
            for (i, r) in additional.enumerated() {
                let url = parsed.map { RepoURLs.expand(r, chroot: $0, resultsURL: resultsBase) } ?? r
                repos.append(["id": .string("copr_repo_\(i + 1)"), "name": .string("Additional repo \(i + 1)"), "baseurl": .string(url)])
            }
            let isolation = row.optionalString("isolation") == "unchanged" ? (ch.optionalString("chroot_isolation") == "unchanged" ? row.optionalString("project_isolation") : ch.optionalString("chroot_isolation")) : row.optionalString("isolation")
            o["chroot"] = .string(name)
            o["arch"] = JSON(parsed?.arch)
            o["tags"] = JSON(parsed.map { ["arch_\($0.arch)"] } ?? [])
            o["result_dir"] = JSON(ch.optionalString("result_dir"))
            o["repos"] = .array(repos)
            o["buildroot_pkgs"] = JSON((ch.optionalString("additional_packages") ?? "").split(separator: " ").map(String.init))
            o["with_opts"] = JSON((ch.optionalString("with_opts") ?? "").split(separator: " ").map(String.init))
            o["without_opts"] = JSON((ch.optionalString("without_opts") ?? "").split(separator: " ").map(String.init))
            o["isolation"] = JSON(isolation)
            o["bootstrap"] = JSON(row.optionalString("bootstrap") ?? ch.optionalString("chroot_bootstrap") ?? row.optionalString("project_bootstrap"))
        } else {
            o["chroot"] = .null
            o["arch"] = "x86_64"
            o["tags"] = ["arch_x86_64"]
            o["result_dir"] = .string(String(format8(id)))
        }
        return .object(o)
    }

    static func format8(_ id: Int) -> String {
        let s = String(id)
        return s.count >= 8 ? s : String(repeating: "0", count: 8 - s.count) + s
    }

    static let chrootTaskColumns: PGQuery = """
        bc.name, bc.state, bc.result_dir, bc.claimed_by, pc.additional_packages, array_to_json(pc.additional_repos)::text AS chroot_repos,
        pc.with_opts, pc.without_opts, pc.isolation AS chroot_isolation, pc.bootstrap AS chroot_bootstrap
        """
    static let chrootTaskFrom: PGQuery = """
        FROM build_chroots bc JOIN builds b2 ON b2.id = bc.build_id
        LEFT JOIN project_chroots pc ON pc.project_id = b2.project_id AND pc.mock_chroot_id = bc.mock_chroot_id
        """

    /// Parses `BUILDID-CHROOT` or `BUILDID`.
    static func parseTaskID(_ s: String) -> (build: Int, chroot: String?)? {
        if let dash = s.firstIndex(of: "-") {
            guard let b = Int(s[..<dash]), b > 0 else { return nil }
            let ch = String(s[s.index(after: dash)...])
            return ch.isEmpty ? nil : (b, ch)
        }
        guard let b = Int(s), b > 0 else { return nil }
        return (b, nil)
    }

    static func loadTask(_ c: PGConnection, build: Int, chroot: String?, resultsBase: String, publicBase: String, lock: Bool = false) throws -> (JSON, state: String, canceled: Bool, claimedBy: String?)? {
        let locking: PGQuery = lock ? "FOR UPDATE OF b" : ""
        guard let row = try c.query("SELECT \(taskColumns) \(taskFrom) WHERE b.id = \(build) \(locking)").first else { return nil }
        if let chroot {
            guard let ch = try c.query("SELECT \(chrootTaskColumns) \(chrootTaskFrom) WHERE bc.build_id = \(build) AND bc.name = \(chroot)").first else { return nil }
            return (try taskJSON(c, row, chroot: ch, resultsBase: resultsBase, publicBase: publicBase), try ch.string("state"), row["canceled"] == "t", ch.optionalString("claimed_by"))
        }
        return (try taskJSON(c, row, chroot: nil, resultsBase: resultsBase, publicBase: publicBase), try row.string("source_state"), row["canceled"] == "t", nil)
    }

    static func getBuildTask(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let (build, chroot) = parseTaskID(ctx.param("task")), let chroot else { throw APIError.notFound("No such task") }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.withConnection { c in try loadTask(c, build: build, chroot: chroot, resultsBase: results, publicBase: base)?.0 }
        guard let json else { throw APIError.notFound("No such task") }
        return jsonOK(json)
    }

    static func getSRPMTask(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let build = Int(ctx.param("build")) else { throw APIError.notFound("No such task") }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.withConnection { c in try loadTask(c, build: build, chroot: nil, resultsBase: results, publicBase: base)?.0 }
        guard let json else { throw APIError.notFound("No such task") }
        return jsonOK(json)
    }

    // MARK: Queue

    static func pendingJobs(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let wait = min(max(Int(ctx.q("wait") ?? "0") ?? 0, 0), 60)
        let limit = min(max(Int(ctx.q("limit") ?? "1000") ?? 1000, 1), 10_000)
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let seen = app.tasks.generation
        func fetch() async throws -> [JSON] {
            try await app.db.withConnection { c -> [JSON] in
                var out: [JSON] = []
                // SRPM builds first (as Copr's dispatcher prefers them), then RPM build chroots, oldest first.
                let srpms = try c.query(
                    "SELECT \(taskColumns) \(taskFrom) WHERE b.source_state = 'pending' AND NOT b.canceled ORDER BY b.id LIMIT \(limit)"
                ).rows
                for row in srpms {
                    var t = try taskJSON(c, row, chroot: nil, resultsBase: results, publicBase: base)
                    if case .object(var o) = t { o["type"] = "srpm"; t = .object(o) }
                    out.append(t)
                }
                let rows = try c.query(
                    """
                    SELECT \(taskColumns), \(chrootTaskColumns)
                    \(taskFrom) JOIN build_chroots bc ON bc.build_id = b.id
                    LEFT JOIN project_chroots pc ON pc.project_id = b.project_id AND pc.mock_chroot_id = bc.mock_chroot_id
                    WHERE bc.state = 'pending' AND NOT b.canceled AND b.source_state = 'succeeded'
                    ORDER BY b.id, bc.name LIMIT \(max(0, limit - out.count))
                    """
                ).rows
                for row in rows {
                    var t = try taskJSON(c, row, chroot: row, resultsBase: results, publicBase: base)
                    if case .object(var o) = t { o["type"] = "rpm"; t = .object(o) }
                    out.append(t)
                }
                return out
            }
        }
        var tasks = try await fetch()
        if tasks.isEmpty && wait > 0 {
            await app.tasks.wait(after: seen, timeout: .seconds(wait))
            tasks = try await fetch()
        }
        return jsonOK(["tasks": .array(tasks)])
    }

    /// Claims a pending task for a worker: `pending` → `starting`. The answer says if it was canceled meanwhile.
    /// Claiming again with the same worker id succeeds again (a retried request); another worker is refused.
    static func claim(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let body = try ctx.jsonBody()
        guard let taskID = body["task_id"]?.stringValue, let (build, chroot) = parseTaskID(taskID) else { throw APIError.badRequest("task_id: missing or malformed") }
        guard let worker = body["worker_id"]?.stringValue, !worker.isEmpty else { throw APIError.badRequest("worker_id: required") }
        let results = app.config.resultsBase
        let base = ctx.publicBase
        let json = try await app.db.transaction { c -> JSON in
            guard let (task, state, canceled, claimedBy) = try loadTask(c, build: build, chroot: chroot, resultsBase: results, publicBase: base, lock: true) else {
                throw APIError.notFound("No such task")
            }
            if canceled || state == "canceled" { return ["claimed": false, "canceled": true] }
            if let chroot {
                if state == "pending" {
                    try c.execute(
                        "UPDATE build_chroots SET state = 'starting', claimed_by = \(worker), started_on = coalesce(started_on, now()) WHERE build_id = \(build) AND name = \(chroot)"
                    )
                } else if !(claimedBy == worker && ["starting", "running"].contains(state)) {
                    return ["claimed": false, "canceled": false, "state": .string(state)]
                }
            } else {
                let holder = try c.query("SELECT source_claimed_by FROM builds WHERE id = \(build)").first?.optionalString("source_claimed_by")
                if state == "pending" {
                    try c.execute(
                        "UPDATE builds SET source_state = 'starting', source_claimed_by = \(worker), source_started_on = coalesce(source_started_on, now()) WHERE id = \(build)"
                    )
                } else if !(holder == worker && ["starting", "running"].contains(state)) {
                    return ["claimed": false, "canceled": false, "state": .string(state)]
                }
            }
            try Builds.refreshState(c, buildID: build)
            return ["claimed": true, "canceled": false, "task": task]
        }
        return jsonOK(json)
    }

    /// State and result updates from a worker. `update_id` makes a retried request a no-op; a final state is never
    /// overwritten; updates for canceled tasks are acknowledged and ignored.
    static func update(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let body = try ctx.jsonBody()
        guard let updateID = body["update_id"]?.stringValue, !updateID.isEmpty, updateID.utf8.count <= 200 else {
            throw APIError.badRequest("update_id: required")
        }
        guard let taskID = body["task_id"]?.stringValue, let (build, chroot) = parseTaskID(taskID) else { throw APIError.badRequest("task_id: missing or malformed") }
        guard let stateText = body["state"]?.stringValue, let state = BuildState(rawValue: stateText),
            [.starting, .running, .succeeded, .failed, .pending].contains(state)
        else { throw APIError.badRequest("state: must be one of starting, running, succeeded, failed, pending") }
        let resultDir = body["result_dir"]?.stringValue
        if let d = resultDir, !Uploads.isSafeComponent(d) { throw APIError.badRequest("result_dir: must be one path component") }
        let packages = body["built_packages"] ?? .null
        if !packages.isNull {
            guard let list = packages.arrayValue, list.allSatisfy({ $0["name"]?.stringValue != nil && $0["version"]?.stringValue != nil }) else {
                throw APIError.badRequest("built_packages: must be a list of {name, epoch, version, release, arch}")
            }
        }
        let srpm = body["srpm"]?.objectValue
        let (json, uploads) = try await app.db.transaction { c -> (JSON, [String]) in
            if try c.query("SELECT 1 FROM backend_updates WHERE update_id = \(updateID)").first != nil {
                return (["applied": false, "duplicate": true], [])
            }
            guard let b = try c.query("SELECT canceled, source_state FROM builds WHERE id = \(build) FOR UPDATE").first else {
                throw APIError.notFound("No such task")
            }
            try c.execute("INSERT INTO backend_updates (update_id) VALUES (\(updateID))")
            if b["canceled"] == "t" { return (["applied": false, "canceled": true], []) }
            let isFinal = state == .succeeded || state == .failed
            if let chroot {
                guard let cur = try c.query("SELECT state FROM build_chroots WHERE build_id = \(build) AND name = \(chroot)").first else {
                    throw APIError.notFound("No such task")
                }
                if BuildState(rawValue: try cur.string("state"))?.isFinal == true { return (["applied": false, "final": true], []) }
                try c.execute(
                    """
                    UPDATE build_chroots SET state = \(state.rawValue),
                      started_on = CASE WHEN \(state.rawValue) IN ('running', 'succeeded', 'failed') THEN coalesce(started_on, now()) ELSE started_on END,
                      ended_on = CASE WHEN \(isFinal) THEN now() ELSE NULL END,
                      result_dir = coalesce(\(resultDir), result_dir), built_packages = coalesce(\(packages.isNull ? nil : packages.text), built_packages),
                      claimed_by = CASE WHEN \(state.rawValue) = 'pending' THEN NULL ELSE claimed_by END
                    WHERE build_id = \(build) AND name = \(chroot)
                    """
                )
            } else {
                if BuildState(rawValue: try b.string("source_state"))?.isFinal == true { return (["applied": false, "final": true], []) }
                try c.execute(
                    """
                    UPDATE builds SET source_state = \(state.rawValue), source_ended_on = CASE WHEN \(isFinal) THEN now() ELSE NULL END,
                      source_result_dir = coalesce(\(resultDir), source_result_dir),
                      source_claimed_by = CASE WHEN \(state.rawValue) = 'pending' THEN NULL ELSE source_claimed_by END
                    WHERE id = \(build)
                    """
                )
                if state == .succeeded {
                    // The SRPM is known now: record its NEVR, name the result dirs and release the chroots.
                    guard let srpm, let name = srpm["name"]?.stringValue, let version = srpm["version"]?.stringValue,
                        let release = srpm["release"]?.stringValue
                    else { throw APIError.badRequest("srpm: name, version and release are required when an SRPM build succeeds") }
                    do { try Names.validatePackageName(name) } catch { throw APIError.badRequest("srpm: \(error)") }
                    let epoch = srpm["epoch"]?.intValue
                    let project = try c.query("SELECT project_id, package_id FROM builds WHERE id = \(build)").first!
                    let packageID = try project.optionalInt("package_id") ?? PackageStore.ensure(c, projectID: try project.int("project_id"), name: name, sourceType: "url")
                    try c.execute(
                        "UPDATE builds SET pkg_name = \(name), pkg_epoch = \(epoch), pkg_version = \(version), pkg_release = \(release), srpm_url = coalesce(\(srpm["url"]?.stringValue), srpm_url), package_id = \(packageID) WHERE id = \(build)"
                    )
                    let selected = try c.query("SELECT array_to_json(selected_chroots)::text AS s FROM builds WHERE id = \(build)").first?.optionalString("s")
                    for chName in Projects.jsonList(selected) {
                        try c.execute(
                            """
                            INSERT INTO build_chroots (build_id, mock_chroot_id, name, state, result_dir)
                            SELECT \(build), id, name, 'pending', \(resultDirName(buildID: build, packageName: name)) FROM mock_chroots WHERE name = \(chName)
                            ON CONFLICT (build_id, mock_chroot_id) DO UPDATE SET state = 'pending', result_dir = EXCLUDED.result_dir
                            """
                        )
                    }
                } else if state == .failed {
                    try c.execute("UPDATE build_chroots SET state = 'failed', ended_on = now() WHERE build_id = \(build) AND state = 'waiting'")
                }
            }
            let newState = try Builds.refreshState(c, buildID: build)
            var pruned: [String] = []
            if newState == .succeeded, let row = try c.query("SELECT project_id, package_id FROM builds WHERE id = \(build)").first,
                let package = try row.optionalInt("package_id")
            {
                pruned = try Retention.prune(c, projectID: try row.int("project_id"), packageID: package)
            }
            try c.notify(channel: "koper_tasks", payload: "update")
            return (["applied": true, "build_state": .string(newState.rawValue)], pruned)
        }
        Uploads.remove(paths: uploads, config: app.config)
        app.tasks.bump()
        return jsonOK(json)
    }

    static func cancelRequests(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let ids = try await app.db.withConnection { c in
            try c.query("SELECT task_id FROM cancel_requests ORDER BY created_on LIMIT 1000").rows.map { try $0.string("task_id") }
        }
        return jsonOK(["task_ids": JSON(ids)])
    }

    static func cancelRequestDone(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        guard let id = try ctx.jsonBody()["task_id"]?.stringValue else { throw APIError.badRequest("task_id: required") }
        let n = try await app.db.withConnection { c in try c.execute("DELETE FROM cancel_requests WHERE task_id = \(id)") }
        return jsonOK(["removed": .bool(n > 0)])
    }

    static func pendingActions(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let items = try await app.db.withConnection { c in
            try c.query("SELECT id, action_type, ownername, projectname, data FROM actions WHERE state = 'pending' ORDER BY id LIMIT 1000").rows.map { row -> JSON in
                [
                    "id": .int(try row.int("id")),
                    "action_type": .string(try row.string("action_type")),
                    "ownername": JSON(row.optionalString("ownername")),
                    "projectname": JSON(row.optionalString("projectname")),
                    "data": (try? JSONParser.parse(Array((row.optionalString("data") ?? "{}").utf8))) ?? [:],
                ]
            }
        }
        return jsonOK(["actions": .array(items)])
    }

    static func actionDone(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let body = try ctx.jsonBody()
        guard let id = body["id"]?.intValue else { throw APIError.badRequest("id: required") }
        let result = body["result"]?.stringValue ?? "success"
        guard ["success", "failure"].contains(result) else { throw APIError.badRequest("result: success or failure") }
        let n = try await app.db.withConnection { c in
            try c.execute("UPDATE actions SET state = \(result), ended_on = now() WHERE id = \(id) AND state = 'pending'")
        }
        return jsonOK(["updated": .bool(n > 0)])
    }

    static func importing(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let base = ctx.publicBase
        let items = try await app.db.withConnection { c in
            try c.query(
                "SELECT b.id, b.pkg_name, b.srpm_path, b.srpm_url, b.srpm_sha256, p.ownername, p.name FROM builds b JOIN projects p ON p.id = b.project_id WHERE b.source_state = 'importing' AND NOT b.canceled ORDER BY b.id LIMIT 100"
            ).rows.map { row -> JSON in
                [
                    "build_id": .int(try row.int("id")),
                    "owner": .string(try row.string("ownername")),
                    "project": .string(try row.string("name")),
                    "pkg_name": JSON(row.optionalString("pkg_name")),
                    "srpm_url": JSON(Builds.srpmURL(row, publicBase: base)),
                    "srpm_sha256": JSON(row.optionalString("srpm_sha256")),
                ]
            }
        }
        return jsonOK(["builds": .array(items)])
    }

    static func importCompleted(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let body = try ctx.jsonBody()
        guard let build = body["build_id"]?.intValue else { throw APIError.badRequest("build_id: required") }
        let ok = (body["result"]?.stringValue ?? "success") == "success"
        let json = try await app.db.transaction { c -> JSON in
            guard let row = try c.query("SELECT source_state, canceled FROM builds WHERE id = \(build) FOR UPDATE").first else {
                throw APIError.notFound("No such build")
            }
            guard try row.string("source_state") == "importing", row["canceled"] == "f" else { return ["applied": false] }
            try c.execute("UPDATE builds SET source_state = \(ok ? "succeeded" : "failed"), source_ended_on = now() WHERE id = \(build)")
            try c.execute(
                "UPDATE build_chroots SET state = \(ok ? "pending" : "failed"), ended_on = CASE WHEN \(ok ? "pending" : "failed") = 'failed' THEN now() END WHERE build_id = \(build) AND state = 'waiting'"
            )
            let s = try Builds.refreshState(c, buildID: build)
            try c.notify(channel: "koper_tasks", payload: "import")
            return ["applied": true, "build_state": .string(s.rawValue)]
        }
        app.tasks.bump()
        return jsonOK(json)
    }
}
