internal import Postgres

/// The SQL of the ticket service. Every function runs inside a pool closure, on the connection's queue; those
/// that change state expect the caller to hold the advisory lock (`TicketSchema.lock`) in the same transaction.
enum TicketStore {
    /// The release reason of a resource a worker reported broken; its static host is quarantined for a while.
    static let brokenReason = "reported broken"

    // MARK: Reading

    /// The transaction's time, in seconds since the epoch.
    static func now(_ c: PGConnection) throws -> Double {
        try c.value("SELECT extract(epoch FROM now())::float8 AS now", as: Double.self) ?? 0
    }

    static let resourceColumns: PGQuery = """
        r.id, r.pool, r.name, r.state, r.data, r.static_key, r.sandbox, r.use_count, r.check_failures,
        r.release_reason,
        extract(epoch FROM r.first_used_at)::float8 AS first_used_at,
        extract(epoch FROM r.idle_since)::float8 AS idle_since,
        extract(epoch FROM r.ready_at)::float8 AS ready_at,
        extract(epoch FROM r.last_check_at)::float8 AS last_check_at,
        extract(epoch FROM r.next_release_at)::float8 AS next_release_at,
        extract(epoch FROM r.created_at)::float8 AS created_at,
        t.id AS ticket
        """

    /// Resources that are not deleted, by id, each with the open ticket holding it.
    static func liveResources(_ c: PGConnection) throws -> [Planner.ResourceRow] {
        try c.all(
            """
            SELECT \(resourceColumns)
            FROM resources r LEFT JOIN tickets t ON t.resource_id = r.id AND t.state = 'open'
            WHERE r.state <> 'deleted' ORDER BY r.id
            """,
            as: Planner.ResourceRow.self
        )
    }

    /// One resource (deleted or not), with the open ticket holding it.
    static func resource(_ c: PGConnection, id: Int64) throws -> Planner.ResourceRow? {
        try c.one(
            """
            SELECT \(resourceColumns)
            FROM resources r LEFT JOIN tickets t ON t.resource_id = r.id AND t.state = 'open'
            WHERE r.id = \(id)
            """,
            as: Planner.ResourceRow.self
        )
    }

    struct TicketRecord: PGRecord {
        var row: Planner.TicketRow
        var owner: String
        var createdAt: Double
        var assignedAt: Double?

        init(row: PGRow) throws {
            self.row = Planner.TicketRow(
                id: try row.decode("id", as: Int64.self),
                tags: Set(try row.decode("tags", as: [String].self)),
                sandbox: try row.decode("sandbox", as: String.self),
                resourceID: try row.decode("resource_id", as: Int64?.self)
            )
            self.owner = try row.decode("owner", as: String.self)
            self.createdAt = try row.decode("created_at", as: Double.self)
            self.assignedAt = try row.decode("assigned_at", as: Double?.self)
        }
    }

    /// Open tickets in the order they are served.
    static func openTickets(_ c: PGConnection) throws -> [TicketRecord] {
        try c.all(
            """
            SELECT id, tags, sandbox, owner, resource_id,
                extract(epoch FROM created_at)::float8 AS created_at,
                extract(epoch FROM assigned_at)::float8 AS assigned_at
            FROM tickets WHERE state = 'open' ORDER BY id
            """,
            as: TicketRecord.self
        )
    }

    /// An owner's open ticket, as `open` compares it with a new request.
    struct OpenTicket: PGRecord {
        var id: Int64
        var tags: Set<String>
        var sandbox: String

        init(row: PGRow) throws {
            self.id = try row.decode("id", as: Int64.self)
            self.tags = Set(try row.decode("tags", as: [String].self))
            self.sandbox = try row.decode("sandbox", as: String.self)
        }
    }

    static func openTicket(_ c: PGConnection, owner: String) throws -> OpenTicket? {
        try c.one(
            "SELECT id, tags, sandbox FROM tickets WHERE owner = \(owner) AND state = 'open'",
            as: OpenTicket.self
        )
    }

    /// A ticket and, if assigned, its resource.
    struct TicketStatus: PGRecord {
        var id: Int64
        var isOpen: Bool
        var tags: Set<String>
        var sandbox: String
        var resource: Resource?
        var isDelivered: Bool

        init(row: PGRow) throws {
            self.id = try row.decode("id", as: Int64.self)
            self.isOpen = try row.decode("is_open", as: Bool.self)
            self.tags = Set(try row.decode("tags", as: [String].self))
            self.sandbox = try row.decode("sandbox", as: String.self)
            self.resource = nil
            if self.isOpen, let resourceID = try row.decode("resource_id", as: Int64?.self) {
                guard let text = try row.decode("data", as: String?.self) else {
                    throw TicketError(code: .invalidResourceData, message: "an assigned resource has no data")
                }
                self.resource = Resource(
                    id: resourceID,
                    pool: try row.decode("pool", as: String.self),
                    name: try row.decode("name", as: String.self),
                    data: try ResourceData(jsonText: text)
                )
            }
            self.isDelivered = try row.decode("delivered", as: Bool.self)
        }
    }

    static func ticketStatus(_ c: PGConnection, id: Int64? = nil, openOwner: String? = nil) throws -> TicketStatus? {
        let filter: PGQuery = id.map { "t.id = \($0)" } ?? "t.owner = \(openOwner ?? "") AND t.state = 'open'"
        return try c.one(
            """
            SELECT t.id, t.state = 'open' AS is_open, t.tags, t.sandbox, t.resource_id,
                t.delivered_at IS NOT NULL AS delivered, r.pool, r.name, r.data
            FROM tickets t LEFT JOIN resources r ON r.id = t.resource_id
            WHERE \(filter)
            """,
            as: TicketStatus.self
        )
    }

    /// What closing a ticket needs to know: whether it is open, and its resource.
    struct TicketAssignment: PGRecord {
        var isOpen: Bool
        var resourceID: Int64?
        /// Whether `wait` or `find` handed the resource out.
        var isDelivered: Bool

        init(row: PGRow) throws {
            self.isOpen = try row.decode("is_open", as: Bool.self)
            self.resourceID = try row.decode("resource_id", as: Int64?.self)
            self.isDelivered = try row.decode("delivered", as: Bool.self)
        }
    }

    static func ticketAssignment(_ c: PGConnection, id: Int64) throws -> TicketAssignment? {
        try c.one(
            """
            SELECT state = 'open' AS is_open, resource_id, delivered_at IS NOT NULL AS delivered
            FROM tickets WHERE id = \(id)
            """,
            as: TicketAssignment.self
        )
    }

    /// Static hosts whose resource was reported broken within `within` seconds: pool → host → when.
    static func recentlyBrokenStaticHosts(_ c: PGConnection, within: Double) throws -> [String: [String: Double]] {
        let rows = try c.query(
            """
            SELECT pool, static_key,
                extract(epoch FROM max(coalesce(deleted_at, next_release_at, created_at)))::float8 AS at
            FROM resources WHERE static_key IS NOT NULL AND release_reason = \(brokenReason)
                AND coalesce(deleted_at, next_release_at, created_at) > now() - \(within) * interval '1 second'
            GROUP BY pool, static_key
            """
        ).rows
        var out: [String: [String: Double]] = [:]
        for row in rows {
            let pool = try row.decode("pool", as: String.self)
            let host = try row.decode("static_key", as: String.self)
            out[pool, default: [:]][host] = try row.decode("at", as: Double.self)
        }
        return out
    }

    /// Pools (configured ones in `poolOrder`, then the others by name), live resources and open tickets, read in
    /// one repeatable-read transaction (this must be the transaction's first statement).
    static func snapshot(_ c: PGConnection, poolOrder: [String]) throws -> TicketSnapshot {
        try c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        let order = Dictionary(poolOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let pools = try c.query("SELECT name, tags, max, max_prealloc, active FROM pools ORDER BY name").rows.map {
            row in
            TicketSnapshot.Pool(
                name: try row.decode("name", as: String.self),
                tags: try row.decode("tags", as: [String].self),
                max: try row.decode("max", as: Int.self),
                maxPrealloc: try row.decode("max_prealloc", as: Int.self),
                isActive: try row.decode("active", as: Bool.self)
            )
        }.sorted { (order[$0.name] ?? Int.max, $0.name) < (order[$1.name] ?? Int.max, $1.name) }
        let resources = try self.liveResources(c).map { row in
            TicketSnapshot.ResourceInfo(
                id: row.id,
                pool: row.pool,
                name: row.name,
                state: row.state,
                data: row.data.flatMap { try? ResourceData(jsonText: $0) },
                sandbox: row.sandbox,
                useCount: row.useCount,
                ticket: row.ticket.map(TicketID.init(rawValue:)),
                checkFailures: row.checkFailures,
                releaseReason: row.releaseReason,
                createdAt: row.createdAt
            )
        }
        let tickets = try self.openTickets(c).map { record in
            TicketSnapshot.TicketInfo(
                id: TicketID(rawValue: record.row.id),
                tags: record.row.tags.sorted(),
                sandbox: record.row.sandbox,
                owner: record.owner,
                resourceID: record.row.resourceID,
                createdAt: record.createdAt,
                assignedAt: record.assignedAt
            )
        }
        return TicketSnapshot(pools: pools, resources: resources, tickets: tickets)
    }

    // MARK: Pools

    /// Records a configured pool (inserted, or updated and active again).
    static func upsertPool(_ c: PGConnection, _ pool: PoolConfig) throws {
        try c.execute(
            """
            INSERT INTO pools (name, tags, max, max_prealloc, release_command, release_timeout, active, updated_at)
            VALUES (\(pool.name), \(pool.tags), \(pool.max), \(pool.maxPrealloc), \(pool.releaseCommand),
                \(pool.releaseTimeout), true, now())
            ON CONFLICT (name) DO UPDATE SET tags = EXCLUDED.tags, max = EXCLUDED.max,
                max_prealloc = EXCLUDED.max_prealloc, release_command = EXCLUDED.release_command,
                release_timeout = EXCLUDED.release_timeout, active = true, updated_at = now()
            """
        )
    }

    /// Marks every active pool not in `names` inactive.
    static func deactivatePools(_ c: PGConnection, except names: [String]) throws {
        try c.execute(
            """
            UPDATE pools SET active = false, updated_at = now()
            WHERE active AND NOT (name = ANY (\(names)))
            """
        )
    }

    /// The inactive pools, by name: how to release their resources.
    static func inactivePools(_ c: PGConnection) throws -> [String: TicketCore.RetiredPool] {
        var retired: [String: TicketCore.RetiredPool] = [:]
        for row in try c.query("SELECT name, release_command, release_timeout FROM pools WHERE NOT active").rows {
            retired[try row.decode("name", as: String.self)] = TicketCore.RetiredPool(
                releaseCommand: try row.decode("release_command", as: String?.self),
                releaseTimeout: try row.decode("release_timeout", as: Int.self)
            )
        }
        return retired
    }

    // MARK: Tickets

    /// Inserts an open ticket and returns its id.
    static func insertTicket(_ c: PGConnection, tags: [String], sandbox: String, owner: String) throws -> Int64 {
        try c.value(
            """
            INSERT INTO tickets (tags, sandbox, owner, state)
            VALUES (\(tags), \(sandbox), \(owner), 'open') RETURNING id
            """,
            as: Int64.self
        ) ?? 0
    }

    static func assign(_ c: PGConnection, _ assignment: Planner.Assignment) throws {
        let ticket = try c.execute(
            """
            UPDATE tickets SET resource_id = \(assignment.resource), assigned_at = now(), delivered_at = NULL
            WHERE id = \(assignment.ticket) AND state = 'open' AND resource_id IS NULL
            """
        )
        let resource = try c.execute(
            """
            UPDATE resources SET use_count = use_count + 1, sandbox = \(assignment.sandbox),
                first_used_at = coalesce(first_used_at, now()), idle_since = NULL
            WHERE id = \(assignment.resource) AND state = 'ready'
            """
        )
        guard ticket == 1, resource == 1 else {
            throw TicketError(code: .invalidArgument, message: "assignment raced with another change")
        }
    }

    /// Records that the ticket's resource was handed out; false if the ticket no longer holds it.
    static func markDelivered(_ c: PGConnection, ticket: Int64, resource: Int64) throws -> Bool {
        try c.execute(
            """
            UPDATE tickets SET delivered_at = coalesce(delivered_at, now())
            WHERE id = \(ticket) AND state = 'open' AND resource_id = \(resource)
            """
        ) == 1
    }

    static func closeTicket(_ c: PGConnection, id: Int64) throws {
        try c.execute("UPDATE tickets SET state = 'closed', closed_at = now() WHERE id = \(id)")
    }

    /// Closes the open tickets holding a resource; returns their ids.
    static func closeTickets(_ c: PGConnection, holding resource: Int64) throws -> [Int64] {
        try c.query(
            """
            UPDATE tickets SET state = 'closed', closed_at = now()
            WHERE resource_id = \(resource) AND state = 'open' RETURNING id
            """
        ).rows.map { try $0.decode("id", as: Int64.self) }
    }

    // MARK: Resources

    /// Inserts a resource row for a planned allocation and returns it. Static hosts of pools without an
    /// allocate hook are ready at once; everything else starts as `allocating`.
    static func insertResource(
        _ c: PGConnection,
        pool: String,
        staticHost: ResourceData?,
        isReady: Bool
    ) throws -> Planner.ResourceRow {
        let state = isReady ? ResourceState.ready : ResourceState.allocating
        let inserted = try c.value(
            """
            WITH n AS (SELECT nextval(pg_get_serial_sequence('resources', 'id')) AS id)
            INSERT INTO resources (id, pool, name, state, data, static_key, ready_at, idle_since, last_check_at)
            SELECT n.id, \(pool)::text, \(pool)::text || '_' || lpad(n.id::text, 8, '0'), \(state.rawValue)::text,
                \(staticHost?.jsonText)::text, \(staticHost?.identity)::text,
                CASE WHEN \(isReady) THEN now() END,
                CASE WHEN \(isReady) THEN now() END,
                CASE WHEN \(isReady) THEN now() END
            FROM n
            RETURNING id
            """,
            as: Int64.self
        )
        guard let id = inserted, let row = try self.resource(c, id: id) else {
            throw TicketError(code: .invalidResourceData, message: "inserted resource vanished")
        }
        return row
    }

    /// allocating → ready, with the data the allocate hook printed.
    static func markReady(_ c: PGConnection, resource: Int64, data: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'ready', data = \(data), ready_at = now(), idle_since = now(),
                last_check_at = now()
            WHERE id = \(resource) AND state = 'allocating'
            """
        ) == 1
    }

    /// A closed ticket's resource waits for its next ticket from now on.
    static func markIdle(_ c: PGConnection, resource: Int64) throws {
        try c.execute("UPDATE resources SET idle_since = now() WHERE id = \(resource) AND state = 'ready'")
    }

    /// Undoes an assignment whose resource was never handed out: the use does not count.
    static func undoAssignment(_ c: PGConnection, resource: Int64) throws {
        try c.execute(
            """
            UPDATE resources SET use_count = use_count - 1,
                sandbox = CASE WHEN use_count <= 1 THEN NULL ELSE sandbox END,
                first_used_at = CASE WHEN use_count <= 1 THEN NULL ELSE first_used_at END,
                idle_since = now()
            WHERE id = \(resource) AND state = 'ready' AND use_count > 0
            """
        )
    }

    /// Records a passed health check.
    static func recordCheckPassed(_ c: PGConnection, resource: Int64) throws {
        try c.execute(
            "UPDATE resources SET last_check_at = now(), check_failures = 0 WHERE id = \(resource) AND state = 'ready'"
        )
    }

    /// Records a failed health check; returns the failures in a row, nil if the resource is not ready.
    static func recordCheckFailed(_ c: PGConnection, resource: Int64) throws -> Int? {
        try c.value(
            """
            UPDATE resources SET last_check_at = now(), check_failures = check_failures + 1
            WHERE id = \(resource) AND state = 'ready' RETURNING check_failures
            """,
            as: Int.self
        )
    }

    /// ready → releasing. The caller makes sure no open ticket holds it (or detaches that ticket).
    @discardableResult
    static func retire(_ c: PGConnection, resource: Int64, reason: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'releasing', release_reason = \(reason), next_release_at = now()
            WHERE id = \(resource) AND state = 'ready'
            """
        ) == 1
    }

    /// ready → releasing, unless an open ticket holds the resource.
    static func retireUnassigned(_ c: PGConnection, resource: Int64, reason: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'releasing', release_reason = \(reason), next_release_at = now()
            WHERE id = \(resource) AND state = 'ready'
                AND NOT EXISTS (SELECT 1 FROM tickets WHERE resource_id = \(resource) AND state = 'open')
            """
        ) == 1
    }

    /// ready → releasing for a resource a worker reported broken, if `name` still names it. The open ticket
    /// holding it stays as it is (see `closeTickets(_:holding:)`).
    static func retireBroken(_ c: PGConnection, resource: Int64, name: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'releasing', release_reason = \(brokenReason), next_release_at = now()
            WHERE id = \(resource) AND name = \(name) AND state = 'ready'
            """
        ) == 1
    }

    /// allocating → releasing: the allocation failed or was interrupted.
    @discardableResult
    static func abandonAllocation(_ c: PGConnection, resource: Int64, reason: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'releasing', release_reason = \(reason), next_release_at = now()
            WHERE id = \(resource) AND state = 'allocating'
            """
        ) == 1
    }

    /// The release hook failed: retry later, backing off exponentially up to ten minutes.
    static func postponeRelease(_ c: PGConnection, resource: Int64) throws {
        try c.execute(
            """
            UPDATE resources SET release_attempts = release_attempts + 1,
                next_release_at = now() + make_interval(secs => least(600, 5 * power(2, release_attempts)))
            WHERE id = \(resource) AND state = 'releasing'
            """
        )
    }

    /// releasing → deleted.
    static func markDeleted(_ c: PGConnection, resource: Int64) throws -> Bool {
        try c.execute(
            "UPDATE resources SET state = 'deleted', deleted_at = now() WHERE id = \(resource) AND state = 'releasing'"
        ) == 1
    }

    // MARK: History

    /// Deletes tickets closed, and resources deleted, more than `retentionSeconds` ago (a deleted resource only
    /// once no ticket refers to it).
    static func pruneHistory(_ c: PGConnection, retentionSeconds: Int) throws {
        try c.execute(
            """
            DELETE FROM tickets
            WHERE state = 'closed' AND closed_at < now() - \(retentionSeconds) * interval '1 second'
            """
        )
        try c.execute(
            """
            DELETE FROM resources r
            WHERE r.state = 'deleted' AND r.deleted_at < now() - \(retentionSeconds) * interval '1 second'
                AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.resource_id = r.id)
            """
        )
    }
}

extension Planner.ResourceRow: PGRecord {
    init(row: PGRow) throws {
        guard let state = ResourceState(rawValue: try row.decode("state", as: String.self)) else {
            throw TicketError(code: .invalidResourceData, message: "unknown resource state in the database")
        }
        self.init(
            id: try row.decode("id", as: Int64.self),
            pool: try row.decode("pool", as: String.self),
            name: try row.decode("name", as: String.self),
            state: state,
            data: try row.decode("data", as: String?.self),
            staticKey: try row.decode("static_key", as: String?.self),
            sandbox: try row.decode("sandbox", as: String?.self),
            useCount: try row.decode("use_count", as: Int.self),
            firstUsedAt: try row.decode("first_used_at", as: Double?.self),
            idleSince: try row.decode("idle_since", as: Double?.self),
            readyAt: try row.decode("ready_at", as: Double?.self),
            lastCheckAt: try row.decode("last_check_at", as: Double?.self),
            checkFailures: try row.decode("check_failures", as: Int.self),
            nextReleaseAt: try row.decode("next_release_at", as: Double?.self),
            releaseReason: try row.decode("release_reason", as: String?.self),
            createdAt: try row.decode("created_at", as: Double.self),
            ticket: try row.decode("ticket", as: Int64?.self)
        )
    }
}
