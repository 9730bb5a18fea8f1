import ArgumentParser

/// Placeholder executable: the service is not implemented yet. It says so and exits non-zero, so nothing
/// (including deploy/koper-stack) can mistake it for a working service.
@main
struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-builder",
        abstract: "Runs one build on a builder host (issue #4). Not implemented yet."
    )

    @Option(help: "Path of the service's config file.") var config: String?

    func run() throws {
        print("koper-builder: not implemented yet — see the open issues.")
        throw ExitCode(2)
    }
}
