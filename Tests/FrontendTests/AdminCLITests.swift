import Foundation
import LibCrypto
import TestSupport
import Testing

/// The admin commands of the real `koper-frontend` binary against a real database.
@Suite(.serialized)
struct AdminCLITests {
    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        return "\(dir)/koper-frontend"
    }

    @Test(.requires(.tool(binary)))
    func usersGroupsChrootsAndTokens() async throws {
        let conninfo = try await PostgresFixture.makeDatabaseAsync()
        let dir = try makeTemporaryDirectory(prefix: "koper-admin")
        let config = "\(dir)/frontend.json"
        let json = """
            {"database": "\(conninfo)", "results_url": "http://127.0.0.1:9/results", "storage_dir": "\(dir)/storage",
             "backend_secret": "s3cret-s3cret", "public_url": "http://copr.example.test"}
            """
        try json.write(toFile: config, atomically: true, encoding: .utf8)
        func admin(_ args: [String]) async throws -> Command.Result {
            try await Command.run(Self.binary, args + ["--config", config], timeout: 60)
        }
        var r = try await admin(["migrate"])
        #expect(r.status == 0, "\(r)")
        #expect(r.output.contains("applied migrations: 1"))
        r = try await admin(["migrate"])
        #expect(r.output.contains("database is up to date"))
        r = try await admin(["user", "add", "boss", "--admin", "--email", "boss@example.test"])
        #expect(r.status == 0, "\(r)")
        r = try await admin(["user", "add", "boss"])
        #expect(r.output.contains("user boss exists"))
        r = try await admin(["user", "add", "bad name"])
        #expect(r.status != 0)
        r = try await admin(["group", "add", "@devs"])
        #expect(r.status == 0, "\(r)")
        r = try await admin(["group", "add-member", "devs", "boss"])
        #expect(r.output.contains("boss is now a member of @devs"), "\(r)")
        r = try await admin(["chroot", "add", "fedora-41-x86_64", "--comment", "Fedora 41"])
        #expect(r.status == 0, "\(r)")
        r = try await admin(["chroot", "add", "rawhide"])
        #expect(r.status != 0)
        r = try await admin(["chroot", "disable", "fedora-41-x86_64"])
        #expect(r.status == 0, "\(r)")
        r = try await admin(["chroot", "list"])
        #expect(r.output.contains("fedora-41-x86_64\tx86_64\tdisabled\tFedora 41"), "\(r)")
        r = try await admin(["chroot", "enable", "nope-1-x86_64"])
        #expect(r.status != 0)
        r = try await admin(["token", "mint", "boss", "--days", "7"])
        #expect(r.status == 0, "\(r)")
        let lines = r.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "[copr-cli]")
        #expect(lines.contains("username = boss"))
        #expect(lines.contains("copr_url = http://copr.example.test"))
        #expect(lines.contains("encrypted = False"))
        let token = try #require(lines.first { $0.hasPrefix("token = ") }?.dropFirst(8))
        let login = try #require(lines.first { $0.hasPrefix("login = ") }?.dropFirst(8))
        // The database holds only the token's hash, under the printed login, expiring in 7 days.
        let check = try await Command.run(
            "/usr/bin/psql",
            [
                "-X", "-A", "-t", "-d", conninfo, "-c",
                "SELECT api_token_sha256 || ' ' || (api_token_expiration - current_date) || ' ' || is_admin FROM users WHERE api_login = '\(login)'",
            ]
        )
        #expect(
            check.output.trimmingCharacters(in: .whitespacesAndNewlines)
                == "\(Crypto.sha256Hex(Array(token.utf8))) 7 true",
            "\(check)"
        )
        #expect(!check.output.contains(String(token)))
        r = try await admin(["token", "mint", "ghost"])
        #expect(r.status != 0)
        #expect(r.output.contains("no such user: ghost"))
    }
}
