internal import Postgres

/// The SQL of the ticket service. Every function runs inside a pool closure, on the connection's queue; those
/// that change state expect the caller to hold the advisory lock (`TicketSchema.lock`) in the same transaction.
enum TicketStore {
    // MARK: Reading

    static func now(_ c: PGConnection) throws -> Double {
        try self.double(c.query("SELECT extract(epoch FROM now())::float8 AS now").first, "now") ?? 0
    }

    static let resourceColumns = """
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
        try c.query(
            """
            SELECT \(resourceColumns)
            FROM resources r LEFT JOIN tickets t ON t.resource_id = r.id AND t.state = 'open'
            WHERE r.state <> 'deleted' ORDER BY r.id
            """
        ).rows.map(self.resource)
    }

    static func resource(_ row: PGRow) throws -> Planner.ResourceRow {
        guard let state = ResourceState(rawValue: try row.string("state")) else {
            throw TicketError(code: .invalidResourceData, message: "unknown resource state in the database")
        }
        return Planner.ResourceRow(
            id: Int64(try row.int("id")),
            pool: try row.string("pool"),
            name: try row.string("name"),
            state: state,
            data: row.optionalString("data"),
            staticKey: row.optionalString("static_key"),
            sandbox: row.optionalString("sandbox"),
            useCount: try row.int("use_count"),
            firstUsedAt: try self.double(row, "first_used_at"),
            idleSince: try self.double(row, "idle_since"),
            readyAt: try self.double(row, "ready_at"),
            lastCheckAt: try self.double(row, "last_check_at"),
            checkFailures: try row.int("check_failures"),
            nextReleaseAt: try self.double(row, "next_release_at"),
            releaseReason: row.optionalString("release_reason"),
            createdAt: try self.double(row, "created_at") ?? 0,
            ticket: try row.optionalInt("ticket").map(Int64.init)
        )
    }

    struct TicketRecord: Sendable {
        var row: Planner.TicketRow
        var owner: String
        var createdAt: Double
        var assignedAt: Double?
    }

    /// Open tickets in the order they are served.
    static func openTickets(_ c: PGConnection) throws -> [TicketRecord] {
        try c.query(
            """
            SELECT id, array_to_string(tags, ' ') AS tags, sandbox, owner, resource_id,
                extract(epoch FROM created_at)::float8 AS created_at,
                extract(epoch FROM assigned_at)::float8 AS assigned_at
            FROM tickets WHERE state = 'open' ORDER BY id
            """
        ).rows.map { row in
            TicketRecord(
                row: Planner.TicketRow(
                    id: Int64(try row.int("id")),
                    tags: Set(self.words(try row.string("tags"))),
                    sandbox: try row.string("sandbox"),
                    resourceID: try row.optionalInt("resource_id").map(Int64.init)
                ),
                owner: try row.string("owner"),
                createdAt: try self.double(row, "created_at") ?? 0,
                assignedAt: try self.double(row, "assigned_at")
            )
        }
    }

    /// A ticket and, if assigned, its resource.
    struct TicketStatus: Sendable {
        var id: Int64
        var isOpen: Bool
        var tags: Set<String>
        var sandbox: String
        var resource: Resource?
        var isDelivered: Bool
    }

    static func ticketStatus(_ c: PGConnection, id: Int64? = nil, openOwner: String? = nil) throws -> TicketStatus? {
        let filter = id != nil ? "t.id = $1" : "t.owner = $1 AND t.state = 'open'"
        let parameter = id.map { String($0) } ?? openOwner
        guard
            let row = try c.query(
                """
                SELECT t.id, t.state, array_to_string(t.tags, ' ') AS tags, t.sandbox, t.resource_id,
                    t.delivered_at IS NOT NULL AS delivered, r.pool, r.name, r.data
                FROM tickets t LEFT JOIN resources r ON r.id = t.resource_id
                WHERE \(filter)
                """,
                [parameter]
            ).first
        else { return nil }
        let isOpen = try row.string("state") == "open"
        var resource: Resource?
        if isOpen, let resourceID = try row.optionalInt("resource_id") {
            guard let text = row.optionalString("data") else {
                throw TicketError(code: .invalidResourceData, message: "an assigned resource has no data")
            }
            resource = Resource(
                id: Int64(resourceID),
                pool: try row.string("pool"),
                name: try row.string("name"),
                data: try ResourceData(jsonText: text)
            )
        }
        return TicketStatus(
            id: Int64(try row.int("id")),
            isOpen: isOpen,
            tags: Set(self.words(try row.string("tags"))),
            sandbox: try row.string("sandbox"),
            resource: resource,
            isDelivered: try row.bool("delivered")
        )
    }

    /// Pools (configured ones in `poolOrder`, then the others by name), live resources and open tickets, read in
    /// one repeatable-read transaction (this must be the transaction's first statement).
    static func snapshot(_ c: PGConnection, poolOrder: [String]) throws -> TicketSnapshot {
        try c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        let order = Dictionary(poolOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let pools = try c.query(
            "SELECT name, array_to_string(tags, ' ') AS tags, max, max_prealloc, active FROM pools ORDER BY name"
        ).rows.map { row in
            TicketSnapshot.Pool(
                name: try row.string("name"),
                tags: self.words(try row.string("tags")),
                max: try row.int("max"),
                maxPrealloc: try row.int("max_prealloc"),
                isActive: try row.bool("active")
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

    // MARK: Writing

    /// Inserts a resource row for a planned allocation and returns it. Static hosts of pools without an
    /// allocate hook are ready at once; everything else starts as `allocating`.
    static func insertResource(
        _ c: PGConnection,
        pool: String,
        staticHost: ResourceData?,
        isReady: Bool
    ) throws -> Planner.ResourceRow {
        let row = try c.query(
            """
            WITH n AS (SELECT nextval(pg_get_serial_sequence('resources', 'id')) AS id)
            INSERT INTO resources (id, pool, name, state, data, static_key, ready_at, idle_since, last_check_at)
            SELECT n.id, $1::text, $1::text || '_' || lpad(n.id::text, 8, '0'), $2::text, $3::text, $4::text,
                CASE WHEN $2::text = 'ready' THEN now() END,
                CASE WHEN $2::text = 'ready' THEN now() END,
                CASE WHEN $2::text = 'ready' THEN now() END
            FROM n
            RETURNING id
            """,
            [
                pool, isReady ? ResourceState.ready.rawValue : ResourceState.allocating.rawValue,
                staticHost?.jsonText, staticHost?.identity,
            ]
        )
        let id = try row.first.map { Int64(try $0.int("id")) } ?? 0
        guard
            let inserted = try c.query(
                """
                SELECT \(resourceColumns)
                FROM resources r LEFT JOIN tickets t ON t.resource_id = r.id AND t.state = 'open'
                WHERE r.id = $1
                """,
                [String(id)]
            ).first
        else {
            throw TicketError(code: .invalidResourceData, message: "inserted resource vanished")
        }
        return try self.resource(inserted)
    }

    static func assign(_ c: PGConnection, _ assignment: Planner.Assignment) throws {
        let ticket = try c.execute(
            """
            UPDATE tickets SET resource_id = $2, assigned_at = now(), delivered_at = NULL
            WHERE id = $1 AND state = 'open' AND resource_id IS NULL
            """,
            [String(assignment.ticket), String(assignment.resource)]
        )
        let resource = try c.execute(
            """
            UPDATE resources SET use_count = use_count + 1, sandbox = $2,
                first_used_at = coalesce(first_used_at, now()), idle_since = NULL
            WHERE id = $1 AND state = 'ready'
            """,
            [String(assignment.resource), assignment.sandbox]
        )
        guard ticket == 1, resource == 1 else {
            throw TicketError(code: .invalidArgument, message: "assignment raced with another change")
        }
    }

    /// ready → releasing. The caller makes sure no open ticket holds it (or detaches that ticket).
    @discardableResult
    /// Static hosts whose resource was reported broken within `within` seconds: pool → host → when.
    static func recentlyBrokenStaticHosts(_ c: PGConnection, within: Double) throws -> [String: [String: Double]] {
        var out: [String: [String: Double]] = [:]
        let rows = try c.query(
            """
            SELECT pool, static_key, extract(epoch from max(coalesce(deleted_at, next_release_at, created_at)))::float8 AS at
            FROM resources WHERE static_key IS NOT NULL AND release_reason = 'reported broken'
              AND coalesce(deleted_at, next_release_at, created_at) > now() - make_interval(secs => $1::float8)
            GROUP BY pool, static_key
            """,
            [String(within)]
        ).rows
        for row in rows {
            guard let pool = row["pool"], let key = row["static_key"], let at = row["at"].flatMap(Double.init) else { continue }
            out[pool, default: [:]][key] = at
        }
        return out
    }

    @discardableResult
    static func retire(_ c: PGConnection, resource: Int64, reason: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'releasing', release_reason = $2, next_release_at = now()
            WHERE id = $1 AND state = 'ready'
            """,
            [String(resource), reason]
        ) == 1
    }

    /// allocating → releasing: the allocation failed or was interrupted.
    @discardableResult
    static func abandonAllocation(_ c: PGConnection, resource: Int64, reason: String) throws -> Bool {
        try c.execute(
            """
            UPDATE resources SET state = 'releasing', release_reason = $2, next_release_at = now()
            WHERE id = $1 AND state = 'allocating'
            """,
            [String(resource), reason]
        ) == 1
    }

    // MARK: Helpers

    static func words(_ text: String) -> [String] {
        text.split(separator: " ").map(String.init)
    }

    static func double(_ row: PGRow?, _ column: String) throws -> Double? {
        guard let row, let text = row[column] else { return nil }
        guard let value = Double(text) else {
            throw TicketError(code: .invalidResourceData, message: "column \"\(column)\" is not a number")
        }
        return value
    }
}
