import ArgumentParser
import Glibc
import KoperProtocol
import SystemPackage

/// `koper-builder`: runs one build on a builder host (docs/builder.md). Started detached over SSH by the
/// Backend, which holds every credential; the builder holds none.
@main
struct KoperBuilderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "koper-builder",
        abstract: "Runs one Koper build task on this builder host.",
        subcommands: [BuildCommand.self, MockConfigCommand.self, CleanupCommand.self]
    )
}

extension BuildMethod: ExpressibleByArgument {}
extension SandboxKind: ExpressibleByArgument {}

/// `koper-builder build --task TASK.json --output DIR [--method rpmbuild|mock] [--sandbox bwrap|none]`.
struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build one task into DIR.",
        discussion: """
            Writes DIR/builder.pid, DIR/builder-live.log (while the build runs), the RPMs, DIR/results.json and \
            finally DIR/status.

            Exit codes (also in DIR/status): 0 succeeded, 1 build failed, 2 infrastructure or source error, \
            3 timeout, 4 canceled (SIGTERM/SIGINT), 5 transient infrastructure failure (the SRPM server was \
            unreachable: run the build again later). Run it as the unprivileged builder user, never as root.
            """
    )

    @Option(help: "The task description (JSON, as GET /backend/get-build-task returns it).")
    var task: String

    @Option(help: "The result directory.")
    var output: String

    @Option(help: "rpmbuild or mock (default: mock when it is on PATH, else rpmbuild).")
    var method: BuildMethod?

    @Option(help: "Isolation of the rpmbuild method and of SRPM builds: bwrap or none.")
    var sandbox: SandboxKind = .bwrap

    @Option(help: "Parent directory of the temporary work directory (default: $TMPDIR or /tmp).")
    var workDir: String?

    @Option(help: "Largest SRPM download accepted, in bytes.")
    var maxSrpmBytes: Int = 2 << 30

    @Option(help: "Size of each sandbox tmpfs (build tree, /tmp, /var/tmp) and cap on all results, in bytes.")
    var diskLimit: Int = 4 << 30

    @Option(help: "Address-space limit of the build (prlimit --as), in bytes; 0 for none.")
    var memoryLimit: Int = 0

    @Option(help: "Process limit of the build (prlimit --nproc).")
    var maxProcesses: Int = 1024

    @Option(help: "Time limit of the SRPM download, in seconds.")
    var downloadTimeout: Int = 1800

    @Option(help: "Further tries of an SRPM download that failed transiently (connection refused, 5xx, timeout).")
    var downloadRetries: Int = 5

    @Option(help: "Delay before the first further download try, in seconds (doubling up to 30 s).")
    var downloadRetryDelay: Double = 2

    @Option(help: "Largest live log, in bytes; further build output is dropped.")
    var maxLogBytes: Int = 1 << 30

    @Flag(help: "Do not echo koper-builder's own log lines on stderr.")
    var quiet = false

    @Option(help: "Run the build in per-build cgroups below this delegated cgroup v1 parent (memory and pids).")
    var cgroup: String?

    @Option(help: "With --cgroup: the build's memory limit in bytes (memory.limit_in_bytes); 0: the parent's.")
    var cgroupMemory: Int = 0

    @Option(help: "With --cgroup: the build's process limit (pids.max); 0: the parent's.")
    var cgroupPids: Int = 0

    func validate() throws {
        guard self.maxSrpmBytes > 0, self.diskLimit > 0, self.memoryLimit >= 0, self.maxProcesses > 0,
            self.downloadTimeout > 0, self.maxLogBytes > 0, self.cgroupMemory >= 0, self.cgroupPids >= 0,
            self.downloadRetries >= 0, self.downloadRetries <= 100, self.downloadRetryDelay >= 0,
            self.downloadRetryDelay <= 3600
        else {
            throw ValidationError("limits must be positive")
        }
    }

    func run() async throws {
        var options = BuilderOptions(taskPath: self.task, outputDirectory: self.output)
        options.method = self.method
        options.sandbox = self.sandbox
        options.workParent = self.workDir
        options.maxSRPMBytes = self.maxSrpmBytes
        options.diskLimitBytes = self.diskLimit
        options.memoryLimitBytes = self.memoryLimit > 0 ? self.memoryLimit : nil
        options.maxProcesses = self.maxProcesses
        options.downloadTimeoutSeconds = self.downloadTimeout
        options.maxLogBytes = self.maxLogBytes
        options.downloadRetries = self.downloadRetries
        options.downloadRetryDelay = .milliseconds(Int64(self.downloadRetryDelay * 1000))
        options.echoLog = !self.quiet
        options.cgroupParent = self.cgroup
        options.cgroupMemoryBytes = self.cgroupMemory > 0 ? self.cgroupMemory : nil
        options.cgroupMaxProcesses = self.cgroupPids > 0 ? self.cgroupPids : nil
        let status = await Builder(options: options).run()
        if status != .succeeded {
            throw ExitCode(status.rawValue)
        }
    }
}

/// `koper-builder cleanup [--builds-dir DIR] [--work-dir PARENT] [--cgroup PARENT]`: removes what killed builders
/// left behind (``Leftovers``). The Backend runs it before each build it starts on a builder.
struct CleanupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove the build directories, work directories and cgroups of builders that are gone."
    )

    @Option(help: "The directory the Backend starts builds in (each build a directory with output/ in it).")
    var buildsDir: String?

    @Option(help: "Parent of koper-builder's private work directories (default: $TMPDIR or /tmp).")
    var workDir: String?

    @Option(help: "The delegated cgroup v1 parent of the builds (as for build --cgroup).")
    var cgroup: String?

    @Option(help: "Seconds an unfinished build directory without a running builder is kept.")
    var unfinishedAge: Int = 600

    @Option(help: "Seconds a finished build directory nobody collected is kept.")
    var finishedAge: Int = 7 * 86400

    @Flag(help: "Print nothing.")
    var quiet = false

    func validate() throws {
        guard self.unfinishedAge >= 0, self.finishedAge >= 0 else { throw ValidationError("ages must be >= 0") }
    }

    func run() throws {
        let quiet = self.quiet
        let note: (String) -> Void = { if !quiet { LiveLog.writeAll(1, Array("koper-builder: \($0)\n".utf8)) } }
        if let dir = self.buildsDir {
            Leftovers.removeOrphanedBuilds(
                in: dir,
                unfinishedAge: self.unfinishedAge,
                finishedAge: self.finishedAge,
                note: note
            )
        }
        let parent = self.workDir ?? (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
        Builder.removeStaleWorkDirectories(in: parent, note: note)
        if let cgroup = self.cgroup {
            Leftovers.removeOrphanedCgroups(parent: cgroup, note: note)
        }
    }
}

/// `koper-builder mock-config --task TASK.json`: prints the mock config the mock method would use.
struct MockConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-config",
        abstract: "Print the generated mock config for an RPM task."
    )

    @Option(help: "The task description (JSON).")
    var task: String

    func run() throws {
        let fd = open(self.task, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            Builder.printError("cannot open \(self.task): \(String(cString: strerror(errno)))")
            throw ExitCode(BuildStatus.infrastructureError.rawValue)
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count <= TaskDescription.maxTaskBytes {
            let n = (try? buffer.withUnsafeMutableBytes { try FileDescriptor(rawValue: fd).read(into: $0) }) ?? -1
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        _ = close(fd)
        do throws(BuilderError) {
            let task = try TaskDescription.parse(bytes)
            guard let chroot = task.chroot else {
                throw .infrastructure("task \(task.taskID) is an SRPM build; only RPM tasks (with a chroot) use mock")
            }
            print(MockConfig.render(task: task, chroot: chroot), terminator: "")
        } catch {
            Builder.printError(error.message)
            throw ExitCode(error.status.rawValue)
        }
    }
}
