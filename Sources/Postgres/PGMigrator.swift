public import Logging

/// One schema change. `sql` may hold several statements; it runs inside a transaction, so it must not contain
/// BEGIN/COMMIT or statements that refuse transactions (e.g. `CREATE INDEX CONCURRENTLY`).
public struct PGMigration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies schema migrations.
public enum PGMigrator {
    /// The key of the transaction-level advisory lock that serialises migrations across processes
    /// (the bytes of "koperMIG").
    static let lockKey: Int64 = 0x6b6f_7065_724d_4947

    /// Applies pending migrations in version order, each in its own transaction, recorded in table
    /// `schema_migrations(version int primary key, name text, applied_at timestamptz)`, serialised across
    /// processes with pg_advisory_xact_lock. Returns the versions applied. A migration's sql may contain several
    /// statements (use PQexec with no params for it).
    public static func migrate(_ pool: PGPool, migrations: [PGMigration], logger: Logger) async throws -> [Int] {
        let ordered = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.version == next.version {
            throw PostgresError(code: .invalidArgument, message: "duplicate migration version \(next.version)")
        }
        let lock: PGQuery = "SELECT pg_advisory_xact_lock(\(lockKey))"

        let recorded: [Int: String] = try await pool.transaction { connection in
            try connection.execute(lock)
            try connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version int PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            var recorded: [Int: String] = [:]
            for row in try connection.query("SELECT version, name FROM schema_migrations").rows {
                recorded[try row.decode("version")] = try row.decode("name", as: String?.self) ?? ""
            }
            return recorded
        }
        for migration in ordered {
            if let name = recorded[migration.version], name != migration.name {
                logger.warning(
                    "migration name differs from the recorded one",
                    metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"]
                )
            }
        }
        if let newest = recorded.keys.max(), newest > (ordered.last?.version ?? Int.min) {
            logger.warning("database schema is newer than this program", metadata: ["migration.version": "\(newest)"])
        }

        var applied: [Int] = []
        for migration in ordered where recorded[migration.version] == nil {
            let didApply = try await pool.transaction { connection in
                try connection.execute(lock)
                if try connection.exists("SELECT 1 FROM schema_migrations WHERE version = \(migration.version)") {
                    return false  // another process applied it while we waited for the lock
                }
                try connection.executeScript(migration.sql)
                try connection.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), now())"
                )
                return true
            }
            if didApply {
                logger.info(
                    "applied migration",
                    metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"]
                )
                applied.append(migration.version)
            }
        }
        return applied
    }
}
