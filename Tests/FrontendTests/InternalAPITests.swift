import CoprModel
import Foundation
import TestSupport
import Testing

@testable import Frontend

/// The internal /backend/ API: shared-secret auth, task claim, idempotent updates, cancel requests, imports.
@Suite(.serialized)
struct InternalAPITests {
    let secret = "Authorization: Bearer \(FrontendHarness.backendSecret)"

    func upload(
        _ h: FrontendHarness,
        _ u: FrontendHarness.Credentials,
        project: String,
        name: String
    ) async throws -> Int {
        let srpm = try await SRPMFixture.make(name: name)
        let dir = try makeTemporaryDirectory()
        try #"{"ownername": "\#(u.user)", "projectname": "\#(project)"}"#.write(
            toFile: "\(dir)/json",
            atomically: true,
            encoding: .utf8
        )
        let r = try await curl([
            "-u", "\(u.login):\(u.token)", "-F", "pkgs=@\(srpm)", "-F", "json=@\(dir)/json",
            "\(h.url)/api_3/build/create/upload",
        ])
        #expect(r.status == 200, "\(r.body)")
        return try #require(r.json?["id"] as? Int)
    }

    /// The Backend's one channel: tasks, cancel requests and actions in one answer; held while nothing changed;
    /// a cancel wakes a held poll at once.
    @Test func pollCarriesTasksCancelsAndActionsAndWakesOnChange() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("pam")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/pam",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let id = try await upload(h, u, project: "p", name: "pollme")
        let task = "\(id)-fedora-39-x86_64"
        #expect(try await h.get("/backend/poll").status == 401)

        var r = try await curl(["-H", secret, "\(h.url)/backend/poll"])
        #expect(r.status == 200, "\(r.body)")
        #expect((r.json?["tasks"] as? [[String: Any]])?.compactMap { $0["task_id"] as? String } == [task])
        #expect((r.json?["tasks"] as? [[String: Any]])?.first?["type"] as? String == "rpm")
        #expect((r.json?["cancels"] as? [Any])?.isEmpty == true)
        let first = try #require(r.json?["generation"] as? String)

        // Nothing changes: held for the whole wait, same answer.
        let clock = ContinuousClock()
        var started = clock.now
        r = try await curl(["-H", secret, "\(h.url)/backend/poll?after=\(first)&wait=1"])
        #expect(clock.now - started >= .milliseconds(900))
        #expect(r.json?["generation"] as? String == first)
        // A token of another frontend process (or a restarted one) is answered at once.
        started = clock.now
        r = try await curl(["-H", secret, "\(h.url)/backend/poll?after=0.0&wait=10"])
        #expect(clock.now - started < .seconds(2))

        // The worker claims the task; a poll held meanwhile wakes when the user cancels, and lists the cancel.
        r = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(task)", "worker_id": "w1"}"#,
            headers: [secret]
        )
        #expect(r.json?["claimed"] as? Bool == true)
        #expect((r.json?["task"] as? [String: Any])?["package_name"] as? String == "pollme")
        r = try await curl(["-H", secret, "\(h.url)/backend/poll"])
        let held = try #require(r.json?["generation"] as? String)
        let url = "\(h.url)/backend/poll?after=\(held)&wait=20"
        let header = secret
        let poll = Task { () -> (CurlResponse, ContinuousClock.Instant) in
            let answer = try await curl(["-H", header, url])
            return (answer, ContinuousClock().now)
        }
        try await Task.sleep(for: .milliseconds(500))
        let canceledAt = clock.now
        #expect(try await h.send("POST", "/api_3/build/cancel/\(id)", auth: u).status == 200)
        let (woke, answeredAt) = try await poll.value
        #expect(
            answeredAt - canceledAt < .seconds(1),
            "the held poll answered \(answeredAt - canceledAt) after the cancel"
        )
        #expect(woke.json?["cancels"] as? [String] == [task])
        #expect((woke.json?["tasks"] as? [Any])?.isEmpty == true)
        r = try await h.send(
            "POST",
            "/backend/cancel-request-done",
            json: #"{"task_id": "\#(task)"}"#,
            headers: [secret]
        )
        #expect(r.json?["removed"] as? Bool == true)

        // Deleting the project queues a typed delete action in the next answer.
        #expect(try await h.send("POST", "/api_3/project/delete/pam/p", auth: u).status == 200)
        r = try await curl(["-H", secret, "\(h.url)/backend/poll"])
        let action = try #require((r.json?["actions"] as? [[String: Any]])?.first)
        #expect(action["action_type"] as? String == "delete")
        #expect((action["data"] as? [String: Any])?["object_type"] as? String == "copr")
        #expect((action["data"] as? [String: Any])?["projectname"] as? String == "p")

        // Malformed wire messages are refused with the field named, and change nothing.
        r = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "x-", "worker_id": "w1"}"#,
            headers: [secret]
        )
        #expect(r.status == 400)
        #expect((r.json?["error"] as? String)?.contains("task_id") == true, "\(r.body)")
        r = try await h.send(
            "POST",
            "/backend/update",
            json: #"{"update_id": "u", "task_id": "\#(task)", "state": 5}"#,
            headers: [secret]
        )
        #expect(r.status == 400)
        #expect((r.json?["error"] as? String)?.contains("state") == true, "\(r.body)")
        #expect(try await h.count("SELECT count(*) FROM backend_updates WHERE update_id = 'u'") == 0)
        await h.stop()
    }

    @Test func claimUpdateAndIdempotency() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("kim")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/kim",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64", "epel-9-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let id = try await upload(h, u, project: "p", name: "claimme")

        // Without the secret: 401; a user's token is not the secret.
        #expect(try await h.get("/backend/pending-jobs").status == 401)
        #expect(try await h.get("/backend/pending-jobs", auth: u).status == 401)

        var r = try await curl(["-H", secret, "\(h.url)/backend/pending-jobs"])
        #expect(r.status == 200)
        let tasks = try #require(r.json?["tasks"] as? [[String: Any]])
        #expect(
            tasks.compactMap { $0["task_id"] as? String }.sorted() == ["\(id)-epel-9-x86_64", "\(id)-fedora-39-x86_64"]
        )
        #expect(tasks.first?["tags"] as? [String] == ["arch_x86_64"])

        // The public task description has no secrets in it.
        r = try await h.get("/backend/get-build-task/\(id)-fedora-39-x86_64")
        #expect(r.status == 200)
        #expect(r.json?["package_name"] as? String == "claimme")
        #expect(!r.body.contains(FrontendHarness.backendSecret))
        #expect(!r.body.contains(u.token))

        let task = "\(id)-fedora-39-x86_64"
        r = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(task)", "worker_id": "w1"}"#,
            headers: [secret]
        )
        #expect(r.json?["claimed"] as? Bool == true)
        r = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(task)", "worker_id": "w1"}"#,
            headers: [secret]
        )
        #expect(r.json?["claimed"] as? Bool == true)  // a retried claim by the same worker
        r = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(task)", "worker_id": "w2"}"#,
            headers: [secret]
        )
        #expect(r.json?["claimed"] as? Bool == false)
        #expect(try await h.get("/api_3/build/\(id)").json?["state"] as? String == "starting")

        let running =
            #"{"update_id": "u-1", "task_id": "\#(task)", "state": "running", "result_dir": "\#(resultDirName(buildID: id, packageName: "claimme"))"}"#
        r = try await h.send("POST", "/backend/update", json: running, headers: [secret])
        #expect(r.json?["applied"] as? Bool == true)
        #expect(try await h.get("/api_3/build/\(id)").json?["state"] as? String == "running")
        let done =
            #"{"update_id": "u-2", "task_id": "\#(task)", "state": "succeeded", "built_packages": [{"name": "claimme", "epoch": null, "version": "1.0", "release": "1", "arch": "noarch"}]}"#
        r = try await h.send("POST", "/backend/update", json: done, headers: [secret])
        #expect(r.json?["applied"] as? Bool == true)
        // A retried update does not double-apply; a late "running" cannot reopen a finished chroot.
        r = try await h.send("POST", "/backend/update", json: done, headers: [secret])
        #expect(r.json?["duplicate"] as? Bool == true)
        r = try await h.send(
            "POST",
            "/backend/update",
            json: #"{"update_id": "u-3", "task_id": "\#(task)", "state": "running"}"#,
            headers: [secret]
        )
        #expect(r.json?["applied"] as? Bool == false)
        let chroot = try await h.sql(
            "SELECT state, ended_on IS NOT NULL AS ended FROM build_chroots WHERE build_id = \(String(id)) AND name = 'fedora-39-x86_64'"
        ).first!
        #expect(chroot["state"] == "succeeded")
        #expect(chroot["ended"] == "t")
        r = try await h.get("/api_3/build/built-packages/\(id)")
        #expect(
            ((r.json?["fedora-39-x86_64"] as? [String: Any])?["packages"] as? [[String: Any]])?.first?["name"]
                as? String == "claimme"
        )
        // Still one chroot pending → the build is pending; the other chroot fails → the build fails.
        #expect(try await h.get("/api_3/build/\(id)").json?["state"] as? String == "pending")
        let other = "\(id)-epel-9-x86_64"
        _ = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(other)", "worker_id": "w1"}"#,
            headers: [secret]
        )
        _ = try await h.send(
            "POST",
            "/backend/update",
            json: #"{"update_id": "u-4", "task_id": "\#(other)", "state": "failed"}"#,
            headers: [secret]
        )
        let final = try await h.get("/api_3/build/\(id)")
        #expect(final.json?["state"] as? String == "failed")
        #expect(final.json?["ended_on"] as? Int != nil)
        await h.stop()
    }

    /// Drives one chroot task to a final state the way a worker does (claim, then one final update).
    func finish(_ h: FrontendHarness, build id: Int, chroot: String, package: String, state: String) async throws {
        let task = "\(id)-\(chroot)"
        var r = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(task)", "worker_id": "w1"}"#,
            headers: [secret]
        )
        #expect(r.json?["claimed"] as? Bool == true, "\(r.body)")
        let dir = resultDirName(buildID: id, packageName: package)
        r = try await h.send(
            "POST",
            "/backend/update",
            json:
                #"{"update_id": "fin-\#(task)", "task_id": "\#(task)", "state": "\#(state)", "result_dir": "\#(dir)"}"#,
            headers: [secret]
        )
        #expect(r.json?["applied"] as? Bool == true, "\(r.body)")
    }

    func buildIDs(_ h: FrontendHarness, project: String) async throws -> [Int] {
        try await h.sql(
            "SELECT b.id FROM builds b JOIN projects p ON p.id = b.project_id WHERE p.name = \(project) ORDER BY b.id"
        ).rows.map { try $0.int("id") }
    }

    /// Retention: `keep_builds = N` keeps the newest N succeeded builds of a package and every build newer than the
    /// oldest of them; older finished builds are deleted with a delete action for their result dirs.
    @Test func retentionKeepsTheNewestSucceededBuildsPerPackage() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("ret")
        var r = try await h.send(
            "POST",
            "/api_3/project/add/ret",
            json: #"{"name": "keep", "chroots": ["fedora-39-x86_64"], "keep_builds": 2}"#,
            auth: u
        )
        #expect(r.status == 200, "\(r.body)")
        #expect(r.json?["keep_builds"] as? Int == 2)
        // Bad values are refused and change nothing.
        for bad in ["-1", "1001", #""many""#] {
            r = try await h.send("POST", "/api_3/project/edit/ret/keep", json: #"{"keep_builds": \#(bad)}"#, auth: u)
            #expect(r.status == 400, "\(bad): \(r.body)")
            #expect(r.json?["error"] as? String != nil)
        }
        #expect(try await h.get("/api_3/project?ownername=ret&projectname=keep").json?["keep_builds"] as? Int == 2)

        let chroot = "fedora-39-x86_64"
        var ids: [Int] = []
        for _ in 0..<2 {
            let id = try await upload(h, u, project: "keep", name: "kept")
            try await finish(h, build: id, chroot: chroot, package: "kept", state: "succeeded")
            ids.append(id)
        }
        // Another package in the same project is counted on its own.
        let other = try await upload(h, u, project: "keep", name: "other")
        try await finish(h, build: other, chroot: chroot, package: "other", state: "succeeded")
        #expect(try await buildIDs(h, project: "keep") == ids + [other])
        // A failed rebuild deletes nothing; the next success pushes the oldest succeeded build out.
        let failed = try await upload(h, u, project: "keep", name: "kept")
        try await finish(h, build: failed, chroot: chroot, package: "kept", state: "failed")
        #expect(try await buildIDs(h, project: "keep") == ids + [other, failed])
        // A build still running is never pruned, and is not counted.
        let running = try await upload(h, u, project: "keep", name: "kept")
        let newest = try await upload(h, u, project: "keep", name: "kept")
        try await finish(h, build: newest, chroot: chroot, package: "kept", state: "succeeded")
        #expect(try await buildIDs(h, project: "keep") == [ids[1], other, failed, running, newest])
        #expect(try await h.get("/api_3/build/\(ids[0])").status == 404)
        let actions = try await h.sql(
            "SELECT data FROM actions WHERE action_type = 'delete' AND ownername = 'ret' ORDER BY id"
        ).rows.map { $0["data"] ?? "" }
        #expect(actions.count == 1)
        #expect(actions.first?.contains(resultDirName(buildID: ids[0], packageName: "kept")) == true, "\(actions)")
        #expect(actions.first?.contains(#""object_type":"builds""#) == true, "\(actions)")

        // Lowering the limit prunes at once: only the newest succeeded build and what is newer than it stay.
        r = try await h.send("POST", "/api_3/project/edit/ret/keep", json: #"{"keep_builds": 1}"#, auth: u)
        #expect(r.status == 200, "\(r.body)")
        #expect(try await buildIDs(h, project: "keep") == [other, running, newest])
        // 0 (or null) turns retention off.
        r = try await h.send("POST", "/api_3/project/edit/ret/keep", json: #"{"keep_builds": 0}"#, auth: u)
        #expect(r.json?["keep_builds"] is NSNull, "\(r.body)")
        try await finish(h, build: running, chroot: chroot, package: "kept", state: "succeeded")
        #expect(try await buildIDs(h, project: "keep") == [other, running, newest])
        await h.stop()
    }

    /// GET /api_3/build/ID is batched (decision 0007): many concurrent readers on keep-alive connections each get
    /// their own build (or 404), and a state change is visible to the very next read.
    @Test func concurrentBuildReadsGetTheirOwnBuild() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("reader")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/reader",
                json: #"{"name": "r", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        var made: [Int] = []
        for name in ["ra", "rb", "rc"] { made.append(try await upload(h, u, project: "r", name: name)) }
        let ids = made
        let names = Dictionary(uniqueKeysWithValues: zip(ids, ["ra", "rb", "rc"]))
        let port = h.port
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<16 {
                group.addTask {
                    try await TestHTTPClient.runBlocking {
                        let client = try TestHTTPClient(port: port, timeout: .seconds(60))
                        defer { client.close() }
                        var bad: [String] = []
                        for i in 0..<25 {
                            let pick = (worker + i) % 4
                            let id = pick < 3 ? ids[pick] : 999_999
                            let r = try client.request(
                                method: "GET",
                                path: "/api_3/build/\(id)",
                                headers: [("Host", "127.0.0.1")],
                                body: nil
                            )
                            let json = try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
                            if pick < 3 {
                                if r.status != 200 || json?["id"] as? Int != id
                                    || (json?["source_package"] as? [String: Any])?["name"] as? String != names[id]
                                {
                                    bad.append("\(id): \(r.status) \(r.bodyString)")
                                }
                            } else if r.status != 404 || json?["error"] as? String != "Build 999999 does not exist." {
                                bad.append("missing: \(r.status) \(r.bodyString)")
                            }
                        }
                        return bad
                    }
                }
            }
            var all: [String] = []
            for try await f in group { all += f }
            return all
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        // A cancel is visible to the next read (nothing is cached between requests).
        #expect(try await h.send("PUT", "/api_3/build/cancel/\(ids[0])", auth: u).status == 200)
        #expect(try await h.get("/api_3/build/\(ids[0])").json?["state"] as? String == "canceled")
        await h.stop()
    }

    @Test func cancelWhileClaimedCreatesACancelRequest() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("lee")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/lee",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let id = try await upload(h, u, project: "p", name: "cancelme")
        let task = "\(id)-fedora-39-x86_64"
        _ = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(task)", "worker_id": "w1"}"#,
            headers: [secret]
        )
        var r = try await h.send("PUT", "/api_3/build/cancel/\(id)", auth: u)
        #expect(r.status == 200)
        #expect(r.json?["state"] as? String == "canceled")
        r = try await curl(["-H", secret, "\(h.url)/backend/cancel-requests"])
        #expect(r.json?["task_ids"] as? [String] == [task])
        // The worker's late result is acknowledged and ignored.
        r = try await h.send(
            "POST",
            "/backend/update",
            json: #"{"update_id": "late", "task_id": "\#(task)", "state": "succeeded"}"#,
            headers: [secret]
        )
        #expect(r.json?["canceled"] as? Bool == true)
        #expect(try await h.get("/api_3/build/\(id)").json?["state"] as? String == "canceled")
        r = try await h.send(
            "POST",
            "/backend/cancel-request-done",
            json: #"{"task_id": "\#(task)"}"#,
            headers: [secret]
        )
        #expect(r.json?["removed"] as? Bool == true)
        #expect(
            (try await curl(["-H", secret, "\(h.url)/backend/cancel-requests"])).json?["task_ids"] as? [String] == []
        )
        // A canceled build is no longer offered, and claiming it says so.
        r = try await curl(["-H", secret, "\(h.url)/backend/pending-jobs"])
        #expect((r.json?["tasks"] as? [Any])?.isEmpty == true)
        await h.stop()
    }

    @Test func longPollWakesOnNewBuildAndSRPMTaskFlow() async throws {
        let h = try await FrontendHarness()
        let u = try await h.makeUser("max")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/max",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let clock = ContinuousClock()
        let start = clock.now
        async let polled = curl(["-H", secret, "\(h.url)/backend/pending-jobs?wait=20"])
        try await Task.sleep(for: .milliseconds(500))
        let create = try await h.send(
            "POST",
            "/api_3/build/create/url",
            json: #"{"ownername": "max", "projectname": "p", "pkgs": ["https://example.org/u-2.0-1.src.rpm"]}"#,
            auth: u
        )
        let id = try #require((create.json?["items"] as? [[String: Any]])?.first?["id"] as? Int)
        let r = try await polled
        #expect(clock.now - start < .seconds(10))
        let t = try #require((r.json?["tasks"] as? [[String: Any]])?.first)
        #expect(t["task_id"] as? String == String(id))
        #expect(t["type"] as? String == "srpm")
        // The SRPM build succeeds → the chroots become pending with the NEVR known.
        _ = try await h.send(
            "POST",
            "/backend/claim",
            json: #"{"task_id": "\#(id)", "worker_id": "w"}"#,
            headers: [secret]
        )
        let up =
            #"{"update_id": "s-1", "task_id": "\#(id)", "state": "succeeded", "srpm": {"name": "u", "epoch": null, "version": "2.0", "release": "1"}}"#
        #expect(
            try await h.send("POST", "/backend/update", json: up, headers: [secret]).json?["applied"] as? Bool == true
        )
        let b = try await h.get("/api_3/build/\(id)")
        #expect(b.json?["state"] as? String == "pending")
        #expect((b.json?["source_package"] as? [String: Any])?["version"] as? String == "2.0-1")
        #expect(
            try await h.count(
                "SELECT count(*) FROM build_chroots WHERE build_id = \(String(id)) AND state = 'pending' AND result_dir = \(resultDirName(buildID: id, packageName: "u"))"
            ) == 1
        )
        await h.stop()
    }

    @Test func importTasksForDistGit() async throws {
        let h = try await FrontendHarness { $0.distgitImport = true }
        let u = try await h.makeUser("nia")
        #expect(
            try await h.send(
                "POST",
                "/api_3/project/add/nia",
                json: #"{"name": "p", "chroots": ["fedora-39-x86_64"]}"#,
                auth: u
            ).status == 200
        )
        let id = try await upload(h, u, project: "p", name: "imp")
        #expect(try await h.get("/api_3/build/\(id)").json?["state"] as? String == "importing")
        var r = try await curl(["-H", secret, "\(h.url)/backend/importing"])
        #expect((r.json?["builds"] as? [[String: Any]])?.first?["build_id"] as? Int == id)
        // Nothing to build until the import completes.
        #expect(
            ((try await curl(["-H", secret, "\(h.url)/backend/pending-jobs"])).json?["tasks"] as? [Any])?.isEmpty
                == true
        )
        r = try await h.send(
            "POST",
            "/backend/import-completed",
            json: #"{"build_id": \#(id), "result": "success"}"#,
            headers: [secret]
        )
        #expect(r.json?["build_state"] as? String == "pending")
        r = try await h.send(
            "POST",
            "/backend/import-completed",
            json: #"{"build_id": \#(id), "result": "success"}"#,
            headers: [secret]
        )
        #expect(r.json?["applied"] as? Bool == false)
        await h.stop()
    }
}
