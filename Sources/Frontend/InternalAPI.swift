import CoprModel
import HTTPCore
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

/// The internal API the Backend and DistGitProxy use (docs/internal-api.md): the wire contract of KoperProtocol
/// over HTTP, authenticated with the shared secret in `Authorization: Bearer …` (separate from user tokens).
/// Every write is idempotent. Routes are request → TaskStore/ActionStore → wire message.
enum InternalAPI {
    static func register(_ r: inout Router<RouteHandler>) {
        r.add(["GET"], "/backend/poll", poll)
        r.add(["GET"], "/backend/pending-jobs", pendingJobs)
        r.add(["POST"], "/backend/claim", claim)
        r.add(["POST"], "/backend/release-claims", releaseClaims)
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
        guard app.backendSecret.accepts(authorization: ctx.head.headers["Authorization"]) else {
            throw APIError(401, "Backend authentication failed")
        }
    }

    /// The request body as a wire message; a malformed one is a 400 that names the field.
    static func message<T: Decodable>(_ type: T.Type, _ ctx: RequestContext) throws -> T {
        do {
            return try Wire.decode(type, from: ctx.request.body.bytes)
        } catch {
            throw APIError.badRequest(error.message)
        }
    }

    static func answer<T: Encodable>(_ value: T) throws -> HTTPResponse {
        jsonOK(try Wire.json(value))
    }

    // MARK: Task descriptions

    static func getBuildTask(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let id = TaskID(ctx.param("task")), id.chroot != nil else { throw APIError.notFound("No such task") }
        return try await self.describe(app, ctx, id)
    }

    static func getSRPMTask(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        guard let build = Int(ctx.param("build")), build > 0 else { throw APIError.notFound("No such task") }
        return try await self.describe(app, ctx, TaskID(buildID: build, chroot: nil))
    }

    static func describe(_ app: FrontendApp, _ ctx: RequestContext, _ id: TaskID) async throws -> HTTPResponse {
        let urls = TaskDescriptions.URLs(results: app.config.resultsBase, publicBase: ctx.publicBase)
        guard let task = try await app.db.withConnection({ c in try TaskStore.load(c, id) }) else {
            throw APIError.notFound("No such task")
        }
        return try answer(TaskDescriptions.description(task, urls: urls))
    }

    // MARK: The Backend's one channel

    /// `GET /backend/poll?after=G&wait=S`: every pending task (summaries; the description comes with the claim),
    /// every unacknowledged cancel request and every pending action. While the generation still equals `after`
    /// (nothing changed since the Backend's last answer) the request is held up to `wait` ≤ 60 s; any commit that
    /// creates or changes work, a cancel or an action wakes it (across frontend processes through `NOTIFY`).
    static func poll(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let wait = min(max(Int(ctx.q("wait") ?? "0") ?? 0, 0), 60)
        let limit = min(max(Int(ctx.q("limit") ?? "10000") ?? 10_000, 1), 10_000)
        if let after = ctx.q("after"), wait > 0, let seen = app.tasks.generation(parsing: after) {
            await app.tasks.wait(after: seen, timeout: .seconds(wait))
        }
        // Read the generation before the state: a change committed meanwhile moves it, so the next poll answers at once.
        let generation = app.tasks.generation
        let (tasks, cancels, actions) = try await app.db.withConnection { c in
            (try TaskStore.pending(c, limit: limit), try TaskStore.cancelRequests(c), try ActionStore.pending(c))
        }
        let poll = BackendPoll(
            generation: app.tasks.token(generation),
            tasks: tasks.map(TaskDescriptions.summary),
            cancels: cancels,
            actions: actions
        )
        return try answer(poll)
    }

    /// `GET /backend/pending-jobs?wait=S&limit=N`: the pending tasks only (summaries), held while there are none.
    static func pendingJobs(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let wait = min(max(Int(ctx.q("wait") ?? "0") ?? 0, 0), 60)
        let limit = min(max(Int(ctx.q("limit") ?? "1000") ?? 1000, 1), 10_000)
        let seen = app.tasks.generation
        var tasks = try await app.db.withConnection { c in try TaskStore.pending(c, limit: limit) }
        if tasks.isEmpty && wait > 0 {
            await app.tasks.wait(after: seen, timeout: .seconds(wait))
            tasks = try await app.db.withConnection { c in try TaskStore.pending(c, limit: limit) }
        }
        return jsonOK(["tasks": try Wire.json(tasks.map(TaskDescriptions.summary))])
    }

    /// Claims a pending task for a worker: `pending → starting`, answered with the full description.
    static func claim(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let request = try message(ClaimRequest.self, ctx)
        guard !request.workerID.isEmpty, request.workerID.utf8.count <= 200 else {
            throw APIError.badRequest("worker_id: required")
        }
        let urls = TaskDescriptions.URLs(results: app.config.resultsBase, publicBase: ctx.publicBase)
        let outcome = try await app.db.transaction { c in
            try TaskStore.claim(c, request.taskID, worker: request.workerID)
        }
        switch outcome {
        case nil: throw APIError.notFound("No such task")
        case .canceled?: return try answer(ClaimAnswer.canceled)
        case .taken(let state)?: return try answer(ClaimAnswer.taken(state: state))
        case .claimed(let task)?: return try answer(ClaimAnswer.claimed(TaskDescriptions.description(task, urls: urls)))
        }
    }

    /// A starting Backend hands back the tasks it claimed but no longer drives (no job file names them).
    static func releaseClaims(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let request = try message(ReleaseClaims.self, ctx)
        guard !request.workerID.isEmpty, request.workerID.utf8.count <= 200 else {
            throw APIError.badRequest("worker_id: required")
        }
        guard request.keep.count <= 10_000 else { throw APIError.badRequest("keep: at most 10000 tasks") }
        let released = try await app.db.transaction { c in
            try TaskStore.releaseClaims(c, worker: request.workerID, keep: request.keep)
        }
        if !released.isEmpty {
            app.logger.notice("released claims of a restarted backend", metadata: ["tasks": "\(released.count)"])
        }
        return try answer(ReleasedClaims(released: released))
    }

    /// State and result updates from a worker (idempotent by `update_id`).
    static func update(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let update = try message(BackendUpdate.self, ctx)
        guard !update.updateID.isEmpty, update.updateID.utf8.count <= 200 else {
            throw APIError.badRequest("update_id: required")
        }
        guard BackendUpdate.reportableStates.contains(update.state) else {
            throw APIError.badRequest("state: must be one of starting, running, succeeded, failed, pending")
        }
        if let d = update.resultDir, !FieldRules.isPathComponent(d) {
            throw APIError.badRequest("result_dir: must be one path component")
        }
        let (result, uploads) = try await app.db.transaction { c -> (UpdateAnswer, [String]) in
            do {
                let result = try TaskStore.apply(c, update)
                var pruned: [String] = []
                if let p = result.prune {
                    pruned = try BuildStore.prune(c, projectID: p.projectID, packageID: p.packageID)
                }
                return (result.answer, pruned)
            } catch let refusal as TaskStore.UpdateRefusal {
                switch refusal {
                case .noSuchTask: throw APIError.notFound("No such task")
                case .srpmRequired:
                    throw APIError.badRequest(
                        "srpm: name, version and release are required when an SRPM build succeeds"
                    )
                case .invalidPackageName(let message): throw APIError.badRequest("srpm: \(message)")
                }
            }
        }
        Uploads.remove(paths: uploads, config: app.config)
        app.tasks.bump()
        return try answer(result)
    }

    static func cancelRequests(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let ids = try await app.db.withConnection { c in try TaskStore.cancelRequests(c) }
        return jsonOK(["task_ids": JSON(ids.map(\.description))])
    }

    static func cancelRequestDone(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let done = try message(CancelDone.self, ctx)
        let removed = try await app.db.withConnection { c in try TaskStore.cancelDone(c, done.taskID) }
        return jsonOK(["removed": .bool(removed)])
    }

    static func pendingActions(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let actions = try await app.db.withConnection { c in try ActionStore.pending(c) }
        return jsonOK(["actions": try Wire.json(actions)])
    }

    static func actionDone(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let done = try message(ActionDone.self, ctx)
        let updated = try await app.db.withConnection { c in try ActionStore.finish(c, id: done.id, result: done.result)
        }
        return jsonOK(["updated": .bool(updated)])
    }

    static func importing(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let base = ctx.publicBase
        let items = try await app.db.withConnection { c in try TaskStore.importing(c) }.map { r -> JSON in
            [
                "build_id": .int(r.buildID),
                "owner": .string(r.ownername),
                "project": .string(r.projectname),
                "pkg_name": JSON(r.pkgName),
                "srpm_url": JSON(TaskDescriptions.srpmURL(path: r.srpmPath, url: r.srpmURL, publicBase: base)),
                "srpm_sha256": JSON(r.srpmSHA256),
            ]
        }
        return jsonOK(["builds": .array(items)])
    }

    static func importCompleted(_ app: FrontendApp, _ ctx: RequestContext) async throws -> HTTPResponse {
        try requireSecret(app, ctx)
        let body = try ctx.jsonBody()
        guard let build = body["build_id"]?.intValue else { throw APIError.badRequest("build_id: required") }
        let ok = (body["result"]?.stringValue ?? "success") == "success"
        guard
            let result = try await app.db.transaction({ c in
                try TaskStore.completeImport(c, buildID: build, succeeded: ok)
            })
        else {
            throw APIError.notFound("No such build")
        }
        app.tasks.bump()
        return try answer(result)
    }
}
