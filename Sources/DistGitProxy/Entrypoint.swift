import ArgumentParser

/// Placeholder executable: the service is not implemented yet. It says so and exits non-zero, so nothing
/// (including deploy/koper-stack) can mistake it for a working service.
@main
struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-distgit",
        abstract: "Source cache for builders (a later issue). Not implemented yet."
    )

    @Option(help: "Path of the service's config file.") var config: String?

    func run() throws {
        print("koper-distgit: not implemented yet — see the open issues.")
        throw ExitCode(2)
    }
}
