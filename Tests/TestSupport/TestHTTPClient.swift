import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A response read by `TestHTTPClient`.
public struct TestHTTPResponse: Sendable, CustomStringConvertible {
    /// The version from the status line, e.g. `HTTP/1.1`.
    public var version: String
    public var status: Int
    public var reason: String
    /// Header fields in the order received; names as sent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        version: String = "HTTP/1.1",
        status: Int,
        reason: String = "",
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = []
    ) {
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
    }

    /// The first value of the header called `name` (ASCII case-insensitive).
    public func header(_ name: String) -> String? {
        self.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// Every value of the header called `name`, in order.
    public func headerValues(_ name: String) -> [String] {
        self.headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    /// The body decoded as UTF-8 (lossy).
    public var bodyString: String { String(decoding: self.body, as: UTF8.self) }

    /// True if the response carries `Connection: close`.
    public var closesConnection: Bool {
        self.headerValues("Connection").contains { value in
            value.split(separator: ",").contains { $0.trimmedOWS().lowercased() == "close" }
        }
    }

    public var description: String {
        "\(self.version) \(self.status) \(self.reason) (\(self.headers.count) headers, \(self.body.count) body bytes)"
    }
}

/// Why a `TestHTTPClient` call failed.
public struct TestHTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// `socket` or `connect` failed (`errno` says why; ECONNREFUSED when nothing listens).
        case connect
        /// `send` failed (EPIPE / ECONNRESET once the server has gone).
        case send
        /// `recv` failed with an error other than a timeout.
        case receive
        /// Nothing arrived within the receive timeout.
        case timeout
        /// The peer closed the connection before a complete response arrived.
        case closed
        /// The bytes received are not an HTTP/1.1 response.
        case malformed
    }

    public let kind: Kind
    public let errno: Int32
    public let detail: String

    public init(_ kind: Kind, errno: Int32 = 0, _ detail: String) {
        self.kind = kind
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        "TestHTTPClient \(self.kind): \(self.detail)" + (self.errno != 0 ? " (errno \(self.errno))" : "")
    }
}

/// A small blocking HTTP/1.1 client over one TCP connection to `127.0.0.1`, for conformance tests.
///
/// Every call blocks the calling thread (bounded by `SO_RCVTIMEO` / `SO_SNDTIMEO`). In `async` tests whose server
/// runs handlers as Swift tasks, wrap blocking work in `TestHTTPClient.runBlocking { … }` so that the few threads of
/// the cooperative pool stay free for the server.
///
/// `@unchecked Sendable` invariant: an instance is not thread-safe; it is used by one thread at a time and only
/// handed between threads sequentially (e.g. into `runBlocking` and back).
public final class TestHTTPClient: @unchecked Sendable {
    /// The connected socket. Exposed for tests that need raw socket calls (e.g. `setsockopt`).
    public private(set) var fd: Int32
    public let port: Int
    public let host: String
    /// Bytes received but not yet consumed by `readResponse()` (pipelined responses wait here).
    public private(set) var buffered: [UInt8] = []
    /// True once `recv` returned 0 (or the connection was reset).
    public private(set) var sawEndOfStream = false

    /// Connects to `host:port` (IPv4). `timeout` bounds every single receive and send. `localHost` binds the
    /// client's end to that address first (e.g. `127.0.0.2`, to be another client of a server on 127.0.0.1).
    public init(
        port: Int,
        host: String = "127.0.0.1",
        localHost: String? = nil,
        timeout: Duration = .seconds(10)
    ) throws {
        self.port = port
        self.host = host
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestHTTPClientError(.connect, errno: errno, "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            Glibc.close(fd)
            throw TestHTTPClientError(.connect, "bad IPv4 address \(host)")
        }
        if let localHost {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, localHost, &local.sin_addr) == 1 else {
                Glibc.close(fd)
                throw TestHTTPClientError(.connect, "bad IPv4 address \(localHost)")
            }
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else {
                let e = errno
                Glibc.close(fd)
                throw TestHTTPClientError(.connect, errno: e, "bind to \(localHost) failed")
            }
        }
        var result: Int32
        repeat {
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        } while result != 0 && errno == EINTR
        guard result == 0 else {
            let e = errno
            Glibc.close(fd)
            throw TestHTTPClientError(.connect, errno: e, "connect to \(host):\(port) failed")
        }
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        self.setTimeout(timeout)
    }

    deinit {
        if self.fd >= 0 { Glibc.close(self.fd) }
    }

    /// The client's own port (from `getsockname`), e.g. to match against the server's view of the peer.
    public var localPort: Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(self.fd, $0, &length) }
        }
        return ok == 0 ? Int(UInt16(bigEndian: address.sin_port)) : -1
    }

    /// Sets the receive and send timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`).
    public func setTimeout(_ timeout: Duration) {
        let (seconds, attoseconds) = timeout.components
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1 }  // zero would mean "no timeout"
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(self.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Shrinks the kernel receive buffer (`SO_RCVBUF`), e.g. to make a server hit backpressure sooner.
    public func setReceiveBufferSize(_ bytes: Int) {
        var size = Int32(bytes)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    // MARK: Sending

    /// Writes all of `bytes`.
    public func send(_ bytes: [UInt8]) throws {
        guard self.fd >= 0 else { throw TestHTTPClientError(.send, errno: EBADF, "client is closed") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Glibc.send(self.fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                offset += n
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                throw TestHTTPClientError(.timeout, errno: e, "send timed out after \(offset) of \(bytes.count) bytes")
            }
            throw TestHTTPClientError(.send, errno: e, "send failed after \(offset) of \(bytes.count) bytes")
        }
    }

    /// Writes the UTF-8 bytes of `text`.
    public func send(_ text: String) throws {
        try self.send(Array(text.utf8))
    }

    /// Half-closes the connection: the server sees end of stream, the client can still read.
    public func shutdownWrite() {
        _ = shutdown(self.fd, Int32(SHUT_WR))
    }

    /// Serialises a request. Adds `Host` unless `headers` has one, and `Content-Length` when there is a body and
    /// `headers` has neither `Content-Length` nor `Transfer-Encoding`.
    public static func requestBytes(
        method: String = "GET",
        path: String = "/",
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        host: String = "127.0.0.1"
    ) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        let names = Set(headers.map { $0.0.lowercased() })
        if !names.contains("host") { text += "Host: \(host)\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body, !names.contains("content-length"), !names.contains("transfer-encoding") {
            text += "Content-Length: \(body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }

    /// Sends one request and reads its response (a `HEAD` response is read without a body).
    public func request(
        method: String = "GET",
        path: String = "/",
        headers: [(String, String)] = [],
        body: [UInt8]? = nil
    ) throws -> TestHTTPResponse {
        try self.send(
            Self.requestBytes(
                method: method,
                path: path,
                headers: headers,
                body: body,
                host: "\(self.host):\(self.port)"
            )
        )
        return try self.readResponse(isHEAD: method == "HEAD")
    }

    // MARK: Receiving

    /// Reads one complete response. The body is framed by `Content-Length`, by chunked encoding, or (with
    /// neither) by the end of the stream. `isHEAD` (or a 1xx/204/304 status) means no body. Interim 1xx responses
    /// are skipped unless `skippingInterim` is false.
    public func readResponse(isHEAD: Bool = false, skippingInterim: Bool = true) throws -> TestHTTPResponse {
        while true {
            var response = try self.readHead()
            if response.status >= 100 && response.status < 200 {
                if skippingInterim { continue }
                return response
            }
            if isHEAD || response.status == 204 || response.status == 304 {
                return response
            }
            let te = response.header("Transfer-Encoding")?.lowercased()
            if let te, te.contains("chunked") {
                response.body = try self.readChunkedBody()
            } else if let cl = response.header("Content-Length") {
                guard let n = Int(cl.trimmedOWS()), n >= 0 else {
                    throw TestHTTPClientError(.malformed, "bad Content-Length \(cl)")
                }
                response.body = try self.readExactly(n)
            } else {
                response.body = try self.readUntilClose()
            }
            return response
        }
    }

    /// Reads everything until the server closes the connection (a reset also counts as closing). Returns the
    /// bytes, including any still buffered from earlier reads. Throws `.timeout` if the stream stays open.
    public func readUntilClose() throws -> [UInt8] {
        while try self.fill() {}
        let all = self.buffered
        self.buffered = []
        return all
    }

    /// Waits for the server to close the connection, discarding whatever arrives. Returns false (instead of
    /// throwing) if the connection is still open after the receive timeout.
    public func waitForClose() -> Bool {
        do {
            _ = try self.readUntilClose()
            return true
        } catch {
            return false
        }
    }

    /// Reads exactly `count` bytes (after any already buffered).
    public func readExactly(_ count: Int) throws -> [UInt8] {
        while self.buffered.count < count {
            guard try self.fill() else {
                throw TestHTTPClientError(.closed, "connection closed after \(self.buffered.count) of \(count) bytes")
            }
        }
        let out = Array(self.buffered[0..<count])
        self.buffered.removeFirst(count)
        return out
    }

    /// Performs a single `recv` of up to `maxBytes` and returns what arrived (empty at end of stream).
    public func receiveSome(maxBytes: Int = 64 * 1024) throws -> [UInt8] {
        if !self.buffered.isEmpty {
            let k = min(maxBytes, self.buffered.count)
            let out = Array(self.buffered[0..<k])
            self.buffered.removeFirst(k)
            return out
        }
        _ = try self.fill(maxBytes: maxBytes)
        let out = self.buffered
        self.buffered = []
        return out
    }

    /// Closes the socket. Safe to call twice.
    public func close() {
        if self.fd >= 0 {
            Glibc.close(self.fd)
            self.fd = -1
        }
    }

    /// Closes the socket with a reset (`SO_LINGER` with a zero timeout) instead of an orderly FIN, the way a
    /// crashed or impatient client disappears.
    public func abort() {
        guard self.fd >= 0 else { return }
        var option = linger(l_onoff: 1, l_linger: 0)
        setsockopt(self.fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        self.close()
    }

    /// Runs blocking work on a dedicated thread (a fresh serial dispatch queue, which libdispatch backs with an
    /// overcommit thread) and awaits its result, so blocking socket calls never occupy the cooperative pool.
    public static func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "koper.test.http-client").async {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    // MARK: Internals

    /// One `recv` into `buffered`. Returns false at end of stream.
    @discardableResult
    func fill(maxBytes: Int = 64 * 1024) throws -> Bool {
        guard self.fd >= 0 else { throw TestHTTPClientError(.receive, errno: EBADF, "client is closed") }
        var chunk = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                self.buffered.append(contentsOf: chunk[0..<n])
                return true
            }
            if n == 0 {
                self.sawEndOfStream = true
                return false
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK {
                throw TestHTTPClientError(.timeout, errno: e, "no data before the receive timeout")
            }
            if e == ECONNRESET {
                self.sawEndOfStream = true
                return false
            }
            throw TestHTTPClientError(.receive, errno: e, "recv failed")
        }
    }

    func readLine() throws -> String {
        var searchFrom = 0
        while true {
            if let nl = self.buffered[searchFrom...].firstIndex(of: 10) {
                var end = nl
                if end > 0 && self.buffered[end - 1] == 13 { end -= 1 }
                let line = String(decoding: self.buffered[0..<end], as: UTF8.self)
                self.buffered.removeFirst(nl + 1)
                return line
            }
            searchFrom = self.buffered.count
            if searchFrom > 1 << 20 { throw TestHTTPClientError(.malformed, "line longer than 1 MiB") }
            guard try self.fill() else {
                throw TestHTTPClientError(
                    .closed,
                    "connection closed inside a line (\(self.buffered.count) bytes pending)"
                )
            }
        }
    }

    func readHead() throws -> TestHTTPResponse {
        let statusLine = try self.readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), parts[1].count == 3 else {
            throw TestHTTPClientError(.malformed, "bad status line: \(statusLine.prefix(200))")
        }
        var response = TestHTTPResponse(
            version: String(parts[0]),
            status: status,
            reason: parts.count == 3 ? String(parts[2]) : ""
        )
        while true {
            let line = try self.readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else {
                throw TestHTTPClientError(.malformed, "bad header line: \(line.prefix(200))")
            }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...]).trimmedOWS()
            response.headers.append((name: name, value: value))
        }
        return response
    }

    func readChunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try self.readLine()
            let sizeText =
                line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmedOWS(), radix: 16), size >= 0 else {
                throw TestHTTPClientError(.malformed, "bad chunk size line: \(line.prefix(100))")
            }
            if size == 0 {
                while try !self.readLine().isEmpty {}  // trailers
                return body
            }
            body += try self.readExactly(size)
            guard try self.readLine().isEmpty else { throw TestHTTPClientError(.malformed, "missing CRLF after chunk") }
        }
    }
}

extension StringProtocol {
    /// Drops spaces and tabs at both ends.
    fileprivate func trimmedOWS() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
