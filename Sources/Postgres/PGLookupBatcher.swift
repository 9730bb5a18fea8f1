internal import Synchronization

/// Coalesces concurrent point lookups by key (a build id, an owner/project pair) into one query per batch
/// (decision 0007).
///
/// Under load many callers ask for single rows at once (`GET /api_3/build/ID`, which copr-cli polls while
/// watching builds). Each lookup alone costs a round trip: a hop to a connection's queue, a statement, a
/// blocking wait for the answer, and PostgreSQL's per-statement work. The batcher queues the keys and lets at
/// most `maxInFlight` connections run `fetch` for up to `maxBatch` keys at a time (`WHERE id = ANY($1)`); every
/// caller of the batch gets its own value. A lone caller still gets its answer after one statement, so latency is
/// unchanged when idle; under load the round trips are shared.
///
/// - `fetch` runs on a pooled connection's queue with distinct keys and returns the rows it found by key; a key
///   it does not return is answered `nil` (not found).
/// - Bounded: at most `maxPending` queued keys; more are refused at once with `.poolExhausted`.
/// - `completion` is called exactly once per lookup, on a connection's queue (or the caller's thread for a
///   refusal). It must not block.
public final class PGLookupBatcher<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    public typealias Completion = @Sendable (Result<Value?, any Error>) -> Void

    private struct Pending {
        let key: Key
        let completion: Completion
    }

    private enum Decision { case queued, start, refuse }

    private struct State {
        var pending: [Pending] = []
        var inFlight = 0
    }

    private let pool: PGPool
    private let maxBatch: Int
    private let maxInFlight: Int
    private let maxPending: Int
    private let fetch: @Sendable (PGConnection, [Key]) throws -> [Key: Value]
    private let state = Mutex(State())

    public init(
        pool: PGPool,
        maxBatch: Int = 128,
        maxInFlight: Int = 2,
        maxPending: Int = 4096,
        fetch: @escaping @Sendable (PGConnection, [Key]) throws -> [Key: Value]
    ) {
        precondition(maxBatch > 0 && maxInFlight > 0 && maxPending > 0)
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxInFlight = maxInFlight
        self.maxPending = maxPending
        self.fetch = fetch
    }

    public func lookup(_ key: Key, completion: @escaping Completion) {
        let decision = self.state.withLock { state -> Decision in
            guard state.pending.count < self.maxPending else { return .refuse }
            state.pending.append(Pending(key: key, completion: completion))
            guard state.inFlight < self.maxInFlight else { return .queued }
            state.inFlight += 1
            return .start
        }
        switch decision {
        case .queued: break
        case .refuse: completion(.failure(PostgresError(code: .poolExhausted, message: "too many lookups waiting")))
        case .start: self.startRunner()
        }
    }

    /// One runner: takes a connection, then serves batches until nothing is pending.
    private func startRunner() {
        self.pool.withConnection({ connection -> Bool in
            while let batch = self.nextBatch() {
                // After a failed statement the connection may be broken: go on from a fresh checkout.
                if !self.serve(batch, on: connection) { return true }
            }
            return false
        }) { result in
            let error: any Error
            switch result {
            case .success(let restart):
                if restart { self.startRunner() }  // keeps this runner's slot
                return
            case .failure(let e):
                error = e
            }
            // No connection (pool closed, exhausted, timed out): this runner ends; what it would have served fails,
            // unless another runner is still going.
            let orphans = self.state.withLock { state -> [Pending] in
                state.inFlight -= 1
                guard state.inFlight == 0 else { return [] }
                defer { state.pending = [] }
                return state.pending
            }
            for p in orphans { p.completion(.failure(error)) }
        }
    }

    /// The next batch, or nil after marking this runner finished (atomically with seeing an empty queue).
    private func nextBatch() -> [Pending]? {
        self.state.withLock { state -> [Pending]? in
            if state.pending.isEmpty {
                state.inFlight -= 1
                return nil
            }
            let n = min(self.maxBatch, state.pending.count)
            let batch = Array(state.pending.prefix(n))
            state.pending.removeFirst(n)
            return batch
        }
    }

    /// Answers every caller of `batch`; false if the statement failed.
    private func serve(_ batch: [Pending], on connection: PGConnection) -> Bool {
        var keys: [Key] = []
        keys.reserveCapacity(batch.count)
        var seen = Set<Key>()
        for p in batch where seen.insert(p.key).inserted { keys.append(p.key) }
        let result: Result<[Key: Value], any Error>
        do {
            result = .success(try self.fetch(connection, keys))
        } catch {
            result = .failure(error)
        }
        for p in batch {
            p.completion(result.map { $0[p.key] })
        }
        if case .failure = result { return false }
        return true
    }
}
