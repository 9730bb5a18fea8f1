import AtomicFile
import Dispatch
import HTTPCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 server on libdispatch sources (no SwiftNIO).
///
/// One listening socket with a read source on a serial accept queue; one `Connection` per socket, confined to its
/// own serial queue (which targets a shared concurrent queue), so connection state needs no locks. Handlers run as
/// Swift tasks and hand their response back to the connection's queue.
public final class Server: Sendable {
    public let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    let logger: Logger
    let acceptQueue = DispatchQueue(label: "koper.http.accept")
    let connectionTarget = DispatchQueue(label: "koper.http.connections", attributes: .concurrent)

    struct State {
        var listenFD: Int32 = -1
        var listenSource: UncheckedSource?
        var port: Int = 0
        var connections: [ObjectIdentifier: Connection] = [:]
        var draining = false
        var accepted = 0
        /// What each client (remote IP address) holds now; an entry goes when both counts are back to 0.
        var clients: [String: ClientUsage] = [:]
    }

    struct ClientUsage {
        var connections = 0
        var uploads = 0
    }

    let state = Mutex(State())
    let draining = Atomic<Bool>(false)
    /// Bytes reserved by `.file` bodies now being spooled or handled (see `reserveSpool`).
    let spoolReserved = Atomic<Int>(0)

    public init(configuration: HTTPServerConfiguration, handler: any HTTPHandler, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
    }

    /// The bound port (valid after `start()`).
    public var port: Int { self.state.withLock { $0.port } }

    /// Open connections right now.
    public var connectionCount: Int { self.state.withLock { $0.connections.count } }

    /// Bytes of the spool quota taken right now by bodies being received or handled.
    public var spoolBytesReserved: Int { self.spoolReserved.load(ordering: .relaxed) }

    /// Open connections of one client (remote IP address) right now.
    public func connectionCount(client: String) -> Int {
        self.state.withLock { $0.clients[client]?.connections ?? 0 }
    }

    /// Takes `bytes` of the spool quota, or returns false (taking nothing) if that would go beyond it.
    func reserveSpool(_ bytes: Int) -> Bool {
        var current = self.spoolReserved.load(ordering: .relaxed)
        while true {
            let (next, overflow) = current.addingReportingOverflow(bytes)
            if overflow || next > self.configuration.spoolQuotaBytes { return false }
            let (exchanged, original) = self.spoolReserved.compareExchange(
                expected: current,
                desired: next,
                ordering: .relaxed
            )
            if exchanged { return true }
            current = original
        }
    }

    func releaseSpool(_ bytes: Int) {
        if bytes > 0 { self.spoolReserved.subtract(bytes, ordering: .relaxed) }
    }

    /// Counts one more upload (`.file` body) for `client`, or returns false if it already has its maximum.
    func beginUpload(client: String) -> Bool {
        self.state.withLock { st in
            let usage = st.clients[client, default: ClientUsage()]
            guard usage.uploads < self.configuration.maxUploadsPerClient else { return false }
            st.clients[client, default: ClientUsage()].uploads += 1
            return true
        }
    }

    func endUpload(client: String) {
        self.state.withLock { st in
            guard var usage = st.clients[client] else { return }
            usage.uploads -= 1
            st.clients[client] = usage.connections == 0 && usage.uploads <= 0 ? nil : usage
        }
    }

    /// Removes spool files (`koper-body-*`) that a previous process left in `directory` when it died mid-request.
    /// Call it before `start()`, and only on a spool directory that no other running server uses. Returns how many
    /// files it removed.
    @discardableResult
    public static func removeOrphanedBodies(in directory: String) -> Int {
        guard let dir = opendir(directory) else { return 0 }
        defer { closedir(dir) }
        var removed = 0
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(Connection.spoolFilePrefix) && unlinkat(dirfd(dir), name, 0) == 0 { removed += 1 }
        }
        return removed
    }

    /// Binds, listens and starts accepting. Returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        signal(SIGPIPE, SIG_IGN)
        let fd = socket(
            AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
            0
        )
        guard fd >= 0 else { throw HTTPServerError(operation: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(self.configuration.port).bigEndian)
        guard inet_pton(AF_INET, self.configuration.host, &addr.sin_addr) == 1 else {
            close(fd)
            throw HTTPServerError(operation: "inet_pton", errno: EINVAL)
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw HTTPServerError(operation: "bind", errno: e)
        }
        guard listen(fd, self.configuration.backlog) == 0 else {
            let e = errno
            close(fd)
            throw HTTPServerError(operation: "listen", errno: e)
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let port = Int(UInt16(bigEndian: actual.sin_port))
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: self.acceptQueue)
        source.setEventHandler { [weak self] in self?.acceptAll(listenFD: fd, source: source) }
        source.setCancelHandler { close(fd) }
        self.state.withLock {
            $0.listenFD = fd
            $0.listenSource = UncheckedSource(source: source)
            $0.port = port
        }
        source.resume()
        self.logger.info(
            "HTTP server listening",
            metadata: ["http.host": "\(self.configuration.host)", "http.port": "\(port)"]
        )
        return port
    }

    func acceptAll(listenFD: Int32, source: any DispatchSourceRead) {
        while true {
            var peer = sockaddr_in()
            var peerLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            let fd = retryingOnInterrupt {
                withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listenFD, $0, &peerLength) }
                }
            }
            if fd < 0 {
                let e = errno
                if e == ECONNABORTED { continue }
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: pause accepting briefly instead of spinning on a level-triggered source.
                    self.logger.warning("accept failed: out of resources", metadata: ["errno": "\(e)"])
                    source.suspend()
                    // The source is only ever touched on acceptQueue, where this closure runs too.
                    nonisolated(unsafe) let paused = source
                    self.acceptQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { paused.resume() }
                }
                return
            }
            // accept4 (atomic CLOEXEC) is hidden behind _GNU_SOURCE in the Glibc module; there is no C shim yet.
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // Admission is decided under the lock that `shutdown` takes, so no connection slips in unseen while
            // draining starts. A refused socket never gets a `Connection`: its dispatch sources would be released
            // without ever being resumed, which libdispatch treats as a fatal client bug.
            let client = Self.host(peer)
            let remote = "\(client):\(UInt16(bigEndian: peer.sin_port))"
            var perClientRefusal = false
            let connection = self.state.withLock { st -> Connection? in
                guard !st.draining, st.connections.count < self.configuration.maxConnections else { return nil }
                guard
                    st.clients[client, default: ClientUsage()].connections < self.configuration.maxConnectionsPerClient
                else {
                    perClientRefusal = true
                    return nil
                }
                let queue = DispatchQueue(label: "koper.http.conn", target: self.connectionTarget)
                let connection = Connection(fd: fd, queue: queue, server: self, remoteAddress: remote, client: client)
                st.connections[ObjectIdentifier(connection)] = connection
                st.clients[client, default: ClientUsage()].connections += 1
                st.accepted += 1
                return connection
            }
            if let connection {
                connection.start()
            } else if self.isDraining {
                close(fd)
            } else {
                self.refuseAndClose(
                    fd: fd,
                    reason: perClientRefusal ? "Too many connections from this client" : "Too many connections"
                )
            }
        }
    }

    /// Over the connection cap: a best-effort 503, then close. Whatever the client already sent is read and dropped
    /// first, so that closing sends a FIN rather than a reset that could destroy the 503 in flight.
    func refuseAndClose(fd: Int32, reason: String) {
        var response = self.handler.errorResponse(status: 503, reason: reason, head: nil)
        response.discardFile()  // refusals are sent from memory
        response.headers.replaceOrAdd(name: "Retry-After", value: "5")
        var bytes = response.serializeHead(keepAlive: false, contentLength: response.body.count)
        if response.hasBody { bytes += response.body }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 16) { buffer in
            for _ in 0..<4 where recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) > 0 {}
        }
        close(fd)
    }

    /// `a.b.c.d` for an IPv4 peer: the client as the per-client limits count it.
    static func host(_ address: sockaddr_in) -> String {
        var addr = address.sin_addr
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &addr, &text, socklen_t(text.count)) != nil else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func connectionClosed(_ connection: Connection) {
        self.state.withLock { st in
            guard st.connections.removeValue(forKey: ObjectIdentifier(connection)) != nil,
                var usage = st.clients[connection.client]
            else { return }
            usage.connections -= 1
            st.clients[connection.client] = usage.connections <= 0 && usage.uploads == 0 ? nil : usage
        }
    }

    /// Stops accepting, closes idle connections, lets in-flight requests finish (their responses carry
    /// `Connection: close`), and force-closes whatever is left after `gracePeriod`.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        self.draining.store(true, ordering: .relaxed)
        let (source, connections) = self.state.withLock { st -> (UncheckedSource?, [Connection]) in
            st.draining = true
            let s = st.listenSource
            st.listenSource = nil
            return (s, Array(st.connections.values))
        }
        source?.source.cancel()
        for c in connections { c.queue.async { c.closeIfIdle() } }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: gracePeriod)
        while self.connectionCount > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let rest = self.state.withLock { Array($0.connections.values) }
        for c in rest { c.queue.async { c.close() } }
        while self.connectionCount > 0 && clock.now < deadline.advanced(by: .seconds(2)) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        self.logger.info("HTTP server stopped")
    }

    var isDraining: Bool { self.draining.load(ordering: .relaxed) }
}

/// A dispatch source handed between threads. Sources are thread-safe for resume/suspend/cancel; the wrapper only
/// tells the compiler so.
struct UncheckedSource: @unchecked Sendable {
    let source: any DispatchSourceRead
}
