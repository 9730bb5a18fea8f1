import CoprModel
import HTTPCore
import KoperJSON
import Postgres

/// Bounded pagination shared by every list endpoint: integer `meta.offset` / `meta.limit` echo the request.
struct Page: Sendable {
    static let maxLimit = 1000
    let limit: Int
    let offset: Int

    init(_ ctx: RequestContext, defaultLimit: Int = 1000) throws {
        let l = try optionalInt(ctx.q("limit").map { .string($0) }, field: "limit") ?? defaultLimit
        let o = try optionalInt(ctx.q("offset").map { .string($0) }, field: "offset") ?? 0
        guard l >= 0, o >= 0 else { throw APIError.badRequest("limit and offset must not be negative") }
        self.limit = min(l, Self.maxLimit)
        self.offset = o
    }

    func meta(order: String = "id", orderType: String) -> JSON {
        ["limit": .int(self.limit), "offset": .int(self.offset), "order": .string(order), "order_type": .string(orderType)]
    }
}

enum ProjectAPI {
    static func authCheck(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let user = try await app.db.withConnection { c in try Auth.requireUser(c, ctx) }
        return jsonOK(["id": .int(user.id), "name": .string(user.name)])
    }

    static func apiToken(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let days = app.config.tokenExpirationDays
        let t = try await app.db.transaction { c in
            let user = try Auth.requireUser(c, ctx)
            return try Auth.mintToken(c, userID: user.id, days: days)
        }
        return jsonOK(["api_login": .string(t.login), "api_token": .string(t.token), "expiration": .string(t.expiration)])
    }

    static func mockChroots(_ app: FrontendApp, _ ctx: RequestContext, _ c: PGConnection) throws -> HTTPResponse {
        var o = JSONObject()
        for ch in try MockChroots.active(c) { o[ch.name] = .string(ch.comment) }
        return jsonOK(.object(o))
    }

    static func get(_ app: FrontendApp, _ ctx: RequestContext, _ c: PGConnection) throws -> HTTPResponse {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else { throw APIError.badRequest("Missing argument ownername") }
        guard let name = ctx.q("projectname"), !name.isEmpty else { throw APIError.badRequest("Missing argument projectname") }
        return jsonOK(Projects.json(try Projects.require(c, owner: owner, name: name), resultsBase: app.config.resultsBase))
    }

    static func list(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let page = try Page(ctx)
        let order = ctx.q("order") == "name" ? "name" : "id"
        let orderType = ctx.q("order_type")?.uppercased() == "DESC" ? "DESC" : "ASC"
        let orderBy: PGQuery =
            switch (order, orderType) {
            case ("name", "DESC"): "p.name DESC"
            case ("name", _): "p.name ASC"
            case (_, "DESC"): "p.id DESC"
            default: "p.id ASC"
            }
        let owner = ctx.q("ownername").flatMap { $0.isEmpty ? nil : $0 }
        let results = app.config.resultsBase
        let items = try await app.db.withConnection { c in
            let r = try c.query(
                "SELECT \(Projects.columns) FROM projects p WHERE (\(owner)::text IS NULL OR p.ownername = \(owner)) ORDER BY \(orderBy), p.id LIMIT \(page.limit) OFFSET \(page.offset)"
            )
            return try r.rows.map { Projects.json(try Projects.make($0), resultsBase: results) }
        }
        return jsonOK(["items": .array(items), "meta": page.meta(order: order, orderType: orderType)])
    }

    static func search(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let page = try Page(ctx)
        guard let query = ctx.q("query"), !query.isEmpty else { throw APIError.badRequest("Missing argument query") }
        let results = app.config.resultsBase
        let items = try await app.db.withConnection { c in
            let pattern = "%" + query.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
            let r = try c.query(
                """
                SELECT \(Projects.columns) FROM projects p
                WHERE (p.ownername || '/' || p.name) ILIKE \(pattern) OR p.description ILIKE \(pattern)
                ORDER BY p.created_on DESC, p.id DESC LIMIT \(page.limit) OFFSET \(page.offset)
                """
            )
            return try r.rows.map { Projects.json(try Projects.make($0), resultsBase: results) }
        }
        return jsonOK(["items": .array(items), "meta": page.meta(orderType: "DESC")])
    }

    /// The editable settings shared by add and edit. `nil` means "not sent": edit leaves the column untouched.
    struct Settings {
        var description: String?
        var instructions: String?
        var homepage: String??
        var contact: String??
        var additionalRepos: [String]?
        var runtimeDependencies: [String]?
        var packit: [String]?
        var unlistedOnHP: Bool?
        var enableNet: Bool?
        var autoPrune: Bool?
        var persistent: Bool?
        var bootstrap: String?
        var bootstrapImage: String?
        var isolation: String?
        var followFedoraBranching: Bool?
        var develMode: Bool?
        var multilib: Bool?
        var moduleHotfixes: Bool?
        var fedoraReview: Bool?
        var appstream: Bool?
        var repoPriority: Int??
        var deleteAfterDays: Int??
        /// Retention: keep the newest N succeeded builds per package; `.some(nil)` (sent as 0 or null) keeps all.
        var keepBuilds: Int??

        init(_ o: JSONObject, reposKey: String) throws {
            func str(_ k: String) -> String? { o[k]?.stringValue }
            self.description = str("description")
            self.instructions = str("instructions")
            if let h = o["homepage"], !h.isNull {
                let s = h.stringValue ?? ""
                if s.isEmpty {
                    self.homepage = .some(nil)
                } else {
                    do { try FieldValidation.validateHomepage(s) } catch { throw APIError.badRequest("homepage: Invalid URL") }
                    self.homepage = .some(s)
                }
            }
            if let h = o["contact"], !h.isNull {
                let s = h.stringValue ?? ""
                if s.isEmpty {
                    self.contact = .some(nil)
                } else {
                    do { try FieldValidation.validateContact(s) } catch { throw APIError.badRequest("contact: Contact must be email address or URL") }
                    self.contact = .some(s)
                }
            }
            self.additionalRepos = try optionalStringList(o[reposKey], field: reposKey)
            self.runtimeDependencies = try optionalStringList(o["runtime_dependencies"], field: "runtime_dependencies")
            self.packit = try optionalStringList(o["packit_forge_projects_allowed"], field: "packit_forge_projects_allowed")?.map { url in
                // Upstream normalises forge project URLs by stripping the scheme.
                if let r = url.range(of: "://") { return String(url[r.upperBound...]) }
                return url
            }
            self.unlistedOnHP = try optionalBool(o["unlisted_on_hp"], field: "unlisted_on_hp")
            self.enableNet = try optionalBool(o["enable_net"], field: "enable_net")
            self.autoPrune = try optionalBool(o["auto_prune"], field: "auto_prune")
            self.persistent = try optionalBool(o["persistent"], field: "persistent")
            self.bootstrap = str("bootstrap")
            if let legacy = try optionalBool(o["use_bootstrap_container"], field: "use_bootstrap_container"), self.bootstrap == nil {
                self.bootstrap = legacy ? "on" : "off"
            }
            self.bootstrapImage = str("bootstrap_image")
            self.isolation = str("isolation")
            self.followFedoraBranching = try optionalBool(o["follow_fedora_branching"], field: "follow_fedora_branching")
            self.develMode = try optionalBool(o["devel_mode"], field: "devel_mode")
            self.multilib = try optionalBool(o["multilib"], field: "multilib")
            self.moduleHotfixes = try optionalBool(o["module_hotfixes"], field: "module_hotfixes")
            self.fedoraReview = try optionalBool(o["fedora_review"], field: "fedora_review")
            self.appstream = try optionalBool(o["appstream"], field: "appstream")
            if let v = o["repo_priority"], !v.isNull {
                self.repoPriority = .some(try optionalInt(v, field: "repo_priority"))
                if case .some(.some(let p)) = self.repoPriority, p < 1 || p > 99 {
                    throw APIError.badRequest("repo_priority: Number must be between 1 and 99.")
                }
            }
            if let v = o["delete_after_days"], !v.isNull {
                let d = try optionalInt(v, field: "delete_after_days")
                if let d, d < 0 || d > 60 { throw APIError.badRequest("delete_after_days: Number must be between 0 and 60.") }
                self.deleteAfterDays = .some(d)
            }
            if let v = o["keep_builds"] {
                let n = v.isNull ? nil : try optionalInt(v, field: "keep_builds")
                if let n, n < 0 || n > 1000 { throw APIError.badRequest("keep_builds: Number must be between 0 and 1000.") }
                self.keepBuilds = .some(n == 0 ? nil : n)
            }
            if let b = self.bootstrap, !["default", "unchanged", "on", "off", "image"].contains(b) {
                throw APIError.badRequest("bootstrap: Not a valid choice")
            }
            if let i = self.isolation, !["default", "unchanged", "nspawn", "simple"].contains(i) {
                throw APIError.badRequest("isolation: Not a valid choice")
            }
        }

        /// The SET assignments for the settings that were sent.
        var assignments: [PGQuery] {
            var sql: [PGQuery] = []
            if let v = self.description { sql.append("description = \(v)") }
            if let v = self.instructions { sql.append("instructions = \(v)") }
            if let v = self.homepage { sql.append("homepage = \(v)") }
            if let v = self.contact { sql.append("contact = \(v)") }
            if let v = self.additionalRepos { sql.append("additional_repos = \(v)") }
            if let v = self.runtimeDependencies { sql.append("runtime_dependencies = \(v)") }
            if let v = self.packit { sql.append("packit_forge_projects_allowed = \(v)") }
            if let v = self.unlistedOnHP { sql.append("unlisted_on_hp = \(v)") }
            if let v = self.enableNet { sql.append("enable_net = \(v)") }
            if let v = self.autoPrune { sql.append("auto_prune = \(v)") }
            if let v = self.bootstrap { sql.append("bootstrap = \(v)") }
            if let v = self.bootstrapImage { sql.append("bootstrap_image = \(v)") }
            if let v = self.isolation { sql.append("isolation = \(v)") }
            if let v = self.followFedoraBranching { sql.append("follow_fedora_branching = \(v)") }
            if let v = self.develMode { sql.append("devel_mode = \(v)") }
            if let v = self.multilib { sql.append("multilib = \(v)") }
            if let v = self.moduleHotfixes { sql.append("module_hotfixes = \(v)") }
            if let v = self.fedoraReview { sql.append("fedora_review = \(v)") }
            if let v = self.appstream { sql.append("appstream = \(v)") }
            if let v = self.repoPriority { sql.append("repo_priority = \(v)") }
            if let v = self.keepBuilds { sql.append("keep_builds = \(v)") }
            if let v = self.deleteAfterDays {
                if let d = v {
                    sql.append("delete_after = \(d) * interval '1 day' + now()")
                } else {
                    sql.append("delete_after = NULL")
                }
            }
            return sql
        }
    }

    /// Resolves the owner of a new project and checks that `user` may create there.
    static func resolveOwner(_ c: PGConnection, owner: String, user: User) throws -> (userID: Int?, groupID: Int?) {
        if owner.hasPrefix("@") {
            let group = String(owner.dropFirst())
            guard let g = try c.query("SELECT id, fas_name FROM copr_groups WHERE name = \(group)").first else {
                throw APIError.notFound("Group \(group) does not exist.")
            }
            let gid = try g.int("id")
            if !user.isAdmin, try !Permissions.isGroupMember(c, userID: user.id, groupID: gid) {
                throw APIError.forbidden("User '\(user.name)' doesn't have access to the copr group '\(group)' (fas_name='\(try g.string("fas_name"))')")
            }
            return (nil, gid)
        }
        if owner == user.name { return (user.id, nil) }
        guard user.isAdmin else {
            throw APIError.forbidden("You were authorized as '\(user.name)' user without permissions to access projects of user '\(owner)'")
        }
        guard let u = try c.query("SELECT id FROM users WHERE name = \(owner)").first else {
            throw APIError.notFound("User \(owner) does not exist.")
        }
        return (try u.int("id"), nil)
    }

    static func chrootIDs(_ c: PGConnection, names: [String]) throws -> [Int] {
        var seen = Set<String>()
        for n in names where !seen.insert(n).inserted {
            throw APIError.badRequest("chroots: '\(n)' is listed more than once")
        }
        let active = try MockChroots.active(c)
        return try names.map { n in
            guard let ch = active.first(where: { $0.name == n }) else {
                throw APIError.badRequest("chroots: '\(n)' is not a valid choice for this field.")
            }
            return ch.id
        }
    }

    static func add(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let body = try ctx.jsonBody()
        let existOK = ctx.q("exist_ok") == "True" || ctx.q("exist_ok") == "true" || body["exist_ok"]?.boolValue == true
        guard let name = body["name"]?.stringValue, !name.isEmpty else { throw APIError.badRequest("name: This field is required.") }
        do { try Names.validateProjectName(name) } catch { throw APIError.badRequest("name: \(error.message)") }
        let settings = try Settings(body, reposKey: "additional_repos")
        let chroots = try optionalStringList(body["chroots"], field: "chroots") ?? []
        let results = app.config.resultsBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let (ownerUser, ownerGroup) = try resolveOwner(c, owner: owner, user: user)
            if let existing = try Projects.find(c, owner: owner, name: name) {
                if existOK { return Projects.json(existing, resultsBase: results) }
                if owner.hasPrefix("@") {
                    throw APIError.badRequest("name: Group \(owner.dropFirst()) already has a project named '\(name)'.")
                }
                throw APIError.badRequest("name: You already have a project named '\(name)'.")
            }
            guard !chroots.isEmpty else { throw APIError.badRequest("chroots: '[]' is not a valid choice for this field.") }
            let ids = try chrootIDs(c, names: chroots)
            if settings.persistent == true && !user.isAdmin {
                throw APIError.badRequest("persistent: Only admins may create persistent projects.")
            }
            if settings.autoPrune == false && !user.isAdmin {
                throw APIError.badRequest("auto_prune: Only admins may disable auto-pruning.")
            }
            var s = settings
            let persistent = s.persistent ?? false
            s.persistent = nil
            let sets = s.assignments
            let r = try c.query(
                """
                INSERT INTO projects (ownername, name, owner_user_id, owner_group_id, created_by, persistent)
                VALUES (\(owner), \(name), \(ownerUser), \(ownerGroup), \(user.id), \(persistent)) RETURNING id
                """
            )
            let id: Int = try r.first!.decode("id")
            if !sets.isEmpty {
                try c.execute("UPDATE projects SET \(sets.joined(separator: ", ")) WHERE id = \(id)")
            }
            for chID in ids {
                try c.execute("INSERT INTO project_chroots (project_id, mock_chroot_id) VALUES (\(id), \(chID))")
            }
            guard let p = try Projects.find(c, id: id) else { throw APIError(500, "Project vanished") }
            return Projects.json(p, resultsBase: results)
        }
        await app.ensureKey(owner: owner, project: name)
        return jsonOK(json)
    }

    static func edit(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let body = try ctx.jsonBody()
        var editable = try Settings(body, reposKey: "repos")
        editable.persistent = nil  // edit never changes persistent, storage, name or owner
        let settings = editable
        let chroots = try optionalStringList(body["chroots"], field: "chroots")
        let results = app.config.resultsBase
        let (json, uploads) = try await app.db.transaction { c -> (JSON, [String]) in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project)
            if settings.autoPrune == false && !user.isAdmin && project.row["auto_prune"] == "t" {
                throw APIError.badRequest("auto_prune: Only admins may disable auto-pruning.")
            }
            let sets = settings.assignments
            if !sets.isEmpty {
                try c.execute("UPDATE projects SET \(sets.joined(separator: ", ")) WHERE id = \(project.id)")
            }
            if let chroots {
                guard !chroots.isEmpty else { throw APIError.badRequest("chroots: At least one chroot must be selected") }
                let ids = try chrootIDs(c, names: chroots)
                try c.execute("DELETE FROM project_chroots WHERE project_id = \(project.id) AND NOT (mock_chroot_id = ANY(\(ids)::int[]))")
                for chID in ids {
                    try c.execute("INSERT INTO project_chroots (project_id, mock_chroot_id) VALUES (\(project.id), \(chID)) ON CONFLICT DO NOTHING")
                }
            }
            // A new retention limit applies at once to the builds already there.
            let pruned = settings.keepBuilds != nil ? try Retention.prune(c, projectID: project.id) : []
            guard let p = try Projects.find(c, id: project.id) else { throw APIError(500, "Project vanished") }
            return (Projects.json(p, resultsBase: results), pruned)
        }
        Uploads.remove(paths: uploads, config: app.config)
        return jsonOK(json)
    }

    static func delete(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let results = app.config.resultsBase
        let (json, uploads) = try await app.db.transaction { c -> (JSON, [String]) in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project, message: "Only owners and admins may delete their projects.")
            let running = try c.query(
                "SELECT id FROM builds WHERE project_id = \(project.id) AND state NOT IN ('succeeded', 'failed', 'canceled', 'skipped', 'forked') ORDER BY id"
            ).rows.map { try $0.int("id") }
            if !running.isEmpty {
                throw APIError.badRequest("Build(s) \(running.map(String.init).joined(separator: ", ")) are still running.\n")
            }
            let uploads = try c.query("SELECT srpm_path FROM builds WHERE project_id = \(project.id) AND srpm_path IS NOT NULL").rows.compactMap {
                $0.optionalString("srpm_path")
            }
            let json = Projects.json(project, resultsBase: results)
            try c.execute("DELETE FROM projects WHERE id = \(project.id)")
            try Actions.enqueue(c, type: "delete", owner: owner, project: name, data: ["object_type": "copr", "ownername": .string(owner), "projectname": .string(name)])
            return (json, uploads)
        }
        Uploads.remove(paths: uploads, config: app.config)
        app.tasks.bump()
        return jsonOK(json)
    }

    static func regenerateRepos(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let results = app.config.resultsBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project)
            for ch in project.chroots {
                try Actions.enqueue(c, type: "createrepo", owner: owner, project: name, data: ["chroot": .string(ch), "project_dirname": .string(name)])
            }
            return Projects.json(project, resultsBase: results)
        }
        app.tasks.bump()
        return jsonOK(json)
    }

    static func fork(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let owner = ctx.param("owner")
        let name = ctx.param("project")
        let body = try ctx.jsonBody()
        guard let newName = body["name"]?.stringValue, !newName.isEmpty else { throw APIError.badRequest("name: This field is required.") }
        do { try Names.validateProjectName(newName) } catch { throw APIError.badRequest("name: \(error.message)") }
        let confirm = try optionalBool(body["confirm"], field: "confirm") ?? false
        let results = app.config.resultsBase
        let json = try await app.db.transaction { c -> JSON in
            let user = try Auth.requireUser(c, ctx)
            let source = try Projects.require(c, owner: owner, name: name)
            let newOwner = body["ownername"]?.stringValue ?? user.name
            let (ownerUser, ownerGroup) = try resolveOwner(c, owner: newOwner, user: user)
            let target: Int
            if let existing = try Projects.find(c, owner: newOwner, name: newName) {
                guard confirm else {
                    throw APIError.badRequest("You are about to fork into existing project: \(newOwner)/\(newName)\nPlease use --confirm if you really want to do this")
                }
                try Permissions.requireEdit(c, user: user, project: existing)
                target = existing.id
            } else {
                target = try c.query(
                    """
                    INSERT INTO projects (ownername, name, owner_user_id, owner_group_id, created_by, description, instructions, homepage, contact,
                        devel_mode, unlisted_on_hp, auto_prune, enable_net, bootstrap, bootstrap_image, isolation, module_hotfixes, appstream,
                        follow_fedora_branching, multilib, fedora_review, repo_priority, keep_builds, additional_repos, runtime_dependencies, forked_from_id)
                    SELECT \(newOwner), \(newName), \(ownerUser), \(ownerGroup), \(user.id), description, instructions, homepage, contact, devel_mode, unlisted_on_hp, auto_prune, enable_net,
                        bootstrap, bootstrap_image, isolation, module_hotfixes, appstream, follow_fedora_branching, multilib, fedora_review,
                        repo_priority, keep_builds, additional_repos, runtime_dependencies, id FROM projects WHERE id = \(source.id)
                    RETURNING id
                    """
                ).first!.int("id")
            }
            try c.execute(
                """
                INSERT INTO project_chroots (project_id, mock_chroot_id, additional_packages, additional_repos, additional_modules, with_opts, without_opts)
                SELECT \(target), mock_chroot_id, additional_packages, additional_repos, additional_modules, with_opts, without_opts
                FROM project_chroots WHERE project_id = \(source.id) ON CONFLICT DO NOTHING
                """
            )
            try c.execute(
                """
                INSERT INTO packages (project_id, name, source_type, source_json, webhook_rebuild, max_builds, chroot_denylist, timeout)
                SELECT \(target), name, source_type, source_json, false, max_builds, chroot_denylist, timeout FROM packages WHERE project_id = \(source.id)
                ON CONFLICT DO NOTHING
                """
            )
            let buildsMap = try ForkBuilds.copy(c, source: source, targetID: target, targetOwner: newOwner, targetName: newName, submitter: user)
            try Actions.enqueue(
                c, type: "fork", owner: newOwner, project: newName,
                data: [
                    "source": .string(source.fullName), "target": .string("\(newOwner)/\(newName)"),
                    "source_ownername": .string(source.ownername), "source_dirname": .string(source.name),
                    "target_ownername": .string(newOwner), "target_dirname": .string(newName),
                    "builds_map": .object(buildsMap),
                ]
            )
            guard let p = try Projects.find(c, id: target) else { throw APIError(500, "Project vanished") }
            return Projects.json(p, resultsBase: results)
        }
        if let owner = json["ownername"]?.stringValue, let name = json["name"]?.stringValue {
            await app.ensureKey(owner: owner, project: name)  // a fork gets a new key, as upstream
        }
        app.tasks.bump()
        return jsonOK(json)
    }
}

enum Actions {
    static func enqueue(_ c: PGConnection, type: String, owner: String?, project: String?, data: JSONObject) throws {
        try c.execute(
            "INSERT INTO actions (action_type, ownername, projectname, data) VALUES (\(type), \(owner), \(project), \(JSON.object(data).text))"
        )
        try c.notify(channel: "koper_tasks", payload: "action")
    }
}
