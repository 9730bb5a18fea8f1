import Postgres
import TestSupport
import Testing

/// These tests restart a PostgreSQL cluster of their own, so they never disturb the shared one.
@Suite(.serialized) struct ReconnectTests {
    @Test func poolSurvivesServerRestart() async throws {
        let cluster = try await PostgresCluster.startAsync()
        defer { cluster.stop() }
        let pool = PGPool(conninfo: cluster.adminConninfo, size: 2, logger: silentLogger)
        defer { pool.close() }
        let before = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid").first?.int("pid") }

        try await cluster.restartAsync()

        // No retry by the caller: the pool notices the dead idle connection and reconnects.
        let after = try await pool.withConnection { try $0.query("SELECT pg_backend_pid() AS pid").first?.int("pid") }
        #expect(before != nil && after != nil && before != after)
        let committed = try await pool.transaction { try $0.query("SELECT 1 AS one").first?.int("one") }
        #expect(committed == 1)
    }

    @Test func staleConnectionIsRetriedOnceTransparently() async throws {
        let cluster = try await PostgresCluster.startAsync()
        defer { cluster.stop() }
        // Skip the idle check, so that the first statement itself hits the dead connection.
        let pool = PGPool(
            conninfo: cluster.adminConninfo,
            size: 1,
            maxWaiters: 8,
            checkoutTimeout: .seconds(10),
            logger: silentLogger,
            validatesIdleConnections: false
        )
        defer { pool.close() }
        _ = try await pool.withConnection { try $0.query("SELECT 1") }
        try await cluster.restartAsync()
        let runs = Collector<Int>()
        let value = try await pool.withConnection { connection in
            runs.append(1)
            return try connection.query("SELECT 2 AS two").first?.int("two")
        }
        #expect(value == 2)
        #expect(runs.values.count == 2)  // the first run failed on the stale connection, the second succeeded

        // The same for a transaction, whose first statement is BEGIN.
        try await cluster.restartAsync()
        let committed = try await pool.transaction { try $0.query("SELECT 4 AS four").first?.int("four") }
        #expect(committed == 4)

        // A call whose first statement had already reached the server is not retried.
        try await cluster.restartAsync()
        let runsAfterWork = Collector<Int>()
        _ = try await pool.withConnection { try $0.query("SELECT 1") }  // fresh again
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { connection in
                runsAfterWork.append(1)
                _ = try connection.query("SELECT 1")
                try connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            }
        }
        #expect(error?.code == .connectionFailed)
        #expect(runsAfterWork.values.count == 1)
        #expect(try await pool.withConnection { try $0.query("SELECT 3 AS three").first?.int("three") } == 3)
    }

    @Test func listenerReconnectsAndListensAgain() async throws {
        let cluster = try await PostgresCluster.startAsync()
        defer { cluster.stop() }
        let pool = PGPool(conninfo: cluster.adminConninfo, size: 1, logger: silentLogger)
        defer { pool.close() }
        let received = Collector<String>()
        let listens = Collector<Int>()
        let listener = try await PGListener.start(
            conninfo: cluster.adminConninfo,
            channels: ["events"],
            logger: silentLogger,
            onListen: { listens.append(1) }
        ) { _, payload in
            received.append(payload)
        }
        defer { listener.cancel() }
        try await pool.withConnection { try $0.notify(channel: "events", payload: "before") }
        #expect(await eventually { received.values == ["before"] })

        try await cluster.restartAsync()
        #expect(await eventually { listens.values.count == 2 })
        try await pool.withConnection { try $0.notify(channel: "events", payload: "after") }
        #expect(await eventually { received.values == ["before", "after"] })
    }
}
