import HTTPCore
import HTTPServer
import Logging
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What handlers saw, for assertions made after the response (e.g. after the client went away).
final class Observations: Sendable {
    private let entries = Mutex<[String]>([])

    func record(_ entry: String) { self.entries.withLock { $0.append(entry) } }

    var all: [String] { self.entries.withLock { $0 } }

    /// Polls until an entry with `prefix` shows up (or `timeout` passes).
    func waitFor(prefix: String, timeout: Duration = .seconds(5)) async -> String? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if let hit = self.all.first(where: { $0.hasPrefix(prefix) }) { return hit }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}

/// The test handler. Paths under `/file` get a `.file` body policy, everything else `.memory`.
///
/// - default: echoes the request: `X-Method`, `X-Target`, `X-Body-Kind` (empty/bytes/file), `X-Body-Length`,
///   `X-Remote`, and for file bodies `X-File-Path`, `X-File-Size`, `X-File-Exists`, `X-File-Checksum`; a memory body
///   is echoed back as the response body.
/// - `?sleep=MS`: sleeps first (an in-flight request).
/// - `/big`: a `bigBodySize` body of `bigBodyByte(_:)`.
/// - `/nocontent`: a 204 that (wrongly) carries a body; the server must not send it.
/// - `/text`: `hello head`.
struct EchoHandler: HTTPHandler {
    static let bigBodySize = 32 << 20

    let memoryMax: Int
    let fileMax: Int
    let observations: Observations
    /// The head-phase verdict (`admission(for:remoteAddress:)`); admits everything unless a test says otherwise.
    let admit: @Sendable (HTTPRequestHead) -> HTTPAdmission

    init(
        memoryMax: Int = 1 << 20,
        fileMax: Int = 8 << 20,
        observations: Observations = Observations(),
        admit: @escaping @Sendable (HTTPRequestHead) -> HTTPAdmission = { _ in .admit }
    ) {
        self.memoryMax = memoryMax
        self.fileMax = fileMax
        self.observations = observations
        self.admit = admit
    }

    func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy {
        head.rawPath.hasPrefix("/file") ? .file(maxBytes: self.fileMax) : .memory(maxBytes: self.memoryMax)
    }

    func admission(for head: HTTPRequestHead, remoteAddress: String) -> HTTPAdmission { self.admit(head) }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let head = request.head
        let query = head.rawQuery.map { URLEncoding.parseQuery($0) } ?? []
        if let ms = query.first(where: { $0.name == "sleep" }).flatMap({ Int($0.value) }) {
            try? await Task.sleep(for: .milliseconds(ms))
        }
        switch head.rawPath {
        case "/big":
            self.observations.record("big ready")
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"], body: bigBody)
        case "/nocontent":
            return HTTPResponse(status: 204, headers: ["X-Target": head.target], body: Array("must not be sent".utf8))
        case "/text":
            return HTTPResponse(status: 200, contentType: "text/plain", body: "hello head")
        default:
            break
        }
        var headers: HTTPHeaders = [
            "X-Method": head.method,
            "X-Target": head.target,
            "X-Remote": request.remoteAddress,
        ]
        var body: [UInt8] = []
        switch request.body {
        case .empty:
            headers.add(name: "X-Body-Kind", value: "empty")
            headers.add(name: "X-Body-Length", value: "0")
        case .bytes(let b):
            headers.add(name: "X-Body-Kind", value: "bytes")
            headers.add(name: "X-Body-Length", value: "\(b.count)")
            body = b
        case .file(let path, let size):
            let contents = readWholeFile(path)
            headers.add(name: "X-Body-Kind", value: "file")
            headers.add(name: "X-Body-Length", value: "\(size)")
            headers.add(name: "X-File-Path", value: path)
            headers.add(name: "X-File-Size", value: "\(contents?.count ?? -1)")
            headers.add(name: "X-File-Exists", value: "\(contents != nil)")
            headers.add(name: "X-File-Checksum", value: "\(fnv1a(contents ?? []))")
            self.observations.record("file \(path) exists=\(contents != nil) size=\(contents?.count ?? -1)")
        }
        self.observations.record("handled \(head.method) \(head.target)")
        return HTTPResponse(status: 200, headers: headers, body: body)
    }
}

func bigBodyByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i % 251 &+ i >> 20) }

let bigBody: [UInt8] = [UInt8](unsafeUninitializedCapacity: EchoHandler.bigBodySize) { buffer, count in
    for i in 0..<EchoHandler.bigBodySize { buffer[i] = bigBodyByte(i) }
    count = EchoHandler.bigBodySize
}

func fnv1a<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        h ^= UInt64(b)
        h &*= 0x100_0000_01b3
    }
    return h
}

func readWholeFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return n == 0 ? out : nil }
        out += chunk[0..<n]
    }
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

/// Names in a directory (without `.` and `..`).
func directoryEntries(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Open descriptors of this process.
func openFileDescriptorCount() -> Int { directoryEntries("/proc/self/fd").count }

/// Sockets in this network namespace whose local port is `port` and that some process still holds (inode ≠ 0),
/// apart from the listening one: server-side connections that are open or leaked (CLOSE_WAIT).
func heldServerSockets(port: Int) -> Int {
    guard let table = readWholeFile("/proc/net/tcp") else { return -1 }
    let hex = String(port, radix: 16, uppercase: true)
    let hexPort = ":" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    var count = 0
    for line in String(decoding: table, as: UTF8.self).split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard fields.count > 9 else { continue }
        let local = fields[1]
        let state = fields[3]
        let inode = fields[9]
        if local.hasSuffix(hexPort) && state != "0A" && inode != "0" { count += 1 }
    }
    return count
}

/// A per-test spool directory under /tmp, removed (with anything left in it) by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/koper-httptest-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        self.path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var entries: [String] { directoryEntries(self.path) }

    func remove() {
        for name in self.entries { unlink(self.path + "/" + name) }
        rmdir(self.path)
    }
}

let quietLogger = Logger(label: "koper.http.test") { _ in SwiftLogNoOpLogHandler() }

func testConfiguration(
    maxConnections: Int = 64,
    limits: HTTPParserLimits = HTTPParserLimits(),
    headTimeout: Duration = .seconds(10),
    idleTimeout: Duration = .seconds(30),
    ioTimeout: Duration = .seconds(30),
    temporaryDirectory: String = "/tmp"
) -> HTTPServerConfiguration {
    HTTPServerConfiguration(
        host: "127.0.0.1",
        port: 0,
        maxConnections: maxConnections,
        limits: limits,
        headTimeout: headTimeout,
        idleTimeout: idleTimeout,
        ioTimeout: ioTimeout,
        temporaryDirectory: temporaryDirectory
    )
}

/// Starts a server on 127.0.0.1 port 0, runs `body`, then shuts the server down.
func withServer<T: Sendable>(
    _ configuration: HTTPServerConfiguration = testConfiguration(),
    handler: EchoHandler = EchoHandler(),
    _ body: (Server, Int) async throws -> T
) async throws -> T {
    let server = Server(configuration: configuration, handler: handler, logger: quietLogger)
    let port = try server.start()
    do {
        let result = try await body(server, port)
        await server.shutdown(gracePeriod: .seconds(1))
        return result
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
}

/// Blocking client work, off the cooperative pool (the server's handlers need it).
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await TestHTTPClient.runBlocking(body)
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) / 1e18
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
