import Dispatch
import Postgres
import Synchronization
import Testing

@Suite struct PoolTests {
    @Test func manyConcurrentCallersShareFewConnections() async throws {
        // The checkout deadline is not what this test is about; keep it far from a loaded machine's latencies.
        let pool = try await makePool(size: 4, checkoutTimeout: .seconds(120))
        defer { pool.close() }
        let results = try await withThrowingTaskGroup(of: (Int, Int, Int).self) { group in
            for i in 0..<200 {
                group.addTask {
                    try await pool.withConnection { connection in
                        let row = try #require(
                            try connection.query("SELECT \(String(i))::int * 2 AS doubled, pg_backend_pid() AS pid")
                                .first
                        )
                        return (i, try row.int("doubled"), try row.int("pid"))
                    }
                }
            }
            var all: [(Int, Int, Int)] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.1 == $0.0 * 2 })
        let backends = Set(results.map(\.2))
        #expect(backends.count >= 1 && backends.count <= 4)
        #expect(pool.statistics.connections <= 4)
        #expect(pool.statistics.waiting == 0)
    }

    @Test func waitersBeyondLimitFailFast() async throws {
        let pool = try await makePool(size: 1, maxWaiters: 2)
        defer { pool.close() }
        let gate = DispatchSemaphore(value: 0)
        let holding = Mutex(false)
        let holder = Task {
            try await pool.withConnection { connection in
                holding.withLock { $0 = true }
                gate.wait()  // blocks the connection's own queue, not the concurrency pool
                return try connection.query("SELECT 1 AS one").first?.int("one")
            }
        }
        #expect(await eventually { holding.withLock { $0 } })
        let waiters = (0..<2).map { _ in
            Task { try await pool.withConnection { try $0.query("SELECT 2 AS two").first?.int("two") } }
        }
        #expect(await eventually { pool.statistics.waiting == 2 })

        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { _ in 3 }
        }
        #expect(error?.code == .poolExhausted)

        gate.signal()
        #expect(try await holder.value == 1)
        for waiter in waiters {
            #expect(try await waiter.value == 2)
        }
        #expect(pool.statistics.waiting == 0)
    }

    @Test func checkoutTimesOut() async throws {
        let pool = try await makePool(size: 1, checkoutTimeout: .milliseconds(200))
        defer { pool.close() }
        let gate = DispatchSemaphore(value: 0)
        let holding = Mutex(false)
        let holder = Task {
            try await pool.withConnection { _ in
                holding.withLock { $0 = true }
                gate.wait()
            }
        }
        #expect(await eventually { holding.withLock { $0 } })
        let started = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) {
            try await pool.withConnection { _ in 1 }
        }
        #expect(error?.code == .timeout)
        #expect(ContinuousClock.now - started >= .milliseconds(150))
        gate.signal()
        try await holder.value
        #expect(try await pool.withConnection { try $0.query("SELECT 1 AS one").first?.int("one") } == 1)
    }

    @Test func closeFailsWaitersAndLaterCalls() async throws {
        let pool = try await makePool(size: 1)
        let gate = DispatchSemaphore(value: 0)
        let holding = Mutex(false)
        let holder = Task {
            try await pool.withConnection { _ in
                holding.withLock { $0 = true }
                gate.wait()
                return 1
            }
        }
        #expect(await eventually { holding.withLock { $0 } })
        let waiter = Task { try await pool.withConnection { _ in 2 } }
        #expect(await eventually { pool.statistics.waiting == 1 })
        pool.close()
        let waiterError = await #expect(throws: PostgresError.self) { try await waiter.value }
        #expect(waiterError?.code == .poolClosed)
        gate.signal()
        #expect(try await holder.value == 1)
        let laterError = await #expect(throws: PostgresError.self) { try await pool.withConnection { _ in 3 } }
        #expect(laterError?.code == .poolClosed)
        #expect(pool.statistics.idle == 0)
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        let pool = try await makePool(size: 1)
        defer { pool.close() }
        let gate = DispatchSemaphore(value: 0)
        let holding = Mutex(false)
        let holder = Task {
            try await pool.withConnection { _ in
                holding.withLock { $0 = true }
                gate.wait()
            }
        }
        #expect(await eventually { holding.withLock { $0 } })
        let waiter = Task { try await pool.withConnection { _ in 2 } }
        #expect(await eventually { pool.statistics.waiting == 1 })
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(pool.statistics.waiting == 0)
        gate.signal()
        try await holder.value
    }
}
