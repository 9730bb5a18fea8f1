internal import Dispatch
public import Logging
internal import Synchronization

/// A bounded pool of `PGConnection`s.
///
/// - Connections are opened lazily, up to `size`. Each one lives on its own serial DispatchQueue, and closures
///   run there, so blocking libpq calls never run on the Swift concurrency pool.
/// - At most `maxWaiters` callers wait for a connection; more fail at once with `.poolExhausted`. A caller that
///   waits longer than `checkoutTimeout` fails with `.timeout`.
/// - A connection that died while idle (server restart, terminated backend) is reopened before use. If the
///   death only shows when the first statement of a call fails, the whole call is run once more on a fresh
///   connection, so callers survive a server restart without retrying themselves. The closure may therefore
///   run twice, but never after any of its statements reached the server.
public final class PGPool: Sendable {
    /// A snapshot of the pool's counters.
    public struct Statistics: Sendable, Equatable {
        /// Connection slots created so far (at most `size`).
        public let connections: Int
        /// Slots not lent out.
        public let idle: Int
        /// Callers waiting for a slot.
        public let waiting: Int
    }

    private struct Waiter {
        let id: UInt64
        /// Hands over the connection (or the error): resumes an async caller, or runs a callback caller's body.
        let resume: @Sendable (Result<PGConnection, any Error>) -> Void
        let deadline: DispatchTime
    }

    private struct State {
        var connections: [PGConnection] = []
        var idle: [PGConnection] = []
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var isClosed = false
        /// Expires waiters past their deadline. One timer for the whole pool (not one per waiter): waiters are
        /// queued in deadline order, so a sweep only looks at the front.
        var sweeper: SweeperBox?
    }

    /// A dispatch timer is not Sendable; it is only created, scheduled and cancelled under the state lock.
    private final class SweeperBox: @unchecked Sendable {
        let timer: any DispatchSourceTimer
        init(_ timer: any DispatchSourceTimer) { self.timer = timer }
    }

    private let conninfo: String
    private let size: Int
    private let maxWaiters: Int
    private let checkoutTimeout: Duration
    private let logger: Logger
    private let validatesIdleConnections: Bool
    private let state = Mutex(State())

    public convenience init(
        conninfo: String,
        size: Int,
        maxWaiters: Int = 1024,
        checkoutTimeout: Duration = .seconds(10),
        logger: Logger
    ) {
        self.init(
            conninfo: conninfo,
            size: size,
            maxWaiters: maxWaiters,
            checkoutTimeout: checkoutTimeout,
            logger: logger,
            validatesIdleConnections: true
        )
    }

    /// `validatesIdleConnections: false` skips the check of idle connections before use; tests use it to
    /// exercise the retry path.
    package init(
        conninfo: String,
        size: Int,
        maxWaiters: Int,
        checkoutTimeout: Duration,
        logger: Logger,
        validatesIdleConnections: Bool
    ) {
        precondition(size >= 1, "PGPool size must be at least 1")
        precondition(maxWaiters >= 0, "PGPool maxWaiters must not be negative")
        self.conninfo = conninfo
        self.size = size
        self.maxWaiters = maxWaiters
        self.checkoutTimeout = checkoutTimeout
        self.logger = logger
        self.validatesIdleConnections = validatesIdleConnections
    }

    deinit {
        state.withLock { $0.sweeper?.timer.cancel() }
        let connections = state.withLock { $0.connections }
        for connection in connections {
            connection.queue.async { connection.closeHandle() }
        }
    }

    public var statistics: Statistics {
        state.withLock { Statistics(connections: $0.connections.count, idle: $0.idle.count, waiting: $0.waiters.count) }
    }

    /// Runs `body` synchronously on a pooled connection's serial DispatchQueue; the caller awaits. Blocking libpq
    /// calls therefore never run on the Swift concurrency pool.
    @discardableResult
    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        var retried = false
        while true {
            let connection = try await checkout()
            let validate = validatesIdleConnections
            let outcome: PGConnection.Outcome<T> = await withCheckedContinuation { continuation in
                connection.queue.async {
                    continuation.resume(returning: connection.perform(body, validatingIdleHandle: validate))
                }
            }
            checkin(connection)
            switch outcome.result {
            case .success(let value):
                return value
            case .failure(let error):
                if outcome.isRetryable && !retried {
                    retried = true
                    logger.notice("postgres connection was stale; retrying on a new connection")
                    continue
                }
                throw error
            }
        }
    }

    /// The same as `withConnection(_:)` without a Swift task: `body` runs on the connection's queue and
    /// `completion` is called there with its result (or with the checkout error on another thread). For callers
    /// that live on dispatch queues (the HTTP server's inline path), this saves two thread hops per call.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PGConnection) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        let validate = validatesIdleConnections
        @Sendable func run(_ connection: PGConnection, retried: Bool) {
            connection.queue.async {
                let outcome = connection.perform(body, validatingIdleHandle: validate)
                self.checkin(connection)
                if case .failure = outcome.result, outcome.isRetryable, !retried {
                    self.logger.notice("postgres connection was stale; retrying on a new connection")
                    self.acquire { result in
                        switch result {
                        case .success(let next): run(next, retried: true)
                        case .failure(let error): completion(.failure(error))
                        }
                    }
                    return
                }
                completion(outcome.result)
            }
        }
        self.acquire { result in
            switch result {
            case .success(let connection): run(connection, retried: false)
            case .failure(let error): completion(.failure(error))
            }
        }
    }

    /// Callback checkout: `handler` gets an idle (or new) connection at once, or later from `checkin`, or the
    /// error (closed, exhausted, timed out).
    private func acquire(_ handler: @escaping @Sendable (Result<PGConnection, any Error>) -> Void) {
        let decision: Decision = state.withLock { state in
            if state.isClosed {
                return .fail(PostgresError(code: .poolClosed, message: "the pool is closed"))
            }
            if let connection = state.idle.popLast() {
                return .ready(connection)
            }
            if state.connections.count < size {
                let connection = PGConnection(
                    conninfo: conninfo,
                    label: "koper.postgres.connection.\(state.connections.count)",
                    logger: logger
                )
                state.connections.append(connection)
                return .ready(connection)
            }
            if state.waiters.count >= maxWaiters {
                return .fail(PostgresError(code: .poolExhausted, message: "too many callers waiting for a connection"))
            }
            state.nextWaiterID += 1
            state.waiters.append(
                Waiter(id: state.nextWaiterID, resume: handler, deadline: .now() + checkoutTimeout.dispatchInterval)
            )
            self.startSweeper(&state)
            return .wait
        }
        switch decision {
        case .ready(let connection): handler(.success(connection))
        case .fail(let error): handler(.failure(error))
        case .wait: break
        }
    }

    private func startSweeper(_ state: inout State) {
        guard state.sweeper == nil else { return }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        let interval = min(checkoutTimeout, .milliseconds(250)).dispatchInterval
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(50))
        timer.setEventHandler { [weak self] in self?.expireWaiters() }
        timer.resume()
        state.sweeper = SweeperBox(timer)
    }

    /// BEGIN; body; COMMIT — ROLLBACK if body throws (then rethrows).
    @discardableResult
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        try await withConnection { connection in
            try connection.withTransaction(body)
        }
    }

    /// Closes idle connections and fails waiters (and later callers) with `.poolClosed`. Connections that are
    /// lent out are closed when they come back.
    public func close() {
        let (idle, waiters) = state.withLock { state in
            state.isClosed = true
            state.sweeper?.timer.cancel()
            state.sweeper = nil
            let taken = (state.idle, state.waiters)
            state.idle = []
            state.waiters = []
            return taken
        }
        for waiter in waiters {
            waiter.resume(.failure(PostgresError(code: .poolClosed, message: "the pool is closed")))
        }
        for connection in idle {
            connection.queue.async { connection.closeHandle() }
        }
    }

    // MARK: Checkout

    private enum Decision {
        case ready(PGConnection)
        case fail(any Error)
        case wait
    }

    private func checkout() async throws -> PGConnection {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PGConnection, any Error>) in
                let decision: Decision = state.withLock { state in
                    if state.isClosed {
                        return .fail(PostgresError(code: .poolClosed, message: "the pool is closed"))
                    }
                    if Task.isCancelled {
                        return .fail(CancellationError())
                    }
                    if let connection = state.idle.popLast() {
                        return .ready(connection)
                    }
                    if state.connections.count < size {
                        let connection = PGConnection(
                            conninfo: conninfo,
                            label: "koper.postgres.connection.\(state.connections.count)",
                            logger: logger
                        )
                        state.connections.append(connection)
                        return .ready(connection)
                    }
                    if state.waiters.count >= maxWaiters {
                        return .fail(
                            PostgresError(code: .poolExhausted, message: "too many callers waiting for a connection")
                        )
                    }
                    state.waiters.append(
                        Waiter(
                            id: id,
                            resume: { continuation.resume(with: $0) },
                            deadline: .now() + checkoutTimeout.dispatchInterval
                        )
                    )
                    self.startSweeper(&state)
                    return .wait
                }
                switch decision {
                case .ready(let connection):
                    continuation.resume(returning: connection)
                case .fail(let error):
                    continuation.resume(throwing: error)
                case .wait:
                    break
                }
            }
        } onCancel: {
            removeWaiter(id, error: CancellationError())
        }
    }

    /// Fails the waiters whose checkout deadline passed (they are at the front: FIFO with a fixed timeout).
    private func expireWaiters() {
        let now = DispatchTime.now()
        let expired: [Waiter] = state.withLock { state in
            var out: [Waiter] = []
            while let first = state.waiters.first, first.deadline <= now {
                out.append(state.waiters.removeFirst())
            }
            return out
        }
        for waiter in expired {
            waiter.resume(.failure(PostgresError(code: .timeout, message: "timed out waiting for a connection")))
        }
    }

    private func removeWaiter(_ id: UInt64, error: any Error) {
        let waiter: Waiter? = state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.resume(.failure(error))
    }

    private enum Return {
        case toIdle
        case toWaiter(Waiter)
        case close
    }

    private func checkin(_ connection: PGConnection) {
        let destination: Return = state.withLock { state in
            if state.isClosed {
                return .close
            }
            if !state.waiters.isEmpty {
                return .toWaiter(state.waiters.removeFirst())
            }
            state.idle.append(connection)
            return .toIdle
        }
        switch destination {
        case .toIdle:
            break
        case .toWaiter(let waiter):
            waiter.resume(.success(connection))
        case .close:
            connection.queue.async { connection.closeHandle() }
        }
    }
}
