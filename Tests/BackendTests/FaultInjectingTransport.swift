import Foundation
import Logging
import Synchronization
import Tickets

@testable import Backend

/// What a `FaultInjectingTransport` saw the Backend do, in order.
enum TransportEvent: Sendable, CustomStringConvertible {
    /// A connection was refused on purpose (the builder looks unreachable).
    case refused(host: String)
    case connected(host: String)
    /// The worker recorded the pid of a build it started (`worker.pid` uploaded): `koper-builder` runs.
    case started(host: String, resource: String, remoteDir: String, pid: Int32, at: ContinuousClock.Instant)
    /// The worker sent its kill command (cancel or timeout).
    case killSent(host: String, at: ContinuousClock.Instant)

    var description: String {
        switch self {
        case .refused(let host): "refused(\(host))"
        case .connected(let host): "connected(\(host))"
        case .started(let host, let resource, let dir, let pid, _):
            "started(\(host) as \(resource), \(dir), pid \(pid))"
        case .killSent(let host, _): "killSent(\(host))"
        }
    }

    var startedPid: Int32? {
        if case .started(_, _, _, let pid, _) = self { return pid }
        return nil
    }

    var startedHost: String? {
        if case .started(let host, _, _, _, _) = self { return host }
        return nil
    }

    /// The ticket service's name of the builder a build started on (what backend.log names).
    var startedResource: String? {
        if case .started(_, let resource, _, _, _) = self { return resource }
        return nil
    }
}

/// The local transport with failure injection and a record of what happened:
/// - `refuseConnections(n)`: the next `n` connects fail (the worker retires the builder and retries elsewhere);
/// - `freeze()`: every later operation suspends for good, as if this Backend had been stopped dead mid-build
///   (SIGSTOP or SIGKILL: it never touches the builder or the Frontend again);
/// - `events`: connections, builds started (with the builder's pid) and kill commands, each awaitable.
final class FaultInjectingTransport: BuilderTransport {
    let local: LocalBuilderTransport
    let events = EventLog<TransportEvent>()
    private struct State {
        var refuseNext = 0
        var isFrozen = false
        /// Runs (once) before the next command that starts a build.
        var beforeStart: (@Sendable () async -> Void)?
        /// Operations held by `freeze()`; never resumed (kept so that they are not leaked).
        var held: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    init(root: String, user: BuilderUser) {
        self.local = LocalBuilderTransport(root: root, user: user)
    }

    func refuseConnections(_ count: Int) {
        self.state.withLock { $0.refuseNext = count }
    }

    /// `action` runs before the next build start command goes to the builder (once).
    func beforeNextStart(_ action: @escaping @Sendable () async -> Void) {
        self.state.withLock { $0.beforeStart = action }
    }

    func takeBeforeStart() -> (@Sendable () async -> Void)? {
        self.state.withLock { s in
            defer { s.beforeStart = nil }
            return s.beforeStart
        }
    }

    func freeze() {
        self.state.withLock { $0.isFrozen = true }
    }

    var isFrozen: Bool { self.state.withLock { $0.isFrozen } }

    /// Returns at once unless frozen; then never.
    func gate() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let hold = self.state.withLock { s -> Bool in
                if s.isFrozen { s.held.append(c) }
                return s.isFrozen
            }
            if !hold { c.resume() }
        }
    }

    func connect(_ resource: Resource, logger: Logger) async throws -> any BuilderConnection {
        await self.gate()
        let host = resource.data.host
        let refuse = self.state.withLock { s -> Bool in
            guard s.refuseNext > 0 else { return false }
            s.refuseNext -= 1
            return true
        }
        if refuse {
            self.events.append(.refused(host: host))
            throw LocalBuilderError("connection to \(host) refused (injected)")
        }
        let inner = try await self.local.connect(resource, logger: logger)
        self.events.append(.connected(host: host))
        return FaultInjectingConnection(inner: inner, transport: self, host: host, resource: resource.name)
    }

    /// The pids of every build started through this transport.
    var startedPids: [Int32] { self.events.all.compactMap(\.startedPid) }
}

struct FaultInjectingConnection: BuilderConnection {
    let inner: any BuilderConnection
    let transport: FaultInjectingTransport
    let host: String
    let resource: String

    func run(_ command: String, timeout: Duration) async throws -> BuilderCommandResult {
        await self.transport.gate()
        if command.contains("pkill -TERM -s") {
            self.transport.events.append(.killSent(host: self.host, at: .now))
        }
        if command.contains("setsid nohup"), let action = self.transport.takeBeforeStart() {
            await action()
        }
        return try await self.inner.run(command, timeout: timeout)
    }

    func upload(_ bytes: [UInt8], to path: String) async throws {
        await self.transport.gate()
        try await self.inner.upload(bytes, to: path)
        if path.hasSuffix("/worker.pid"),
            let pid = Int32(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        {
            let dir = String(path.dropLast("/worker.pid".count))
            self.transport.events.append(
                .started(host: self.host, resource: self.resource, remoteDir: dir, pid: pid, at: .now)
            )
        }
    }

    func readFile(_ path: String, from offset: Int, maxBytes: Int) async throws -> [UInt8] {
        await self.transport.gate()
        return try await self.inner.readFile(path, from: offset, maxBytes: maxBytes)
    }

    func downloadFile(_ path: String, toLocalPath localPath: String, limit: Int) async throws {
        await self.transport.gate()
        try await self.inner.downloadFile(path, toLocalPath: localPath, limit: limit)
    }

    func close() {
        self.inner.close()
    }
}

/// A bounded wait that ran out.
struct WaitTimeout: Error, CustomStringConvertible {
    let description: String
}

/// An append-only record whose entries can be awaited (with a time limit) instead of polled.
final class EventLog<Event: Sendable>: Sendable {
    private struct Waiter {
        let matches: @Sendable (Event) -> Bool
        let continuation: CheckedContinuation<Event, any Error>
    }
    private struct State {
        var events: [Event] = []
        var waiters: [Int: Waiter] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    var all: [Event] { self.state.withLock { $0.events } }

    func append(_ event: Event) {
        let ready = self.state.withLock { s -> [Waiter] in
            s.events.append(event)
            let ids = s.waiters.filter { $0.value.matches(event) }.map(\.key)
            return ids.compactMap { s.waiters.removeValue(forKey: $0) }
        }
        for w in ready { w.continuation.resume(returning: event) }
    }

    /// The first event (already recorded or still to come) that `matches`; throws `WaitTimeout` naming `what`.
    func first(
        _ what: String,
        within timeout: Duration,
        where matches: @escaping @Sendable (Event) -> Bool
    ) async throws -> Event {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Event, any Error>) in
            let (found, id) = self.state.withLock { s -> (Event?, Int) in
                if let e = s.events.first(where: matches) { return (e, 0) }
                s.nextID += 1
                s.waiters[s.nextID] = Waiter(matches: matches, continuation: c)
                return (nil, s.nextID)
            }
            if let found {
                c.resume(returning: found)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                if let w = self.state.withLock({ $0.waiters.removeValue(forKey: id) }) {
                    let seen = self.all.map { "\($0)" }.joined(separator: ", ")
                    w.continuation.resume(
                        throwing: WaitTimeout(description: "no \(what) within \(timeout); saw: [\(seen)]")
                    )
                }
            }
        }
    }
}
