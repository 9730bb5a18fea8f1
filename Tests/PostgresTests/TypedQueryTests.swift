import Foundation
import KoperJSON
import Testing

@testable import Postgres

/// PGQuery and the row decoders without a server.
@Suite struct PGQueryUnitTests {
    @Test func interpolatedValuesBecomeNumberedParameters() {
        let owner = "alice'; DROP TABLE projects; --"
        let limit = 10
        let q: PGQuery = "SELECT id FROM projects WHERE ownername = \(owner) AND persistent = \(true) LIMIT \(limit)"
        #expect(q.sql == "SELECT id FROM projects WHERE ownername = $1 AND persistent = $2 LIMIT $3")
        #expect(q.parameterValues == [owner, "t", "10"])
        #expect(q.binds.map(\.type) == [.unknown, .bool, .int8])
        #expect(!q.description.contains("DROP"))
    }

    @Test func fragmentsAreRenumberedWhenEmbeddedOrJoined() {
        let condition: PGQuery = "p.ownername = \("bob")"
        let columns: PGQuery = "p.id, p.name"
        let q: PGQuery = "SELECT \(columns) FROM projects p WHERE p.id > \(5) AND \(condition) LIMIT \(3)"
        #expect(q.sql == "SELECT p.id, p.name FROM projects p WHERE p.id > $1 AND p.ownername = $2 LIMIT $3")
        #expect(q.parameterValues == ["5", "bob", "3"])
        let sets: [PGQuery] = ["a = \(1)", "b = \("x")", "c = \(nil as Int?)"]
        let update = "UPDATE t SET " + sets.joined(separator: ", ") + " WHERE id = \(9)"
        #expect(update.sql == "UPDATE t SET a = $1, b = $2, c = $3 WHERE id = $4")
        #expect(update.parameterValues == ["1", "x", nil, "9"])
    }

    @Test func arrayLiteralsRoundTrip() {
        let values = ["plain", "with space", "quote\"d", "back\\slash", "", "NULL", "comma,brace{}"]
        let text = values.pgText
        #expect([String](pgText: text) == values)
        #expect([Int](pgText: "{1,2,3}") == [1, 2, 3])
        #expect([Int](pgText: "{}") == [])
        #expect(PGArrayLiteral.decode("{a,NULL,\"NULL\"}") == ["a", nil, "NULL"])
        #expect([String](pgText: "{a,NULL}") == nil)
        #expect([Int](pgText: "{1,x}") == nil)
        #expect(PGArrayLiteral.decode("{1,2") == nil)
        #expect(PGArrayLiteral.decode("{\"a}") == nil)
    }

    @Test func timestampsParse() throws {
        let base = try #require(Date(pgText: "2026-12-07 21:58:42+00"))
        #expect(base.timeIntervalSince1970 == 1_796_680_722)
        #expect(Date(pgText: "2026-12-07 23:58:42.5+02")?.timeIntervalSince1970 == 1_796_680_722.5)
        #expect(Date(pgText: "2026-12-07 21:28:42-00:30")?.timeIntervalSince1970 == 1_796_680_722)
        #expect(Date(pgText: "1796680722")?.timeIntervalSince1970 == 1_796_680_722)
        #expect(Date(pgText: "1969-12-31 23:59:59+00")?.timeIntervalSince1970 == -1)
        #expect(Date(pgText: "2026-13-07 21:58:42+00") == nil)
        #expect(Date(pgText: "yesterday") == nil)
        #expect(Date(timeIntervalSince1970: 1_796_680_722.25).pgText == "2026-12-07 21:58:42.250000+00")
    }
}

/// Typed parameters and typed decoding against a real server.
@Suite(.serialized) struct TypedQueryTests {
    @Test func typedParametersReachTheServerWithTheirTypes() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let names = ["a", "b \"c\"", "d,e"]
        let when = Date(timeIntervalSince1970: 1_796_680_722.5)
        let json: JSON = ["k": [1, "two", nil]]
        let row = try await pool.withConnection { c in
            try c.query(
                """
                SELECT pg_typeof(\(42))::text AS t_int, \(42) + 1 AS next, pg_typeof(\(true))::text AS t_bool,
                       \(false) AS flag, \(names) AS names, cardinality(\(names)) AS n, \([3, 1, 2]) AS ids,
                       \(when) AS at, extract(epoch from \(when))::float8 AS epoch, \(json)::jsonb -> 'k' AS k,
                       \(nil as Int?) IS NULL AS null_int, pg_typeof(\(nil as Int?))::text AS t_null, \(2.5) * 2 AS d
                """
            ).first
        }
        let r = try #require(row)
        #expect(try r.decode("t_int", as: String.self) == "bigint")
        #expect(try r.decode("next", as: Int.self) == 43)
        #expect(try r.decode("t_bool", as: String.self) == "boolean")
        #expect(try r.decode("flag", as: Bool.self) == false)
        #expect(try r.decode("names", as: [String].self) == names)
        #expect(try r.decode("n", as: Int.self) == 3)
        #expect(try r.decode("ids", as: [Int].self) == [3, 1, 2])
        #expect(try r.decode("at", as: Date.self) == when)
        #expect(try r.decode("epoch", as: Double.self) == 1_796_680_722.5)
        #expect(try r.decode("k", as: JSON.self) == [1, "two", nil])
        #expect(try r.decode("null_int", as: Bool.self))
        #expect(try r.decode("t_null", as: String.self) == "bigint")
        #expect(try r.decode("d", as: Double.self) == 5)
    }

    @Test func decodingErrorsNameTheColumnNotTheValue() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let row = try #require(
            try await pool.withConnection { c in
                try c.query("SELECT 'secret-value' AS word, NULL::int AS nothing, 7 AS seven").first
            }
        )
        #expect(try row.decode("nothing", as: Int?.self) == nil)
        #expect(try row.decode("seven", as: Int?.self) == 7)
        for (column, expected) in [
            ("word", "column \"word\" is not an integer"), ("nothing", "column \"nothing\" is NULL"),
            ("absent", "no column \"absent\" in result"),
        ] {
            let error = #expect(throws: PostgresError.self) { try row.decode(column, as: Int.self) }
            #expect(error?.code == .decoding)
            #expect(error?.description.contains(expected) == true)
            #expect(error?.description.contains("secret-value") == false)
        }
    }

    @Test func recordsAndSingleValues() async throws {
        struct Item: PGRecord, Equatable {
            let id: Int
            let label: String?
            init(row: PGRow) throws {
                self.id = try row.decode("id")
                self.label = try row.decode("label")
            }
            init(id: Int, label: String?) {
                self.id = id
                self.label = label
            }
        }
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let (all, one, missing, count, exists) = try await pool.withConnection { c in
            try c.execute("CREATE TEMP TABLE items (id bigint PRIMARY KEY, label text)")
            for (id, label) in [(1, "one"), (2, nil), (3, "three")] as [(Int, String?)] {
                try c.execute("INSERT INTO items VALUES (\(id), \(label))")
            }
            return (
                try c.all("SELECT id, label FROM items ORDER BY id", as: Item.self),
                try c.one("SELECT id, label FROM items WHERE id = \(3)", as: Item.self),
                try c.one("SELECT id, label FROM items WHERE id = \(4)", as: Item.self),
                try c.value("SELECT count(*) FROM items WHERE id = ANY(\([1, 2, 9]))", as: Int.self),
                try c.exists("SELECT 1 FROM items WHERE label IS NULL")
            )
        }
        #expect(all == [Item(id: 1, label: "one"), Item(id: 2, label: nil), Item(id: 3, label: "three")])
        #expect(one == Item(id: 3, label: "three"))
        #expect(missing == nil)
        #expect(count == 2)
        #expect(exists)
    }
}
