import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the PostgreSQL test fixture (initdb, pg_ctl, psql).
public struct PostgresFixtureError: Error, CustomStringConvertible {
    public let description: String
}

/// A throw-away PostgreSQL cluster (swift-toolchain.md §5): initdb in a fresh short directory under /tmp, a free
/// TCP port on 127.0.0.1, trust authentication, fsync=off. Runs the server as `postgres` when we are root.
public final class PostgresCluster: Sendable {
    public let port: Int
    /// "host=127.0.0.1 port=N user=postgres dbname=postgres"
    public let adminConninfo: String
    /// The cluster's directory: `data/`, `server.log`, `fixture.log`, `owner.pid`.
    public let baseDirectory: String

    private let tools: Tools
    private let isStopped = Mutex(false)

    /// Directory names start with this, so that clusters left behind by crashed test processes can be found.
    static let directoryPrefix = "koper-pg."

    private init(port: Int, baseDirectory: String, tools: Tools) {
        self.port = port
        self.baseDirectory = baseDirectory
        self.tools = tools
        self.adminConninfo = "host=127.0.0.1 port=\(port) user=postgres dbname=postgres"
    }

    /// Creates and starts a new cluster. Also stops and removes clusters whose test process has died.
    public static func start() throws -> PostgresCluster {
        let tools = try Tools.locate()
        removeOrphans(tools: tools)
        if tools.runAsPostgres {
            try ensurePostgresUser()
        }
        var template = Array("/tmp/\(directoryPrefix)XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw PostgresFixtureError(description: "mkdtemp failed: errno \(errno)")
        }
        let base = String(cString: created)
        try "\(getpid())\n".write(toFile: base + "/owner.pid", atomically: true, encoding: .utf8)
        do {
            if tools.runAsPostgres {
                try tools.run("/bin/chown", ["postgres:postgres", base], log: base + "/fixture.log")
                chmod(base, 0o755)
            }
            try tools.run(
                tools.bin("initdb"),
                [
                    "-D", base + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
                    "--no-sync",
                ],
                asPostgres: true,
                log: base + "/fixture.log",
                directory: base
            )
            var lastError: (any Error)? = nil
            for _ in 0..<5 {
                let port = try FreePort.allocate()
                let cluster = PostgresCluster(port: port, baseDirectory: base, tools: tools)
                do {
                    try cluster.pgCtl(["start", "-o", cluster.serverOptions])
                    return cluster
                } catch {
                    lastError = error  // most likely someone took the port; try another
                }
            }
            throw lastError ?? PostgresFixtureError(description: "pg_ctl start failed")
        } catch {
            try? FileManager.default.removeItem(atPath: base)
            throw error
        }
    }

    /// `start()` run off the Swift concurrency pool.
    public static func startAsync() async throws -> PostgresCluster {
        try await PostgresFixture.runOffPool { try start() }
    }

    /// `restart()` run off the Swift concurrency pool.
    public func restartAsync() async throws {
        try await PostgresFixture.runOffPool { try self.restart() }
    }

    /// `pg_ctl restart -m fast`: every client connection is terminated.
    public func restart() throws {
        try pgCtl(["restart", "-m", "fast", "-o", serverOptions])
    }

    /// `pg_ctl stop -m fast`: every client connection is cut and the server is gone (an outage) until
    /// `startServer()`. Not `immediate`: with `synchronous_commit=off` that would lose the last commits.
    public func stopServer() throws {
        try pgCtl(["stop", "-m", "fast"])
    }

    /// Starts the server stopped by `stopServer()` again, on the same port.
    public func startServer() throws {
        try pgCtl(["start", "-o", serverOptions])
    }

    /// Stops the server and deletes the cluster's directory. Safe to call more than once.
    public func stop() {
        let alreadyStopped = isStopped.withLock { stopped in
            defer { stopped = true }
            return stopped
        }
        guard !alreadyStopped else { return }
        try? pgCtl(["stop", "-m", "fast"])
        try? FileManager.default.removeItem(atPath: baseDirectory)
    }

    private var serverOptions: String {
        [
            "-c listen_addresses=127.0.0.1",
            "-p \(port)",
            "-c unix_socket_directories=\(baseDirectory)",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ].joined(separator: " ")
    }

    private func pgCtl(_ arguments: [String]) throws {
        try Self.pgCtl(tools: tools, base: baseDirectory, arguments)
    }

    fileprivate static func pgCtl(tools: Tools, base: String, _ arguments: [String]) throws {
        let common = ["-D", base + "/data", "-l", base + "/server.log", "-w", "-t", "30"]
        try tools.run(
            tools.bin("pg_ctl"),
            common + arguments,
            asPostgres: true,
            log: base + "/fixture.log",
            directory: base
        )
    }

    private static func ensurePostgresUser() throws {
        if getpwnam("postgres") != nil { return }
        try Tools.execute("/usr/sbin/useradd", ["--system", "--no-create-home", "postgres"], log: nil, directory: nil)
    }

    /// Stops and deletes `/tmp/koper-pg.*` clusters whose owning process no longer exists.
    private static func removeOrphans(tools: Tools) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix(directoryPrefix) {
            let base = "/tmp/" + name
            guard let text = try? String(contentsOfFile: base + "/owner.pid", encoding: .utf8),
                let owner = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { continue }
            if kill(owner, 0) == 0 || errno != ESRCH { continue }
            if FileManager.default.fileExists(atPath: base + "/data/postmaster.pid") {
                try? pgCtl(tools: tools, base: base, ["stop", "-m", "immediate"])
            }
            try? FileManager.default.removeItem(atPath: base)
        }
    }
}

/// Locations of the PostgreSQL server binaries and how to run them.
struct Tools: Sendable {
    let binDirectory: String?
    let runAsPostgres: Bool

    static func locate() throws -> Tools {
        let fileManager = FileManager.default
        var directory: String? = ProcessInfo.processInfo.environment["KOPER_PG_BINDIR"]
        if directory == nil, let versions = try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            let newest = versions.compactMap(Int.init).max()
            directory = newest.map { "/usr/lib/postgresql/\($0)/bin" }
        }
        if let found = directory, !fileManager.isExecutableFile(atPath: found + "/initdb") {
            directory = nil
        }
        return Tools(binDirectory: directory, runAsPostgres: geteuid() == 0)
    }

    func bin(_ name: String) -> String {
        binDirectory.map { $0 + "/" + name } ?? name
    }

    func run(
        _ executable: String,
        _ arguments: [String],
        asPostgres: Bool = false,
        log: String,
        directory: String? = nil
    ) throws {
        if asPostgres && runAsPostgres {
            try Self.execute(
                "/usr/sbin/runuser",
                ["-u", "postgres", "--", executable] + arguments,
                log: log,
                directory: directory
            )
        } else {
            try Self.execute(executable, arguments, log: log, directory: directory)
        }
    }

    /// Runs a program to completion with posix_spawn and waitpid. Output goes to a file, never a pipe, and every
    /// descriptor above 2 is closed in the child: `pg_ctl start` leaves a daemon behind that would otherwise keep
    /// them open. (Foundation's `Process` cannot be used for `pg_ctl start`: it notices that the child exited
    /// only when an inherited socket closes, which the postmaster keeps open, so `waitUntilExit` never returns.)
    static func execute(_ executable: String, _ arguments: [String], log: String?, directory: String?) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log ?? "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = GNUSpawn.addCloseFrom {
            _ = closeFrom(&actions, 3)
        }
        if let directory, let changeDirectory = GNUSpawn.addChangeDirectory {
            _ = changeDirectory(&actions, directory)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned =
            executable.contains("/")
            ? posix_spawn(&pid, executable, &actions, nil, argv, environ)
            : posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw PostgresFixtureError(description: "cannot run \(executable): error \(spawned)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else {
                throw PostgresFixtureError(description: "waitpid for \(executable) failed: errno \(errno)")
            }
        }
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            var tail = ""
            if let log, let text = try? String(contentsOfFile: log, encoding: .utf8) {
                tail = String(text.suffix(2000))
            }
            let how = exited ? "exited with \(code)" : "was killed by signal \(status & 0x7f)"
            throw PostgresFixtureError(description: "\(executable) \(arguments.first ?? "") \(how): \(tail)")
        }
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+) and `…_addchdir_np` (2.29+) are declared only
/// under `_GNU_SOURCE`, which Swift does not see, so they are looked up at run time.
private enum GNUSpawn {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias ChangeDirectory =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static var addCloseFrom: CloseFrom? {
        symbol("posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: CloseFrom.self) }
    }

    static var addChangeDirectory: ChangeDirectory? {
        symbol("posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: ChangeDirectory.self) }
    }

    private static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        return dlsym(handle, name)
    }
}

/// Databases for tests.
public enum PostgresFixture {
    private struct Shared: Sendable {
        var cluster: PostgresCluster?
        var adminConninfo: String?
        var createdDatabases: [String] = []
        var registeredExitHandler = false
    }

    private static let shared = Mutex(Shared())

    /// Conninfo of a brand-new, empty database (random name) for one test. Uses the cluster named by env
    /// KOPER_TEST_PG (a conninfo for the admin db) if set, otherwise starts one shared cluster per test process
    /// (stopped at process exit via atexit).
    ///
    /// Blocks the calling thread (psql, and the first time initdb + pg_ctl). From async tests prefer
    /// `makeDatabaseAsync()`, which does that work off the Swift concurrency pool.
    public static func makeDatabase() throws -> String {
        let admin = try adminConninfo()
        let name = "koper_test_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        do {
            // FILE_COPY (PostgreSQL 15+) is about three times faster than the default for a tiny template.
            try psql(admin, "CREATE DATABASE \(name) STRATEGY FILE_COPY")
        } catch {
            try psql(admin, "CREATE DATABASE \(name)")
        }
        shared.withLock { $0.createdDatabases.append(name) }
        return conninfo(admin, database: name)
    }

    /// `makeDatabase()` run on a dedicated serial queue, so that async tests do not block the small Swift
    /// concurrency pool (2 threads on 2 cores) while psql, initdb or pg_ctl run.
    public static func makeDatabaseAsync() async throws -> String {
        try await runOffPool { try makeDatabase() }
    }

    /// Runs blocking fixture work on the fixture's own serial queue and awaits it.
    public static func runOffPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try work() })
            }
        }
    }

    private static let queue = DispatchQueue(label: "koper.tests.postgres-fixture")

    /// The admin conninfo of the cluster `makeDatabase()` uses, starting the shared cluster if needed.
    public static func adminConninfo() throws -> String {
        try shared.withLock { shared in
            if let admin = shared.adminConninfo {
                return admin
            }
            if !shared.registeredExitHandler {
                shared.registeredExitHandler = true
                atexit { PostgresFixture.shutDown() }
            }
            if let external = ProcessInfo.processInfo.environment["KOPER_TEST_PG"], !external.isEmpty {
                shared.adminConninfo = external
                return external
            }
            let cluster = try PostgresCluster.start()
            shared.cluster = cluster
            shared.adminConninfo = cluster.adminConninfo
            return cluster.adminConninfo
        }
    }

    /// Replaces the database of a keyword/value conninfo (a later `dbname=` wins) or of a postgres:// URI.
    public static func conninfo(_ conninfo: String, database: String) -> String {
        for scheme in ["postgresql://", "postgres://"] where conninfo.hasPrefix(scheme) {
            let rest = conninfo.dropFirst(scheme.count)
            let queryStart = rest.firstIndex(of: "?") ?? rest.endIndex
            let authority = rest[..<queryStart].prefix { $0 != "/" }
            return scheme + authority + "/" + database + rest[queryStart...]
        }
        return conninfo + " dbname=" + database
    }

    private static func psql(_ conninfo: String, _ sql: String) throws {
        let tools = try Tools.locate()
        try Tools.execute(
            tools.bin("psql"),
            ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
            log: nil,
            directory: nil
        )
    }

    private static func shutDown() {
        let (cluster, admin, databases) = shared.withLock { ($0.cluster, $0.adminConninfo, $0.createdDatabases) }
        if let cluster {
            cluster.stop()
        } else if let admin {
            for database in databases {
                try? psql(admin, "DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
            }
        }
    }
}
