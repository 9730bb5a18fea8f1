internal import CLibPQ
internal import Dispatch
internal import Logging

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// One libpq connection. Only ever used inside a pool closure (on the connection's own serial queue).
///
/// A `PGConnection` is a pool slot: it owns at most one `PGconn*` at a time, opens it lazily, and replaces
/// it after the server went away.
///
/// `@unchecked Sendable` invariant: the mutable state (`handle`, `call`) is read and written only on
/// `queue`, a serial DispatchQueue owned by this object. `PGPool` lends a connection to one caller at a time
/// and runs that caller's closure on `queue`; every public method checks this with `dispatchPrecondition`.
/// `deinit` runs when no other reference exists, so it may touch `handle` too.
public final class PGConnection: @unchecked Sendable {
    let queue: DispatchQueue
    private let conninfo: String
    private let logger: Logger
    private let noticeSink: NoticeSink
    private var handle: OpaquePointer?
    private var call = CallState()
    /// Server-side prepared statements of `handle`, by SQL text (bounded; cleared with the handle). Repeated
    /// statements skip the server's parse and plan steps.
    private var prepared: [String: String] = [:]
    /// When the last call on `handle` ended. A handle used within the last second is not probed before reuse:
    /// a dead one is still caught (the stale-failure retry covers it), and busy pools skip a poll() per call.
    private var lastUsed: DispatchTime = .now()
    static let maxPreparedStatements = 256

    /// Bookkeeping for one pool call, used to decide whether a failure may be retried.
    private struct CallState {
        /// The handle was opened before this call (it had been idle in the pool).
        var reused = false
        /// Statements of this call that reached the server and got an answer.
        var statementsAnswered = 0
        /// The connection failed before any statement of this call was answered, on a reused handle.
        var staleFailure = false
    }

    /// What one pool call produced.
    struct Outcome<T: Sendable>: Sendable {
        let result: Result<T, any Error>
        /// The call failed only because an idle (stale) connection had died; running it again is safe.
        let isRetryable: Bool
    }

    init(conninfo: String, label: String, logger: Logger) {
        self.conninfo = conninfo
        self.logger = logger
        self.noticeSink = NoticeSink(logger: logger)
        self.queue = DispatchQueue(label: label)
    }

    deinit {
        if let handle {
            PQfinish(handle)
        }
    }

    // MARK: Public statement API

    /// Runs one statement with its bound parameters and returns all rows.
    /// The corresponding C functions are `PQexecParams` and `PQexecPrepared`.
    public func query(_ query: PGQuery) throws -> PGResult {
        let result = try run(query.sql, query.binds, simple: false)
        defer { PQclear(result) }
        return LibPQ.makeResult(result)
    }

    /// Runs one statement with its bound parameters and returns the number of affected rows.
    @discardableResult
    public func execute(_ query: PGQuery) throws -> Int {
        let result = try run(query.sql, query.binds, simple: false)
        defer { PQclear(result) }
        return PQcmdTuples(result).map { Int(String(cString: $0)) ?? 0 } ?? 0
    }

    /// Runs a script of one or more statements without parameters (the simple query protocol), as used for
    /// migrations. The corresponding C function is `PQexec`.
    public func executeScript(_ sql: String) throws {
        let result = try run(sql, [], simple: true)
        PQclear(result)
    }

    /// Sends a notification: `SELECT pg_notify($1, $2)`. Delivered to listeners when the transaction commits.
    public func notify(channel: String, payload: String) throws {
        try execute("SELECT pg_notify(\(channel), \(payload))")
    }

    /// BEGIN; body; COMMIT — ROLLBACK if `body` throws (then rethrows). Also refuses to COMMIT (and rolls back)
    /// a transaction that an error inside `body` already aborted, even if `body` swallowed that error.
    /// Transactions do not nest: inside `body`, use SAVEPOINT for sub-transactions.
    public func withTransaction<T>(_ body: (PGConnection) throws -> T) throws -> T {
        try executeScript("BEGIN")
        let value: T
        do {
            value = try body(self)
        } catch {
            rollbackQuietly()
            throw error
        }
        if let handle, PQtransactionStatus(handle) == PQTRANS_INERROR {
            rollbackQuietly()
            throw PostgresError(code: .queryFailed, message: "transaction was aborted by an earlier error; rolled back")
        }
        try executeScript("COMMIT")
        return value
    }

    // MARK: Pool interface (all on `queue`)

    /// Runs one pool call: makes sure a live handle exists, runs `body`, and cleans up after it.
    func perform<T: Sendable>(_ body: (PGConnection) throws -> T, validatingIdleHandle: Bool = true) -> Outcome<T> {
        dispatchPrecondition(condition: .onQueue(queue))
        var reused = false
        if let handle {
            let recentlyUsed = DispatchTime.now().uptimeNanoseconds &- lastUsed.uptimeNanoseconds < 1_000_000_000
            if !validatingIdleHandle || recentlyUsed || LibPQ.isAlive(handle) {
                reused = true
            } else {
                logger.info("postgres connection lost while idle; reconnecting")
                closeHandle()
            }
        }
        if handle == nil {
            do {
                handle = try LibPQ.connect(conninfo, noticeSink: noticeSink)
            } catch {
                return Outcome(result: .failure(error), isRetryable: false)
            }
        }
        call = CallState(reused: reused)
        let result = Result { try body(self) }
        cleanUpAfterCall()
        lastUsed = .now()
        return Outcome(result: result, isRetryable: call.staleFailure)
    }

    /// Closes the handle; the slot reconnects on its next use.
    func closeHandle() {
        if let handle {
            PQfinish(handle)
            self.handle = nil
        }
        self.prepared.removeAll()
    }

    // MARK: Internals

    /// The name of a server-side prepared statement for `sql`, preparing it on first use. Nil when the statement
    /// is not worth preparing (transaction control, DDL) or the cache is full: the caller then uses PQexecParams.
    /// The corresponding C function is `PQprepare`.
    private func preparedName(_ conn: OpaquePointer, _ sql: String, types: [Oid]) -> String? {
        let key = types.isEmpty ? sql : sql + "\u{0}" + types.map(String.init).joined(separator: ",")
        if let name = self.prepared[key] { return name }
        guard self.prepared.count < Self.maxPreparedStatements else { return nil }
        let head = sql.drop { $0 == " " || $0 == "\n" }.prefix(6).uppercased()
        guard ["SELECT", "INSERT", "UPDATE", "DELETE"].contains(head) else { return nil }
        let name = "koper_\(self.prepared.count)"
        guard let result = PQprepare(conn, name, sql, Int32(types.count), types) else { return nil }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else {
            // Let the normal path run the statement and report its error.
            return nil
        }
        self.prepared[key] = name
        return name
    }

    /// A closure must not leave a transaction open on a pooled connection: roll it back, or drop the handle
    /// if its state is unknown.
    private func cleanUpAfterCall() {
        guard let handle else { return }
        guard PQstatus(handle) == CONNECTION_OK else {
            closeHandle()
            return
        }
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE:
            return
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            logger.warning("postgres pool closure left a transaction open; rolling back")
            rollbackQuietly()
            if let current = self.handle, PQtransactionStatus(current) == PQTRANS_IDLE {
                return
            }
            closeHandle()
        default:
            closeHandle()
        }
    }

    private func rollbackQuietly() {
        guard let handle else { return }
        if let result = PQexec(handle, "ROLLBACK") {
            PQclear(result)
        }
        if PQstatus(handle) != CONNECTION_OK {
            closeHandle()
        }
    }

    /// Runs one statement and returns its successful result (the caller must `PQclear` it).
    private func run(_ sql: String, _ binds: [PGBind], simple: Bool) throws(PostgresError) -> OpaquePointer {
        dispatchPrecondition(condition: .onQueue(queue))
        let params = binds.map(\.text)
        let types: [Oid] = binds.map { Oid($0.type.oid) }
        guard !sql.utf8.contains(0), !params.contains(where: { $0?.utf8.contains(0) == true }) else {
            // libpq takes C strings: a NUL byte would silently truncate the value.
            throw PostgresError(code: .invalidArgument, message: "statement or parameter contains a NUL byte")
        }
        guard let conn = handle else {
            noteConnectionFailure()
            throw PostgresError(code: .connectionFailed, message: "connection is closed")
        }
        var cParams: [UnsafeMutablePointer<CChar>?] = []
        cParams.reserveCapacity(params.count)
        defer {
            for pointer in cParams { free(pointer) }
        }
        for param in params {
            if let param {
                guard let copy = strdup(param) else {
                    throw PostgresError(code: .queryFailed, message: "out of memory")
                }
                cParams.append(copy)
            } else {
                cParams.append(nil)
            }
        }
        let result: OpaquePointer?
        if simple {
            result = PQexec(conn, sql)
        } else {
            let pointers: [UnsafePointer<CChar>?] = cParams.map { $0.map { UnsafePointer($0) } }
            let inTransactionError = PQtransactionStatus(conn) == PQTRANS_INERROR
            if !inTransactionError, let name = preparedName(conn, sql, types: types) {
                result = PQexecPrepared(conn, name, Int32(params.count), pointers, nil, nil, 0)
            } else {
                result = PQexecParams(conn, sql, Int32(params.count), types, pointers, nil, nil, 0)
            }
        }
        guard let result else {
            let message = LibPQ.errorMessage(conn)
            noteConnectionFailure()
            closeHandle()
            throw PostgresError(code: .connectionFailed, message: message)
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            call.statementsAnswered += 1
            return result
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            PQclear(result)
            call.statementsAnswered += 1
            closeHandle()  // the protocol is now inside COPY; dropping the connection is the simple way out
            throw PostgresError(code: .queryFailed, message: "COPY is not supported")
        default:
            let error = LibPQ.error(result: result, connection: conn, parameters: params)
            PQclear(result)
            if error.code == .connectionFailed {
                noteConnectionFailure()
                closeHandle()
            } else {
                call.statementsAnswered += 1
            }
            throw error
        }
    }

    private func noteConnectionFailure() {
        if call.reused && call.statementsAnswered == 0 {
            call.staleFailure = true
        }
    }
}
