import HTTPCore
import HTTPServer
import Logging
import StaticFiles
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

let quietLogger = Logger(label: "koper.static.test") { _ in SwiftLogNoOpLogHandler() }

/// A throw-away directory: `base/root` is served, `base/outside` sits next to it (for escape attempts).
final class ResultsTree: Sendable {
    let base: String
    var root: String { self.base + "/root" }
    var outside: String { self.base + "/outside" }

    init() {
        var template = Array("/tmp/koper-static-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        self.base = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        mkdir(self.root, 0o755)
        mkdir(self.outside, 0o755)
    }

    /// Creates `relative` below the root (parents included) holding `bytes`.
    func write(_ relative: String, _ bytes: [UInt8], under top: String? = nil) {
        let path = (top ?? self.root) + "/" + relative
        self.makeDirectories(String(path[..<path.lastIndex(of: "/")!]))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "open \(path): errno \(errno)")
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            precondition(n > 0)
            offset += n
        }
    }

    func write(_ relative: String, _ text: String, under top: String? = nil) {
        self.write(relative, Array(text.utf8), under: top)
    }

    func mkdirs(_ relative: String) { self.makeDirectories(self.root + "/" + relative) }

    func makeDirectories(_ path: String) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o755)
        }
    }

    /// `relative` (below the root) becomes a symlink to `target` (taken as is).
    func symlink(_ relative: String, to target: String) {
        let path = self.root + "/" + relative
        precondition(Glibc.symlink(target, path) == 0, "symlink \(path): errno \(errno)")
    }

    /// Sets the modification time of `relative` (below the root).
    func setModified(_ relative: String, seconds: Int) {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        utimensat(AT_FDCWD, self.root + "/" + relative, &times, 0)
    }

    func remove() {
        Self.removeTree(self.base)
    }

    static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            if let dir = opendir(path) {
                var names: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafePointer(to: entry.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                    }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(dir)
                for name in names { removeTree(path + "/" + name) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// Starts a real server on 127.0.0.1 port 0 serving `root` (default `tree.root`) under `/results`, runs `body`, shuts it down.
func withStaticServer<T: Sendable>(
    _ tree: ResultsTree,
    root: String? = nil,
    ioTimeout: Duration = .seconds(30),
    _ body: (Server, Int) async throws -> T
) async throws -> T {
    let handler = StaticFileHandler(root: root ?? tree.root, urlPrefix: "/results", logger: quietLogger)
    let configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, maxConnections: 64, ioTimeout: ioTimeout)
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

/// One request on a fresh connection.
func fetch(
    _ port: Int,
    _ path: String,
    method: String = "GET",
    headers: [(String, String)] = []
) async throws -> TestHTTPResponse {
    try await blocking {
        let client = try TestHTTPClient(port: port)
        return try client.request(method: method, path: path, headers: headers)
    }
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return -1 }
    let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// The `href` values of an index page, in order.
func hrefs(_ html: String) -> [String] {
    var out: [String] = []
    var rest = Substring(html)
    while let start = rest.firstRange(of: "href=\"") {
        rest = rest[start.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { break }
        out.append(String(rest[..<end]))
        rest = rest[rest.index(after: end)...]
    }
    return out
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
