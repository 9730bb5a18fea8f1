import ArgumentParser
import Foundation
import Logging
import RepoPublisher

/// `koper-backend verify --results DIR OWNER/PROJECT [--chroot C] [--repair]`: checks the published chroot
/// repositories of a project (repomd.xml checksums, every RPM listed, every listed RPM present, every RPM signed with
/// the project's key from `DIR/OWNER/PROJECT/pubkey.gpg`). Prints one line per problem on stdout and a summary per
/// chroot on stderr; exits 0 when clean, 1 when problems remain.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract:
            "Check a project's published repositories: checksums, listing and signatures (exit 1 when problems remain)."
    )
    @Option(help: "The results tree (DIR/OWNER/PROJECT/CHROOT/…).") var results: String
    @Option(help: "Check only this chroot (a directory under DIR/OWNER/PROJECT).") var chroot: String?
    @Flag(help: "Republish (full rebuild) when that repairs a problem, then check again.") var repair = false
    @Argument(help: "OWNER/PROJECT (or OWNER/PROJECT:DIR for a project directory).") var project: String

    func validate() throws {
        let parts = self.project.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ Self.isComponent(String($0)) }) else {
            throw ValidationError("the project must be OWNER/PROJECT")
        }
        if let chroot = self.chroot, !Self.isComponent(chroot) {
            throw ValidationError("--chroot must be a directory name")
        }
    }

    func run() async throws {
        let parts = self.project.split(separator: "/").map(String.init)
        let projectDirectory = "\(self.results)/\(parts[0])/\(parts[1])"
        // A project directory (PROJECT:DIR) shares the project's key.
        let projectName = parts[1].split(separator: ":", maxSplits: 1).first.map(String.init) ?? parts[1]
        let keyPath = "\(self.results)/\(parts[0])/\(projectName)/pubkey.gpg"
        let publicKey = try await { () async throws(ValidationError) in
            do {
                return try await RepoVerifier.loadPublicKey(path: keyPath)
            } catch {
                throw ValidationError("cannot use the project key \(keyPath): \(error)")
            }
        }()
        let chroots = try self.chroots(in: projectDirectory)
        let publisher = RepoPublisher(
            logger: Logger(label: "koper.backend.verify", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        var remaining = 0
        for chroot in chroots {
            let directory = "\(projectDirectory)/\(chroot)"
            var verification = try await RepoVerifier.verify(directory: directory, publicKey: publicKey)
            var note = ""
            if self.repair && verification.needsRepublish {
                let repaired = try await publisher.repair(verification, publicKey: publicKey)
                note = ", republished (\(repaired.before.problems.count) problems before)"
                verification = repaired.after
            }
            for problem in verification.problems {
                print("\(chroot)/\(problem.path): \(problem.kind): \(problem.detail)")
            }
            FileHandle.standardError.write(
                Data(
                    ("\(chroot): \(verification.listedPackages) listed, \(verification.packageFiles) package files, "
                        + "\(verification.problems.count) problems\(note) in "
                        + String(format: "%.2f", verification.seconds) + " s\n").utf8
                )
            )
            remaining += verification.problems.count
        }
        await publisher.waitUntilIdle()
        if remaining > 0 { throw ExitCode(1) }
    }

    /// The chroot repositories to check: `--chroot`, or every directory of the project holding `repodata/`.
    private func chroots(in projectDirectory: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        if let chroot = self.chroot {
            guard FileManager.default.fileExists(atPath: "\(projectDirectory)/\(chroot)", isDirectory: &isDirectory),
                isDirectory.boolValue
            else { throw ValidationError("no directory \(projectDirectory)/\(chroot)") }
            return [chroot]
        }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: projectDirectory) else {
            throw ValidationError("no directory \(projectDirectory)")
        }
        let found = names.filter {
            FileManager.default.fileExists(atPath: "\(projectDirectory)/\($0)/repodata", isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted()
        guard !found.isEmpty else { throw ValidationError("no chroot with repodata/ under \(projectDirectory)") }
        return found
    }

    private static func isComponent(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }
}
