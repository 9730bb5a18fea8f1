import Postgres
import TestSupport
import Testing

@Suite struct MigratorTests {
    static let first: [PGMigration] = [
        PGMigration(
            version: 2,
            name: "builds",
            sql: """
                CREATE TABLE builds (id bigserial PRIMARY KEY, project_id int NOT NULL REFERENCES projects (id));
                CREATE INDEX builds_project ON builds (project_id);
                """
        ),
        PGMigration(
            version: 1,
            name: "projects",
            sql: "CREATE TABLE projects (id serial PRIMARY KEY, name text UNIQUE);"
        ),
    ]

    @Test func appliesOnceAndIsIdempotent() async throws {
        let pool = try await makePool(size: 2)
        defer { pool.close() }
        let applied = try await PGMigrator.migrate(pool, migrations: Self.first, logger: silentLogger)
        #expect(applied == [1, 2])
        let again = try await PGMigrator.migrate(pool, migrations: Self.first, logger: silentLogger)
        #expect(again == [])

        let third =
            Self.first + [PGMigration(version: 3, name: "state", sql: "ALTER TABLE builds ADD COLUMN state text;")]
        #expect(try await PGMigrator.migrate(pool, migrations: third, logger: silentLogger) == [3])

        let recorded = try await pool.withConnection { connection in
            try connection.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").rows
        }
        #expect(try recorded.map { try $0.int("version") } == [1, 2, 3])
        #expect(recorded.map { $0["name"] } == ["projects", "builds", "state"])
        #expect(recorded.allSatisfy { $0["applied_at"] != nil })
        let columns = try await pool.withConnection { connection in
            try connection.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'builds' ORDER BY column_name"
            ).rows.compactMap { $0["column_name"] }
        }
        #expect(columns == ["id", "project_id", "state"])
    }

    @Test func concurrentMigratorsApplyEachVersionOnce() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pools = (0..<3).map { _ in PGPool(conninfo: conninfo, size: 1, logger: silentLogger) }
        defer { for pool in pools { pool.close() } }
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for pool in pools {
                group.addTask { try await PGMigrator.migrate(pool, migrations: Self.first, logger: silentLogger) }
            }
            var all: [[Int]] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.flatMap { $0 }.sorted() == [1, 2])
    }

    @Test func failingMigrationRollsBackAndIsNotRecorded() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let broken =
            Self.first + [
                PGMigration(
                    version: 3,
                    name: "broken",
                    sql: "CREATE TABLE half_done (id int); SELECT no_such_column FROM builds;"
                )
            ]
        let error = await #expect(throws: PostgresError.self) {
            try await PGMigrator.migrate(pool, migrations: broken, logger: silentLogger)
        }
        #expect(error?.sqlState == "42703")
        let state = try await pool.withConnection { connection in
            (
                try connection.query("SELECT max(version) AS v FROM schema_migrations").first?.int("v"),
                try connection.query("SELECT to_regclass('half_done') IS NULL AS gone").first?.bool("gone")
            )
        }
        #expect(state.0 == 2)
        #expect(state.1 == true)
    }

    @Test func duplicateVersionsAreRejected() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let duplicated = Self.first + [PGMigration(version: 1, name: "again", sql: "SELECT 1;")]
        let error = await #expect(throws: PostgresError.self) {
            try await PGMigrator.migrate(pool, migrations: duplicated, logger: silentLogger)
        }
        #expect(error?.code == .invalidArgument)
    }
}
