import Foundation
import HTTPClient
import InMemoryLogging
import KoperJSON
import Logging
import RepoPublisher
import Synchronization
import TestSupport
import Testing
import Tickets

@testable import Backend

#if canImport(Glibc)
import Glibc
#endif

/// A real `koper-frontend` process over a fresh database of the test cluster, set up through its own admin
/// commands (`chroot add`, `user add`, `token mint`), with one user (`alice`) and her API token.
final class FrontendProcess: Sendable {
    static let secret = "backend-tests-secret-0123456789"
    static let chroot = "fedora-39-x86_64"

    let dir: String
    let configPath: String
    let url: String
    let port: Int
    let login: String
    let token: String
    private let current: Mutex<Process>
    var process: Process { self.current.withLock { $0 } }
    let http: HTTPClient
    let user = "alice"

    private init(
        dir: String,
        configPath: String,
        port: Int,
        login: String,
        token: String,
        process: Process,
        http: HTTPClient
    ) {
        self.dir = dir
        self.configPath = configPath
        self.url = "http://127.0.0.1:\(port)"
        self.port = port
        self.login = login
        self.token = token
        self.current = Mutex(process)
        self.http = http
    }

    static func start(in dir: String, http: HTTPClient) async throws -> FrontendProcess {
        let database = try await PostgresFixture.makeDatabaseAsync()
        let config: [String: Any] = [
            "listen_host": "127.0.0.1", "listen_port": 0, "database": database,
            "results_url": "http://127.0.0.1:9/results", "storage_dir": "\(dir)/frontend",
            "backend_secret": Self.secret,
            "port_file": "\(dir)/frontend.port", "log_level": "info",
        ]
        let configPath = "\(dir)/frontend.json"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let binary = BackendStack.binDir + "/koper-frontend"
        for arguments in [["chroot", "add", Self.chroot], ["user", "add", "alice"]] {
            let r = try await Command.run(binary, arguments + ["--config", configPath], timeout: 60)
            guard r.status == 0 else { throw WaitTimeout(description: "koper-frontend \(arguments): \(r)") }
        }
        let minted = try await Command.run(binary, ["token", "mint", "alice", "--config", configPath], timeout: 60)
        func value(_ key: String) -> String? {
            minted.output.split(separator: "\n").first { $0.hasPrefix("\(key) = ") }.map {
                String($0.dropFirst(key.count + 3))
            }
        }
        guard minted.status == 0, let login = value("login"), let token = value("token") else {
            throw WaitTimeout(description: "koper-frontend token mint: \(minted)")
        }

        let (process, port) = try await Self.launch(binary: binary, configPath: configPath, dir: dir)
        return FrontendProcess(
            dir: dir,
            configPath: configPath,
            port: port,
            login: login,
            token: token,
            process: process,
            http: http
        )
    }

    /// Starts `koper-frontend serve` and waits for its port file.
    private static func launch(binary: String, configPath: String, dir: String) async throws -> (Process, Int) {
        unlink("\(dir)/frontend.port")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--config", configPath]
        let log = "\(dir)/frontend.log"
        if !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try handle.seekToEnd()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The port file appears once the server listens (it migrated the database before).
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(30))
        while clock.now < end, process.isRunning {
            if let text = try? String(contentsOfFile: "\(dir)/frontend.port", encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return (process, port)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw WaitTimeout(description: "koper-frontend did not start listening within 30 s:\n\(output.suffix(3000))")
    }

    /// Starts the Frontend again after `stop()`, on the same port (the Backend and the task descriptions' SRPM URLs
    /// name it).
    func restart() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: self.configPath))
        guard var config = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw WaitTimeout(description: "unreadable \(self.configPath)")
        }
        config["listen_port"] = self.port
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: self.configPath))
        let binary = BackendStack.binDir + "/koper-frontend"
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(20))
        while true {
            do {
                let (process, port) = try await Self.launch(binary: binary, configPath: self.configPath, dir: self.dir)
                guard port == self.port else {
                    throw WaitTimeout(description: "the frontend came back on port \(port)")
                }
                self.current.withLock { $0 = process }
                return
            } catch {
                // The port may linger for a moment after the previous process.
                if clock.now >= end { throw error }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    func stop() async {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGTERM)
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: .seconds(10))
        while self.process.isRunning, clock.now < end { try? await Task.sleep(for: .milliseconds(20)) }
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
    }

    var basicAuth: String { "Basic " + Data("\(self.login):\(self.token)".utf8).base64EncodedString() }

    /// One API call as alice; the answer's status and parsed JSON body.
    func call(_ method: String, _ path: String, json: String? = nil) async throws -> (status: Int, body: JSON) {
        var headers = [("Authorization", self.basicAuth)]
        if json != nil { headers.append(("Content-Type", "application/json")) }
        let r = try await self.http.request(
            method: method,
            url: self.url + path,
            headers: headers,
            body: json.map { Array($0.utf8) },
            timeout: .seconds(30),
            maxResponseBytes: 1 << 20
        )
        return (r.status, (try? JSONParser.parse(r.body)) ?? .null)
    }

    /// The internal API, as the Backend sees it.
    func backendCall(_ path: String) async throws -> JSON {
        let r = try await self.http.request(
            method: "GET",
            url: self.url + path,
            headers: [("Authorization", "Bearer \(Self.secret)")],
            timeout: .seconds(30),
            maxResponseBytes: 1 << 20
        )
        return (try? JSONParser.parse(r.body)) ?? .null
    }

    /// A POST to the internal API, as the Backend sends it; the status and parsed JSON body.
    func backendPost(_ path: String, json: String) async throws -> (status: Int, body: JSON) {
        let r = try await self.http.request(
            method: "POST",
            url: self.url + path,
            headers: [("Authorization", "Bearer \(Self.secret)"), ("Content-Type", "application/json")],
            body: Array(json.utf8),
            timeout: .seconds(30),
            maxResponseBytes: 1 << 20
        )
        return (r.status, (try? JSONParser.parse(r.body)) ?? .null)
    }

    func createProject(_ name: String) async throws {
        let r = try await self.call(
            "POST",
            "/api_3/project/add/alice",
            json: #"{"name": "\#(name)", "chroots": ["\#(Self.chroot)"]}"#
        )
        guard r.status == 200 else {
            throw WaitTimeout(description: "creating project \(name): \(r.status) \(r.body.text)")
        }
    }

    /// Uploads `srpm` to alice/PROJECT (the real multipart path, through curl); the new build's id.
    func upload(_ srpm: String, project: String, timeout: Int? = nil) async throws -> Int {
        let json = "\(self.dir)/upload-\(UInt32.random(in: 0...UInt32.max)).json"
        let body =
            #"{"ownername": "alice", "projectname": "\#(project)""# + (timeout.map { #", "timeout": \#($0)"# } ?? "")
            + "}"
        try body.write(toFile: json, atomically: true, encoding: .utf8)
        let r = try await Command.run(
            "/usr/bin/curl",
            [
                "-s", "-S", "-u", "\(self.login):\(self.token)", "-F", "pkgs=@\(srpm)", "-F", "json=@\(json)",
                "\(self.url)/api_3/build/create/upload",
            ],
            timeout: 60
        )
        guard let id = (try? JSONParser.parse(Array(r.output.utf8)))?["id"]?.intValue else {
            throw WaitTimeout(description: "upload of \(srpm) failed: \(r)")
        }
        return id
    }

    func cancel(_ id: Int) async throws -> Int {
        try await self.call("PUT", "/api_3/build/cancel/\(id)").status
    }

    func state(_ id: Int) async throws -> String {
        try await self.call("GET", "/api_3/build/\(id)").body["state"]?.stringValue ?? "?"
    }

    /// Task ids with a cancel request the Backend has not acknowledged yet.
    func openCancelRequests() async throws -> [String] {
        try await self.backendCall("/backend/cancel-requests")["task_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }
}

/// One Backend "process" in this test process: the real Dispatcher, ActionRunner, workers and ticket service,
/// with builders reached through `transport`.
final class BackendInstance: Sendable {
    let context: BackendContext
    let dispatcher: Dispatcher
    let actions: ActionRunner
    let tickets: TicketService
    let transport: FaultInjectingTransport

    init(context: BackendContext, tickets: TicketService, transport: FaultInjectingTransport) {
        self.context = context
        self.tickets = tickets
        self.transport = transport
        self.actions = ActionRunner(context: context)
        self.dispatcher = Dispatcher(context: context, actions: self.actions)
    }

    /// As if the process were killed: the transport freezes (the workers never touch a builder again), the poll
    /// loop stops, the ticket service shuts down. The builds keep running on their builders.
    func kill() async {
        self.transport.freeze()
        await self.dispatcher.stop()
        // Nothing of a dead process runs on: workers are cancelled, not awaited (one that touches the builder
        // waits forever in the frozen transport; one delivering a final report stops and leaves it in the job file).
        for w in await self.dispatcher.running.values { w.cancel() }
        await self.actions.stop()
        await self.tickets.shutdown()
    }

    /// A clean stop at the end of a test: workers still running are cancelled (their builds killed).
    func stop() async {
        await self.dispatcher.stop()
        let workers = await self.dispatcher.running.values
        for w in workers { w.cancel() }
        for w in workers { await w.value }
        await self.actions.stop()
        await self.tickets.shutdown()
    }
}

/// The Backend under test against a real Frontend: `koper-frontend` (a process), the Backend's parts in-process,
/// builders `HOST` as directories under `dir/builders` reached through a `FaultInjectingTransport`, running the real
/// `koper-builder` (or a stand-in script).
final class BackendStack: Sendable {
    static var binDir: String { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path }

    static var requirements: [IntegrationRequirement] {
        [
            .tool(binDir + "/koper-frontend"), .tool(binDir + "/koper-builder"), .root, .tool("/usr/bin/rpmbuild"),
            .tool("/usr/bin/bwrap"), .tool("/usr/bin/curl"), .tool("prlimit"), .tool("ps"), .tool("pkill"),
            .tool("pgrep"), .tool("setsid"), .tool("nohup"), .tool("/bin/zcat"), .tool("/usr/sbin/useradd"),
        ]
    }

    let dir: String
    let frontend: FrontendProcess
    let config: BackendConfig
    let logs: InMemoryLogHandler
    let http: HTTPClient
    let ticketsDatabase: String
    let project: String
    let builderUser: BuilderUser
    private let instances = Mutex<[BackendInstance]>([])

    var buildersDir: String { "\(self.dir)/builders" }

    /// Sets up a stack, runs `body` with it and tears it down, also when `body` throws.
    /// - Parameters:
    ///   - hosts: static builder hosts of the one pool.
    ///   - builder: what the worker starts on the builder.
    static func run(
        hosts: [String] = ["builder-a"],
        builder: BuilderProgram = .real,
        configure: (inout BackendConfig) -> Void = { _ in },
        _ body: (BackendStack) async throws -> Void
    ) async throws {
        let stack = try await BackendStack(hosts: hosts, builder: builder, configure: configure)
        do {
            try await body(stack)
        } catch {
            await stack.stop()
            throw error
        }
        await stack.stop()
    }

    private init(hosts: [String], builder: BuilderProgram, configure: (inout BackendConfig) -> Void) async throws {
        self.dir = try makeTemporaryDirectory(prefix: "koper-bt")
        self.builderUser = try await BuilderUser.ensure()
        self.logs = InMemoryLogHandler()
        let handler = self.logs
        var logger = Logger(label: "koper.backend.test") { _ in handler }
        logger.logLevel = .debug
        self.http = HTTPClient(maxConcurrent: 8, logger: logger)
        self.frontend = try await FrontendProcess.start(in: self.dir, http: self.http)
        self.project = "p"
        do {
            try await self.frontend.createProject(self.project)
            self.ticketsDatabase = try await PostgresFixture.makeDatabaseAsync()
        } catch {
            await self.frontend.stop()
            throw error
        }
        let pool = PoolConfig(
            name: "local",
            tags: ["arch_x86_64", "arch_noarch"],
            max: hosts.count,
            maxPrealloc: 0,
            staticHosts: hosts.map { ResourceData(host: $0, port: 22, user: "builder") }
        )
        var config = BackendConfig(
            frontendURL: self.frontend.url,
            backendSecret: FrontendProcess.secret,
            resultsURL: "http://127.0.0.1:9/results",
            resultsDir: "\(self.dir)/results",
            stateDir: "\(self.dir)/state",
            ticketsDatabase: self.ticketsDatabase,
            pools: [pool],
            sshPrivateKey: "/nonexistent"
        )
        config.builderCommand = try builder.command(in: self.dir)
        config.remoteWorkDir = "koper-builds"
        config.infraRetryDelay = 0.5
        config.infraRetryMaxDelay = 2
        config.reportRetryDelay = 0.1
        config.reportRetryMaxDelay = 0.5
        configure(&config)
        self.config = config
        for d in [config.resultsDir, config.stateDir, config.jobsDir, self.buildersDir] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
    }

    var logger: Logger {
        let handler = self.logs
        var logger = Logger(label: "koper.backend.test") { _ in handler }
        logger.logLevel = .debug
        return logger
    }

    /// Starts a Backend on this stack's state (a second call after `kill()` of the first is a restart).
    @discardableResult
    func startBackend() async throws -> BackendInstance {
        let tickets = try await TicketService(
            conninfo: self.ticketsDatabase,
            pools: self.config.pools,
            options: TicketService.Options(managerInterval: .milliseconds(100), waitRecheckInterval: .seconds(1)),
            logger: self.logger
        )
        let transport = FaultInjectingTransport(root: self.buildersDir, user: self.builderUser)
        let http = self.http
        let context = BackendContext(
            config: self.config,
            frontend: FrontendClient(
                base: self.config.frontendBase,
                secret: self.config.backendSecret,
                http: http,
                logger: self.logger
            ),
            keygen: nil,
            publisher: RepoPublisher(logger: self.logger),
            tickets: tickets,
            jobs: try JobStore(directory: self.config.jobsDir),
            transport: transport,
            workerID: "backend-tests",
            logger: self.logger
        )
        let instance = BackendInstance(context: context, tickets: tickets, transport: transport)
        self.instances.withLock { $0.append(instance) }
        await instance.dispatcher.start()
        return instance
    }

    /// Stops every Backend that was not killed, kills what is left of the builds, stops the Frontend.
    func stop() async {
        for instance in self.instances.withLock({ $0 }) {
            if instance.transport.isFrozen { continue }
            await instance.stop()
        }
        for instance in self.instances.withLock({ $0 }) {
            for pid in instance.transport.startedPids { killSession(pid) }
        }
        await self.frontend.stop()
        if ProcessInfo.processInfo.environment["KOPER_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: self.dir)
        }
    }

    // MARK: Looking at the results

    func resultDir(_ id: Int, _ name: String) -> String {
        "\(self.chrootDir)/\(String(format: "%08d", id))-\(name)"
    }

    var chrootDir: String { "\(self.config.resultsDir)/alice/\(self.project)/\(FrontendProcess.chroot)" }

    /// The build directories of the chroot (`NNNNNNNN-name`).
    var buildDirs: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: self.chrootDir)) ?? []).filter {
            $0.count > 9 && $0.prefix(8).allSatisfy(\.isNumber) && $0.dropFirst(8).first == "-"
        }.sorted()
    }

    /// A gzipped log (several members allowed), or the plain file beside it.
    func readLog(_ path: String) async -> String {
        if FileManager.default.fileExists(atPath: path + ".gz") {
            return (try? await Command.run("/bin/zcat", [path + ".gz"]).output) ?? ""
        }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// The last log lines of the Backend, for failure messages.
    var logTail: String {
        self.logs.entries.suffix(40).map { e in
            "\(e.level) \(e.message) \(e.metadata.map { "\($0)=\($1)" }.sorted().joined(separator: " "))"
        }.joined(separator: "\n")
    }

    func logged(_ message: String) -> Bool {
        self.logs.entries.contains { $0.message.description == message }
    }

    /// Polls the Frontend until build `id` is in one of `states`; throws with the last state and the log tail.
    @discardableResult
    func waitForState(_ id: Int, _ states: Set<String>, within limit: Duration) async throws -> String {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: limit)
        var last = ""
        while clock.now < end {
            last = try await self.frontend.state(id)
            if states.contains(last) { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw WaitTimeout(
            description: "build \(id) still \(last), not \(states.sorted()), after \(limit)\n\(self.logTail)"
        )
    }

    /// Polls `condition` every `interval` until it holds; throws naming `what`.
    func waitUntil(
        _ what: String,
        within limit: Duration,
        every interval: Duration = .milliseconds(50),
        _ condition: () async throws -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: limit)
        while clock.now < end {
            if try await condition() { return }
            try await Task.sleep(for: interval)
        }
        throw WaitTimeout(description: "\(what): not within \(limit)\n\(self.logTail)")
    }

    func openTickets(_ instance: BackendInstance) async throws -> [TicketSnapshot.TicketInfo] {
        try await instance.tickets.snapshot().tickets
    }
}

// MARK: Builds

/// What the worker starts as `koper-builder` (called as `CMD build --task task.json --output output` in the work
/// dir on the builder).
enum BuilderProgram: Sendable {
    /// The real `koper-builder` of this build tree.
    case real
    /// A stand-in that never finishes and never writes a status.
    case hanging
    /// A stand-in that is killed (SIGKILL) without writing a status, as by the OOM killer.
    case dying

    func command(in dir: String) throws -> String {
        let body: String
        switch self {
        case .real:
            return BackendStack.binDir + "/koper-builder"
        case .hanging:
            body = """
                echo "fake builder: working forever" >> output/builder-live.log
                exec sleep 3600
                """
        case .dying:
            body = """
                echo "fake builder: about to be killed" >> output/builder-live.log
                kill -KILL $$
                """
        }
        let path = "\(dir)/\(self)-builder"
        // `CMD cleanup …` (run before each build) does nothing here.
        try "#!/bin/sh\n[ \"$1\" = cleanup ] && exit 0\n\(body)\n".write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        chmod(path, 0o755)
        return path
    }
}

// MARK: Processes

/// Processes of session `sid` that are not zombies.
func sessionMembers(_ sid: Int32) -> [Int32] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return names.compactMap { name -> Int32? in
        guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) ": state ppid pgrp session …
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 3, fields[0] != "Z", Int32(fields[3]) == sid else { return nil }
        return pid
    }
}

/// SIGKILL to every process of session `sid`.
func killSession(_ sid: Int32) {
    for pid in sessionMembers(sid) { kill(pid, SIGKILL) }
}
