internal import Postgres

/// The ticket database. It is the ticket service's own (PGMigrator records versions in `schema_migrations`,
/// which must not be shared with another schema's migrations): give it its own database, or its own schema
/// through the conninfo (`options='-c search_path=tickets'`).
enum TicketSchema {
    /// The key of the transaction-level advisory lock that serialises every state change (bytes "koperTKT").
    static let lockKey: Int64 = 0x6b6f_7065_7254_4b54

    static let lock: PGQuery = "SELECT pg_advisory_xact_lock(\(lockKey))"

    static let migrations: [PGMigration] = [
        PGMigration(
            version: 1,
            name: "tickets: pools, resources, tickets",
            sql: """
                CREATE TABLE pools (
                    name text PRIMARY KEY,
                    tags text[] NOT NULL,
                    max int NOT NULL,
                    max_prealloc int NOT NULL,
                    release_command text,
                    release_timeout int NOT NULL,
                    active boolean NOT NULL DEFAULT true,
                    updated_at timestamptz NOT NULL DEFAULT now()
                );

                CREATE TABLE resources (
                    id bigserial PRIMARY KEY,
                    pool text NOT NULL REFERENCES pools (name),
                    name text NOT NULL UNIQUE,
                    state text NOT NULL CHECK (state IN ('allocating', 'ready', 'releasing', 'deleted')),
                    data text,
                    static_key text,
                    sandbox text,
                    use_count int NOT NULL DEFAULT 0 CHECK (use_count >= 0),
                    first_used_at timestamptz,
                    idle_since timestamptz,
                    check_failures int NOT NULL DEFAULT 0,
                    last_check_at timestamptz,
                    release_reason text,
                    release_attempts int NOT NULL DEFAULT 0,
                    next_release_at timestamptz,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    ready_at timestamptz,
                    deleted_at timestamptz,
                    CHECK (state <> 'ready' OR data IS NOT NULL)
                );
                -- A static host backs at most one live resource.
                CREATE UNIQUE INDEX resources_static_host_live ON resources (pool, static_key)
                    WHERE static_key IS NOT NULL AND state <> 'deleted';
                CREATE INDEX resources_live ON resources (id) WHERE state <> 'deleted';

                CREATE TABLE tickets (
                    id bigserial PRIMARY KEY,
                    tags text[] NOT NULL,
                    sandbox text NOT NULL,
                    owner text NOT NULL,
                    state text NOT NULL CHECK (state IN ('open', 'closed')),
                    resource_id bigint REFERENCES resources (id),
                    created_at timestamptz NOT NULL DEFAULT now(),
                    assigned_at timestamptz,
                    delivered_at timestamptz,
                    closed_at timestamptz,
                    CHECK (resource_id IS NULL OR assigned_at IS NOT NULL)
                );
                -- No double lease: a resource serves at most one open ticket.
                CREATE UNIQUE INDEX tickets_one_open_per_resource ON tickets (resource_id)
                    WHERE state = 'open' AND resource_id IS NOT NULL;
                -- find(owner:) is unambiguous.
                CREATE UNIQUE INDEX tickets_one_open_per_owner ON tickets (owner) WHERE state = 'open';
                CREATE INDEX tickets_open ON tickets (id) WHERE state = 'open';
                """
        )
    ]
}
