internal import CLibPQ
internal import Dispatch
public import Logging
internal import Synchronization

/// LISTEN on a dedicated connection; DispatchSourceRead on PQsocket(); PQconsumeInput + PQnotifies loop;
/// reconnects with bounded backoff after the server goes away and re-issues LISTEN.
///
/// `onNotification` (and `onListen`) run on the listener's own serial queue, one at a time; they must return
/// quickly. Notifications sent while the connection was down are lost: use `onListen`, which runs after every
/// successful (re-)LISTEN, to catch up from the database.
public final class PGListener: Sendable {
    private let core: ListenerCore

    /// Connects and issues LISTEN before returning (blocking the calling thread for at most the connect
    /// timeout), so that notifications sent after `init` returns are delivered. From async code prefer
    /// `PGListener.start(...)`, which does not block a concurrency-pool thread.
    public convenience init(
        conninfo: String,
        channels: [String],
        logger: Logger,
        onNotification: @escaping @Sendable (_ channel: String, _ payload: String) -> Void
    ) throws {
        try self.init(
            conninfo: conninfo,
            channels: channels,
            logger: logger,
            onListen: nil,
            onNotification: onNotification
        )
    }

    /// Like `init(conninfo:channels:logger:onNotification:)`, with a callback run after every (re-)LISTEN.
    public convenience init(
        conninfo: String,
        channels: [String],
        logger: Logger,
        onListen: (@Sendable () -> Void)?,
        onNotification: @escaping @Sendable (_ channel: String, _ payload: String) -> Void
    ) throws {
        try self.init(
            unconnected: conninfo,
            channels: channels,
            logger: logger,
            onListen: onListen,
            onNotification: onNotification
        )
        let core = self.core
        let result: Result<Void, PostgresError> = core.queue.sync {
            Result { () throws(PostgresError) in try core.connectAndListen() }
        }
        try result.get()
    }

    /// Connects and issues LISTEN on the listener's queue without blocking the caller's thread.
    public static func start(
        conninfo: String,
        channels: [String],
        logger: Logger,
        onListen: (@Sendable () -> Void)? = nil,
        onNotification: @escaping @Sendable (_ channel: String, _ payload: String) -> Void
    ) async throws -> PGListener {
        let listener = try PGListener(
            unconnected: conninfo,
            channels: channels,
            logger: logger,
            onListen: onListen,
            onNotification: onNotification
        )
        let core = listener.core
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            core.queue.async {
                do {
                    try core.connectAndListen()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        return listener
    }

    private init(
        unconnected conninfo: String,
        channels: [String],
        logger: Logger,
        onListen: (@Sendable () -> Void)?,
        onNotification: @escaping @Sendable (String, String) -> Void
    ) throws(PostgresError) {
        guard !channels.isEmpty else {
            throw PostgresError(code: .invalidArgument, message: "no channels to listen on")
        }
        for channel in channels where channel.isEmpty || channel.utf8.count > 63 || channel.utf8.contains(0) {
            // PostgreSQL truncates identifiers to 63 bytes; a truncated channel would never match pg_notify.
            throw PostgresError(code: .invalidArgument, message: "invalid channel name")
        }
        _ = try LibPQ.parseConninfo(conninfo)
        core = ListenerCore(
            conninfo: conninfo,
            channels: channels,
            logger: logger,
            onListen: onListen,
            onNotification: onNotification
        )
    }

    deinit {
        core.cancel()
    }

    /// Stops listening and closes the connection. No notification is delivered after `cancel()` returns,
    /// except one whose callback is already running.
    public func cancel() {
        core.cancel()
    }
}

/// The state of one listener.
///
/// `@unchecked Sendable` invariant: `handle`, `source` and `failures` are read and written only on `queue`, a
/// serial DispatchQueue owned by this object; `cancelled` is atomic. The read source and the reconnect timer
/// keep this object alive until `cancel()` tears them down.
final class ListenerCore: @unchecked Sendable {
    let queue = DispatchQueue(label: "koper.postgres.listener")
    private let conninfo: String
    private let channels: [String]
    private let logger: Logger
    private let onListen: (@Sendable () -> Void)?
    private let onNotification: @Sendable (String, String) -> Void
    private let noticeSink: NoticeSink
    private let cancelled = Atomic<Bool>(false)
    private var handle: OpaquePointer?
    private var source: (any DispatchSourceRead)?
    private var failures = 0

    /// First reconnect delay, doubled after each failure up to `maximumBackoff`.
    private static let initialBackoff: Duration = .milliseconds(100)
    private static let maximumBackoff: Duration = .seconds(5)

    init(
        conninfo: String,
        channels: [String],
        logger: Logger,
        onListen: (@Sendable () -> Void)?,
        onNotification: @escaping @Sendable (String, String) -> Void
    ) {
        self.conninfo = conninfo
        self.channels = channels
        self.logger = logger
        self.onListen = onListen
        self.onNotification = onNotification
        self.noticeSink = NoticeSink(logger: logger)
    }

    func cancel() {
        guard !cancelled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { self.tearDown() }
    }

    /// Opens the connection, issues LISTEN for every channel and starts watching the socket.
    func connectAndListen() throws(PostgresError) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !cancelled.load(ordering: .acquiring) else { return }
        let conn = try LibPQ.connect(conninfo, noticeSink: noticeSink)
        for channel in channels {
            guard let result = PQexec(conn, "LISTEN " + LibPQ.quoteIdentifier(channel)) else {
                let error = PostgresError(code: .connectionFailed, message: LibPQ.errorMessage(conn))
                PQfinish(conn)
                throw error
            }
            defer { PQclear(result) }
            guard PQresultStatus(result) == PGRES_COMMAND_OK else {
                let error = LibPQ.error(result: result, connection: conn, parameters: [])
                PQfinish(conn)
                throw error
            }
        }
        let fd = PQsocket(conn)
        guard fd >= 0 else {
            PQfinish(conn)
            throw PostgresError(code: .connectionFailed, message: "connection has no socket")
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        let owned = HandleBox(conn)
        source.setEventHandler { self.readable() }
        // The socket belongs to libpq: close it (PQfinish) only once the source no longer watches it.
        source.setCancelHandler { PQfinish(owned.pointer) }
        self.handle = conn
        self.source = source
        source.resume()
        failures = 0
        logger.debug("postgres listener is listening", metadata: ["pg.channels": "\(channels.joined(separator: ","))"])
        deliverPending(conn)  // notifications that arrived together with the LISTEN replies
        if !cancelled.load(ordering: .acquiring) {
            onListen?()
        }
    }

    private func readable() {
        guard let conn = handle else { return }
        if PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK {
            logger.warning("postgres listener connection lost; reconnecting")
            tearDown()
            scheduleReconnect()
            return
        }
        deliverPending(conn)
    }

    /// The corresponding C functions are `PQnotifies` and `PQfreemem`.
    private func deliverPending(_ conn: OpaquePointer) {
        while let notify = PQnotifies(conn) {
            let channel = String(cString: notify.pointee.relname)
            let payload = notify.pointee.extra.map { String(cString: $0) } ?? ""
            PQfreemem(notify)
            if !cancelled.load(ordering: .acquiring) {
                onNotification(channel, payload)
            }
        }
    }

    private func tearDown() {
        dispatchPrecondition(condition: .onQueue(queue))
        if let source {
            source.cancel()  // its cancel handler calls PQfinish
            self.source = nil
        } else if let handle {
            PQfinish(handle)
        }
        handle = nil
    }

    private func scheduleReconnect() {
        guard !cancelled.load(ordering: .acquiring) else { return }
        var delay = Self.initialBackoff
        for _ in 0..<min(failures, 16) where delay < Self.maximumBackoff {
            delay *= 2
        }
        delay = min(delay, Self.maximumBackoff)
        failures += 1
        queue.asyncAfter(deadline: .now() + delay.dispatchInterval) {
            guard !self.cancelled.load(ordering: .acquiring) else { return }
            do {
                try self.connectAndListen()
                self.logger.info("postgres listener reconnected")
            } catch {
                self.logger.warning(
                    "postgres listener could not reconnect",
                    metadata: ["pg.error": "\(error)", "retry.count": "\(self.failures)"]
                )
                self.scheduleReconnect()
            }
        }
    }
}

/// Moves a `PGconn*` into the read source's cancel handler.
///
/// `@unchecked Sendable` invariant: after the box is made, only the cancel handler (on the listener's queue)
/// touches the pointer.
private final class HandleBox: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }
}
