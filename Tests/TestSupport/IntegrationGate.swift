import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one gate for integration tests that need something from the machine (a tool, root, a cgroup hierarchy).
///
/// When a requirement is missing the test or suite is skipped, and the skip names what it needs. With
/// `KOPER_REQUIRE_INTEGRATION=1` (set by deploy/koper-test, hence in CI) it fails instead, naming what is missing,
/// so an integration test never passes by not running:
///
///     @Suite(.requires(tools: "/usr/bin/rpmbuild", "/usr/bin/rpm"))
///     @Suite(.serialized, .requires(.root, .tool("/usr/sbin/sshd")))
///     @Test(.requires(.writable("/sys/fs/cgroup/pids")))
public enum IntegrationGate {
    /// `KOPER_REQUIRE_INTEGRATION=1`: a missing requirement fails the test instead of skipping it.
    public static var isRequired: Bool {
        ProcessInfo.processInfo.environment["KOPER_REQUIRE_INTEGRATION"] == "1"
    }

    /// The requirements among `requirements` that are not met, in order.
    public static func missing(_ requirements: [IntegrationRequirement]) -> [IntegrationRequirement] {
        requirements.filter { !$0.isMet() }
    }

    /// An executable named `name` in a directory of `PATH` (or `name` itself when it contains a slash).
    public static func executable(named name: String) -> String? {
        if name.contains("/") {
            return access(name, X_OK) == 0 ? name : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    /// Thrown by the trait when a requirement is missing and ``isRequired``: the test records it as its failure.
    public struct Missing: Error, CustomStringConvertible {
        public let requirements: [IntegrationRequirement]

        public var description: String {
            "KOPER_REQUIRE_INTEGRATION=1 and this integration test needs what is missing: "
                + self.requirements.map(\.description).joined(separator: ", ")
        }
    }
}

/// Something an integration test needs from the machine, checked when the test is about to run.
public struct IntegrationRequirement: Sendable, CustomStringConvertible {
    /// What is needed, as the skip or failure message shows it (a path, "root", ...).
    public let description: String
    public let isMet: @Sendable () -> Bool

    public init(_ description: String, isMet: @escaping @Sendable () -> Bool) {
        self.description = description
        self.isMet = isMet
    }

    /// An executable: an absolute path, or a name looked up in `PATH`.
    public static func tool(_ pathOrName: String) -> Self {
        Self(pathOrName) { IntegrationGate.executable(named: pathOrName) != nil }
    }

    /// An executable whose path is in the environment variable `variable` (deploy/koper-test exports
    /// KOPER_COPR_CLI, for one).
    public static func tool(fromEnvironment variable: String) -> Self {
        Self("$\(variable) (an executable)") {
            guard let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty else { return false }
            return access(path, X_OK) == 0
        }
    }

    /// A file or directory that must exist (a plugin, a data file).
    public static func file(_ path: String) -> Self {
        Self(path) { access(path, F_OK) == 0 }
    }

    /// A path the test process must be able to write (a cgroup hierarchy).
    public static func writable(_ path: String) -> Self {
        Self("\(path) (writable)") { access(path, W_OK) == 0 }
    }

    /// The test process runs as root (to create users, run sshd, delegate cgroups).
    public static var root: Self {
        Self("root") { geteuid() == 0 }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test or suite when every requirement is met; otherwise skips it, or under
    /// `KOPER_REQUIRE_INTEGRATION=1` fails it with ``IntegrationGate/Missing``.
    public static func requires(
        _ requirements: [IntegrationRequirement],
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Self {
        let needs = requirements.map(\.description).joined(separator: ", ")
        return .enabled(Comment(rawValue: "needs \(needs)"), sourceLocation: sourceLocation) {
            let missing = IntegrationGate.missing(requirements)
            if missing.isEmpty {
                return true
            }
            if IntegrationGate.isRequired {
                throw IntegrationGate.Missing(requirements: missing)
            }
            return false
        }
    }

    /// The same, with the requirements listed.
    public static func requires(
        _ requirements: IntegrationRequirement...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> Self {
        .requires(requirements, sourceLocation: sourceLocation)
    }

    /// Executables (absolute paths, or names looked up in `PATH`) the test or suite needs.
    public static func requires(tools: String..., sourceLocation: SourceLocation = #_sourceLocation) -> Self {
        .requires(tools.map { IntegrationRequirement.tool($0) }, sourceLocation: sourceLocation)
    }
}
