import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Frontend

#if canImport(Glibc)
import Glibc
#endif

/// Decision 0011 against a real Frontend: writes are authenticated on their head before any body byte is read,
/// a database outage is a 503 with Retry-After (and service comes back with the database), and `serve` clears
/// the spool of a crashed predecessor.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct AbuseTests {
    /// Bytes and files in a directory right now.
    static func usage(_ directory: String) -> (files: Int, bytes: Int) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var bytes = 0
        for name in names {
            var st = stat()
            if stat("\(directory)/\(name)", &st) == 0 { bytes += Int(st.st_size) }
        }
        return (names.count, bytes)
    }

    /// Sends a head (and optionally part of the body) over a raw socket and reads the first final answer.
    static func answer(
        port: Int,
        head: String,
        bodyBytes: Int = 0,
        timeout: Duration = .seconds(10)
    ) async throws -> TestHTTPResponse {
        try await TestHTTPClient.runBlocking {
            let client = try TestHTTPClient(port: port, timeout: timeout)
            try client.send(head)
            let chunk = [UInt8](repeating: 0x2d, count: 64 << 10)
            var sent = 0
            while sent < bodyBytes, (try? client.send(chunk)) != nil { sent += chunk.count }
            return try client.readResponse()
        }
    }

    @Test func eightAnonymousGigabyteUploadsAre401WithNothingSpooled() async throws {
        let h = try await FrontendHarness()
        let stranger = try await h.makeUser("mallory")
        let spool = h.config.spoolDir
        let most = Mutex<(files: Int, bytes: Int)>((0, 0))
        let stop = Atomic<Bool>(false)
        let watcher = Task {
            while !stop.load(ordering: .relaxed) {
                let now = Self.usage(spool)
                most.withLock { $0 = (max($0.files, now.files), max($0.bytes, now.bytes)) }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        let gigabyte = 1 << 30
        let answers = try await withThrowingTaskGroup(of: TestHTTPResponse.self) { group in
            for i in 0..<8 {
                // Half of them send a wrong token instead of none.
                let auth =
                    i % 2 == 0
                    ? "" : "Authorization: Basic \(Data("\(stranger.login):wrong".utf8).base64EncodedString())\r\n"
                let head =
                    "POST /api_3/build/create/upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
                    + "Content-Length: \(gigabyte)\r\n\(auth)\r\n"
                group.addTask { try await Self.answer(port: h.port, head: head, bodyBytes: 4 << 20) }
            }
            var all: [TestHTTPResponse] = []
            for try await r in group { all.append(r) }
            return all
        }
        stop.store(true, ordering: .relaxed)
        await watcher.value
        #expect(answers.count == 8)
        for r in answers {
            #expect(r.status == 401)
            let json = (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any]
            #expect((json?["error"] as? String)?.hasPrefix("Login invalid/expired") == true, "\(r.bodyString)")
            #expect(r.closesConnection)
        }
        let seen = most.withLock { $0 }
        #expect(seen.files == 0 && seen.bytes == 0, "the spool held \(seen.files) files, \(seen.bytes) bytes")
        #expect(h.server.spoolBytesReserved == 0)
        #expect(try await h.count("SELECT count(*) FROM builds") == 0)
        await h.stop()
    }

    @Test func writesAuthenticateAndAuthorizeBeforeReadingTheBody() async throws {
        let h = try await FrontendHarness()
        let owner = try await h.makeUser("olga")
        let stranger = try await h.makeUser("sam")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/olga",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64"]}"#,
                auth: owner
            ).status == 200
        )
        // Anonymous writes get 401 whatever their input: validation comes after authentication.
        let anonymous: [(String, String, String?)] = [
            ("POST", "/api_3/package/build", #"{"ownername": "olga", "projectname": "nope"}"#),
            ("POST", "/api_3/package/build", "{not json"),
            ("POST", "/api_3/package/build", nil),
            ("POST", "/api_3/build/create/url", #"{"pkgs": ["not a url"]}"#),
            ("POST", "/api_3/project/add/olga", #"{"name": ""}"#),
            ("PUT", "/api_3/project/edit/olga/missing", "{}"),
            ("DELETE", "/api_3/build/delete/999", nil),
            ("POST", "/api_3/package/add/olga/p/bad%20name/pypi", "{}"),
        ]
        for (method, path, body) in anonymous {
            let r = try await h.send(method, path, json: body)
            #expect(r.status == 401, "\(method) \(path) → \(r.status) \(r.body)")
            #expect(r.json?["output"] as? String == "notok")
        }
        // With a valid token the same requests reach validation (so the 401 above was not a broken route).
        let validated = try await h.send("POST", "/api_3/package/build", json: "{not json", auth: stranger)
        #expect(validated.status == 400)
        // The spooled chroot edit is authorized on its head: the final answer comes instead of 100 Continue.
        func chrootEdit(_ path: String, _ who: FrontendHarness.Credentials?) async throws -> TestHTTPResponse {
            let auth = who.map {
                "Authorization: Basic \(Data("\($0.login):\($0.token)".utf8).base64EncodedString())\r\n"
            }
            return try await TestHTTPClient.runBlocking {
                let client = try TestHTTPClient(port: h.port)
                try client.send(
                    "POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                        + "Content-Length: 1048576\r\nExpect: 100-continue\r\n\(auth ?? "")\r\n"
                )
                return try client.readResponse(skippingInterim: false)
            }
        }
        var r = try await chrootEdit("/api_3/project-chroot/edit/olga/p/fedora-39-x86_64", nil)
        #expect(r.status == 401)
        r = try await chrootEdit("/api_3/project-chroot/edit/olga/p/fedora-39-x86_64", stranger)
        #expect(r.status == 403)
        r = try await chrootEdit("/api_3/project-chroot/edit/olga/missing/fedora-39-x86_64", owner)
        #expect(r.status == 404)
        r = try await chrootEdit("/api_3/project-chroot/edit/olga/p/fedora-39-x86_64", owner)
        #expect(r.status == 100)  // the owner is admitted: the server asks for the body
        // The internal API checks its secret on the head too.
        r = try await Self.answer(
            port: h.port,
            head: "POST /backend/update HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        )
        #expect(r.status == 401)
        // Nothing was created or changed by any refusal; the spool is empty.
        #expect(try await h.count("SELECT count(*) FROM builds") == 0)
        #expect(try await h.count("SELECT count(*) FROM projects") == 1)
        #expect(try await h.count("SELECT count(*) FROM packages") == 0)
        #expect(await eventually { Self.usage(h.config.spoolDir).files == 0 && h.server.spoolBytesReserved == 0 })
        await h.stop()
    }

    /// With the shipped defaults (10 s window, 64 KiB): a body trickled one byte every 5 s is cut after one
    /// window, although every byte is progress for the 60 s I/O timeout.
    @Test func oneByteEveryFiveSecondsIsCutWithTheDefaults() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("tess")
        let auth = Data("\(u.login):\(u.token)".utf8).base64EncodedString()
        let (status, elapsed) = try await TestHTTPClient.runBlocking {
            let client = try TestHTTPClient(port: h.port, timeout: .seconds(5))
            let clock = ContinuousClock()
            let start = clock.now
            try client.send(
                "POST /api_3/project/add/tess HTTP/1.1\r\nHost: t\r\nAuthorization: Basic \(auth)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            while clock.now - start < .seconds(40) {
                if (try? client.send("{")) == nil { break }
                do {
                    return (try client.readResponse().status, clock.now - start)
                } catch let e as TestHTTPClientError where e.kind == .timeout {
                    continue
                }
            }
            return (0, clock.now - start)
        }
        let took = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        #expect(status == 408)
        #expect(took >= 9.5 && took < 16, "cut after \(took) s")
        #expect(try await h.count("SELECT count(*) FROM projects") == 0)
        await h.stop()
    }

    /// 4,000 connections from 127.0.0.1, each trickling a body, against the Frontend with its default limits:
    /// another client (127.0.0.2) still gets `GET /api_3/build/ID` in ≤ 1 s.
    @Test func fourThousandTrickledConnectionsLeaveAnotherClientServed() async throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 12_000 {
            limit.rlim_cur = min(12_000, limit.rlim_max)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        try #require(limit.rlim_cur >= 9000, "RLIMIT_NOFILE is \(limit.rlim_cur)")
        let h = try await FrontendHarness()
        let u = try await h.makeUser("flo")
        let auth = Data("\(u.login):\(u.token)".utf8).base64EncodedString()
        let port = h.port
        let flood = try await TestHTTPClient.runBlocking {
            var clients: [TestHTTPClient] = []
            for i in 0..<4000 {
                let client = try TestHTTPClient(port: port, timeout: .milliseconds(200))
                _ = try? client.send(
                    "POST /api_3/project/add/flo?n=\(i) HTTP/1.1\r\nHost: t\r\nAuthorization: Basic \(auth)\r\n"
                        + "Content-Length: 100000\r\n\r\n{"
                )
                clients.append(client)
            }
            return clients
        }
        let held = h.server.connectionCount(client: "127.0.0.1")
        #expect(held <= h.config.maxConnectionsPerClient)
        let stop = Atomic<Bool>(false)
        let trickler = Task {
            try await TestHTTPClient.runBlocking {
                while !stop.load(ordering: .relaxed) {
                    for client in flood { _ = try? client.send(" ") }
                    usleep(1_000_000)
                }
            }
        }
        var latencies: [Double] = []
        for _ in 0..<5 {
            let (status, took) = try await TestHTTPClient.runBlocking {
                let clock = ContinuousClock()
                let start = clock.now
                let client = try TestHTTPClient(port: port, localHost: "127.0.0.2", timeout: .seconds(5))
                let response = try client.request(path: "/api_3/build/1")
                let d = clock.now - start
                return (response.status, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
            }
            #expect(status == 404)  // served (no such build), not refused
            latencies.append(took)
            try await Task.sleep(for: .milliseconds(400))
        }
        stop.store(true, ordering: .relaxed)
        try await trickler.value
        #expect(latencies.allSatisfy { $0 <= 1.0 }, "latencies \(latencies)")
        print("frontend flood: 4000 connections, \(held) held by the flooding client; other client \(latencies)")
        for client in flood { client.close() }
        #expect(try await h.count("SELECT count(*) FROM projects") == 0)
        await h.stop()
    }

    @Test func databaseOutageIs503WithRetryAfterAndServiceRecovers() async throws {
        // A cluster of this test's own: it is stopped and started (the shared one is not touched).
        let cluster = try await PostgresCluster.startAsync()
        defer { cluster.stop() }
        let h = try await FrontendHarness(conninfo: cluster.adminConninfo)
        let u = try await h.makeUser("pat")
        let project = #"{"name": "before", "chroots": ["fedora-39-x86_64"]}"#
        #expect(try await h.send("POST", "/api_3/project/add/pat", json: project, auth: u).status == 200)
        #expect(try await h.get("/api_3/build/1").status == 404)
        try await PostgresFixture.runOffPool { try cluster.stopServer() }
        let reads = [
            "/api_3/build/1", "/api_3/project?ownername=pat&projectname=before", "/api_3/project/list?ownername=pat",
            "/api_3/mock-chroots/list",
        ]
        for path in reads {
            let r = try await h.get(path)
            #expect(r.status == 503, "\(path) → \(r.status) \(r.body)")
            #expect(r.json?["error"] as? String == "The database is unavailable, try again later", "\(path)")
            #expect(r.headers.lowercased().contains("retry-after: 10"), "\(path): \(r.headers)")
        }
        // A write is refused on its head (the token cannot be checked) with the same 503.
        let write = try await h.send(
            "POST",
            "/api_3/project/add/pat",
            json: #"{"name": "during", "chroots": ["fedora-39-x86_64"]}"#,
            auth: u
        )
        #expect(write.status == 503 && write.headers.lowercased().contains("retry-after:"))
        #expect(write.json?["error"] as? String == "The database is unavailable, try again later")
        // Web pages say so too, in HTML.
        let page = try await h.get("/coprs/pat/before")
        #expect(page.status == 503 && page.headers.lowercased().contains("retry-after:"))
        // The database comes back: so does the service, without a restart.
        try await PostgresFixture.runOffPool { try cluster.startServer() }
        var recovered = false
        for _ in 0..<50 where !recovered {
            recovered = try await h.get("/api_3/project?ownername=pat&projectname=before").status == 200
            if !recovered { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(recovered)
        #expect(try await h.get("/api_3/build/1").status == 404)
        let after = #"{"name": "after", "chroots": ["fedora-39-x86_64"]}"#
        #expect(try await h.send("POST", "/api_3/project/add/pat", json: after, auth: u).status == 200)
        #expect(try await h.count("SELECT count(*) FROM projects") == 2)  // "during" was never created
        await h.stop()
    }

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/koper-frontend"
    }

    @Test(.requires(.tool(binary)))
    func serveRemovesOrphanedSpoolFilesAtStartUp() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let dir = try makeTemporaryDirectory(prefix: "koper-orphans")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = "\(dir)/storage/spool"
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        // What a frontend killed mid-upload leaves: a server body file and a half-copied SRPM.
        for name in ["koper-body-5eed", "upload-abcdefghijklmnop"] {
            try Data(repeating: 1, count: 4096).write(to: URL(fileURLWithPath: "\(spool)/\(name)"))
        }
        try Data("keep".utf8).write(to: URL(fileURLWithPath: "\(spool)/operator-notes"))
        let config = "\(dir)/frontend.json"
        try """
        {"database": "\(conninfo)", "results_url": "http://127.0.0.1:9/results", "storage_dir": "\(dir)/storage",
         "backend_secret": "s3cret-s3cret", "port_file": "\(dir)/port", "log_level": "error"}
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--config", config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        var port: Int? = nil
        for _ in 0..<300 where port == nil {
            port = (try? String(contentsOfFile: "\(dir)/port", encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if port == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let listening = try #require(port)
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool) == ["operator-notes"])
        let r = try await curl(["http://127.0.0.1:\(listening)/api_3"])
        #expect(r.status == 200)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}
