import Dispatch
import HTTPCore
import HTTPServer
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Decision 0011 over real sockets: the head-phase admission, the spool quota, the per-client connection and
/// upload limits, the minimum body rate and the start-up cleanup of orphaned spool files.
///
/// Serialized: the flood test opens thousands of sockets and the others measure time.
@Suite("HTTP server abuse limits", .serialized, .timeLimit(.minutes(3)))
struct AbuseLimitTests {
    static func configuration(
        spool: String,
        maxConnections: Int = 64,
        maxConnectionsPerClient: Int = 256,
        maxUploadsPerClient: Int = 4,
        spoolQuotaBytes: Int = 8 << 30,
        minBodyBytesPerWindow: Int = 64 << 10,
        bodyRateWindow: Duration = .seconds(10)
    ) -> HTTPServerConfiguration {
        HTTPServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            maxConnections: maxConnections,
            headTimeout: .seconds(10),
            idleTimeout: .seconds(30),
            ioTimeout: .seconds(30),
            temporaryDirectory: spool,
            maxConnectionsPerClient: maxConnectionsPerClient,
            maxUploadsPerClient: maxUploadsPerClient,
            spoolQuotaBytes: spoolQuotaBytes,
            minBodyBytesPerWindow: minBodyBytesPerWindow,
            bodyRateWindow: bodyRateWindow
        )
    }

    /// Records the most files and bytes seen in `directory` until stopped.
    final class SpoolWatch: Sendable {
        let directory: String
        let most = Mutex<(files: Int, bytes: Int)>((0, 0))
        let stopped = Atomic<Bool>(false)

        init(_ directory: String) { self.directory = directory }

        func run() async {
            while !self.stopped.load(ordering: .relaxed) {
                var bytes = 0
                let names = directoryEntries(self.directory)
                for name in names {
                    var st = stat()
                    if stat(self.directory + "/" + name, &st) == 0 { bytes += Int(st.st_size) }
                }
                self.most.withLock { $0 = (max($0.files, names.count), max($0.bytes, bytes)) }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    static func head(_ path: String, length: Int, extra: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Length: \(length)\r\n\(extra)\r\n"
    }

    // MARK: Admission

    @Test func refusalOnTheHeadStoresNoBodyByte() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let decided = Atomic<Int>(0)
        let handler = EchoHandler(
            fileMax: 2 << 30,
            admit: { head in
                guard head.rawPath.hasPrefix("/file") else { return .admit }
                if head.rawPath.hasPrefix("/file/sync") {
                    return .refuse(HTTPResponse(status: 403, contentType: "text/plain", body: "not yours\n"))
                }
                if head.headers["Authorization"] == "Bearer ok" { return .admit }
                return .pending { decide in
                    // A database lookup takes a while; the body must wait for it, unread.
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) {
                        decided.add(1, ordering: .relaxed)
                        decide(.refuse(HTTPResponse(status: 401, contentType: "text/plain", body: "login first\n")))
                    }
                }
            }
        )
        try await withServer(Self.configuration(spool: spool.path), handler: handler) { server, port in
            let watch = SpoolWatch(spool.path)
            let watching = Task { await watch.run() }
            // Eight anonymous 1 GiB uploads at once, each pushing 4 MiB of its body before reading the answer.
            let answers = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for i in 0..<8 {
                    group.addTask {
                        try await blocking {
                            let client = try TestHTTPClient(port: port, timeout: .seconds(10))
                            try client.send(Self.head("/file/upload-\(i)", length: 1 << 30))
                            let chunk = [UInt8](repeating: 0x41, count: 64 << 10)
                            for _ in 0..<64 {
                                if (try? client.send(chunk)) == nil { break }
                            }
                            let response = try client.readResponse()
                            return (response.status, response.bodyString)
                        }
                    }
                }
                var all: [(Int, String)] = []
                for try await answer in group { all.append(answer) }
                return all
            }
            #expect(answers.count == 8)
            #expect(answers.allSatisfy { $0 == (401, "login first\n") })
            #expect(decided.load(ordering: .relaxed) == 8)
            // A synchronous refusal works the same way (and closes the connection).
            let sync = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(Self.head("/file/sync", length: 1 << 20))
                return try client.readResponse()
            }
            #expect(sync.status == 403 && sync.closesConnection)
            watch.stopped.store(true, ordering: .relaxed)
            await watching.value
            let most = watch.most.withLock { $0 }
            #expect(most.files == 0 && most.bytes == 0, "spool held \(most.files) files, \(most.bytes) bytes")
            #expect(server.spoolBytesReserved == 0)
            // An admitted upload is still spooled and handed over.
            let admitted = try await blocking {
                try TestHTTPClient(port: port).request(
                    method: "POST",
                    path: "/file/ok",
                    headers: [("Authorization", "Bearer ok")],
                    body: [UInt8](repeating: 7, count: 100_000)
                )
            }
            #expect(admitted.status == 200)
            #expect(admitted.header("X-Body-Kind") == "file" && admitted.header("X-File-Size") == "100000")
            #expect(await eventually { spool.entries.isEmpty && server.spoolBytesReserved == 0 })
        }
    }

    // MARK: Spool quota

    @Test func spoolQuotaAnswers503WithRetryAfter() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let config = Self.configuration(spool: spool.path, spoolQuotaBytes: 1 << 20)
        try await withServer(config, handler: EchoHandler(fileMax: 8 << 20)) { server, port in
            // A holds 768 KiB of the 1 MiB quota while its body is still coming.
            let a = try TestHTTPClient(port: port)
            try await blocking { try a.send(Self.head("/file/a", length: 768 << 10) + "x") }
            #expect(await eventually { server.spoolBytesReserved == 768 << 10 })
            func post(_ path: String, _ length: Int) async throws -> TestHTTPResponse {
                try await blocking {
                    let client = try TestHTTPClient(port: port)
                    try client.send(Self.head(path, length: length))
                    // The whole body when it is small; refusals come before it all arrives anyway.
                    _ = try? client.send([UInt8](repeating: 1, count: min(length, 1 << 20)))
                    return try client.readResponse()
                }
            }
            let b = try await post("/file/b", 512 << 10)
            #expect(b.status == 503)
            #expect(b.header("Retry-After") != nil)
            let alone = try await post("/file/c", 2 << 20)  // beyond the whole quota, within the route's cap
            #expect(alone.status == 503 && alone.header("Retry-After") != nil)
            let oversize = try await post("/file/d", 9 << 20)  // beyond the route's cap
            #expect(oversize.status == 413)
            // A chunked body takes quota as it grows and is refused once it would go beyond it.
            let chunked = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send("POST /file/e HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in 0..<4 {
                    let piece = [UInt8](repeating: 2, count: 256 << 10)
                    if (try? client.send(Array("40000\r\n".utf8) + piece + Array("\r\n".utf8))) == nil { break }
                }
                return try client.readResponse()
            }
            #expect(chunked.status == 503 && chunked.header("Retry-After") != nil)
            #expect(server.spoolBytesReserved == 768 << 10)
            // A completes; its quota comes back once the handler is done, and B fits now.
            let done = try await blocking {
                try a.send([UInt8](repeating: 3, count: (768 << 10) - 1))
                return try a.readResponse()
            }
            #expect(done.status == 200 && done.header("X-File-Size") == "\(768 << 10)")
            #expect(await eventually { server.spoolBytesReserved == 0 })
            let again = try await post("/file/b", 512 << 10)
            #expect(again.status == 200)
            #expect(await eventually { spool.entries.isEmpty && server.spoolBytesReserved == 0 })
            a.close()
        }
    }

    // MARK: Per-client limits

    @Test func perClientUploadLimitAnswers429() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let config = Self.configuration(spool: spool.path, maxUploadsPerClient: 2)
        try await withServer(config, handler: EchoHandler()) { server, port in
            let held = try (0..<2).map { _ in try TestHTTPClient(port: port) }
            for (i, client) in held.enumerated() {
                try await blocking { try client.send(Self.head("/file/held-\(i)", length: 1000) + "x") }
            }
            #expect(await eventually { server.spoolBytesReserved == 2000 })
            let third = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(Self.head("/file/third", length: 1000))
                return try client.readResponse()
            }
            #expect(third.status == 429 && third.header("Retry-After") != nil)
            // Small bodies in memory are not uploads, and another client has its own allowance.
            let memory = try await blocking {
                try TestHTTPClient(port: port).request(method: "POST", path: "/memory", body: Array("hi".utf8))
            }
            #expect(memory.status == 200)
            let other = try await blocking {
                try TestHTTPClient(port: port, localHost: "127.0.0.2").request(
                    method: "POST",
                    path: "/file/other",
                    body: [UInt8](repeating: 5, count: 1000)
                )
            }
            #expect(other.status == 200 && other.header("X-Remote")?.hasPrefix("127.0.0.2:") == true)
            let finished = try await blocking {
                try held.map { client in
                    try client.send([UInt8](repeating: 4, count: 999))
                    return try client.readResponse().status
                }
            }
            #expect(finished == [200, 200])
            let retried = try await blocking {
                try TestHTTPClient(port: port).request(
                    method: "POST",
                    path: "/file/third",
                    body: [UInt8](repeating: 6, count: 1000)
                )
            }
            #expect(retried.status == 200)
            #expect(await eventually { spool.entries.isEmpty && server.spoolBytesReserved == 0 })
            for client in held { client.close() }
        }
    }

    // MARK: Minimum body rate

    @Test func trickledBodyIsCutByTheMinimumRate() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let config = Self.configuration(
            spool: spool.path,
            minBodyBytesPerWindow: 1024,
            bodyRateWindow: .seconds(1)
        )
        try await withServer(config, handler: EchoHandler()) { server, port in
            // One byte every 250 ms: steady progress (the 30 s I/O timeout never fires), far below the rate.
            let (status, elapsed) = try await blocking {
                let client = try TestHTTPClient(port: port, timeout: .milliseconds(250))
                let clock = ContinuousClock()
                let start = clock.now
                try client.send(Self.head("/file/trickle", length: 10_000))
                while clock.now - start < .seconds(8) {
                    if (try? client.send("z")) == nil { break }
                    do {
                        client.setTimeout(.milliseconds(250))
                        let response = try client.readResponse()
                        return (response.status, clock.now - start)
                    } catch let e as TestHTTPClientError where e.kind == .timeout {
                        continue
                    }
                }
                return (0, clock.now - start)
            }
            #expect(status == 408)
            #expect(seconds(elapsed) >= 0.9 && seconds(elapsed) < 2.8, "cut after \(elapsed)")
            #expect(await eventually { spool.entries.isEmpty && server.spoolBytesReserved == 0 })
            // A body that keeps the rate may take many windows.
            let (healthy, took) = try await blocking {
                let client = try TestHTTPClient(port: port)
                let clock = ContinuousClock()
                let start = clock.now
                try client.send(Self.head("/file/steady", length: 24 << 10))
                for _ in 0..<12 {
                    try client.send([UInt8](repeating: 9, count: 2 << 10))
                    usleep(250_000)
                }
                return (try client.readResponse(), clock.now - start)
            }
            #expect(healthy.status == 200 && healthy.header("X-File-Size") == "\(24 << 10)")
            #expect(seconds(took) > 2.5)
        }
    }

    // MARK: Flood

    /// Raises this process's descriptor limit to at least `wanted` (within the hard limit).
    static func raiseDescriptorLimit(to wanted: rlim_t) -> rlim_t {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < wanted {
            limit.rlim_cur = min(wanted, limit.rlim_max)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return limit.rlim_cur
    }

    @Test func fourThousandTrickledConnectionsFromOneClientLeaveAnotherServed() async throws {
        let floodSize = 4000
        let limit = Self.raiseDescriptorLimit(to: 12_000)
        try #require(limit >= 9000, "RLIMIT_NOFILE is \(limit)")
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let config = Self.configuration(
            spool: spool.path,
            maxConnections: 4096,
            maxConnectionsPerClient: 64,
            minBodyBytesPerWindow: 1024,
            bodyRateWindow: .seconds(1)
        )
        try await withServer(config, handler: EchoHandler()) { server, port in
            // The flood: 4,000 connections from 127.0.0.1, each starting a body it then trickles.
            let flood = try await blocking {
                var clients: [TestHTTPClient] = []
                for i in 0..<floodSize {
                    let client = try TestHTTPClient(port: port, timeout: .milliseconds(200))
                    _ = try? client.send(Self.head("/trickle/\(i)", length: 100_000) + "a")
                    clients.append(client)
                }
                return clients
            }
            #expect(flood.count == floodSize)
            let heldByFlood = server.connectionCount(client: "127.0.0.1")
            #expect(heldByFlood <= 64, "the flooding client holds \(heldByFlood) connections")
            let stop = Atomic<Bool>(false)
            let trickler = Task {
                try await blocking {
                    while !stop.load(ordering: .relaxed) {
                        for client in flood { _ = try? client.send("b") }
                        usleep(500_000)
                    }
                }
            }
            // Another client (127.0.0.2) is served promptly, again and again, while the flood goes on.
            var latencies: [Double] = []
            var statuses: [Int] = []
            for i in 0..<6 {
                let (status, took) = try await blocking {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let client = try TestHTTPClient(port: port, localHost: "127.0.0.2", timeout: .seconds(5))
                    let response = try client.request(path: "/other/\(i)")
                    return (response.status, clock.now - start)
                }
                statuses.append(status)
                latencies.append(seconds(took))
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(statuses == Array(repeating: 200, count: 6))
            #expect(latencies.allSatisfy { $0 <= 1.0 }, "latencies \(latencies)")
            // The trickled bodies that got in are cut by the minimum rate although they never stop progressing.
            #expect(await eventually(timeout: .seconds(6)) { server.connectionCount(client: "127.0.0.1") == 0 })
            stop.store(true, ordering: .relaxed)
            try await trickler.value
            print("flood: \(floodSize) connections, at most \(heldByFlood) held; other client latencies \(latencies)")
            for client in flood { client.close() }
        }
    }

    // MARK: Start-up cleanup

    @Test func orphanedBodiesAreRemovedAndNothingElse() throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        for name in ["koper-body-1f2e", "koper-body-abc", "upload-keep", "notes.txt"] {
            let fd = open(spool.path + "/" + name, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            _ = write(fd, "data", 4)
            close(fd)
        }
        #expect(Server.removeOrphanedBodies(in: spool.path) == 2)
        #expect(Set(spool.entries) == ["upload-keep", "notes.txt"])
        #expect(Server.removeOrphanedBodies(in: spool.path + "/missing") == 0)
    }
}
