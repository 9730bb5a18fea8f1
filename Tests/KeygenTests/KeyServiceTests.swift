import Foundation
import GPG
import Logging
import ServiceKit
import TestSupport
import Testing

@testable import Keygen

private func uid(_ owner: String, _ project: String) -> String {
    "\(owner)_\(project) (Copr) <\(owner)#\(project)@copr.\(KeygenFixture.signDomain)>"
}

@Suite(.serialized) struct KeyServiceTests {
    @Test func ensureTakesASpareIsIdempotentAndThePoolRefills() async throws {
        try await KeygenFixture.with(poolSize: 2) { fixture, service in
            let before = await service.indexSnapshot()
            #expect(before.spares.count == 2)
            let oldestSpare = try #require(before.spares.first)

            let clock = ContinuousClock()
            let started = clock.now
            let alice = try ProjectRef(owner: "alice", project: "hello")
            let first = try await service.ensure(alice)
            let elapsed = started.duration(to: clock.now)
            // No key was generated on the request path: the project got the oldest spare.
            #expect(first.fingerprint == oldestSpare.fingerprint)
            #expect(first.created)
            #expect(first.userID == uid("alice", "hello"))
            #expect(first.keyID == String(first.fingerprint.suffix(16)))
            #expect(elapsed < .seconds(20), "ensure with spares took \(elapsed)")

            // The key is usable the moment ensure returns: only the project's user id, secret part present.
            let info = try #require(try await service.keyring.key(fingerprint: first.fingerprint))
            #expect(info.userIDs == [uid("alice", "hello")])
            #expect(info.hasSecretKey && info.canSign)
            #expect(try await !service.publicKey(alice).isEmpty)

            // Idempotent.
            let again = try await service.ensure(alice)
            #expect(
                again
                    == EnsuredKey(
                        fingerprint: first.fingerprint,
                        keyID: first.keyID,
                        userID: first.userID,
                        created: false
                    )
            )

            // Concurrent ensures of one new project agree on one key; exactly one reports created.
            let group = try ProjectRef(owner: "@devs", project: "tool-1.x")
            let results = try await withThrowingTaskGroup(of: EnsuredKey.self) { tasks in
                for _ in 0..<4 { tasks.addTask { try await service.ensure(group) } }
                var all: [EnsuredKey] = []
                for try await result in tasks { all.append(result) }
                return all
            }
            #expect(Set(results.map(\.fingerprint)).count == 1)
            #expect(results.filter(\.created).count == 1)
            #expect(results[0].userID == "@devs_tool-1.x (Copr) <@devs#tool-1.x@copr.example.org>")
            #expect(results[0].fingerprint != first.fingerprint)

            // The pool refills in the background.
            try await fixture.waitForSpares(service, count: 2)
            let after = await service.indexSnapshot()
            #expect(after.spares.count == 2)
            #expect(
                !after.spares.contains {
                    $0.fingerprint == first.fingerprint || $0.fingerprint == results[0].fingerprint
                }
            )

            // The index on disk has both projects, ready.
            let stored = try KeyIndex.load(path: fixture.config.indexPath)
            #expect(stored.projects["alice/hello"]?.fingerprint == first.fingerprint)
            #expect(stored.projects["alice/hello"]?.ready == true)
            #expect(stored.projects["@devs/tool-1.x"]?.fingerprint == results[0].fingerprint)
            let mode =
                try FileManager.default.attributesOfItem(atPath: fixture.config.indexPath)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let homeMode = try FileManager.default.attributesOfItem(atPath: fixture.home)[.posixPermissions] as? Int
            #expect(homeMode == 0o700)
        }
    }

    @Test func anEmptyPoolGeneratesOnTheRequestPathAndSaysSo() async throws {
        try await KeygenFixture.with(poolSize: 0) { fixture, service in
            let key = try await service.ensure(ProjectRef(owner: "carol", project: "empty"))
            #expect(key.created)
            let info = try #require(try await service.keyring.key(fingerprint: key.fingerprint))
            #expect(info.userIDs == [uid("carol", "empty")])
            let warnings = fixture.logs.entries.filter { $0.level == .warning }.map { "\($0.message)" }
            #expect(warnings.contains("key pool is empty: generating a key on the request path"), "\(warnings)")
            #expect(await service.health().spares == 0)
            // Nothing logged the shared secret.
            #expect(!fixture.logs.entries.contains { "\($0.message) \($0.metadata)".contains(fixture.config.secret) })
        }
    }

    @Test func badNamesAreRefused() async throws {
        for (owner, project) in [
            ("", "p"), ("o", ""), ("a/b", "p"), ("o", "p/q"), ("o", ".."), ("o", "123"), ("o", "p q"), ("o\n", "p"),
            ("@", "p"),
        ] {
            #expect(throws: KeygenError.self, "\(owner)/\(project)") {
                _ = try ProjectRef(owner: owner, project: project)
            }
        }
        #expect(try ProjectRef(owner: "@group", project: "a.b_c-d").key == "@group/a.b_c-d")
    }

    @Test func prolongationMovesTheExpiryOfANearExpiryKeyOnly() async throws {
        try await KeygenFixture.with(poolSize: 0) { fixture, service in
            let near = try await service.ensure(ProjectRef(owner: "dave", project: "near"))
            let far = try await service.ensure(ProjectRef(owner: "dave", project: "far"))
            // Make one key expire in 10 days (within prolong_before_days = 30).
            let set = try await fixture.gpg(["--quick-set-expire", near.fingerprint, "10d"])
            #expect(set.status == 0, "\(set)")
            let nearBefore = try #require(try await service.keyring.key(fingerprint: near.fingerprint)?.expires)
            let farBefore = try #require(try await service.keyring.key(fingerprint: far.fingerprint)?.expires)
            let now = Int64(Date().timeIntervalSince1970)
            #expect(abs(nearBefore - (now + 10 * 86_400)) < 300)

            let prolonged = await service.prolongExpiringKeys()
            #expect(prolonged == [near.fingerprint])

            let nearAfter = try #require(try await service.keyring.key(fingerprint: near.fingerprint))
            let expected = now + Int64(fixture.config.keyExpiryDays) * 86_400
            #expect(
                abs(try #require(nearAfter.expires) - expected) < 300,
                "expiry \(String(describing: nearAfter.expires)), expected ~\(expected)"
            )
            #expect(!nearAfter.isExpired)
            #expect(nearAfter.userIDs == [uid("dave", "near")])
            #expect(try await service.keyring.key(fingerprint: far.fingerprint)?.expires == farBefore)

            // Nothing is near expiry any more.
            #expect(await service.prolongExpiringKeys().isEmpty)
            // The prolonged key still signs, and gpg still verifies it.
            let signature = try await service.sign(
                [1, 2, 3],
                project: ProjectRef(owner: "dave", project: "near"),
                digest: .sha256
            )
            #expect(!signature.isEmpty)
        }
    }

    @Test func aRestartFinishesAnInterruptedAssignmentAndAdoptsUnrecordedSpares() async throws {
        let fixture = try KeygenFixture(poolSize: 1)
        do {
            // A first run fills the pool with one spare.
            let first = try await fixture.makeService()
            try await fixture.waitForSpares(first, count: 1)
            await first.stop()
            var index = try KeyIndex.load(path: fixture.config.indexPath)
            let spare = try #require(index.spares.first)

            // As if the service died right after recording the assignment, before touching the key.
            index.spares.removeAll()
            index.projects["erin/app"] = KeyIndex.ProjectKey(
                fingerprint: spare.fingerprint,
                userID: uid("erin", "app"),
                assigned: 1,
                ready: false
            )
            try index.save(path: fixture.config.indexPath)
            // And as if another run died after generating a spare, before recording it.
            let orphanUID = SparePlaceholder.make(token: "0123456789ab")
            let made = try await fixture.gpg(["--quick-gen-key", orphanUID, "rsa2048", "sign", "1y"])
            #expect(made.status == 0, "\(made)")
            // A key that is not Keygen's is left alone.
            let foreign = try await fixture.gpg([
                "--quick-gen-key", "Someone Else <else@example.org>", "rsa2048", "sign", "1y",
            ])
            #expect(foreign.status == 0, "\(foreign)")

            let second = try await fixture.makeService()
            let after = await second.indexSnapshot()
            let erin = try #require(after.projects["erin/app"])
            #expect(erin.ready)
            #expect(try await second.keyring.key(fingerprint: erin.fingerprint)?.userIDs == [uid("erin", "app")])
            #expect(after.spares.count == 1)
            let adopted = try #require(after.spares.first)
            #expect(adopted.userID == orphanUID)
            #expect(try await second.ensure(ProjectRef(owner: "erin", project: "app")).created == false)
            await second.stop()
        } catch {
            await fixture.cleanUp()
            throw error
        }
        await fixture.cleanUp()
    }

    @Test func configValidation() throws {
        var config = KeygenConfig(secret: "s", gnupgHome: "/tmp/x", stateDir: "/tmp/y")
        try config.validate()
        #expect(config.keyType == "rsa4096" && config.keyExpiryDays == 5 * 365 && config.prolongBeforeDays == 30)
        #expect(config.poolSize == 2)
        config.keyType = "ed25519"
        #expect(throws: ConfigError.self) { try config.validate() }
        config.keyType = "rsa2048"
        config.prolongBeforeDays = config.keyExpiryDays
        #expect(throws: ConfigError.self) { try config.validate() }
        config.prolongBeforeDays = 30
        config.secret = ""
        #expect(throws: ConfigError.self) { try config.validate() }

        let json =
            #"{"secret":"x","gnupg_home":"/g","state_dir":"/s","key_type":"rsa2048","pool_size":5,"sign_domain":"example.com"}"#
        let decoded = try JSONDecoder().decode(KeygenConfig.self, from: Data(json.utf8))
        #expect(decoded.poolSize == 5 && decoded.keyType == "rsa2048" && decoded.signDomain == "example.com")
        #expect(decoded.listenHost == "127.0.0.1" && decoded.keyExpiryDays == 1825)
    }
}
