import Postgres
import TestSupport
import Testing

@Suite struct ListenerTests {
    @Test func deliversNotifications() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pool = PGPool(conninfo: conninfo, size: 1, logger: silentLogger)
        defer { pool.close() }
        let received = Collector<String>()
        let listener = try await PGListener.start(
            conninfo: conninfo,
            channels: ["build_events", "Mixed Case"],
            logger: silentLogger
        ) { channel, payload in
            received.append("\(channel)|\(payload)")
        }
        defer { listener.cancel() }

        try await pool.withConnection { connection in
            try connection.notify(channel: "build_events", payload: #"{"id": 1, "note": "it's ✓"}"#)
            try connection.notify(channel: "Mixed Case", payload: "two")
            try connection.notify(channel: "other_channel", payload: "ignored")
        }
        // Notifications sent inside a transaction arrive only after COMMIT.
        try await pool.transaction { try $0.notify(channel: "build_events", payload: "three") }

        #expect(await eventually { received.values.count == 3 })
        #expect(
            received.values == [#"build_events|{"id": 1, "note": "it's ✓"}"#, "Mixed Case|two", "build_events|three"]
        )

        listener.cancel()
        try await Task.sleep(for: .milliseconds(50))
        try await pool.withConnection { try $0.notify(channel: "build_events", payload: "after cancel") }
        try await Task.sleep(for: .milliseconds(200))
        #expect(received.values.count == 3)
    }

    @Test func synchronousInitListensBeforeReturning() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let pool = PGPool(conninfo: conninfo, size: 1, logger: silentLogger)
        defer { pool.close() }
        let received = Collector<String>()
        let listener = try PGListener(conninfo: conninfo, channels: ["events"], logger: silentLogger) { _, payload in
            received.append(payload)
        }
        defer { listener.cancel() }
        try await pool.withConnection { try $0.notify(channel: "events", payload: "hello") }
        #expect(await eventually { received.values == ["hello"] })
    }

    @Test func rejectsBadChannelNames() throws {
        for channels in [[], [""], [String(repeating: "x", count: 64)]] {
            let error = #expect(throws: PostgresError.self) {
                _ = try PGListener(conninfo: "host=127.0.0.1", channels: channels, logger: silentLogger) { _, _ in }
            }
            #expect(error?.code == .invalidArgument)
        }
    }
}
