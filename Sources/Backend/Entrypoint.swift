import ArgumentParser

/// Placeholder executable: the service is not implemented yet. It says so and exits non-zero, so nothing
/// (including deploy/koper-stack) can mistake it for a working service.
@main
struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-backend",
        abstract: "Build dispatch, the ticket service, workers, signing requests and publishing (issue #4/#5). Not implemented yet."
    )

    @Option(help: "Path of the service's config file.") var config: String?

    func run() throws {
        print("koper-backend: not implemented yet — see the open issues.")
        throw ExitCode(2)
    }
}
