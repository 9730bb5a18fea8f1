import Postgres
import TestSupport
import Testing

@Suite struct QueryTests {
    @Test func parameterisedQueryKeepsInjectionTextAndNull() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let hostile = "Robert'); DROP TABLE students; --"
        let rows = try await pool.withConnection { connection in
            try connection.execute("CREATE TABLE students (id serial PRIMARY KEY, name text, note text)")
            let inserted = try connection.execute(
                "INSERT INTO students (name, note) VALUES (\(hostile), \(nil as String?)), (\("Zoë ✓"), \("plain"))"
            )
            #expect(inserted == 2)
            return try connection.query("SELECT id, name, note FROM students ORDER BY id").rows
        }
        #expect(rows.count == 2)
        #expect(try rows[0].string("name") == hostile)
        #expect(rows[0]["note"] == nil)
        #expect(rows[0].optionalString("note") == nil)
        #expect(try rows[1].string("name") == "Zoë ✓")
        #expect(rows[1][2] == "plain")

        let sum = try await pool.withConnection { connection in
            try connection.query("SELECT \("40")::int + \("2")::int AS sum, \(nil as String?)::text IS NULL AS missing")
        }
        #expect(sum.columns == ["sum", "missing"])
        #expect(try sum.first?.int("sum") == 42)
        #expect(try sum.first?.bool("missing") == true)

        // The table survived the injection-looking value.
        let count = try await pool.withConnection { try $0.query("SELECT count(*) AS n FROM students") }
        #expect(try count.first?.int("n") == 2)
    }

    @Test func rowDecodingAndAffectedRows() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let (result, updated) = try await pool.withConnection { connection in
            try connection.execute("CREATE TABLE t (id int PRIMARY KEY, n int, flag boolean, label text)")
            try connection.execute("INSERT INTO t VALUES (1, NULL, false, 'x'), (2, 7, true, 'not a number')")
            let updated = try connection.execute("UPDATE t SET label = label || '!' WHERE id >= \("1")")
            return (try connection.query("SELECT id, n, flag, label FROM t ORDER BY id"), updated)
        }
        #expect(updated == 2)
        #expect(result.affectedRows == 2)
        #expect(result.commandTag == "SELECT 2")
        let first = try #require(result.first)
        #expect(try first.optionalInt("n") == nil)
        #expect(try first.bool("flag") == false)
        #expect(try result.rows[1].optionalInt("n") == 7)

        let nullError = #expect(throws: PostgresError.self) { try first.int("n") }
        #expect(nullError?.code == .decoding)
        let missingError = #expect(throws: PostgresError.self) { try first.string("nope") }
        #expect(missingError?.code == .decoding)
        let typeError = #expect(throws: PostgresError.self) { try result.rows[1].int("label") }
        #expect(typeError?.code == .decoding)
        #expect(typeError.map { String(describing: $0).contains("not a number") } == false)
    }

    @Test func uniqueViolationIsRecognised() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        try await pool.withConnection { connection in
            try connection.execute("CREATE TABLE projects (name text CONSTRAINT projects_name_key UNIQUE)")
            try connection.execute("INSERT INTO projects VALUES (\("hello"))")
        }
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.execute("INSERT INTO projects VALUES (\("hello"))") }
        }
        #expect(error?.code == .queryFailed)
        #expect(error?.isUniqueViolation == true)
        #expect(error?.sqlState == "23505")
        #expect(error?.constraintName == "projects_name_key")

        // Other server errors are not unique violations, and the connection stays usable.
        let syntax = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.execute("SELEKT 1") }
        }
        #expect(syntax?.isUniqueViolation == false)
        #expect(syntax?.sqlState == "42601")
        let one = try await pool.withConnection { try $0.query("SELECT 1 AS one") }
        #expect(try one.first?.int("one") == 1)
    }

    @Test func errorDescriptionHidesParameters() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let secret = "s3cr3t-token-0123456789"
        try await pool.withConnection { connection in
            try connection.execute("CREATE TABLE tokens (token text PRIMARY KEY)")
            try connection.execute("INSERT INTO tokens VALUES (\(secret))")
        }
        // The server quotes the value in its primary message ("invalid input syntax for type integer: ...").
        let castError = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.query("SELECT \(secret)::int") }
        }
        // The server puts the value in DETAIL ("Key (token)=(...) already exists").
        let uniqueError = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.execute("INSERT INTO tokens VALUES (\(secret))") }
        }
        // A short value is replaced where the server quotes it.
        let shortError = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.query("SELECT \("abc")::int") }
        }
        for error in [castError, uniqueError, shortError] {
            let error = try #require(error)
            for text in [
                error.description, String(describing: error), String(reflecting: error), "\(error)", error.message,
            ] {
                #expect(!text.contains(secret))
                #expect(!text.contains("\"abc\""))
            }
        }
        #expect(castError?.sqlState == "22P02")
        #expect(castError?.message.contains("$1") == true)
        #expect(uniqueError?.isUniqueViolation == true)
    }

    @Test func connectionErrorHidesPassword() async throws {
        let port = try FreePort.allocate()  // free a moment ago: nothing listens on it
        let pool = PGPool(
            conninfo:
                "host=127.0.0.1 port=\(port) user=postgres password=hunter2-very-secret dbname=x connect_timeout=2",
            size: 1,
            logger: silentLogger
        )
        defer { pool.close() }
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.query("SELECT 1") }
        }
        #expect(error?.code == .connectionFailed)
        #expect(error.map { "\($0)".contains("hunter2") } == false)

        let malformed = PGPool(conninfo: "host=127.0.0.1 password hunter2-very-secret", size: 1, logger: silentLogger)
        defer { malformed.close() }
        let parseError = await #expect(throws: PostgresError.self) {
            try await malformed.withConnection { try $0.query("SELECT 1") }
        }
        #expect(parseError?.code == .invalidArgument)
        #expect(parseError.map { "\($0)".contains("hunter2") } == false)
    }

    @Test func nulBytesAreRejected() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try $0.query("SELECT \("admin\u{0}suffix")::text") }
        }
        #expect(error?.code == .invalidArgument)
    }
}
