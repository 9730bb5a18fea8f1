import ArgumentParser

@main
struct FrontendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-frontend",
        abstract: "Koper frontend: Copr API v3, .repo files, uploads, the internal /backend/ API, and admin commands.",
        subcommands: [
            Serve.self, Migrate.self, UserCommand.self, GroupCommand.self, TokenCommand.self, ChrootCommand.self,
        ],
        defaultSubcommand: Serve.self
    )
}
