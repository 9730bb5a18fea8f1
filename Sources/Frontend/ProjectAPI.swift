import CoprModel
import HTTPCore
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

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
        return jsonOK([
            "api_login": .string(t.login), "api_token": .string(t.token), "expiration": .string(t.expiration),
        ])
    }

    static func mockChroots(_ app: FrontendApp, _ ctx: RequestContext, _ c: PGConnection) throws -> HTTPResponse {
        var o = JSONObject()
        for ch in try MockChrootStore.active(c) { o[ch.name] = .string(ch.comment) }
        return jsonOK(.object(o))
    }

    /// `GET /api_3/project` through the project batcher (decision 0007): one statement for the projects asked for
    /// at once.
    static func get(
        _ app: FrontendApp,
        _ ctx: RequestContext,
        _ done: @escaping @Sendable (Result<HTTPResponse, any Error>) -> Void
    ) {
        guard let owner = ctx.q("ownername"), !owner.isEmpty else {
            return done(.failure(APIError.badRequest("Missing argument ownername")))
        }
        guard let name = ctx.q("projectname"), !name.isEmpty else {
            return done(.failure(APIError.badRequest("Missing argument projectname")))
        }
        let results = app.config.resultsBase
        app.projectReader.lookup(ProjectKey(owner: owner, name: name)) { found in
            done(
                Result {
                    guard let project = try found.get() else {
                        throw APIError.notFound("Project \(owner)/\(name) does not exist.")
                    }
                    return jsonOK(Projects.json(project, resultsBase: results))
                }
            )
        }
    }

    static func list(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let page = try Page(ctx)
        let order: ProjectStore.Order = ctx.q("order") == "name" ? .name : .id
        let descending = ctx.q("order_type")?.uppercased() == "DESC"
        let owner = ctx.q("ownername").flatMap { $0.isEmpty ? nil : $0 }
        let results = app.config.resultsBase
        let items = try await app.db.withConnection { c in
            try ProjectStore.list(
                c,
                owner: owner,
                order: order,
                descending: descending,
                limit: page.limit,
                offset: page.offset
            ).map {
                Projects.json($0, resultsBase: results)
            }
        }
        return jsonOK([
            "items": .array(items),
            "meta": page.meta(order: order == .name ? "name" : "id", orderType: descending ? "DESC" : "ASC"),
        ])
    }

    static func search(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        let page = try Page(ctx)
        guard let query = ctx.q("query"), !query.isEmpty else { throw APIError.badRequest("Missing argument query") }
        let results = app.config.resultsBase
        let items = try await app.db.withConnection { c in
            try ProjectStore.search(c, text: query, limit: page.limit, offset: page.offset).map {
                Projects.json($0, resultsBase: results)
            }
        }
        return jsonOK(["items": .array(items), "meta": page.meta(orderType: "DESC")])
    }

    /// The editable settings shared by add and edit, from the request body. `nil` means "not sent": edit leaves the
    /// column untouched.
    static func projectSettings(_ o: JSONObject, reposKey: String) throws -> ProjectSettings {
        var s = ProjectSettings()
        func str(_ k: String) -> String? { o[k]?.stringValue }
        s.description = str("description")
        s.instructions = str("instructions")
        if let h = o["homepage"], !h.isNull {
            let text = h.stringValue ?? ""
            if text.isEmpty {
                s.homepage = .some(nil)
            } else {
                do { try FieldValidation.validateHomepage(text) } catch {
                    throw APIError.badRequest("homepage: Invalid URL")
                }
                s.homepage = .some(text)
            }
        }
        if let h = o["contact"], !h.isNull {
            let text = h.stringValue ?? ""
            if text.isEmpty {
                s.contact = .some(nil)
            } else {
                do { try FieldValidation.validateContact(text) } catch {
                    throw APIError.badRequest("contact: Contact must be email address or URL")
                }
                s.contact = .some(text)
            }
        }
        s.additionalRepos = try optionalStringList(o[reposKey], field: reposKey)
        s.runtimeDependencies = try optionalStringList(o["runtime_dependencies"], field: "runtime_dependencies")
        s.packitForgeProjectsAllowed = try optionalStringList(
            o["packit_forge_projects_allowed"],
            field: "packit_forge_projects_allowed"
        )?.map { url in
            // Upstream normalises forge project URLs by stripping the scheme.
            if let r = url.range(of: "://") { return String(url[r.upperBound...]) }
            return url
        }
        s.unlistedOnHP = try optionalBool(o["unlisted_on_hp"], field: "unlisted_on_hp")
        s.enableNet = try optionalBool(o["enable_net"], field: "enable_net")
        s.autoPrune = try optionalBool(o["auto_prune"], field: "auto_prune")
        s.persistent = try optionalBool(o["persistent"], field: "persistent")
        s.bootstrap = str("bootstrap")
        if let legacy = try optionalBool(o["use_bootstrap_container"], field: "use_bootstrap_container"),
            s.bootstrap == nil
        {
            s.bootstrap = legacy ? "on" : "off"
        }
        s.bootstrapImage = str("bootstrap_image")
        s.isolation = str("isolation")
        s.followFedoraBranching = try optionalBool(o["follow_fedora_branching"], field: "follow_fedora_branching")
        s.develMode = try optionalBool(o["devel_mode"], field: "devel_mode")
        s.multilib = try optionalBool(o["multilib"], field: "multilib")
        s.moduleHotfixes = try optionalBool(o["module_hotfixes"], field: "module_hotfixes")
        s.fedoraReview = try optionalBool(o["fedora_review"], field: "fedora_review")
        s.appstream = try optionalBool(o["appstream"], field: "appstream")
        if let v = o["repo_priority"], !v.isNull {
            s.repoPriority = .some(try optionalInt(v, field: "repo_priority"))
            if case .some(.some(let p)) = s.repoPriority, p < 1 || p > 99 {
                throw APIError.badRequest("repo_priority: Number must be between 1 and 99.")
            }
        }
        if let v = o["delete_after_days"], !v.isNull {
            let d = try optionalInt(v, field: "delete_after_days")
            if let d, d < 0 || d > 60 {
                throw APIError.badRequest("delete_after_days: Number must be between 0 and 60.")
            }
            s.deleteAfterDays = .some(d)
        }
        if let v = o["keep_builds"] {
            let n = v.isNull ? nil : try optionalInt(v, field: "keep_builds")
            if let n, n < 0 || n > 1000 { throw APIError.badRequest("keep_builds: Number must be between 0 and 1000.") }
            s.keepBuilds = .some(n == 0 ? nil : n)
        }
        if let b = s.bootstrap, !["default", "unchanged", "on", "off", "image"].contains(b) {
            throw APIError.badRequest("bootstrap: Not a valid choice")
        }
        if let i = s.isolation, !["default", "unchanged", "nspawn", "simple"].contains(i) {
            throw APIError.badRequest("isolation: Not a valid choice")
        }
        return s
    }

    /// Resolves the owner of a new project and checks that `user` may create there.
    static func resolveOwner(_ c: PGConnection, owner: String, user: User) throws -> (userID: Int?, groupID: Int?) {
        if owner.hasPrefix("@") {
            let name = String(owner.dropFirst())
            guard let group = try GroupStore.find(c, name: name) else {
                throw APIError.notFound("Group \(name) does not exist.")
            }
            if !user.isAdmin, try !GroupStore.isMember(c, groupID: group.id, userID: user.id) {
                throw APIError.forbidden(
                    "User '\(user.name)' doesn't have access to the copr group '\(name)' (fas_name='\(group.fasName)')"
                )
            }
            return (nil, group.id)
        }
        if owner == user.name { return (user.id, nil) }
        guard user.isAdmin else {
            throw APIError.forbidden(
                "You were authorized as '\(user.name)' user without permissions to access projects of user '\(owner)'"
            )
        }
        guard let u = try UserStore.find(c, name: owner) else {
            throw APIError.notFound("User \(owner) does not exist.")
        }
        return (u.id, nil)
    }

    /// The mock chroot ids of the requested chroot names, which must be active and listed once.
    static func chrootIDs(_ c: PGConnection, names: [String]) throws -> [Int] {
        var seen = Set<String>()
        for n in names where !seen.insert(n).inserted {
            throw APIError.badRequest("chroots: '\(n)' is listed more than once")
        }
        let active = try MockChrootStore.active(c)
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
        guard let name = body["name"]?.stringValue, !name.isEmpty else {
            throw APIError.badRequest("name: This field is required.")
        }
        do { try Names.validateProjectName(name) } catch { throw APIError.badRequest("name: \(error.message)") }
        let settings = try projectSettings(body, reposKey: "additional_repos")
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
            guard !chroots.isEmpty else {
                throw APIError.badRequest("chroots: '[]' is not a valid choice for this field.")
            }
            let ids = try chrootIDs(c, names: chroots)
            if settings.persistent == true && !user.isAdmin {
                throw APIError.badRequest("persistent: Only admins may create persistent projects.")
            }
            if settings.autoPrune == false && !user.isAdmin {
                throw APIError.badRequest("auto_prune: Only admins may disable auto-pruning.")
            }
            var rest = settings
            rest.persistent = nil
            let id = try ProjectStore.insert(
                c,
                NewProject(
                    ownername: owner,
                    name: name,
                    ownerUserID: ownerUser,
                    ownerGroupID: ownerGroup,
                    createdBy: user.id,
                    persistent: settings.persistent ?? false
                )
            )
            try ProjectStore.update(c, id: id, settings: rest)
            try ProjectStore.addChroots(c, projectID: id, mockChrootIDs: ids)
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
        var editable = try projectSettings(body, reposKey: "repos")
        editable.persistent = nil  // edit never changes persistent, storage, name or owner
        let settings = editable
        let chroots = try optionalStringList(body["chroots"], field: "chroots")
        let results = app.config.resultsBase
        let (json, uploads) = try await app.db.transaction { c -> (JSON, [String]) in
            let user = try Auth.requireUser(c, ctx)
            let project = try Projects.require(c, owner: owner, name: name)
            try Permissions.requireEdit(c, user: user, project: project)
            if settings.autoPrune == false && !user.isAdmin && project.autoPrune {
                throw APIError.badRequest("auto_prune: Only admins may disable auto-pruning.")
            }
            try ProjectStore.update(c, id: project.id, settings: settings)
            if let chroots {
                guard !chroots.isEmpty else {
                    throw APIError.badRequest("chroots: At least one chroot must be selected")
                }
                try ProjectStore.setChroots(c, projectID: project.id, mockChrootIDs: try chrootIDs(c, names: chroots))
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
            guard try Permissions.canDelete(c, user: user, project: project) else {
                throw APIError.forbidden("Only owners and admins may delete their projects.")
            }
            if project.persistent { throw APIError.forbidden("This project is protected against deletion.") }
            let running = try ProjectStore.unfinishedBuildIDs(c, projectID: project.id)
            if !running.isEmpty {
                throw APIError.badRequest(
                    "Build(s) \(running.map(String.init).joined(separator: ", ")) are still running.\n"
                )
            }
            let uploads = try ProjectStore.uploadPaths(c, projectID: project.id)
            let json = Projects.json(project, resultsBase: results)
            try ProjectStore.delete(c, id: project.id)
            try ActionStore.enqueue(
                c,
                .deleteProject(.init(ownername: owner, projectname: name)),
                ownername: owner,
                projectname: name
            )
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
                try ActionStore.enqueue(
                    c,
                    .createrepo(.init(ownername: owner, projectname: name, projectDirname: name, chroot: ch)),
                    ownername: owner,
                    projectname: name
                )
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
        guard let newName = body["name"]?.stringValue, !newName.isEmpty else {
            throw APIError.badRequest("name: This field is required.")
        }
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
                    throw APIError.badRequest(
                        "You are about to fork into existing project: \(newOwner)/\(newName)\nPlease use --confirm if you really want to do this"
                    )
                }
                try Permissions.requireEdit(c, user: user, project: existing)
                target = existing.id
            } else {
                target = try ProjectStore.insertFork(
                    c,
                    of: source.id,
                    as: NewProject(
                        ownername: newOwner,
                        name: newName,
                        ownerUserID: ownerUser,
                        ownerGroupID: ownerGroup,
                        createdBy: user.id
                    )
                )
            }
            try ProjectStore.copyChrootsAndPackages(c, from: source.id, to: target)
            let buildsMap = try ProjectStore.copySucceededBuilds(
                c,
                from: source.id,
                to: ForkTarget(
                    projectID: target,
                    ownername: newOwner,
                    name: newName,
                    submitterID: user.id,
                    submitterName: user.name
                )
            )
            try ActionStore.enqueue(
                c,
                .fork(
                    .init(
                        sourceOwnername: source.ownername,
                        sourceDirname: source.name,
                        targetOwnername: newOwner,
                        targetDirname: newName,
                        buildsMap: buildsMap
                    )
                ),
                ownername: newOwner,
                projectname: newName
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
