import ArgumentParser
import Dispatch
import Foundation
import HTTPServer
import Logging
import ServiceKit

@main
struct KeygenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-keygen",
        abstract: "Koper keygen: one OpenPGP key per project, a pool of spare keys, and detached signatures over HTTP.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the key API (see docs/decisions/0005-keygen-key-pool.md)."
    )

    @Option(name: .long, help: "Path of keygen.json.")
    var config: String = "/etc/koper/keygen.json"

    func run() async throws {
        let config: KeygenConfig
        do {
            config = try KeygenConfig.load(path: self.config)
        } catch {
            throw ValidationError("\(error)")
        }
        ServiceLogging.bootstrap(level: config.logLevelValue)
        let logger = Logger(label: "koper.keygen")
        let service = try KeyService(config: config, logger: logger)
        await service.start()
        let server = Server(
            configuration: HTTPServerConfiguration(
                host: config.listenHost,
                port: config.listenPort,
                temporaryDirectory: config.stateDir
            ),
            handler: KeygenAPI(
                service: service,
                secret: config.secret,
                maxSignBytes: config.maxSignBytes,
                logger: logger
            ),
            logger: logger
        )
        let port = try server.start()
        if let portFile = config.portFile {
            try "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8)
        }
        logger.info(
            "keygen listening",
            metadata: ["http.host": "\(config.listenHost)", "http.port": "\(port)", "signer": "\(SignerFactory.kind)"]
        )
        await waitForTermination()
        logger.info("stopping")
        await server.shutdown(gracePeriod: .seconds(5))
        await service.stop()
    }
}
