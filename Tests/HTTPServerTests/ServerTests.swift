import HTTPCore
import HTTPServer
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Conformance of the Dispatch HTTP/1.1 server over real sockets on 127.0.0.1.
///
/// Serialized: several tests measure time or count this process's file descriptors, which parallel socket tests
/// would disturb.
@Suite("HTTP server over real sockets", .serialized, .timeLimit(.minutes(2)))
struct ServerTests {
    // MARK: Keep-alive and pipelining

    @Test func keepAliveReusesOneConnection() async throws {
        try await withServer { server, port in
            let (responses, localPort, openDuring) = try await blocking {
                let client = try TestHTTPClient(port: port)
                var responses: [TestHTTPResponse] = []
                for i in 0..<200 {
                    responses.append(try client.request(path: "/k/\(i)"))
                }
                return (responses, client.localPort, server.connectionCount)
            }
            #expect(responses.count == 200)
            #expect(responses.allSatisfy { $0.status == 200 && !$0.closesConnection })
            #expect(responses.enumerated().allSatisfy { $0.element.header("X-Target") == "/k/\($0.offset)" })
            // Every request arrived over the same TCP connection.
            #expect(Set(responses.map { $0.header("X-Remote") ?? "" }) == ["127.0.0.1:\(localPort)"])
            #expect(openDuring == 1)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withServer { _, port in
            let responses = try await blocking {
                let client = try TestHTTPClient(port: port)
                var batch: [UInt8] = []
                var methods: [String] = []
                for i in 0..<30 {
                    let method = ["GET", "POST", "HEAD"][i % 3]
                    methods.append(method)
                    let body: [UInt8]? = method == "POST" ? Array("body-\(i)".utf8) : nil
                    batch += TestHTTPClient.requestBytes(method: method, path: "/p/\(i)", body: body)
                }
                try client.send(batch)  // all at once
                return try methods.map { try client.readResponse(isHEAD: $0 == "HEAD") }
            }
            #expect(responses.count == 30)
            for (i, response) in responses.enumerated() {
                #expect(response.status == 200)
                #expect(response.header("X-Target") == "/p/\(i)")
                #expect(response.header("X-Method") == ["GET", "POST", "HEAD"][i % 3])
                if i % 3 == 1 { #expect(response.bodyString == "body-\(i)") }
            }
        }
    }

    @Test func pipelinedRequestsTrickledByteByByte() async throws {
        try await withServer { _, port in
            let responses = try await blocking {
                let client = try TestHTTPClient(port: port)
                let batch =
                    TestHTTPClient.requestBytes(path: "/a")
                    + TestHTTPClient.requestBytes(method: "POST", path: "/b", body: Array("xyz".utf8))
                for byte in batch { try client.send([byte]) }
                return [try client.readResponse(), try client.readResponse()]
            }
            #expect(responses.map(\.status) == [200, 200])
            #expect(responses.map { $0.header("X-Target") } == ["/a", "/b"])
            #expect(responses[1].bodyString == "xyz")
        }
    }

    @Test func headResponsesCarryLengthButNoBody() async throws {
        try await withServer { _, port in
            let (head, next) = try await blocking {
                let client = try TestHTTPClient(port: port)
                return (try client.request(method: "HEAD", path: "/text"), try client.request(path: "/after-head"))
            }
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == "10")
            #expect(head.body.isEmpty)
            // Had the server sent the body anyway, this response would be garbage.
            #expect(next.status == 200)
            #expect(next.header("X-Target") == "/after-head")
        }
    }

    @Test func noContentResponsesNeverCarryABody() async throws {
        try await withServer { _, port in
            let (first, second) = try await blocking {
                let client = try TestHTTPClient(port: port)
                return (try client.request(path: "/nocontent"), try client.request(path: "/after-204"))
            }
            #expect(first.status == 204)
            #expect(first.header("Content-Length") == nil)
            #expect(second.status == 200)
            #expect(second.header("X-Target") == "/after-204")
        }
    }

    @Test func http10ClosesUnlessKeepAliveIsAsked() async throws {
        try await withServer { _, port in
            let (plain, plainRest, kept, keptAgain) = try await blocking {
                let a = try TestHTTPClient(port: port)
                try a.send("GET /ten HTTP/1.0\r\n\r\n")
                let plain = try a.readResponse()
                let rest = try a.readUntilClose()
                let b = try TestHTTPClient(port: port)
                try b.send("GET /ten-ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                let kept = try b.readResponse()
                try b.send("GET /ten-ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                return (plain, rest, kept, try b.readResponse())
            }
            #expect(plain.status == 200 && plain.closesConnection)
            #expect(plainRest.isEmpty)
            #expect(kept.status == 200 && !kept.closesConnection)
            #expect(kept.header("Connection")?.lowercased() == "keep-alive")  // an HTTP/1.0 client needs to be told
            #expect(keptAgain.header("X-Target") == "/ten-ka2")
        }
    }

    // MARK: Request bodies

    @Test func postWithContentLength() async throws {
        try await withServer { _, port in
            let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
            let response = try await blocking {
                try TestHTTPClient(port: port).request(method: "POST", path: "/cl", body: body)
            }
            #expect(response.status == 200)
            #expect(response.header("X-Body-Kind") == "bytes")
            #expect(response.header("X-Body-Length") == "200000")
            #expect(response.body == body)
        }
    }

    @Test func postWithChunkedBody() async throws {
        try await withServer { _, port in
            let pieces: [[UInt8]] = [Array("hello ".utf8), Array(repeating: 0x41, count: 70_000), Array(" world".utf8)]
            let (response, next) = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(
                    TestHTTPClient.requestBytes(
                        method: "POST",
                        path: "/chunked",
                        headers: [("Transfer-Encoding", "chunked")]
                    )
                )
                for (i, piece) in pieces.enumerated() {
                    try client.send(
                        Array("\(String(piece.count, radix: 16));piece=\(i)\r\n".utf8) + piece + Array("\r\n".utf8)
                    )
                    usleep(20_000)
                }
                try client.send("0\r\nX-Trailer: done\r\n\r\n")
                let response = try client.readResponse()
                return (response, try client.request(path: "/after-chunked"))
            }
            #expect(response.status == 200)
            #expect(response.body == pieces.flatMap { $0 })
            #expect(response.header("X-Body-Length") == "\(70_012)")
            #expect(next.header("X-Target") == "/after-chunked")
        }
    }

    @Test func expectContinue() async throws {
        try await withServer { _, port in
            let (interim, final, together, after) = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(
                    TestHTTPClient.requestBytes(
                        method: "POST",
                        path: "/expect",
                        headers: [("Expect", "100-continue"), ("Content-Length", "5")]
                    )
                )
                let interim = try client.readResponse(skippingInterim: false)
                try client.send("hello")
                let final = try client.readResponse()
                // Head and body in one write: the 100 is optional, the final response is not.
                let together = try client.request(
                    method: "POST",
                    path: "/expect2",
                    headers: [("Expect", "100-continue")],
                    body: Array("world".utf8)
                )
                return (interim, final, together, try client.request(path: "/after-expect"))
            }
            #expect(interim.status == 100)
            #expect(final.status == 200)
            #expect(final.bodyString == "hello")
            #expect(together.status == 200)
            #expect(together.bodyString == "world")
            #expect(after.header("X-Target") == "/after-expect")
        }
    }

    @Test func expectContinueForAnOversizeBodyGets413Instead() async throws {
        try await withServer(handler: EchoHandler(memoryMax: 100)) { _, port in
            let (response, closed) = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(
                    TestHTTPClient.requestBytes(
                        method: "POST",
                        path: "/mem",
                        headers: [("Expect", "100-continue"), ("Content-Length", "101")]
                    )
                )
                return (try client.readResponse(skippingInterim: false), client.waitForClose())
            }
            #expect(response.status == 413)  // no 100 first: the client must not start sending
            #expect(closed)
        }
    }

    @Test func fileBodyIsSpooledAndDeletedAfterTheHandler() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        try await withServer(testConfiguration(temporaryDirectory: spool.path)) { _, port in
            let body = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
            let chunked = Array(repeating: UInt8(ascii: "z"), count: 100_000)
            let (viaLength, viaChunks, memory) = try await blocking {
                let client = try TestHTTPClient(port: port)
                let viaLength = try client.request(method: "POST", path: "/file/upload", body: body)
                var request = TestHTTPClient.requestBytes(
                    method: "POST",
                    path: "/file/chunked",
                    headers: [("Transfer-Encoding", "chunked")]
                )
                request += Array("186a0\r\n".utf8) + chunked + Array("\r\n0\r\n\r\n".utf8)
                try client.send(request)
                let viaChunks = try client.readResponse()
                return (viaLength, viaChunks, try client.request(method: "POST", path: "/mem", body: [1, 2, 3]))
            }
            #expect(viaLength.status == 200)
            #expect(viaLength.header("X-Body-Kind") == "file")
            #expect(viaLength.header("X-File-Exists") == "true")
            #expect(viaLength.header("X-Body-Length") == "3000000")
            #expect(viaLength.header("X-File-Size") == "3000000")
            #expect(viaLength.header("X-File-Checksum") == "\(fnv1a(body))")
            let path = try #require(viaLength.header("X-File-Path"))
            #expect(path.hasPrefix(spool.path + "/"))
            #expect(!fileExists(path))
            #expect(viaChunks.header("X-File-Size") == "100000")
            #expect(viaChunks.header("X-File-Checksum") == "\(fnv1a(chunked))")
            #expect(memory.header("X-Body-Kind") == "bytes")
            #expect(spool.entries.isEmpty)
        }
    }

    @Test func spooledFileOutlivesAClientThatDisconnects() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let observations = Observations()
        let handler = EchoHandler(observations: observations)
        try await withServer(testConfiguration(temporaryDirectory: spool.path), handler: handler) { _, port in
            try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(
                    TestHTTPClient.requestBytes(
                        method: "POST",
                        path: "/file/slow?sleep=300",
                        body: Array(repeating: 7, count: 4096)
                    )
                )
                usleep(50_000)  // the request is with the handler now
                client.abort()
            }
            let seen = try #require(await observations.waitFor(prefix: "file "))
            #expect(seen.hasSuffix("exists=true size=4096"))
            #expect(await eventually { spool.entries.isEmpty })
        }
    }

    // MARK: Refusals

    @Test func declaredOversizeBodyIs413() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let handler = EchoHandler(memoryMax: 1000, fileMax: 5000)
        try await withServer(testConfiguration(temporaryDirectory: spool.path), handler: handler) { _, port in
            let (memory, memoryRest, file, sentBody) = try await blocking {
                let a = try TestHTTPClient(port: port)
                try a.send(
                    TestHTTPClient.requestBytes(method: "POST", path: "/mem", headers: [("Content-Length", "1001")])
                )
                let memory = try a.readResponse()
                let rest = try a.readUntilClose()
                // The client sends its whole body before reading; it must still see the 413, not a reset.
                let b = try TestHTTPClient(port: port)
                try b.send(
                    TestHTTPClient.requestBytes(
                        method: "POST",
                        path: "/file/x",
                        body: Array(repeating: 1, count: 200_000)
                    )
                )
                let file = try b.readResponse()
                return (memory, rest, file, b.waitForClose())
            }
            #expect(memory.status == 413)
            #expect(memory.closesConnection)
            #expect(memoryRest.isEmpty)
            #expect(file.status == 413)
            #expect(sentBody)
            #expect(spool.entries.isEmpty)
        }
    }

    @Test func chunkedOverrunIs413() async throws {
        let spool = TemporaryDirectory()
        defer { spool.remove() }
        let handler = EchoHandler(memoryMax: 1000, fileMax: 5000)
        try await withServer(testConfiguration(temporaryDirectory: spool.path), handler: handler) { _, port in
            let (memory, file, closed) = try await blocking {
                let a = try TestHTTPClient(port: port)
                var request = TestHTTPClient.requestBytes(
                    method: "POST",
                    path: "/mem",
                    headers: [("Transfer-Encoding", "chunked")]
                )
                for _ in 0..<3 {
                    request += Array("190\r\n".utf8) + Array(repeating: 2, count: 400) + Array("\r\n".utf8)
                }
                try a.send(request)  // 1200 bytes, no terminating chunk
                let memory = try a.readResponse()
                let b = try TestHTTPClient(port: port)
                request = TestHTTPClient.requestBytes(
                    method: "POST",
                    path: "/file/x",
                    headers: [("Transfer-Encoding", "chunked")]
                )
                for _ in 0..<6 {
                    request += Array("3e8\r\n".utf8) + Array(repeating: 3, count: 1000) + Array("\r\n".utf8)
                }
                try b.send(request + Array("0\r\n\r\n".utf8))
                let file = try b.readResponse()
                return (memory, file, a.waitForClose() && b.waitForClose())
            }
            #expect(memory.status == 413)
            #expect(file.status == 413)
            #expect(file.closesConnection)
            #expect(closed)
            #expect(spool.entries.isEmpty)
        }
    }

    @Test func overlongRequestLineIs414() async throws {
        try await withServer { _, port in
            let (response, closed) = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send("GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n")
                return (try client.readResponse(), client.waitForClose())
            }
            #expect(response.status == 414)
            #expect(response.closesConnection)
            #expect(closed)
        }
    }

    @Test func tooManyHeadersIs431() async throws {
        try await withServer { _, port in
            let (many, big) = try await blocking {
                let a = try TestHTTPClient(port: port)
                try a.send("GET / HTTP/1.1\r\n" + (0..<101).map { "X-\($0): v\r\n" }.joined() + "\r\n")
                let b = try TestHTTPClient(port: port)
                try b.send("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "v", count: 70_000) + "\r\n\r\n")
                return (try a.readResponse(), try b.readResponse())
            }
            #expect(many.status == 431)
            #expect(big.status == 431)
            #expect(many.closesConnection && big.closesConnection)
        }
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\n", 400),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("GET / HTTP/2.0\r\n\r\n", 505),
    ])
    func malformedRequestsAreRefusedAndClosed(request: String, status: Int) async throws {
        try await withServer { _, port in
            let (response, closed) = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(request)
                return (try client.readResponse(), client.waitForClose())
            }
            #expect(response.status == status)
            #expect(response.closesConnection)
            #expect(closed)
        }
    }

    @Test func goodRequestBeforeABadOneIsStillAnswered() async throws {
        try await withServer { _, port in
            let (first, second, closed) = try await blocking {
                let client = try TestHTTPClient(port: port)
                try client.send(TestHTTPClient.requestBytes(path: "/good") + Array("BAD REQUEST LINE\r\n\r\n".utf8))
                return (try client.readResponse(), try client.readResponse(), client.waitForClose())
            }
            #expect(first.status == 200 && first.header("X-Target") == "/good")
            #expect(second.status == 400)
            #expect(closed)
        }
    }

    // MARK: Half-close and timeouts

    @Test func halfClosedClientStillGetsItsResponses() async throws {
        try await withServer { _, port in
            let (single, double) = try await blocking {
                let a = try TestHTTPClient(port: port)
                try a.send(TestHTTPClient.requestBytes(method: "POST", path: "/half", body: Array("abc".utf8)))
                a.shutdownWrite()
                let single = try a.readUntilClose()
                let b = try TestHTTPClient(port: port)
                // The first handler is slow, so the server sees the end of the stream before it answers.
                try b.send(
                    TestHTTPClient.requestBytes(path: "/one?sleep=200") + TestHTTPClient.requestBytes(path: "/two")
                )
                b.shutdownWrite()
                let first = try b.readResponse()
                let second = try b.readResponse()
                return (single, [first, second] + (b.waitForClose() ? [] : [TestHTTPResponse(status: -1)]))
            }
            let s = text(single)
            #expect(s.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(s.contains("\r\nX-Target: /half\r\n"))
            #expect(s.hasSuffix("\r\n\r\nabc"))
            #expect(double.map(\.status) == [200, 200])
            #expect(double.map { $0.header("X-Target") } == ["/one?sleep=200", "/two"])
            #expect(double.last?.closesConnection == true)
        }
    }

    @Test func slowlorisHeadIsCutOffAfterTheHeadTimeout() async throws {
        try await withServer(testConfiguration(headTimeout: .seconds(1))) { server, port in
            let (received, elapsed, client) = try await blocking {
                let client = try TestHTTPClient(port: port, timeout: .milliseconds(100))
                let clock = ContinuousClock()
                let start = clock.now
                try client.send("GET /slow HTTP/1.1\r\n")
                var received: [UInt8] = []
                while clock.now - start < .seconds(6) {
                    // One more header line every ~200 ms: progress, but the head never completes.
                    if (try? client.send("X-Drip: \(received.count)\r\n")) == nil { break }
                    do {
                        let got = try client.receiveSome()
                        if got.isEmpty { break }
                        received += got
                    } catch let e as TestHTTPClientError where e.kind == .timeout {
                        usleep(100_000)
                    }
                }
                return (received, clock.now - start, client)
            }
            #expect(text(received).hasPrefix("HTTP/1.1 408 "))
            #expect(seconds(elapsed) >= 0.9)
            #expect(seconds(elapsed) < 2.5, "closed after \(elapsed)")
            // The server half-closed after the 408 and lingers briefly for the peer's close; a peer that keeps its
            // socket open must not keep the connection alive beyond that.
            #expect(await eventually(timeout: .seconds(4)) { server.connectionCount == 0 })
            client.close()
        }
    }

    @Test func slowlorisAfterAPipelinedRequestIsCutOffToo() async throws {
        try await withServer(testConfiguration(headTimeout: .seconds(1), idleTimeout: .seconds(30))) { _, port in
            let (first, rest, elapsed) = try await blocking {
                let client = try TestHTTPClient(port: port, timeout: .milliseconds(100))
                // The first request outlasts the head timeout in its handler; the second head's clock starts when
                // the first response is queued.
                try client.send(
                    TestHTTPClient.requestBytes(path: "/first?sleep=1300") + Array("GET /second HTTP/1.1\r\n".utf8)
                )
                client.setTimeout(.seconds(5))
                let first = try client.readResponse()
                client.setTimeout(.milliseconds(100))
                let clock = ContinuousClock()
                let start = clock.now
                var rest: [UInt8] = []
                while clock.now - start < .seconds(6) {
                    if (try? client.send("X-Drip: 1\r\n")) == nil { break }
                    do {
                        let got = try client.receiveSome()
                        if got.isEmpty { break }
                        rest += got
                    } catch let e as TestHTTPClientError where e.kind == .timeout {
                        usleep(100_000)
                    }
                }
                return (first, rest, clock.now - start)
            }
            #expect(first.status == 200)
            #expect(text(rest).hasPrefix("HTTP/1.1 408 "))
            #expect(seconds(elapsed) < 2.5, "closed after \(elapsed)")
        }
    }

    @Test func idleKeepAliveConnectionIsClosed() async throws {
        try await withServer(testConfiguration(idleTimeout: .seconds(1))) { server, port in
            let (response, rest, elapsed) = try await blocking {
                let client = try TestHTTPClient(port: port, timeout: .seconds(5))
                let response = try client.request(path: "/before-idle")
                let clock = ContinuousClock()
                let start = clock.now
                let rest = try client.readUntilClose()
                return (response, rest, clock.now - start)
            }
            #expect(response.status == 200 && !response.closesConnection)
            #expect(rest.isEmpty)  // closed silently, no 408 for an idle connection
            #expect(seconds(elapsed) >= 0.7)
            #expect(seconds(elapsed) < 2.5, "closed after \(elapsed)")
            #expect(await eventually { server.connectionCount == 0 })
        }
    }

    // MARK: Resources

    @Test func connectionCapRefusesTheFifth() async throws {
        try await withServer(testConfiguration(maxConnections: 4)) { server, port in
            let clients = try (0..<4).map { _ in try TestHTTPClient(port: port) }
            let admitted = try await blocking { try clients.map { try $0.request(path: "/held").status } }
            #expect(admitted == [200, 200, 200, 200])
            #expect(server.connectionCount == 4)
            let refused = try await blocking {
                let fifth = try TestHTTPClient(port: port)
                try? fifth.send(TestHTTPClient.requestBytes(path: "/fifth"))
                return try fifth.readUntilClose()
            }
            // Either a 503 or a bare close, never a served request.
            #expect(refused.isEmpty || text(refused).hasPrefix("HTTP/1.1 503 "))
            #expect(!text(refused).contains("X-Target"))
            #expect(server.connectionCount == 4)
            // The four still work, and a freed slot admits a new connection.
            let again = try await blocking { try clients.map { try $0.request(path: "/again").status } }
            #expect(again == [200, 200, 200, 200])
            clients[0].close()
            #expect(await eventually { server.connectionCount == 3 })
            let sixth = try await blocking { try TestHTTPClient(port: port).request(path: "/sixth") }
            #expect(sixth.status == 200)
            for client in clients { client.close() }
        }
    }

    @Test func connectionChurnLeaksNoDescriptors() async throws {
        try await withServer { server, port in
            // Warm up (libdispatch opens its own descriptors lazily).
            _ = try await blocking {
                try TestHTTPClient(port: port).request(path: "/warm", headers: [("Connection", "close")])
            }
            _ = await eventually { server.connectionCount == 0 }
            let before = openFileDescriptorCount()
            let statuses = try await blocking {
                var statuses: [Int: Int] = [:]
                for i in 0..<2000 {
                    let client = try TestHTTPClient(port: port)
                    let response = try client.request(path: "/churn/\(i)", headers: [("Connection", "close")])
                    if response.closesConnection && client.waitForClose() { statuses[response.status, default: 0] += 1 }
                    client.close()
                }
                return statuses
            }
            #expect(statuses == [200: 2000])
            #expect(await eventually { server.connectionCount == 0 })
            // Closing happens in dispatch cancel handlers, just after the connection count drops.
            var after = openFileDescriptorCount()
            for _ in 0..<100 where after > before {
                try await Task.sleep(for: .milliseconds(20))
                after = openFileDescriptorCount()
            }
            #expect(after - before <= 8, "descriptors before \(before), after \(after)")
            #expect(heldServerSockets(port: port) == 0)
        }
    }

    @Test func backpressureWithASlowReader() async throws {
        // A short idle timeout must not cut a response the client is slow to read; only ioTimeout may.
        let observations = Observations()
        _ = bigBody.count  // built before the clock matters
        let configuration = testConfiguration(idleTimeout: .seconds(1), ioTimeout: .seconds(30))
        try await withServer(configuration, handler: EchoHandler(observations: observations)) { server, port in
            let (big, after, countWhilePaused) = try await blocking {
                let client = try TestHTTPClient(port: port, timeout: .seconds(10))
                client.setReceiveBufferSize(64 * 1024)
                try client.send(
                    TestHTTPClient.requestBytes(path: "/big") + TestHTTPClient.requestBytes(path: "/after-big")
                )
                for _ in 0..<1000 where !observations.all.contains("big ready") { usleep(10_000) }
                usleep(2_500_000)  // the response is ready; read nothing for a while
                let countWhilePaused = server.connectionCount
                let big = try client.readResponse()
                return (big, try client.readResponse(), countWhilePaused)
            }
            #expect(countWhilePaused == 1)
            #expect(big.status == 200)
            #expect(big.body.count == EchoHandler.bigBodySize)
            #expect(big.body == bigBody)
            #expect(after.status == 200)
            #expect(after.header("X-Target") == "/after-big")
        }
    }

    @Test func gracefulShutdown() async throws {
        let server = Server(configuration: testConfiguration(), handler: EchoHandler(), logger: quietLogger)
        let port = try server.start()
        let idle = try TestHTTPClient(port: port)
        let busy = try TestHTTPClient(port: port)
        let warm = try await blocking { try idle.request(path: "/idle") }
        #expect(warm.status == 200)
        try await blocking { try busy.send(TestHTTPClient.requestBytes(path: "/slow?sleep=800")) }
        try await Task.sleep(for: .milliseconds(150))  // the slow request is with the handler
        #expect(server.connectionCount == 2)

        let clock = ContinuousClock()
        let start = clock.now
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(5)) }
        let idleClosed = try await blocking { idle.waitForClose() }
        #expect(idleClosed)
        // New connections are refused (or closed without an answer) while draining.
        #expect(
            await eventually(timeout: .seconds(2)) {
                guard let late = try? TestHTTPClient(port: port, timeout: .milliseconds(300)) else { return true }
                try? late.send(TestHTTPClient.requestBytes(path: "/late"))
                return (try? late.readUntilClose())?.isEmpty == true
            }
        )
        let (inFlight, rest) = try await blocking { (try busy.readResponse(), try busy.readUntilClose()) }
        #expect(inFlight.status == 200)
        #expect(inFlight.header("X-Target") == "/slow?sleep=800")
        #expect(inFlight.closesConnection)
        #expect(rest.isEmpty)
        await shutdown.value
        #expect(clock.now - start < .seconds(4))
        #expect(server.connectionCount == 0)
        let refused = (try? TestHTTPClient(port: port)) == nil
        #expect(refused)
    }
}
