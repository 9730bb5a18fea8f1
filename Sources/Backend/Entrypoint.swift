import ArgumentParser
import Dispatch
import Foundation
import HTTPClient
import HTTPServer
import KoperJSON
import Logging
import RPMSign
import RepoPublisher
import ServiceKit
import StaticFiles
import Tickets

@main
struct BackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-backend",
        abstract:
            "Koper backend: build dispatch, the ticket service, workers on leased builders, and the results tree.",
        subcommands: [Serve.self, TicketsCommand.self, CreateRepoCommand.self, SignCommand.self, VerifyCommand.self],
        defaultSubcommand: Serve.self
    )
}

struct BackendOptions: ParsableArguments {
    @Option(name: .long, help: "Path of backend.json.")
    var config: String = "/etc/koper/backend.json"

    func load() throws -> BackendConfig {
        do {
            return try BackendConfig.load(path: self.config)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the dispatcher, the workers and the results server.")
    @OptionGroup var options: BackendOptions

    func run() async throws {
        let config = try self.options.load()
        // Warnings and errors rate-limited (one per condition and interval, backing off): an outage of the Frontend
        // or Keygen is said once in a while with a count, not several times a second.
        let interval = BackendConfig.duration(config.warningInterval)
        let shared = RateLimitedLogHandler.Shared(WarningRateLimiter(interval: interval, maxInterval: interval * 16))
        let level = config.logLevelValue
        LoggingSystem.bootstrap { label in
            RateLimitedLogHandler(
                label: label,
                wrapping: ServiceLogging.makeHandler(label: label, level: level),
                shared: shared
            )
        }
        let logger = Logger(label: "koper.backend")
        let fm = FileManager.default
        for dir in [config.resultsDir, config.stateDir, config.jobsDir] {
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        let tickets = try await TicketService(conninfo: config.ticketsDatabase, pools: config.pools, logger: logger)
        let http = HTTPClient(maxConcurrent: 8, logger: logger)
        let frontend = FrontendClient(
            base: config.frontendBase,
            secret: config.backendSecret,
            http: http,
            logger: logger
        )
        var keygen: KeygenClient? = nil
        if let url = config.keygenURL, let secret = config.keygenSecret {
            keygen = KeygenClient(base: url, secret: secret, http: http, logger: logger)
        } else {
            logger.warning("no keygen_url/keygen_secret configured: built packages will not be signed")
        }
        let context = BackendContext(
            config: config,
            frontend: frontend,
            keygen: keygen,
            publisher: RepoPublisher(logger: logger),
            tickets: tickets,
            jobs: try JobStore(directory: config.jobsDir),
            transport: SSHBuilderTransport(privateKeyPath: config.sshPrivateKey),
            workerID: try Self.workerID(config),
            logger: logger
        )
        let server = Server(
            configuration: HTTPServerConfiguration(
                host: config.listenHost,
                port: config.listenPort,
                temporaryDirectory: config.stateDir
            ),
            handler: StaticFileHandler(
                root: config.resultsDir,
                urlPrefix: "/results",
                hiding: [CreateRepo.privateDirectoryName],
                logger: logger
            ),
            logger: logger
        )
        let port = try server.start()
        if let portFile = config.portFile { try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8) }
        let actions = ActionRunner(context: context)
        let dispatcher = Dispatcher(context: context, actions: actions)
        await dispatcher.start()
        await waitForTermination()
        logger.info("stopping; running builds keep going on their builders and are reattached on the next start")
        await dispatcher.stop()
        await actions.stop()
        await server.shutdown(gracePeriod: .seconds(5))
        await tickets.shutdown()
    }

    /// A stable id for this Backend (claims are idempotent per worker id, also across restarts).
    static func workerID(_ config: BackendConfig) throws -> String {
        let path = "\(config.stateDir)/backend-id"
        if let existing = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines
        ), !existing.isEmpty {
            return existing
        }
        let id = "backend-\(UInt64.random(in: 0...UInt64.max))"
        try writeAtomically(Array("\(id)\n".utf8), to: path)
        return id
    }
}

struct TicketsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tickets",
        abstract: "Show the ticket service: pools, resources and tickets."
    )
    @OptionGroup var options: BackendOptions

    func run() async throws {
        let config = try self.options.load()
        let logger = Logger(label: "koper.backend.tickets") { _ in SwiftLogNoOpLogHandler() }
        let snapshot = try await TicketService.inspect(conninfo: config.ticketsDatabase, logger: logger)
        print(snapshot.description)
    }
}

struct CreateRepoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "createrepo",
        abstract:
            "Write repodata for DIR, as the service does (createrepo_c --no-database compatible). Needs no config."
    )
    @Flag(help: "Reuse the index kept beside the repodata: only new or changed RPMs are read.") var update = false
    @Argument(help: "The repository directory (a chroot directory of the results tree).") var directory: String

    func run() async throws {
        let result = try CreateRepo.run(directory: self.directory, update: self.update)
        print(
            "\(result.packageCount) packages (\(result.added) added, \(result.removed) removed, \(result.hashedFiles) read) in \(String(format: "%.3f", result.seconds)) s"
        )
    }
}

struct SignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract:
            "Re-sign RPMs in place with a project's key through Keygen (after a key change, or for RPMs found unsigned)."
    )
    @OptionGroup var options: BackendOptions
    @Option(help: "OWNER/PROJECT whose key signs.") var project: String
    @Argument(help: "RPM files.") var rpms: [String]

    func run() async throws {
        let config = try self.options.load()
        guard let url = config.keygenURL, let secret = config.keygenSecret else {
            throw ValidationError("the config has no keygen_url/keygen_secret")
        }
        let parts = self.project.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("--project must be OWNER/PROJECT") }
        let logger = Logger(label: "koper.backend.sign")
        let keygen = KeygenClient(
            base: url,
            secret: secret,
            http: HTTPClient(maxConcurrent: 2, logger: logger),
            logger: logger
        )
        let clock = ContinuousClock()
        for path in self.rpms {
            let start = clock.now
            let prepared = try await runBlocking { try RPMFileSigner.prepare(path: path) }
            let signature = try await keygen.sign(owner: parts[0], project: parts[1], bytes: prepared.mainHeader)
            let result = try await runBlocking { try RPMFileSigner.finish(prepared, signaturePacket: signature) }
            let elapsed = clock.now - start
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            print("\(path): signed (tag \(result.tag)) in \(String(format: "%.2f", ms)) ms")
        }
    }
}
