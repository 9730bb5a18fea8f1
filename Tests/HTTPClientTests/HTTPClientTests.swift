import Foundation
import HTTPClient
import InMemoryLogging
import Logging
import TestSupport
import Testing

private func quietLogger() -> Logger {
    Logger(label: "koper.test.httpclient", factory: { _ in SwiftLogNoOpLogHandler() })
}

@discardableResult
private func expectClientError<T>(
    _ code: HTTPClientError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> HTTPClientError? {
    do {
        _ = try await body()
        Issue.record("expected HTTPClientError.\(code), got success", sourceLocation: sourceLocation)
    } catch let error as HTTPClientError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected HTTPClientError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

private func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then closed).
private func closedPort() throws -> Int { try FreePort.allocate() }

@Suite(.serialized) struct HTTPClientRequestTests {
    @Test func getStaticFile() async throws {
        try await PythonTestServer.with { server in
            try Data("hello\n".utf8).write(to: URL(fileURLWithPath: "\(server.root)/hello.txt"))
            let client = HTTPClient(maxConcurrent: 2, logger: quietLogger())
            let response = try await client.request(
                method: "GET",
                url: server.url("/static/hello.txt"),
                timeout: .seconds(10),
                maxResponseBytes: 1024
            )
            #expect(response.status == 200)
            #expect(response.body == Array("hello\n".utf8))
            #expect(response.header("content-type") == "application/octet-stream")
            #expect(response.header("Content-Length") == "6")

            let missing = try await client.request(
                method: "GET",
                url: server.url("/static/nope"),
                timeout: .seconds(10),
                maxResponseBytes: 1024
            )
            #expect(missing.status == 404)

            let head = try await client.request(
                method: "HEAD",
                url: server.url("/static/hello.txt"),
                timeout: .seconds(10),
                maxResponseBytes: 1024
            )
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
        }
    }

    @Test func postEchoesBodyAndHeaders() async throws {
        try await PythonTestServer.with { server in
            let client = HTTPClient(maxConcurrent: 2, logger: quietLogger())
            let payload = bytes(300_000, seed: 9)
            let response = try await client.request(
                method: "POST",
                url: server.url("/echo?x=1"),
                headers: [("X-Custom", "value 1"), ("Content-Type", "application/octet-stream")],
                body: payload,
                timeout: .seconds(10),
                maxResponseBytes: 1 << 20
            )
            #expect(response.status == 200)
            #expect(response.body == payload)
            #expect(response.header("X-Request-Method") == "POST")
            #expect(response.header("X-Request-Path") == "/echo?x=1")
            #expect(response.header("X-Request-Custom") == "value 1")
            #expect(response.header("X-Request-Expect") == "none")  // no 100-continue round trip
            // Repeated fields are kept, in order.
            #expect(response.headers.filter { $0.0.lowercased() == "set-cookie" }.map(\.1) == ["a=1", "b=2"])

            for method in ["PUT", "DELETE", "PATCH"] {
                let other = try await client.request(
                    method: method,
                    url: server.url("/echo"),
                    body: method == "DELETE" ? nil : Array("{}".utf8),
                    timeout: .seconds(10),
                    maxResponseBytes: 1024
                )
                #expect(other.header("X-Request-Method") == method)
                #expect(other.body == (method == "DELETE" ? [] : Array("{}".utf8)))
            }

            let empty = try await client.request(
                method: "POST",
                url: server.url("/echo"),
                body: [],
                timeout: .seconds(10),
                maxResponseBytes: 1024
            )
            #expect(empty.header("X-Request-Length") == "0")
        }
    }

    @Test func manySequentialAndConcurrentRequests() async throws {
        try await PythonTestServer.with { server in
            let client = HTTPClient(maxConcurrent: 3, logger: quietLogger())
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<24 {
                    group.addTask {
                        let body = Array("request \(i)".utf8)
                        let response = try await client.request(
                            method: "POST",
                            url: server.url("/echo"),
                            body: body,
                            timeout: .seconds(20),
                            maxResponseBytes: 1024
                        )
                        #expect(response.body == body)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func redirectsAreNotFollowedByDefault() async throws {
        try await PythonTestServer.with { server in
            try Data("hello\n".utf8).write(to: URL(fileURLWithPath: "\(server.root)/hello.txt"))
            let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
            let plain = try await client.request(
                method: "GET",
                url: server.url("/redirect"),
                timeout: .seconds(10),
                maxResponseBytes: 1024
            )
            #expect(plain.status == 302)
            #expect(plain.header("Location") == "/static/hello.txt")
            let followed = try await client.request(
                method: "GET",
                url: server.url("/redirect"),
                timeout: .seconds(10),
                maxResponseBytes: 1024,
                maxRedirects: 2
            )
            #expect(followed.status == 200)
            #expect(followed.body == Array("hello\n".utf8))
        }
    }

    @Test(arguments: [true, false])
    func responseBodyIsCapped(withContentLength: Bool) async throws {
        try await PythonTestServer.with { server in
            let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
            let cl = withContentLength ? 1 : 0
            let exact = try await client.request(
                method: "GET",
                url: server.url("/large?n=1048576&cl=\(cl)"),
                timeout: .seconds(20),
                maxResponseBytes: 1 << 20
            )
            #expect(exact.body.count == 1 << 20)
            let error = await expectClientError(.responseTooLarge) {
                try await client.request(
                    method: "GET",
                    url: server.url("/large?n=8388608&cl=\(cl)"),
                    timeout: .seconds(20),
                    maxResponseBytes: 1 << 20
                )
            }
            #expect(error?.message.contains("1048576") == true)
            await expectClientError(.responseTooLarge) {
                try await client.request(
                    method: "GET",
                    url: server.url("/large?n=1048577&cl=\(cl)"),
                    timeout: .seconds(20),
                    maxResponseBytes: 1 << 20
                )
            }
            // The lane is usable again afterwards.
            let after = try await client.request(
                method: "GET",
                url: server.url("/status?code=204"),
                timeout: .seconds(10),
                maxResponseBytes: 0
            )
            #expect(after.status == 204)
        }
    }

    @Test func invalidArgumentsAreRejected() async throws {
        let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
        await expectClientError(.invalidArgument) {
            try await client.request(
                method: "GE T",
                url: "http://127.0.0.1:1/",
                timeout: .seconds(1),
                maxResponseBytes: 1
            )
        }
        await expectClientError(.invalidArgument) {
            try await client.request(
                method: "GET",
                url: "http://127.0.0.1:1/",
                headers: [("X-A", "b\r\nX-Injected: 1")],
                timeout: .seconds(1),
                maxResponseBytes: 1
            )
        }
        await expectClientError(.invalidArgument) {
            try await client.request(
                method: "GET",
                url: "http://127.0.0.1:1/a b",
                timeout: .seconds(1),
                maxResponseBytes: 1
            )
        }
        await expectClientError(.invalidArgument) {
            try await client.request(
                method: "GET",
                url: "file:///etc/passwd",
                timeout: .seconds(1),
                maxResponseBytes: 1 << 20
            )
        }
        await expectClientError(.invalidArgument) {
            try await client.request(method: "GET", url: "not a url", timeout: .seconds(1), maxResponseBytes: 1)
        }
    }
}

@Suite(.serialized) struct HTTPClientFailureTests {
    @Test func connectionRefusedHidesCredentials() async throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "koper.test.httpclient", factory: { _ in handler })
        logger.logLevel = .debug
        let client = HTTPClient(maxConcurrent: 1, logger: logger)
        let port = try closedPort()
        let error = await expectClientError(.connectFailed) {
            try await client.request(
                method: "GET",
                url: "http://backend:s3cr3t-pw@127.0.0.1:\(port)/api?token=t0k3n",
                timeout: .seconds(5),
                maxResponseBytes: 1024
            )
        }
        let text = "\(error.map { "\($0)" } ?? "")|\(handler.entries)"
        #expect(text.contains("127.0.0.1:\(port)/api"), "\(text)")
        #expect(!text.contains("s3cr3t"), "\(text)")
        #expect(!text.contains("backend:"), "\(text)")
        #expect(!text.contains("t0k3n"), "\(text)")
    }

    @Test func totalTimeoutIsEnforced() async throws {
        try await PythonTestServer.with { server in
            let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
            let clock = ContinuousClock()
            let started = clock.now
            await expectClientError(.timeout) {
                try await client.request(
                    method: "GET",
                    url: server.url("/slow?ms=5000"),
                    timeout: .milliseconds(500),
                    maxResponseBytes: 1024
                )
            }
            #expect(started.duration(to: clock.now) < .seconds(3))
            // A slow answer inside the timeout is fine.
            let ok = try await client.request(
                method: "GET",
                url: server.url("/slow?ms=200"),
                timeout: .seconds(10),
                maxResponseBytes: 1024
            )
            #expect(ok.body == Array("done".utf8))
        }
    }

    @Test func concurrencyIsBoundedAndWaitingCountsAgainstTheTimeout() async throws {
        try await PythonTestServer.with { server in
            let client = HTTPClient(maxConcurrent: 2, logger: quietLogger())
            let clock = ContinuousClock()
            let started = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let r = try await client.request(
                            method: "GET",
                            url: server.url("/slow?ms=400"),
                            timeout: .seconds(20),
                            maxResponseBytes: 64
                        )
                        #expect(r.status == 200)
                    }
                }
                try await group.waitForAll()
            }
            // Two lanes, four 400 ms requests: at least two waves.
            #expect(started.duration(to: clock.now) >= .milliseconds(780))

            // Both lanes busy for 2 s: a request with a 300 ms budget times out while waiting for a lane.
            async let a = client.request(
                method: "GET",
                url: server.url("/slow?ms=2000"),
                timeout: .seconds(20),
                maxResponseBytes: 64
            )
            async let b = client.request(
                method: "GET",
                url: server.url("/slow?ms=2000"),
                timeout: .seconds(20),
                maxResponseBytes: 64
            )
            try await Task.sleep(for: .milliseconds(200))
            let waitStarted = clock.now
            await expectClientError(.timeout) {
                try await client.request(
                    method: "GET",
                    url: server.url("/status"),
                    timeout: .milliseconds(300),
                    maxResponseBytes: 64
                )
            }
            #expect(waitStarted.duration(to: clock.now) < .milliseconds(1500))
            #expect(try await a.status == 200)
            #expect(try await b.status == 200)
        }
    }

    @Test func cancellationStopsWaitingAndTransferring() async throws {
        try await PythonTestServer.with { server in
            let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
            let clock = ContinuousClock()
            // Cancelled while data trickles in.
            let trickle = Task {
                try await client.request(
                    method: "GET",
                    url: server.url("/trickle?n=200&ms=50"),
                    timeout: .seconds(30),
                    maxResponseBytes: 1024
                )
            }
            try await Task.sleep(for: .milliseconds(300))
            var started = clock.now
            trickle.cancel()
            await expectClientError(.cancelled) { try await trickle.value }
            #expect(started.duration(to: clock.now) < .seconds(2))

            // Cancelled while waiting for the only lane.
            let busy = Task {
                try await client.request(
                    method: "GET",
                    url: server.url("/slow?ms=1500"),
                    timeout: .seconds(30),
                    maxResponseBytes: 64
                )
            }
            try await Task.sleep(for: .milliseconds(200))
            let waiting = Task {
                try await client.request(
                    method: "GET",
                    url: server.url("/status"),
                    timeout: .seconds(30),
                    maxResponseBytes: 64
                )
            }
            try await Task.sleep(for: .milliseconds(200))
            started = clock.now
            waiting.cancel()
            await expectClientError(.cancelled) { try await waiting.value }
            #expect(started.duration(to: clock.now) < .milliseconds(500))
            #expect(try await busy.value.status == 200)
        }
    }
}

@Suite(.serialized) struct HTTPClientDownloadTests {
    @Test func downloadWritesTheFile() async throws {
        try await PythonTestServer.with { server in
            let content = bytes(1_500_000, seed: 77)
            try Data(content).write(to: URL(fileURLWithPath: "\(server.root)/pkg.rpm"))
            let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
            let target = "\(server.root)/out.rpm"
            let result = try await client.download(
                url: server.url("/static/pkg.rpm"),
                toFile: target,
                timeout: .seconds(20),
                maxBytes: 2_000_000
            )
            #expect(result.status == 200)
            #expect(result.bytes == content.count)
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: target))) == content)
        }
    }

    @Test func failedDownloadsLeaveTheTargetUntouched() async throws {
        try await PythonTestServer.with { server in
            try Data(bytes(3_000_000, seed: 5)).write(to: URL(fileURLWithPath: "\(server.root)/big.bin"))
            let client = HTTPClient(maxConcurrent: 1, logger: quietLogger())
            let target = "\(server.root)/out.bin"
            try Data("previous".utf8).write(to: URL(fileURLWithPath: target))

            let missing = try await client.download(
                url: server.url("/static/missing"),
                toFile: target,
                timeout: .seconds(10),
                maxBytes: 1 << 20
            )
            #expect(missing.status == 404)
            #expect(missing.bytes == 0)

            await expectClientError(.responseTooLarge) {
                try await client.download(
                    url: server.url("/static/big.bin"),
                    toFile: target,
                    timeout: .seconds(20),
                    maxBytes: 1 << 20
                )
            }
            await expectClientError(.responseTooLarge) {
                try await client.download(
                    url: server.url("/large?n=3000000&cl=0"),
                    toFile: target,
                    timeout: .seconds(20),
                    maxBytes: 1 << 20
                )
            }
            await expectClientError(.fileError) {
                try await client.download(
                    url: server.url("/static/big.bin"),
                    toFile: "\(server.root)/no/such/dir/x",
                    timeout: .seconds(20),
                    maxBytes: 1 << 30
                )
            }
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "previous")
            // No partial files are left behind.
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: server.root).filter {
                $0.contains("partial")
            }
            #expect(leftovers.isEmpty, "\(leftovers)")
        }
    }
}
