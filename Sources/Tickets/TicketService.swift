public import Logging
internal import Postgres
internal import Synchronization

/// A resalloc-style ticket service, used in-process by the Backend: pools of builder machines, tickets that ask
/// for a tag set and are served in creation order, spares kept ready, reuse only inside one sandbox, broken
/// machines retired and replaced.
///
/// All state lives in PostgreSQL (tables `pools`, `resources`, `tickets`), so a restarted service finds its
/// tickets and resources: assigned tickets keep their resource, a resource serves at most one open ticket (a
/// unique index), and allocations that were in flight when the process died are released and replaced. Every
/// state change runs in a transaction holding one advisory lock, so decisions never race each other.
///
/// Give the service its own database (or its own, existing schema through the conninfo, e.g.
/// `options='-c search_path=tickets'`: migrations are recorded in `schema_migrations`), and run one service per
/// database.
public final class TicketService: Sendable {
    /// Tuning knobs; the defaults suit production.
    public struct Options: Sendable {
        /// How often the manager looks at the state even when nothing woke it (reuse expiry, checks, retries).
        public var managerInterval: Duration
        /// How often a waiting `wait` re-reads its ticket even without a notification.
        public var waitRecheckInterval: Duration
        /// Database connections.
        public var connections: Int
        /// Closed tickets and deleted resources are kept this long, in seconds.
        public var historyRetentionSeconds: Int

        public init(
            managerInterval: Duration = .seconds(1),
            waitRecheckInterval: Duration = .seconds(5),
            connections: Int = 4,
            historyRetentionSeconds: Int = 7 * 86_400
        ) {
            self.managerInterval = managerInterval
            self.waitRecheckInterval = waitRecheckInterval
            self.connections = connections
            self.historyRetentionSeconds = historyRetentionSeconds
        }
    }

    private let core: TicketCore

    /// Migrates the ticket database, records the pools, reconciles the state left by an earlier process (the
    /// first manager pass runs before this returns) and starts the background manager.
    public init(conninfo: String, pools: [PoolConfig], options: Options = Options(), logger: Logger) async throws {
        for pool in pools {
            try pool.validate()
        }
        guard Set(pools.map(\.name)).count == pools.count else {
            throw TicketError(code: .invalidConfiguration, message: "pool names must be unique")
        }
        let database = PGPool(conninfo: conninfo, size: max(2, options.connections), logger: logger)
        do {
            _ = try await PGMigrator.migrate(database, migrations: TicketSchema.migrations, logger: logger)
            let retiredPools = try await TicketCore.registerPools(pools, database: database)
            let core = TicketCore(
                database: database,
                pools: pools,
                retiredPools: retiredPools,
                options: options,
                logger: logger
            )
            do {
                try await core.start()
            } catch {
                _ = core.stop()
                throw error
            }
            self.core = core
        } catch {
            database.close()
            throw error
        }
    }

    deinit {
        _ = self.core.stop()
    }

    /// Opens a ticket for a resource whose pool has all of `tags`, for one sandbox (same submitter+project) and
    /// one owner (e.g. the task id; at most one open ticket each). Idempotent: opening again for an owner with
    /// an open ticket of the same tags and sandbox returns that ticket.
    public func open(tags: Set<String>, sandbox: String, owner: String) async throws -> TicketID {
        TicketID(rawValue: try await self.core.open(tags: tags, sandbox: sandbox, owner: owner))
    }

    /// Suspends until a resource is assigned to the ticket and returns it (at once if it already is, e.g. when
    /// a worker reattaches after a restart). Cancelling the calling task returns at once with
    /// `CancellationError` and closes the ticket; a resource assigned but not yet handed out goes back unused.
    /// Throws `.ticketClosed` for a closed ticket and `.shutDown` when the service shuts down (the ticket then
    /// stays open for the next process).
    public func wait(_ ticket: TicketID) async throws -> Resource {
        try await self.core.wait(ticket.rawValue)
    }

    /// The owner's open ticket and its resource, if assigned (for reattaching after a restart).
    public func find(owner: String) async throws -> (TicketID, Resource?)? {
        try await self.core.find(owner: owner).map { (TicketID(rawValue: $0.id), $0.resource) }
    }

    /// Closes the ticket (idempotent). With `reusable`, its resource may serve the next ticket of the same
    /// sandbox, within the pool's reuse limits; otherwise the resource is released.
    public func close(_ ticket: TicketID, reusable: Bool) async throws {
        try await self.core.close(ticket.rawValue, disposition: reusable ? .reusable : .release)
    }

    /// Retires a resource that a worker found broken (it could not reach it, or the machine died): the release
    /// hook runs and the pool allocates a replacement as demand and `max_prealloc` require. The open ticket
    /// holding it is closed: the worker opens a new ticket for its next attempt. A resource that is not ready
    /// (already retired) is left alone.
    public func markBroken(_ resource: Resource) async throws {
        try await self.core.markBroken(resource)
    }

    /// Pools, live resources and open tickets, read in one consistent snapshot.
    public func snapshot() async throws -> TicketSnapshot {
        try await self.core.snapshot()
    }

    /// A snapshot of a ticket database without starting a service (no migration, no manager, no hooks): for an
    /// operator command while the Backend runs.
    public static func inspect(conninfo: String, logger: Logger) async throws -> TicketSnapshot {
        let database = PGPool(conninfo: conninfo, size: 1, logger: logger)
        defer { database.close() }
        return try await database.transaction { c in try TicketStore.snapshot(c, poolOrder: []) }
    }

    /// Stops the manager and the hooks (killing them, as a crash would: the next process cleans up), fails
    /// waiting `wait` calls with `.shutDown` and closes the database connections. Open tickets stay open.
    public func shutdown() async {
        for task in self.core.stop() {
            await task.value
        }
        self.core.database.close()
    }
}

/// The service's state and work. Background tasks hold it strongly; `stop()` (called by `shutdown()` or when
/// the `TicketService` goes away) cancels them, which breaks the cycle.
final class TicketCore: Sendable {
    enum Disposition: Sendable {
        case reusable
        case release
        /// The wait was cancelled: an assigned resource not yet handed out goes back as it was.
        case cancelled
    }

    struct RetiredPool: Sendable {
        var releaseCommand: String?
        var releaseTimeout: Int
    }

    private struct Waiter {
        var ticket: Int64
        var continuation: CheckedContinuation<Void, any Error>?
        var isNotified = false
    }

    private struct Backoff {
        var failures: Int
        var until: Double
    }

    private struct State {
        var running: [Int64: Task<Void, Never>] = [:]
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiterID: UInt64 = 0
        var backoff: [String: Backoff] = [:]
        var background: [Task<Void, Never>] = []
        var isShutDown = false
        var lastBroadcast: Double = 0
        var lastPrune: Double = 0
    }

    let database: PGPool
    let pools: [PoolConfig]
    let poolByName: [String: PoolConfig]
    let retiredPools: [String: RetiredPool]
    let options: TicketService.Options
    let logger: Logger
    private let state = Mutex(State())
    private let wakeStream: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    init(
        database: PGPool,
        pools: [PoolConfig],
        retiredPools: [String: RetiredPool],
        options: TicketService.Options,
        logger: Logger
    ) {
        self.database = database
        self.pools = pools
        self.poolByName = Dictionary(pools.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.retiredPools = retiredPools
        self.options = options
        self.logger = logger
        (self.wakeStream, self.wakeContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    static var shutDownError: TicketError { TicketError(code: .shutDown, message: "the ticket service was shut down") }

    // MARK: Start and stop

    /// Records the configured pools and marks the others inactive; returns how to release resources of the
    /// inactive ones.
    static func registerPools(_ pools: [PoolConfig], database: PGPool) async throws -> [String: RetiredPool] {
        try await database.transaction { c in
            try c.execute(TicketSchema.lock)
            for pool in pools {
                try TicketStore.upsertPool(c, pool)
            }
            try TicketStore.deactivatePools(c, except: pools.map(\.name))
            return try TicketStore.inactivePools(c)
        }
    }

    func start() async throws {
        try await self.reconcile()
        let manager = Task {
            for await _ in self.wakeStream {
                if self.isShutDown { break }
                do {
                    try await self.reconcile()
                } catch {
                    if self.isShutDown || Task.isCancelled { break }
                    self.logger.warning("ticket manager pass failed", metadata: ["error": "\(error)"])
                }
            }
        }
        let interval = self.options.managerInterval
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                self.wake()
            }
        }
        let started = self.state.withLock { state in
            guard !state.isShutDown else { return false }
            state.background = [manager, ticker]
            return true
        }
        if !started {
            manager.cancel()
            ticker.cancel()
        }
    }

    /// Marks the service shut down, cancels the manager and the hooks, fails the waiters. Returns the tasks to
    /// await.
    func stop() -> [Task<Void, Never>] {
        let (tasks, continuations) = self.state.withLock {
            state -> ([Task<Void, Never>], [CheckedContinuation<Void, any Error>]) in
            state.isShutDown = true
            let tasks = state.background + Array(state.running.values)
            state.background = []
            var continuations: [CheckedContinuation<Void, any Error>] = []
            for (id, var waiter) in state.waiters {
                if let continuation = waiter.continuation {
                    continuations.append(continuation)
                    waiter.continuation = nil
                    state.waiters[id] = waiter
                }
            }
            return (tasks, continuations)
        }
        self.wakeContinuation.finish()
        for task in tasks {
            task.cancel()
        }
        for continuation in continuations {
            continuation.resume(throwing: Self.shutDownError)
        }
        return tasks
    }

    var isShutDown: Bool {
        self.state.withLock { $0.isShutDown }
    }

    func wake() {
        self.wakeContinuation.yield()
    }

    private func checkRunning() throws(TicketError) {
        if self.isShutDown { throw Self.shutDownError }
    }

    // MARK: The manager pass

    private struct Pass: Sendable {
        var now: Double
        var plan: Planner.Plan
        var resources: [Int64: Planner.ResourceRow]
        var inserted: [Planner.ResourceRow]
    }

    /// One look at the whole state: retire, assign and allocate in one transaction, then start the due hooks
    /// and wake the tickets that got a resource.
    func reconcile() async throws {
        // The set of running hooks is read before the database: a hook removes itself only after its result
        // is committed, so a row still `allocating` below whose hook is not in this set is really orphaned.
        let (running, backoff) = self.state.withLock { (Set($0.running.keys), $0.backoff) }
        let pools = self.pools
        let poolByName = self.poolByName
        let pass = try await self.database.transaction { c -> Pass in
            try c.execute(TicketSchema.lock)
            let now = try TicketStore.now(c)
            let resources = try TicketStore.liveResources(c)
            let tickets = try TicketStore.openTickets(c).map(\.row)
            var planner = Planner(
                pools: pools.map {
                    Planner.Pool(config: $0, isAllocationBlocked: (backoff[$0.name]?.until ?? 0) > now)
                },
                now: now
            )
            planner.recentlyBroken = try TicketStore.recentlyBrokenStaticHosts(
                c,
                within: Planner.brokenQuarantineSeconds
            )
            let plan = planner.plan(resources: resources, tickets: tickets, running: running)
            for id in plan.orphanedAllocations {
                try TicketStore.abandonAllocation(c, resource: id, reason: "allocation interrupted")
            }
            for release in plan.releases {
                try TicketStore.retire(c, resource: release.resource, reason: release.reason)
            }
            for assignment in plan.assignments {
                try TicketStore.assign(c, assignment)
            }
            var inserted: [Planner.ResourceRow] = []
            for allocation in plan.allocations {
                let isReady = poolByName[allocation.pool]?.allocateCommand == nil
                inserted.append(
                    try TicketStore.insertResource(
                        c,
                        pool: allocation.pool,
                        staticHost: allocation.staticHost,
                        isReady: isReady
                    )
                )
            }
            return Pass(
                now: now,
                plan: plan,
                resources: Dictionary(resources.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }),
                inserted: inserted
            )
        }
        self.logDecisions(pass)

        var resources = pass.resources
        for row in pass.inserted {
            resources[row.id] = row
        }
        let releases = pass.plan.releaseRuns + pass.plan.releases.map(\.resource) + pass.plan.orphanedAllocations
        for id in releases {
            if let row = resources[id] { self.spawn(row) { await self.runRelease($0) } }
        }
        for row in pass.inserted where row.state == .allocating {
            self.spawn(row) { await self.runAllocation($0) }
        }
        for id in pass.plan.checks {
            if let row = resources[id] { self.spawn(row) { await self.runCheck($0) } }
        }

        let assigned = Set(pass.plan.assignments.map(\.ticket))
        let broadcast = self.state.withLock { state in
            guard pass.now - state.lastBroadcast >= self.options.waitRecheckInterval.seconds else { return false }
            state.lastBroadcast = pass.now
            return true
        }
        self.notifyWaiters { broadcast || assigned.contains($0) }
        if pass.inserted.contains(where: { $0.state == .ready }) {
            self.wake()  // static hosts are ready at once: assign them in the next pass
        }
        await self.pruneIfDue(now: pass.now)
    }

    private func logDecisions(_ pass: Pass) {
        for id in pass.plan.orphanedAllocations {
            self.logger.notice(
                "releasing a resource whose allocation was interrupted",
                metadata: self.metadata(pass.resources[id])
            )
        }
        for release in pass.plan.releases {
            var metadata = self.metadata(pass.resources[release.resource])
            metadata["reason"] = "\(release.reason)"
            self.logger.info("retiring resource", metadata: metadata)
        }
        for assignment in pass.plan.assignments {
            var metadata = self.metadata(pass.resources[assignment.resource])
            metadata["ticket.id"] = "\(assignment.ticket)"
            self.logger.info("assigned resource to ticket", metadata: metadata)
        }
        for row in pass.inserted {
            self.logger.info(
                row.state == .ready ? "static host resource ready" : "allocating resource",
                metadata: self.metadata(row)
            )
        }
    }

    private func metadata(_ row: Planner.ResourceRow?) -> Logger.Metadata {
        guard let row else { return [:] }
        return ["resource.id": "\(row.id)", "resource.name": "\(row.name)", "pool": "\(row.pool)"]
    }

    private func pruneIfDue(now: Double) async {
        let isDue = self.state.withLock { state in
            guard now - state.lastPrune >= 3600 else { return false }
            state.lastPrune = now
            return true
        }
        guard isDue else { return }
        let retention = self.options.historyRetentionSeconds
        do {
            try await self.database.transaction { c in
                try c.execute(TicketSchema.lock)
                try TicketStore.pruneHistory(c, retentionSeconds: retention)
            }
        } catch {
            self.logger.warning("pruning ticket history failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Hooks

    /// Starts `work` for a resource unless a hook for it is running already. The task leaves the running set
    /// after its result is committed, then wakes the manager.
    private func spawn(
        _ row: Planner.ResourceRow,
        _ work: @escaping @Sendable (Planner.ResourceRow) async -> Void
    ) {
        self.state.withLock { state in
            guard !state.isShutDown, state.running[row.id] == nil else { return }
            state.running[row.id] = Task {
                await work(row)
                self.state.withLock { _ = $0.running.removeValue(forKey: row.id) }
                self.wake()
            }
        }
    }

    private func environment(_ row: Planner.ResourceRow) -> [String: String] {
        var environment = [
            "RESALLOC_NAME": row.name,
            "RESALLOC_ID": String(row.id),
            "RESALLOC_POOL_ID": row.pool,
        ]
        if let data = row.data {
            environment["KOPER_RESOURCE_DATA"] = data
        }
        return environment
    }

    private func logHookFailure(_ message: Logger.Message, _ row: Planner.ResourceRow, _ outcome: HookOutcome) {
        var metadata = self.metadata(row)
        metadata["hook.status"] = "\(outcome.status)"
        if !outcome.standardErrorTail.isEmpty {
            metadata["hook.stderr"] = "\(outcome.standardErrorTail)"
        }
        self.logger.warning(message, metadata: metadata)
    }

    private func runAllocation(_ row: Planner.ResourceRow) async {
        guard let command = self.poolByName[row.pool]?.allocateCommand, let pool = self.poolByName[row.pool] else {
            _ = await self.persist(row) { c in
                try TicketStore.abandonAllocation(c, resource: row.id, reason: "pool has no allocate hook")
            }
            return
        }
        let outcome: HookOutcome
        do {
            outcome = try await Hook.run(
                command,
                environment: self.environment(row),
                timeout: .seconds(pool.allocateTimeout)
            )
        } catch {
            return  // shut down: the row stays `allocating`, and the next process releases it
        }
        var data: ResourceData?
        var problem = "allocate hook \(outcome.status)"
        if outcome.isSuccess {
            do {
                data = try ResourceData.parse(hookOutput: outcome.standardOutput)
                if data == nil, let text = row.data {
                    data = try ResourceData(jsonText: text)
                }
                if data == nil { problem = "allocate hook printed no resource data" }
            } catch {
                problem = "allocate hook printed unusable resource data: \(error.message)"
            }
        }
        if let data {
            let text = data.jsonText
            let stored = await self.persist(row) { c in
                try TicketStore.markReady(c, resource: row.id, data: text)
            }
            if stored == true {
                self.state.withLock { _ = $0.backoff.removeValue(forKey: row.pool) }
                self.logger.info("resource ready", metadata: self.metadata(row))
            }
            return
        }
        self.logHookFailure(
            "allocation failed; releasing the resource",
            row,
            HookOutcome(
                isSuccess: false,
                status: problem,
                standardOutput: [],
                standardErrorTail: outcome.standardErrorTail
            )
        )
        let now = await self.persist(row) { c in
            try TicketStore.abandonAllocation(c, resource: row.id, reason: "allocation failed")
            return try TicketStore.now(c)
        }
        if let now {
            self.state.withLock { state in
                let failures = (state.backoff[row.pool]?.failures ?? 0) + 1
                let delay = min(60, Double(1 << min(failures - 1, 6)))
                state.backoff[row.pool] = Backoff(failures: failures, until: now + delay)
            }
        }
    }

    private func runRelease(_ row: Planner.ResourceRow) async {
        var command: String?
        var timeout = 300
        if let pool = self.poolByName[row.pool] {
            command = pool.releaseCommand
            timeout = pool.releaseTimeout
        } else if let retired = self.retiredPools[row.pool] {
            command = retired.releaseCommand
            timeout = retired.releaseTimeout
        }
        if let command {
            let outcome: HookOutcome
            do {
                outcome = try await Hook.run(command, environment: self.environment(row), timeout: .seconds(timeout))
            } catch {
                return  // shut down: still `releasing`; the next process runs the hook again
            }
            guard outcome.isSuccess else {
                self.logHookFailure("release hook failed; will retry", row, outcome)
                _ = await self.persist(row) { c in
                    try TicketStore.postponeRelease(c, resource: row.id)
                }
                return
            }
        }
        let deleted = await self.persist(row) { c in
            try TicketStore.markDeleted(c, resource: row.id)
        }
        if deleted == true {
            self.logger.info("resource released", metadata: self.metadata(row))
        }
    }

    private func runCheck(_ row: Planner.ResourceRow) async {
        guard let pool = self.poolByName[row.pool], let command = pool.checkCommand else { return }
        let outcome: HookOutcome
        do {
            outcome = try await Hook.run(
                command,
                environment: self.environment(row),
                timeout: .seconds(pool.checkTimeout)
            )
        } catch {
            return
        }
        if outcome.isSuccess {
            _ = await self.persist(row) { c in
                try TicketStore.recordCheckPassed(c, resource: row.id)
            }
            return
        }
        self.logHookFailure("health check failed", row, outcome)
        let maxFailures = pool.checkMaxFailures
        let retired = await self.persist(row) { c -> Bool in
            let failures = try TicketStore.recordCheckFailed(c, resource: row.id)
            guard let failures, failures >= maxFailures else { return false }
            // A resource that got a ticket meanwhile stays: its worker notices a broken machine itself.
            return try TicketStore.retireUnassigned(c, resource: row.id, reason: "health check failed")
        }
        if retired == true {
            self.logger.notice("retired a resource that failed its health check", metadata: self.metadata(row))
        }
    }

    /// Runs a state change under the lock, retrying database failures a few times: a hook's result must not be
    /// lost to a database blip. Returns nil if it could not be stored (or the service shut down).
    private func persist<T: Sendable>(
        _ row: Planner.ResourceRow,
        _ body: @escaping @Sendable (PGConnection) throws -> T
    ) async -> T? {
        for attempt in 1...5 {
            do {
                return try await self.database.transaction { c in
                    try c.execute(TicketSchema.lock)
                    return try body(c)
                }
            } catch {
                if self.isShutDown || Task.isCancelled { return nil }
                var metadata = self.metadata(row)
                metadata["error"] = "\(error)"
                metadata["attempt"] = "\(attempt)"
                self.logger.warning("storing a hook result failed", metadata: metadata)
                try? await Task.sleep(for: .seconds(attempt))
            }
        }
        return nil
    }

    // MARK: Tickets

    func open(tags: Set<String>, sandbox: String, owner: String) async throws -> Int64 {
        try self.checkRunning()
        guard tags.allSatisfy(Validation.isTag) else {
            throw TicketError(code: .invalidArgument, message: "invalid tag")
        }
        guard Validation.isLabel(sandbox), Validation.isLabel(owner) else {
            throw TicketError(code: .invalidArgument, message: "sandbox and owner must be 1-512 printable characters")
        }
        guard self.pools.contains(where: { $0.serves(tags) && $0.capacity > 0 }) else {
            throw TicketError(
                code: .noMatchingPool,
                message: "no pool has the tags \(tags.sorted().joined(separator: ", "))"
            )
        }
        let tagText = tags.sorted().joined(separator: " ")
        let id = try await self.database.transaction { c -> Int64 in
            try c.execute(TicketSchema.lock)
            if let existing = try TicketStore.openTicket(c, owner: owner) {
                guard existing.tags == tags, existing.sandbox == sandbox else {
                    throw TicketError(code: .ownerHasOpenTicket, message: "the owner has an open ticket already")
                }
                return existing.id
            }
            return try TicketStore.insertTicket(c, tags: tags.sorted(), sandbox: sandbox, owner: owner)
        }
        self.logger.debug("opened ticket", metadata: ["ticket.id": "\(id)", "ticket.tags": "\(tagText)"])
        self.wake()
        return id
    }

    func wait(_ ticket: Int64) async throws -> Resource {
        do {
            while true {
                let waiter = try self.registerWaiter(ticket)
                defer { self.unregisterWaiter(waiter) }
                let status = try await self.database.withConnection { c in
                    try TicketStore.ticketStatus(c, id: ticket)
                }
                guard let status else {
                    throw TicketError(code: .unknownTicket, message: "no ticket \(ticket)")
                }
                guard status.isOpen else {
                    throw TicketError(code: .ticketClosed, message: "ticket \(ticket) is closed")
                }
                if let resource = status.resource {
                    try Task.checkCancellation()
                    if !status.isDelivered {
                        let marked = try await self.markDelivered(ticket: ticket, resource: resource.id)
                        guard marked else { continue }  // reassigned meanwhile: look again
                    }
                    return resource
                }
                try await self.suspend(waiter)
            }
        } catch {
            guard error is CancellationError || Task.isCancelled else { throw error }
            // Close on a task of its own: this one is cancelled, and the pool refuses cancelled callers.
            await Task { await self.closeQuietly(ticket, disposition: .cancelled) }.value
            throw CancellationError()
        }
    }

    private func markDelivered(ticket: Int64, resource: Int64) async throws -> Bool {
        try await self.database.withConnection { c in
            try TicketStore.markDelivered(c, ticket: ticket, resource: resource)
        }
    }

    func find(owner: String) async throws -> (id: Int64, resource: Resource?)? {
        try self.checkRunning()
        guard
            let status = try await self.database.withConnection({ c in
                try TicketStore.ticketStatus(c, openOwner: owner)
            })
        else { return nil }
        if let resource = status.resource, !status.isDelivered {
            guard try await self.markDelivered(ticket: status.id, resource: resource.id) else {
                return try await self.find(owner: owner)
            }
        }
        return (status.id, status.resource)
    }

    func close(_ ticket: Int64, disposition: Disposition) async throws {
        try self.checkRunning()
        let resource = try await self.database.transaction { c -> Int64? in
            try c.execute(TicketSchema.lock)
            guard let row = try TicketStore.ticketAssignment(c, id: ticket) else {
                throw TicketError(code: .unknownTicket, message: "no ticket \(ticket)")
            }
            guard row.isOpen else { return nil }
            try TicketStore.closeTicket(c, id: ticket)
            guard let resource = row.resourceID else { return nil }
            switch (disposition, row.isDelivered) {
            case (.release, _):
                try TicketStore.retire(c, resource: resource, reason: "ticket closed without reuse")
            case (.reusable, _), (.cancelled, true):
                try TicketStore.markIdle(c, resource: resource)
            case (.cancelled, false):
                // Never handed out: undo the assignment's use of the resource.
                try TicketStore.undoAssignment(c, resource: resource)
            }
            return resource
        }
        var metadata: Logger.Metadata = ["ticket.id": "\(ticket)"]
        if let resource { metadata["resource.id"] = "\(resource)" }
        self.logger.debug("closed ticket", metadata: metadata)
        self.notifyWaiters { $0 == ticket }
        self.wake()
    }

    private func closeQuietly(_ ticket: Int64, disposition: Disposition) async {
        do {
            try await self.close(ticket, disposition: disposition)
        } catch {
            self.logger.warning(
                "closing a cancelled ticket failed",
                metadata: ["ticket.id": "\(ticket)", "error": "\(error)"]
            )
        }
    }

    func markBroken(_ resource: Resource) async throws {
        try self.checkRunning()
        let closed = try await self.database.transaction { c -> [Int64]? in
            try c.execute(TicketSchema.lock)
            guard try TicketStore.retireBroken(c, resource: resource.id, name: resource.name) else { return nil }
            return try TicketStore.closeTickets(c, holding: resource.id)
        }
        var metadata: Logger.Metadata = ["resource.id": "\(resource.id)", "resource.name": "\(resource.name)"]
        guard let closed else {
            self.logger.info("resource reported broken was not ready; ignored", metadata: metadata)
            return
        }
        metadata["tickets.closed"] = "\(closed)"
        self.logger.notice("resource reported broken; retiring it", metadata: metadata)
        self.notifyWaiters { closed.contains($0) }
        self.wake()
    }

    func snapshot() async throws -> TicketSnapshot {
        try self.checkRunning()
        let order = self.pools.map(\.name)
        return try await self.database.transaction { c in try TicketStore.snapshot(c, poolOrder: order) }
    }

    // MARK: Waiters

    private func registerWaiter(_ ticket: Int64) throws(TicketError) -> UInt64 {
        let id: UInt64? = self.state.withLock { state in
            guard !state.isShutDown else { return nil }
            state.nextWaiterID += 1
            state.waiters[state.nextWaiterID] = Waiter(ticket: ticket)
            return state.nextWaiterID
        }
        guard let id else { throw Self.shutDownError }
        return id
    }

    private func unregisterWaiter(_ id: UInt64) {
        let continuation = self.state.withLock { $0.waiters.removeValue(forKey: id)?.continuation }
        continuation?.resume()
    }

    /// Returns when the waiter is notified (at once if it was notified since it registered); throws at once on
    /// cancellation or shutdown.
    private func suspend(_ id: UInt64) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = self.state.withLock { state in
                    if state.isShutDown { return .failure(Self.shutDownError) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    guard var waiter = state.waiters[id] else { return .success(()) }
                    if waiter.isNotified {
                        waiter.isNotified = false
                        state.waiters[id] = waiter
                        return .success(())
                    }
                    waiter.continuation = continuation
                    state.waiters[id] = waiter
                    return nil
                }
                if let immediate {
                    continuation.resume(with: immediate)
                }
            }
        } onCancel: {
            self.resumeWaiter(id, with: .failure(CancellationError()))
        }
    }

    private func resumeWaiter(_ id: UInt64, with result: Result<Void, any Error>) {
        let continuation: CheckedContinuation<Void, any Error>? = self.state.withLock { state in
            guard var waiter = state.waiters[id] else { return nil }
            if let continuation = waiter.continuation {
                waiter.continuation = nil
                state.waiters[id] = waiter
                return continuation
            }
            if case .success = result {
                waiter.isNotified = true
                state.waiters[id] = waiter
            }
            return nil
        }
        continuation?.resume(with: result)
    }

    private func notifyWaiters(where matches: (Int64) -> Bool) {
        let ids = self.state.withLock { state in
            state.waiters.filter { matches($0.value.ticket) }.map(\.key)
        }
        for id in ids {
            self.resumeWaiter(id, with: .success(()))
        }
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
