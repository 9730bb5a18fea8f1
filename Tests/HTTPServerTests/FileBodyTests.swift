import HTTPCore
import HTTPServer
import Logging
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Serves file regions from a directory: `GET /NAME?offset=A&length=B&status=S` (defaults: whole file, 200), and
/// `/pipe` answers with the read end of a pipe it keeps the write end of (the write end tells whether the server
/// closed the read end). Records `fd NAME N` for every descriptor it hands over.
struct FileBodyHandler: HTTPHandler {
    let directory: String
    let observations: Observations
    let pipeWriteEnds: PipeEnds

    func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy { .memory(maxBytes: 1 << 20) }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let head = request.head
        let query = Dictionary(
            (head.rawQuery.map { URLEncoding.parseQuery($0) } ?? []).map { ($0.name, $0.value) },
            uniquingKeysWith: { a, _ in a }
        )
        let status = query["status"].flatMap { Int($0) } ?? 200
        if let ms = query["sleep"].flatMap({ Int($0) }) { try? await Task.sleep(for: .milliseconds(ms)) }
        let name = String(head.rawPath.dropFirst())
        if name == "pipe" {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { return HTTPResponse(status: 500) }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            self.pipeWriteEnds.add(fds[1])
            self.observations.record("pipe \(fds[0])")
            return .file(
                status: status,
                HTTPFileBody(descriptor: fds[0], offset: 0, length: Int(query["length"] ?? "10") ?? 10)
            )
        }
        let path = self.directory + "/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return HTTPResponse(status: 404) }
        var st = stat()
        fstat(fd, &st)
        let offset = query["offset"].flatMap { Int($0) } ?? 0
        let length = query["length"].flatMap { Int($0) } ?? (Int(st.st_size) - offset)
        self.observations.record("fd \(name) \(fd)")
        let body = HTTPFileBody(descriptor: fd, offset: offset, length: length)
        return .file(status: status, headers: ["Content-Type": "application/octet-stream"], body)
    }
}

/// Write ends of pipes handed out by `/pipe`, closed at the end of a test.
final class PipeEnds: Sendable {
    private let fds = Mutex<[Int32]>([])
    func add(_ fd: Int32) { self.fds.withLock { $0.append(fd) } }
    var all: [Int32] { self.fds.withLock { $0 } }
    func closeAll() {
        self.fds.withLock { fds in
            for fd in fds { close(fd) }
            fds = []
        }
    }
}

/// True once no descriptor of this process refers to the read side of the pipe whose write end is `writeFD`
/// (a write end reports POLLERR when every read end is closed).
func pipeReadEndClosed(writeFD: Int32) -> Bool {
    var p = pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)
    return poll(&p, 1, 0) == 1 && (p.revents & Int16(POLLERR)) != 0
}

/// True while descriptor `fd` of this process still refers to `path`.
func descriptorRefersTo(_ fd: Int32, _ path: String) -> Bool {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
    guard n > 0 else { return false }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == path
}

/// Writes `count` bytes of `fileByte(_:)` to `path`.
func writePatternFile(_ path: String, count: Int) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0)
    defer { close(fd) }
    let bytes = (0..<count).map(fileByte)
    var offset = 0
    while offset < count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
        precondition(n > 0)
        offset += n
    }
}

/// The index just past the `\r\n\r\n` that ends a response head.
func headEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4)
    where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i + 4
    }
    return nil
}

func fileByte(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: i &* 31 &+ i >> 12) }

func withFileServer<T: Sendable>(
    _ body: (Server, Int, TemporaryDirectory, Observations, PipeEnds) async throws -> T
) async throws -> T {
    let directory = TemporaryDirectory()
    let observations = Observations()
    let pipes = PipeEnds()
    let handler = FileBodyHandler(directory: directory.path, observations: observations, pipeWriteEnds: pipes)
    let server = Server(
        configuration: testConfiguration(ioTimeout: .seconds(10)),
        handler: handler,
        logger: quietLogger
    )
    let port = try server.start()
    defer {
        pipes.closeAll()
        directory.remove()
    }
    do {
        let result = try await body(server, port, directory, observations, pipes)
        await server.shutdown(gracePeriod: .seconds(1))
        return result
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
}

/// `HTTPResponse.file`: bodies streamed from an open descriptor in bounded chunks.
@Suite("HTTP server file bodies", .serialized, .timeLimit(.minutes(2)))
struct FileBodyTests {
    @Test func fileRegionIsSentAndDescriptorClosed() async throws {
        try await withFileServer { _, port, dir, observations, _ in
            let size = 3 * 256 * 1024 + 777  // several chunks plus a tail
            writePatternFile(dir.path + "/data", count: size)
            let (whole, region) = try await blocking {
                let client = try TestHTTPClient(port: port)
                return (try client.request(path: "/data"), try client.request(path: "/data?offset=1000&length=300000"))
            }
            #expect(whole.status == 200)
            #expect(whole.header("Content-Length") == "\(size)")
            #expect(whole.body == (0..<size).map(fileByte))
            #expect(region.status == 200)
            #expect(region.header("Content-Length") == "300000")
            #expect(region.body == (1000..<301_000).map(fileByte))
            let fds = observations.all.filter { $0.hasPrefix("fd data ") }.compactMap {
                Int32($0.split(separator: " ")[2])
            }
            #expect(fds.count == 2)
            for fd in fds {
                #expect(await eventually { !descriptorRefersTo(fd, dir.path + "/data") })
            }
        }
    }

    @Test func headAndBodylessStatusesCloseTheDescriptorUnsent() async throws {
        try await withFileServer { _, port, _, _, pipes in
            let (head, noContent, after) = try await blocking {
                let client = try TestHTTPClient(port: port)
                let head = try client.request(method: "HEAD", path: "/pipe?length=12345")
                let noContent = try client.request(path: "/pipe?status=204")
                let after = try client.request(method: "HEAD", path: "/pipe?length=1")
                return (head, noContent, after)
            }
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "12345")
            #expect(head.body.isEmpty)
            #expect(noContent.status == 204)
            #expect(noContent.header("Content-Length") == nil)
            #expect(after.status == 200)
            // Nothing was ever read from the pipes (a read would have blocked or failed), and all were closed.
            #expect(pipes.all.count == 3)
            for w in pipes.all {
                #expect(await eventually { pipeReadEndClosed(writeFD: w) })
            }
        }
    }

    @Test func pipelinedFileResponsesStayInOrder() async throws {
        try await withFileServer { _, port, dir, _, _ in
            writePatternFile(dir.path + "/p", count: 600_000)
            let responses = try await blocking {
                let client = try TestHTTPClient(port: port)
                var batch: [UInt8] = []
                for i in 0..<6 {
                    batch += TestHTTPClient.requestBytes(path: "/p?offset=\(i * 50_000)&length=\(100_000 + i)")
                }
                try client.send(batch)
                return try (0..<6).map { _ in try client.readResponse() }
            }
            for (i, response) in responses.enumerated() {
                #expect(response.status == 200)
                #expect(response.body == (i * 50_000..<i * 50_000 + 100_000 + i).map(fileByte))
            }
        }
    }

    @Test func emptyFileBody() async throws {
        try await withFileServer { _, port, dir, observations, _ in
            writePatternFile(dir.path + "/empty", count: 0)
            let (response, next) = try await blocking {
                let client = try TestHTTPClient(port: port)
                return (try client.request(path: "/empty"), try client.request(path: "/empty"))
            }
            #expect(response.status == 200)
            #expect(response.header("Content-Length") == "0")
            #expect(next.status == 200)
            let fds = observations.all.compactMap {
                $0.hasPrefix("fd empty ") ? Int32($0.split(separator: " ")[2]) : nil
            }
            for fd in fds {
                #expect(await eventually { !descriptorRefersTo(fd, dir.path + "/empty") })
            }
        }
    }

    @Test func fileShorterThanPromisedClosesTheConnection() async throws {
        try await withFileServer { _, port, dir, _, _ in
            writePatternFile(dir.path + "/short", count: 1000)
            let (head, rest, closed) = try await blocking {
                let client = try TestHTTPClient(port: port, timeout: .seconds(5))
                try client.send(TestHTTPClient.requestBytes(path: "/short?length=5000"))
                let all = try client.readUntilClose()
                let end = headEnd(all) ?? all.count
                return (String(decoding: all[..<end], as: UTF8.self), all.count - end, client.sawEndOfStream)
            }
            #expect(head.contains("Content-Length: 5000"))
            #expect(rest == 1000)  // what the file had, then the connection ends
            #expect(closed)
        }
    }

    @Test func clientGoneMidBodyReleasesDescriptorAndConnection() async throws {
        try await withFileServer { server, port, dir, observations, _ in
            // 64 MiB, sparse: the reader takes a little and vanishes.
            let path = dir.path + "/sparse"
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            ftruncate(fd, 64 << 20)
            close(fd)
            try await blocking {
                let client = try TestHTTPClient(port: port)
                client.setReceiveBufferSize(16 * 1024)
                try client.send(TestHTTPClient.requestBytes(path: "/sparse"))
                var got = 0
                while got < 1 << 20 { got += try client.receiveSome().count }
                client.abort()
            }
            let served = observations.all.compactMap {
                $0.hasPrefix("fd sparse ") ? Int32($0.split(separator: " ")[2]) : nil
            }
            #expect(served.count == 1)
            #expect(await eventually { server.connectionCount == 0 })
            #expect(await eventually { !descriptorRefersTo(served[0], path) })
        }
    }

    @Test func responseForClosedConnectionClosesDescriptor() async throws {
        try await withFileServer { _, port, _, _, pipes in
            try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(TestHTTPClient.requestBytes(path: "/pipe?sleep=300"))
                client.abort()
            }
            #expect(await eventually { pipes.all.count == 1 })
            #expect(await eventually { pipeReadEndClosed(writeFD: pipes.all[0]) })
        }
    }
}
