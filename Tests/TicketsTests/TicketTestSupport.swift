import Foundation
import Logging
import Postgres
import Synchronization
import TestSupport
import Testing

@testable import Tickets

/// Silent unless KOPER_TEST_LOG is set (then everything goes to stderr).
let testLogger: Logger = {
    if ProcessInfo.processInfo.environment["KOPER_TEST_LOG"] != nil {
        var logger = Logger(label: "koper.tests.tickets") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .debug
        return logger
    }
    return Logger(label: "koper.tests.tickets") { _ in SwiftLogNoOpLogHandler() }
}()

/// Fast manager settings for tests.
let testOptions = TicketService.Options(
    managerInterval: .milliseconds(100),
    waitRecheckInterval: .seconds(1),
    connections: 4
)

/// A temp directory with real hook scripts that append one line per call to `calls.log`:
/// `allocate NAME ID POOL`, `release NAME ID POOL DATA`, `check NAME`. Flag files steer them: `alloc-delay`
/// (seconds to sleep), `alloc-fail`, and `bad` (names whose check fails, one a line).
struct HookScripts: Sendable {
    let directory: String

    init() throws {
        self.directory = NSTemporaryDirectory() + "koper-tickets.\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        let d = self.directory
        try self.write(
            "allocate.sh",
            """
            #!/bin/sh
            D='\(d)'
            echo "allocate $RESALLOC_NAME $RESALLOC_ID $RESALLOC_POOL_ID" >> "$D/calls.log"
            if [ -f "$D/alloc-delay" ]; then sleep "$(cat "$D/alloc-delay")" & echo $! > "$D/sleep.pid"; wait $!; fi
            if [ -f "$D/alloc-fail" ]; then echo "no capacity left" >&2; exit 1; fi
            echo "allocating $RESALLOC_NAME" >&2
            printf '{"host": "%s.builders.test", "port": 2222, "user": "builder", "host_key": "/keys/%s.pub", "key": "/keys/id"}\\n' "$RESALLOC_NAME" "$RESALLOC_NAME"
            """
        )
        try self.write(
            "release.sh",
            """
            #!/bin/sh
            D='\(d)'
            echo "release $RESALLOC_NAME $RESALLOC_ID $RESALLOC_POOL_ID $KOPER_RESOURCE_DATA" >> "$D/calls.log"
            """
        )
        try self.write(
            "check.sh",
            """
            #!/bin/sh
            D='\(d)'
            echo "check $RESALLOC_NAME" >> "$D/calls.log"
            if grep -qxF "$RESALLOC_NAME" "$D/bad" 2>/dev/null; then exit 1; fi
            exit 0
            """
        )
    }

    private func write(_ name: String, _ text: String) throws {
        let path = self.directory + "/" + name
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
    }

    var allocate: String { self.directory + "/allocate.sh" }
    var release: String { self.directory + "/release.sh" }
    var check: String { self.directory + "/check.sh" }

    /// Lines of `calls.log`.
    func calls(_ kind: String? = nil) -> [String] {
        let text = (try? String(contentsOfFile: self.directory + "/calls.log", encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").map(String.init)
        guard let kind else { return lines }
        return lines.filter { $0.hasPrefix(kind + " ") }
    }

    /// Names of the resources a hook ran for, in call order.
    func names(_ kind: String) -> [String] {
        self.calls(kind).map { String($0.split(separator: " ")[1]) }
    }

    /// The pid of the allocate hook's last `sleep` (the hook's own child).
    var sleepPID: pid_t? {
        (try? String(contentsOfFile: self.directory + "/sleep.pid", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func setFlag(_ name: String, _ content: String = "") {
        let path = self.directory + "/" + name
        try? content.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func clearFlag(_ name: String) {
        try? FileManager.default.removeItem(atPath: self.directory + "/" + name)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// A hook-backed pool with test-friendly defaults.
func hookPool(
    _ scripts: HookScripts,
    name: String = "cloud",
    tags: [String] = ["arch_x86_64"],
    max: Int,
    maxPrealloc: Int = 0,
    check: Bool = false,
    checkInterval: Int = 60,
    reuseMaxCount: Int = 8,
    reuseMaxSeconds: Int = 3600,
    reuseOpportunitySeconds: Int = 3600,
    allocateTimeout: Int = 60
) -> PoolConfig {
    PoolConfig(
        name: name,
        tags: tags,
        max: max,
        maxPrealloc: maxPrealloc,
        allocateCommand: scripts.allocate,
        releaseCommand: scripts.release,
        checkCommand: check ? scripts.check : nil,
        checkInterval: checkInterval,
        reuseMaxCount: reuseMaxCount,
        reuseMaxSeconds: reuseMaxSeconds,
        reuseOpportunitySeconds: reuseOpportunitySeconds,
        allocateTimeout: allocateTimeout,
        releaseTimeout: 60,
        checkTimeout: 10
    )
}

func makeService(_ conninfo: String, _ pools: [PoolConfig]) async throws -> TicketService {
    try await TicketService(conninfo: conninfo, pools: pools, options: testOptions, logger: testLogger)
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
func eventually(
    timeout: Duration = .seconds(15),
    _ condition: @Sendable () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

extension TicketService {
    /// The open ticket's resource id, from a snapshot (nil while waiting or if not open).
    func assignedResource(_ ticket: TicketID) async throws -> Int64? {
        try await self.snapshot().tickets.first { $0.id == ticket }?.resourceID
    }

    func liveResources(state: ResourceState? = nil) async throws -> [TicketSnapshot.ResourceInfo] {
        try await self.snapshot().resources.filter { state == nil || $0.state == state }
    }
}

/// Runs SQL against the ticket database directly (to inspect or to tamper, as a crash would).
func withDatabase<T: Sendable>(
    _ conninfo: String,
    _ body: @escaping @Sendable (PGConnection) throws -> T
) async throws -> T {
    let pool = PGPool(conninfo: conninfo, size: 1, logger: testLogger)
    defer { pool.close() }
    return try await pool.withConnection(body)
}

/// Records values from concurrent tasks.
final class Recorder<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])

    func append(_ value: Value) {
        self.storage.withLock { $0.append(value) }
    }

    var values: [Value] { self.storage.withLock { $0 } }
}

/// Many workers taking tickets at once; records any resource handed to two holders at the same time.
final class LeaseTracker: Sendable {
    private let inUse = Mutex<Set<Int64>>([])
    let violations = Recorder<Int64>()
    let served = Recorder<Int64>()

    func run(_ service: TicketService, _ range: ClosedRange<Int>) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in range {
                group.addTask {
                    let ticket = try await service.open(
                        tags: ["arch_x86_64"],
                        sandbox: "user\(index % 4)/p",
                        owner: "task-\(index)"
                    )
                    let resource = try await service.wait(ticket)
                    if !self.inUse.withLock({ $0.insert(resource.id).inserted }) {
                        self.violations.append(resource.id)
                    }
                    try await Task.sleep(for: .milliseconds(20))
                    self.inUse.withLock { _ = $0.remove(resource.id) }
                    self.served.append(resource.id)
                    try await service.close(ticket, reusable: index % 3 != 0)
                }
            }
            try await group.waitForAll()
        }
    }
}
