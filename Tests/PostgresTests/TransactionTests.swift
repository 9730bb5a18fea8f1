import Postgres
import Testing

@Suite struct TransactionTests {
    struct Boom: Error {}

    @Test func commitAndRollback() async throws {
        let pool = try await makePool(size: 2)
        defer { pool.close() }
        try await pool.withConnection { try $0.execute("CREATE TABLE items (name text PRIMARY KEY)") }

        let returned = try await pool.transaction { connection in
            try connection.execute("INSERT INTO items VALUES (\("committed"))")
            return 17
        }
        #expect(returned == 17)

        await #expect(throws: Boom.self) {
            try await pool.transaction { connection in
                try connection.execute("INSERT INTO items VALUES (\("rolled back"))")
                throw Boom()
            }
        }

        // An error swallowed inside the body still aborts the transaction: no silent COMMIT.
        let aborted = await #expect(throws: PostgresError.self) {
            try await pool.transaction { connection in
                try connection.execute("INSERT INTO items VALUES (\("after swallowed error"))")
                _ = try? connection.execute("INSERT INTO items VALUES (\("committed"))")  // unique violation
                return 0
            }
        }
        #expect(aborted?.code == .queryFailed)

        let names = try await pool.withConnection { connection in
            try connection.query("SELECT name FROM items ORDER BY name").rows.map { try $0.string("name") }
        }
        #expect(names == ["committed"])
    }

    @Test func leftOpenTransactionIsRolledBack() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        try await pool.withConnection { try $0.execute("CREATE TABLE items (name text)") }
        try await pool.withConnection { connection in
            try connection.execute("BEGIN")
            try connection.execute("INSERT INTO items VALUES ('dangling')")
        }
        let count = try await pool.withConnection { try $0.query("SELECT count(*) AS n FROM items").first?.int("n") }
        #expect(count == 0)
        // Outside a transaction block SAVEPOINT fails with 25P01 (no_active_sql_transaction).
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.execute("SAVEPOINT probe") }
        }
        #expect(error?.sqlState == "25P01")
    }
}
