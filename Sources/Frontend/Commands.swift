import ArgumentParser
import CoprModel
import Dispatch
import Foundation
import HTTPServer
import KoperStore
import LibCrypto
import Logging
import Postgres
import ServiceKit

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Path of frontend.json.")
    var config: String = "/etc/koper/frontend.json"

    func load() throws -> FrontendConfig {
        do {
            return try FrontendConfig.load(path: self.config)
        } catch {
            throw ArgumentParser.ValidationError("\(error)")
        }
    }
}

enum Bootstrap {
    static func logging(_ level: Logger.Level) {
        ServiceLogging.bootstrap(level: level)
    }

    /// A small pool for admin commands, with the schema migrated.
    static func adminPool(_ config: FrontendConfig) async throws -> PGPool {
        let logger = Logger(label: "koper.frontend.admin")
        let pool = PGPool(conninfo: config.database, size: 1, logger: logger)
        _ = try await PGMigrator.migrate(pool, migrations: Schema.migrations, logger: logger)
        return pool
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server (migrates the database first).")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try self.options.load()
        Bootstrap.logging(config.logLevelValue)
        let logger = Logger(label: "koper.frontend")
        try FileManager.default.createDirectory(atPath: config.uploadDir, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: config.spoolDir, withIntermediateDirectories: true)
        let orphans = Uploads.removeOrphanedSpoolFiles(config: config)
        if orphans > 0 { logger.notice("removed orphaned upload spool files", metadata: ["files": "\(orphans)"]) }
        let pool = PGPool(conninfo: config.database, size: config.databasePoolSize, logger: logger)
        let applied = try await PGMigrator.migrate(pool, migrations: Schema.migrations, logger: logger)
        if !applied.isEmpty { logger.info("database migrated", metadata: ["migrations": "\(applied)"]) }
        let app = FrontendApp(config: config, db: pool, logger: logger)
        let listener = try PGListener(conninfo: config.database, channels: ["koper_tasks"], logger: logger) { _, _ in
            app.tasks.bump()
        }
        let server = Server(configuration: config.serverConfiguration, handler: app, logger: logger)
        let port = try server.start()
        if let portFile = config.portFile {
            try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
        }
        await waitForTermination()
        logger.info("draining connections")
        app.tasks.bump()  // long-polls answer now instead of holding their connections through the drain
        await server.shutdown(gracePeriod: .seconds(10))
        listener.cancel()
        pool.close()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations and exit.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try self.options.load()
        let logger = Logger(label: "koper.frontend")
        let pool = PGPool(conninfo: config.database, size: 1, logger: logger)
        let applied = try await PGMigrator.migrate(pool, migrations: Schema.migrations, logger: logger)
        print(
            applied.isEmpty
                ? "database is up to date" : "applied migrations: \(applied.map(String.init).joined(separator: ", "))"
        )
        pool.close()
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Manage users.",
        subcommands: [Add.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user (harmless if it exists; --admin then grants admin)."
        )
        @OptionGroup var options: ConfigOption
        @Argument var name: String
        @Flag(help: "Make the user a site admin.") var admin = false
        @Option(help: "E-mail address.") var email: String?

        func run() async throws {
            do { try Names.validateUserName(self.name) } catch {
                throw ArgumentParser.ValidationError("\(error.message)")
            }
            let pool = try await Bootstrap.adminPool(try self.options.load())
            let (name, admin, email) = (self.name, self.admin, self.email)
            let created = try await pool.transaction { c -> Bool in
                let login = "disabled-" + (try Crypto.randomString(length: 20))
                let id = try UserStore.create(c, name: name, email: email, isAdmin: admin, apiLogin: login)
                if id == nil && admin { try UserStore.grantAdmin(c, name: name) }
                return id != nil
            }
            print(created ? "created user \(name)" : "user \(name) exists")
            pool.close()
        }
    }
}

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "Manage Copr groups (@name owners).",
        subcommands: [Add.self, AddMember.self, RemoveMember.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a group.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Group name, without the @.") var name: String
        @Option(help: "Name of the group in the identity provider (defaults to the name).") var fasName: String?

        func run() async throws {
            let n = self.name.hasPrefix("@") ? String(self.name.dropFirst()) : self.name
            do { try Names.validateUserName(n) } catch { throw ArgumentParser.ValidationError("\(error.message)") }
            let pool = try await Bootstrap.adminPool(try self.options.load())
            let fas = self.fasName ?? n
            _ = try await pool.withConnection { c in try GroupStore.create(c, name: n, fasName: fas) }
            print("group @\(n) ready")
            pool.close()
        }
    }

    struct AddMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-member", abstract: "Add a user to a group.")
        @OptionGroup var options: ConfigOption
        @Argument var group: String
        @Argument var user: String

        func run() async throws {
            let g = self.group.hasPrefix("@") ? String(self.group.dropFirst()) : self.group
            let pool = try await Bootstrap.adminPool(try self.options.load())
            let user = self.user
            let added = try await pool.withConnection { c in try GroupStore.addMember(c, group: g, user: user) }
            pool.close()
            print(added ? "\(user) is now a member of @\(g)" : "no change (unknown group or user, or already a member)")
        }
    }

    struct RemoveMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-member",
            abstract: "Remove a user from a group."
        )
        @OptionGroup var options: ConfigOption
        @Argument var group: String
        @Argument var user: String

        func run() async throws {
            let g = self.group.hasPrefix("@") ? String(self.group.dropFirst()) : self.group
            let pool = try await Bootstrap.adminPool(try self.options.load())
            let user = self.user
            let removed = try await pool.withConnection { c in try GroupStore.removeMember(c, group: g, user: user) }
            pool.close()
            print(removed ? "removed \(user) from @\(g)" : "\(user) was not a member of @\(g)")
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "API tokens.",
        subcommands: [Mint.self]
    )

    struct Mint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a new API login+token for a user and print a ready [copr-cli] config block."
        )
        @OptionGroup var options: ConfigOption
        @Argument var user: String
        @Option(help: "Days until the token expires (default: the config's token_expiration_days).") var days: Int?
        @Option(help: "copr_url to print (default: the config's public_url).") var url: String?

        func run() async throws {
            let config = try self.options.load()
            let pool = try await Bootstrap.adminPool(config)
            let days = self.days ?? config.tokenExpirationDays
            let user = self.user
            let t = try await pool.transaction { c -> (login: String, token: String, expiration: String)? in
                guard let found = try UserStore.find(c, name: user) else { return nil }
                return try Auth.mintToken(c, userID: found.id, days: days)
            }
            pool.close()
            guard let t else { throw ArgumentParser.ValidationError("no such user: \(user)") }
            let copr = self.url ?? config.publicURL ?? "http://\(config.listenHost):\(config.listenPort)"
            print("[copr-cli]")
            print("login = \(t.login)")
            print("username = \(user)")
            print("token = \(t.token)")
            print("copr_url = \(copr)")
            if copr.hasPrefix("http://") { print("encrypted = False") }
            print("# expiration date: \(t.expiration)")
        }
    }
}

struct ChrootCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chroot",
        abstract: "Mock chroots offered to projects.",
        subcommands: [Add.self, Enable.self, Disable.self, List.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add (or re-enable) a mock chroot such as fedora-41-x86_64."
        )
        @OptionGroup var options: ConfigOption
        @Argument var name: String
        @Option(help: "Override the arch parsed from the name.") var arch: String?
        @Option(help: "Comment shown by list-chroots.") var comment: String = ""

        func run() async throws {
            guard let parsed = ChrootName(self.name) else {
                throw ArgumentParser.ValidationError("not a chroot name (os-version-arch): \(self.name)")
            }
            let pool = try await Bootstrap.adminPool(try self.options.load())
            let (name, arch, comment) = (self.name, self.arch ?? parsed.arch, self.comment)
            try await pool.withConnection { c in
                try MockChrootStore.upsert(
                    c,
                    name: name,
                    os: parsed.os,
                    version: parsed.version,
                    arch: arch,
                    comment: comment
                )
            }
            pool.close()
            print("chroot \(name) active")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-enable a mock chroot.")
        @OptionGroup var options: ConfigOption
        @Argument var name: String
        func run() async throws { try await setActive(self.options, self.name, true) }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disable a mock chroot (hidden from projects and list-chroots)."
        )
        @OptionGroup var options: ConfigOption
        @Argument var name: String
        func run() async throws { try await setActive(self.options, self.name, false) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List mock chroots.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            let pool = try await Bootstrap.adminPool(try self.options.load())
            let chroots = try await pool.withConnection { c in try MockChrootStore.all(c) }
            pool.close()
            for ch in chroots {
                print("\(ch.name)\t\(ch.arch)\t\(ch.isActive ? "active" : "disabled")\t\(ch.comment)")
            }
        }
    }

    static func setActive(_ options: ConfigOption, _ name: String, _ active: Bool) async throws {
        let pool = try await Bootstrap.adminPool(try options.load())
        let found = try await pool.withConnection { c in try MockChrootStore.setActive(c, name: name, active: active) }
        pool.close()
        guard found else { throw ArgumentParser.ValidationError("no such chroot: \(name)") }
        print("chroot \(name) \(active ? "enabled" : "disabled")")
    }
}
