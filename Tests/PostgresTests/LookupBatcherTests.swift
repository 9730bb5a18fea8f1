import Dispatch
import Postgres
import Synchronization
import Testing

/// PGLookupBatcher against a real PostgreSQL: concurrent point lookups share statements, every caller gets its
/// own row (or nil), errors reach exactly the callers of the failed batch, the queue is bounded.
@Suite struct LookupBatcherTests {
    func table(_ pool: PGPool, rows: Int) async throws {
        try await pool.withConnection { c in
            try c.execute("CREATE TABLE items (id bigint PRIMARY KEY, label text NOT NULL)")
            try c.execute("INSERT INTO items SELECT g, 'item-' || g FROM generate_series(1, \(rows)) g")
        }
    }

    func lookup(_ batcher: PGLookupBatcher<Int, String>, _ key: Int) async -> Result<String?, any Error> {
        await withCheckedContinuation { continuation in
            batcher.lookup(key) { continuation.resume(returning: $0) }
        }
    }

    @Test func concurrentLookupsShareStatementsAndGetTheirOwnRows() async throws {
        let pool = try await makePool(size: 4)
        defer { pool.close() }
        try await table(pool, rows: 100)
        let statements = Mutex(0)
        let batchSizes = Collector<Int>()
        let batcher = PGLookupBatcher<Int, String>(pool: pool, maxBatch: 64, maxInFlight: 2) { c, ids in
            statements.withLock { $0 += 1 }
            batchSizes.append(ids.count)
            #expect(Set(ids).count == ids.count, "keys of a batch are distinct")
            var out: [Int: String] = [:]
            for row in try c.query(
                "SELECT id, label FROM items WHERE id = ANY(\("{" + ids.map(String.init).joined(separator: ",") + "}")::bigint[])"
            ).rows {
                out[try row.int("id")] = try row.string("label")
            }
            return out
        }
        // 1,000 lookups of keys 1...120 at once (101...120 do not exist).
        let results = await withTaskGroup(of: (Int, Result<String?, any Error>).self) { group in
            for i in 0..<1000 {
                let key = i % 120 + 1
                group.addTask { (key, await self.lookup(batcher, key)) }
            }
            var all: [(Int, Result<String?, any Error>)] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 1000)
        for (key, result) in results {
            let value = try result.get()
            #expect(value == (key <= 100 ? "item-\(key)" : nil), "key \(key)")
        }
        let n = statements.withLock { $0 }
        #expect(n < 1000, "\(n) statements for 1,000 lookups")
        #expect(batchSizes.values.allSatisfy { $0 <= 64 })
        // A lone lookup is answered by one statement.
        let before = statements.withLock { $0 }
        #expect(try await lookup(batcher, 7).get() == "item-7")
        #expect(statements.withLock { $0 } == before + 1)
    }

    @Test func aFailedStatementFailsItsBatchOnlyAndTheNextOnesWork() async throws {
        let pool = try await makePool(size: 2)
        defer { pool.close() }
        try await table(pool, rows: 10)
        let batcher = PGLookupBatcher<Int, String>(pool: pool) { c, ids in
            // Key 666 makes the statement fail (division by zero in PostgreSQL).
            let divisor = ids.contains(666) ? "0" : "1"
            var out: [Int: String] = [:]
            for row in try c.query(
                "SELECT id, label FROM items WHERE id = ANY(\("{" + ids.map(String.init).joined(separator: ",") + "}")::bigint[]) AND 1 / \(divisor)::int = 1"
            ).rows {
                out[try row.int("id")] = try row.string("label")
            }
            return out
        }
        let bad = await lookup(batcher, 666)
        #expect(throws: PostgresError.self) { try bad.get() }
        #expect(try await lookup(batcher, 3).get() == "item-3")
        #expect(try await lookup(batcher, 11).get() == nil)
    }

    @Test func theQueueIsBoundedAndAClosedPoolFailsEveryone() async throws {
        let pool = try await makePool(size: 1, checkoutTimeout: .seconds(30))
        try await table(pool, rows: 5)
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let batcher = PGLookupBatcher<Int, String>(pool: pool, maxBatch: 8, maxInFlight: 1, maxPending: 4) { _, ids in
            if ids.contains(1) {
                entered.signal()
                gate.wait()  // holds the only runner while the queue fills
            }
            return Dictionary(uniqueKeysWithValues: ids.map { ($0, "v\($0)") })
        }
        let first = Task { await lookup(batcher, 1) }
        await withCheckedContinuation { c in
            DispatchQueue.global().async {
                entered.wait()
                c.resume()
            }
        }
        // Four wait; the fifth is refused at once.
        let waiting = (2...5).map { key in Task { await lookup(batcher, key) } }
        try await Task.sleep(for: .milliseconds(100))
        let refused = await lookup(batcher, 6)
        #expect(throws: PostgresError.self) { try refused.get() }
        gate.signal()
        #expect(try await first.value.get() == "v1")
        for (i, t) in waiting.enumerated() {
            #expect(try await t.value.get() == "v\(i + 2)")
        }
        pool.close()
        let closed = await lookup(batcher, 2)
        #expect(throws: PostgresError.self) { try closed.get() }
    }
}
