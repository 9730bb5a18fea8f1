import CoprModel
import Foundation
import KoperJSON
import KoperStore
import Logging
import Postgres
import TestSupport
import Testing

/// The store's repositories against a real, migrated database (decision 0009): records round-trip every typed
/// column, settings change only what they name, and a row that does not fit a record names the column.
@Suite(.serialized)
struct StoreTests {
    /// A fresh database with the Frontend's schema and three mock chroots, one of them inactive.
    static func makePool() async throws -> PGPool {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let logger = Logger(label: "koper.test") { _ in SwiftLogNoOpLogHandler() }
        let pool = PGPool(conninfo: conninfo, size: 2, logger: logger)
        _ = try await PGMigrator.migrate(pool, migrations: Schema.migrations, logger: logger)
        try await pool.withConnection { c in
            for name in ["fedora-40-x86_64", "epel-9-x86_64", "fedora-39-x86_64"] {
                let parts = name.split(separator: "-").map(String.init)
                try MockChrootStore.upsert(c, name: name, os: parts[0], version: parts[1], arch: parts[2], comment: "")
            }
            _ = try MockChrootStore.setActive(c, name: "fedora-39-x86_64", active: false)
        }
        return pool
    }

    /// Values that break naive array literals: quotes, commas, backslashes, braces, spaces, an empty string, "NULL".
    static let awkward = [#"say "hi", then \leave"#, "a,b", "{braces}", " spaced ", "", "NULL", "ünïcode"]

    @Test func projectRoundTripsEveryTypedField() async throws {
        let pool = try await Self.makePool()
        defer { pool.close() }
        let (created, byName, byID) = try await pool.transaction {
            c -> (ProjectRecord?, ProjectRecord?, ProjectRecord?) in
            guard
                let userID = try UserStore.create(c, name: "alice", email: nil, isAdmin: false, apiLogin: "login-alice")
            else {
                return (nil, nil, nil)
            }
            let id = try ProjectStore.insert(
                c,
                NewProject(
                    ownername: "alice",
                    name: "tools",
                    ownerUserID: userID,
                    ownerGroupID: nil,
                    createdBy: userID,
                    persistent: true
                )
            )
            let created = try ProjectStore.find(c, id: id)
            var s = ProjectSettings()
            s.description = "A \"quoted\" description, with commas"
            s.instructions = "dnf copr enable alice/tools"
            s.homepage = .some("https://example.org/tools")
            s.contact = .some(nil)
            s.additionalRepos = Self.awkward
            s.runtimeDependencies = ["copr://bob/lib", "https://example.org/repo,with,commas"]
            s.packitForgeProjectsAllowed = ["github.com/alice/tools"]
            s.unlistedOnHP = true
            s.enableNet = true
            s.autoPrune = false
            s.bootstrap = "image"
            s.bootstrapImage = "registry.fedoraproject.org/fedora:40"
            s.isolation = "nspawn"
            s.followFedoraBranching = false
            s.develMode = true
            s.multilib = true
            s.moduleHotfixes = true
            s.fedoraReview = true
            s.appstream = true
            s.repoPriority = .some(42)
            s.deleteAfterDays = .some(3)
            s.keepBuilds = .some(7)
            try ProjectStore.update(c, id: id, settings: s)
            let active = try MockChrootStore.all(c).map(\.id)
            try ProjectStore.addChroots(c, projectID: id, mockChrootIDs: active)
            return (created, try ProjectStore.find(c, owner: "alice", name: "tools"), try ProjectStore.find(c, id: id))
        }

        let fresh = try #require(created)
        #expect(fresh.description == "")
        #expect(fresh.homepage == nil)
        #expect(fresh.persistent)
        #expect(fresh.autoPrune)
        #expect(!fresh.enableNet)
        #expect(fresh.followFedoraBranching)
        #expect(fresh.bootstrap == "default")
        #expect(fresh.repoPriority == nil)
        #expect(fresh.keepBuilds == nil)
        #expect(fresh.deleteAfter == nil)
        #expect(fresh.additionalRepos.isEmpty)
        #expect(fresh.chroots.isEmpty)
        #expect(fresh.storage == "backend")

        let p = try #require(byName)
        #expect(p == byID)
        #expect(p.ownername == "alice")
        #expect(p.name == "tools")
        #expect(p.fullName == "alice/tools")
        #expect(p.ownerUserID != nil)
        #expect(p.ownerGroupID == nil)
        #expect(p.description == "A \"quoted\" description, with commas")
        #expect(p.instructions == "dnf copr enable alice/tools")
        #expect(p.homepage == "https://example.org/tools")
        #expect(p.contact == nil)
        #expect(p.additionalRepos == Self.awkward)
        #expect(p.runtimeDependencies == ["copr://bob/lib", "https://example.org/repo,with,commas"])
        #expect(p.packitForgeProjectsAllowed == ["github.com/alice/tools"])
        #expect(p.unlistedOnHP && p.enableNet && !p.autoPrune && p.persistent)
        #expect(p.bootstrap == "image")
        #expect(p.bootstrapImage == "registry.fedoraproject.org/fedora:40")
        #expect(p.isolation == "nspawn")
        #expect(!p.followFedoraBranching)
        #expect(p.develMode && p.multilib && p.moduleHotfixes && p.fedoraReview && p.appstream)
        #expect(p.repoPriority == 42)
        #expect(p.keepBuilds == 7)
        let now = Int(Date().timeIntervalSince1970)
        let deleteAfter = try #require(p.deleteAfter)
        #expect(abs(deleteAfter - (now + 3 * 86_400)) < 60)
        // Active chroots only, sorted by name.
        #expect(p.chroots == ["epel-9-x86_64", "fedora-40-x86_64"])
    }

    @Test func settingsChangeOnlyWhatTheyName() async throws {
        let pool = try await Self.makePool()
        defer { pool.close() }
        let (before, after, cleared, chroots) = try await pool.transaction { c in
            let userID = try UserStore.create(
                c,
                name: "bob",
                email: "bob@example.org",
                isAdmin: false,
                apiLogin: "login-bob"
            )!
            let id = try ProjectStore.insert(
                c,
                NewProject(ownername: "bob", name: "lib", ownerUserID: userID, ownerGroupID: nil, createdBy: userID)
            )
            var first = ProjectSettings()
            first.description = "first"
            first.homepage = .some("https://example.org")
            first.repoPriority = .some(10)
            first.additionalRepos = ["https://example.org/a"]
            first.deleteAfterDays = .some(5)
            try ProjectStore.update(c, id: id, settings: first)
            let before = try ProjectStore.find(c, id: id)!

            var second = ProjectSettings()
            second.enableNet = true
            try ProjectStore.update(c, id: id, settings: second)
            try ProjectStore.update(c, id: id, settings: ProjectSettings())  // nothing to change: no statement
            let after = try ProjectStore.find(c, id: id)!

            var clear = ProjectSettings()
            clear.homepage = .some(nil)
            clear.repoPriority = .some(nil)
            clear.deleteAfterDays = .some(nil)
            clear.additionalRepos = []
            try ProjectStore.update(c, id: id, settings: clear)
            let cleared = try ProjectStore.find(c, id: id)!

            let all = try MockChrootStore.active(c)
            try ProjectStore.setChroots(c, projectID: id, mockChrootIDs: all.map(\.id))
            try ProjectStore.setChroots(
                c,
                projectID: id,
                mockChrootIDs: [all.first { $0.name == "fedora-40-x86_64" }!.id]
            )
            return (before, after, cleared, try ProjectStore.find(c, id: id)!.chroots)
        }
        #expect(ProjectSettings().isEmpty)
        var named = ProjectSettings()
        named.homepage = .some(nil)
        #expect(!named.isEmpty)
        #expect(before.description == "first" && before.repoPriority == 10 && before.deleteAfter != nil)
        #expect(!before.enableNet)
        // Only enable_net changed.
        #expect(after.enableNet)
        #expect(after.description == "first")
        #expect(after.homepage == "https://example.org")
        #expect(after.repoPriority == 10)
        #expect(after.additionalRepos == ["https://example.org/a"])
        #expect(after.deleteAfter == before.deleteAfter)
        // `.some(nil)` clears.
        #expect(cleared.homepage == nil)
        #expect(cleared.repoPriority == nil)
        #expect(cleared.deleteAfter == nil)
        #expect(cleared.additionalRepos.isEmpty)
        #expect(cleared.description == "first" && cleared.enableNet)
        #expect(chroots == ["fedora-40-x86_64"])
    }

    @Test func usersTokensAndPermissions() async throws {
        let pool = try await Self.makePool()
        defer { pool.close() }
        struct Seen: Sendable {
            var duplicate: Int?
            var noToken: APILoginRecord?
            var expiration: String?
            var login: APILoginRecord?
            var expired: APILoginRecord?
            var missingUser: String?
            var defaults: PermissionLevels
            var stored: PermissionLevels
            var outsider: ProjectAccess
            var member: ProjectAccess
            var list: [PermissionRecord]
            var groupChanges: [Bool]
        }
        let seen = try await pool.transaction { c -> Seen in
            let owner = try UserStore.create(c, name: "carol", email: nil, isAdmin: true, apiLogin: "disabled-carol")!
            let other = try UserStore.create(c, name: "dave", email: nil, isAdmin: false, apiLogin: "disabled-dave")!
            let duplicate = try UserStore.create(c, name: "carol", email: nil, isAdmin: false, apiLogin: "another")
            let noToken = try UserStore.find(c, apiLogin: "disabled-dave")
            let expiration = try UserStore.storeToken(
                c,
                userID: owner,
                login: "carol-login",
                tokenSHA256: "abc123",
                days: 30
            )
            let login = try UserStore.find(c, apiLogin: "carol-login")
            _ = try UserStore.storeToken(c, userID: other, login: "dave-login", tokenSHA256: "def456", days: -1)
            let expired = try UserStore.find(c, apiLogin: "dave-login")
            let missingUser = try UserStore.storeToken(c, userID: 999_999, login: "nobody", tokenSHA256: "x", days: 1)

            var groupChanges = [try GroupStore.create(c, name: "team", fasName: "fas-team")]
            groupChanges.append(try GroupStore.create(c, name: "team", fasName: "other"))
            let group = try GroupStore.find(c, name: "team")!
            groupChanges.append(try GroupStore.addMember(c, group: "team", user: "dave"))
            groupChanges.append(try GroupStore.addMember(c, group: "team", user: "dave"))
            let project = try ProjectStore.insert(
                c,
                NewProject(
                    ownername: "@team",
                    name: "shared",
                    ownerUserID: nil,
                    ownerGroupID: group.id,
                    createdBy: owner
                )
            )
            let defaults = try PermissionStore.levels(c, projectID: project, userID: owner)
            try PermissionStore.set(
                c,
                projectID: project,
                userID: owner,
                levels: PermissionLevels(builder: PermissionLevels.approved, admin: PermissionLevels.request)
            )
            let stored = try PermissionStore.levels(c, projectID: project, userID: owner)
            let outsider = try PermissionStore.access(c, projectID: project, ownerGroupID: group.id, userID: owner)
            let member = try PermissionStore.access(c, projectID: project, ownerGroupID: group.id, userID: other)
            groupChanges.append(try GroupStore.removeMember(c, group: "team", user: "dave"))
            groupChanges.append(try GroupStore.isMember(c, groupID: group.id, userID: other))
            groupChanges.append(group.fasName == "fas-team")
            return Seen(
                duplicate: duplicate,
                noToken: noToken,
                expiration: expiration,
                login: login,
                expired: expired,
                missingUser: missingUser,
                defaults: defaults,
                stored: stored,
                outsider: outsider,
                member: member,
                list: try PermissionStore.list(c, projectID: project),
                groupChanges: groupChanges
            )
        }
        #expect(seen.duplicate == nil)
        #expect(seen.noToken?.tokenSHA256 == nil)
        #expect(seen.noToken?.isExpired == true)
        #expect(seen.expiration?.count == 10)  // YYYY-MM-DD
        #expect(seen.login?.user.name == "carol")
        #expect(seen.login?.user.isAdmin == true)
        #expect(seen.login?.tokenSHA256 == "abc123")
        #expect(seen.login?.isExpired == false)
        #expect(seen.expired?.isExpired == true)
        #expect(seen.missingUser == nil)
        #expect(seen.defaults == PermissionLevels())
        #expect(seen.stored == PermissionLevels(builder: 2, admin: 1))
        #expect(!seen.outsider.isOwnerGroupMember)
        #expect(seen.outsider.levels == PermissionLevels(builder: 2, admin: 1))
        #expect(seen.member.isOwnerGroupMember)
        #expect(seen.member.levels == PermissionLevels())
        #expect(seen.list.map(\.userName) == ["carol"])
        // create, create again, add, add again, remove, still a member?, fas name kept
        #expect(seen.groupChanges == [true, false, true, false, true, false, true])
    }

    @Test func packagesUpsertAndEnsure() async throws {
        let pool = try await Self.makePool()
        defer { pool.close() }
        let (ensured, again, added, edited, listed, invalid) = try await pool.transaction { c in
            let userID = try UserStore.create(c, name: "erin", email: nil, isAdmin: false, apiLogin: "login-erin")!
            let projectID = try ProjectStore.insert(
                c,
                NewProject(ownername: "erin", name: "pkgs", ownerUserID: userID, ownerGroupID: nil, createdBy: userID)
            )
            let ensured = try PackageStore.ensure(c, projectID: projectID, name: "hello", sourceType: "upload")
            let again = try PackageStore.ensure(c, projectID: projectID, name: "hello", sourceType: "url")
            let source: JSONObject = [
                "clone_url": "https://example.org/x.git", "committish": "", "spec": "x \"y\".spec",
            ]
            let added = try PackageStore.upsert(
                c,
                projectID: projectID,
                PackageChange(
                    name: "tool",
                    sourceType: "scm",
                    source: source,
                    webhookRebuild: true,
                    maxBuilds: 3,
                    chrootDenylist: ["fedora-*-i386", #"we"ird,"#]
                )
            )
            // An edit that sends only the source keeps the other settings.
            let edited = try PackageStore.upsert(
                c,
                projectID: projectID,
                PackageChange(name: "tool", sourceType: "url", source: ["url": "https://example.org/x.src.rpm"])
            )
            var invalid: String?
            do {
                _ = try PackageStore.ensure(c, projectID: projectID, name: "bad name!", sourceType: "upload")
            } catch let e as ValidationError {
                invalid = e.description
            }
            return (
                ensured, again, added, edited, try PackageStore.list(c, projectID: projectID, limit: 10, offset: 0),
                invalid
            )
        }
        #expect(ensured == again)
        #expect(added.name == "tool")
        #expect(added.sourceType == "scm")
        #expect(added.source["spec"]?.stringValue == "x \"y\".spec")
        #expect(added.webhookRebuild)
        #expect(added.maxBuilds == 3)
        #expect(added.timeout == nil)
        #expect(added.chrootDenylist == ["fedora-*-i386", #"we"ird,"#])
        #expect(edited.id == added.id)
        #expect(edited.sourceType == "url")
        #expect(edited.source["url"]?.stringValue == "https://example.org/x.src.rpm")
        #expect(edited.webhookRebuild && edited.maxBuilds == 3)
        #expect(edited.chrootDenylist == added.chrootDenylist)
        #expect(listed.map(\.name) == ["hello", "tool"])
        #expect(listed.first?.sourceType == "upload")
        #expect(invalid?.hasPrefix("The SRPM's package name is not valid") == true)
    }

    @Test func decodingErrorsNameTheColumn() async throws {
        let pool = try await Self.makePool()
        defer { pool.close() }
        let messages = try await pool.withConnection { c -> [String] in
            var messages: [String] = []
            do {
                _ = try c.one("SELECT 1 AS id, 'frank' AS name, 'maybe' AS is_admin", as: UserRecord.self)
            } catch let e as PostgresError {
                messages.append(e.message)
            }
            do {
                _ = try c.one("SELECT 1 AS id, 'frank' AS name", as: UserRecord.self)
            } catch let e as PostgresError {
                messages.append(e.message)
            }
            do {
                _ = try c.one("SELECT NULL::bigint AS id, 'frank' AS name, false AS is_admin", as: UserRecord.self)
            } catch let e as PostgresError {
                messages.append(e.message)
            }
            return messages
        }
        #expect(messages.count == 3)
        #expect(messages.allSatisfy { !$0.contains("maybe") && !$0.contains("frank") }, "values never appear in errors")
        #expect(messages.first?.contains("\"is_admin\"") == true)
        #expect(messages.dropFirst().first?.contains("\"is_admin\"") == true)
        #expect(messages.last?.contains("\"id\"") == true)
    }
}
