import Logging
import Postgres
import Synchronization
import TestSupport

/// A logger that drops everything (tests restart servers on purpose; warnings are expected).
let silentLogger = Logger(label: "koper.tests.postgres") { _ in SwiftLogNoOpLogHandler() }

/// A pool on a brand-new database.
func makePool(
    size: Int = 4,
    maxWaiters: Int = 1024,
    checkoutTimeout: Duration = .seconds(10)
) async throws -> PGPool {
    PGPool(
        conninfo: try await PostgresFixture.makeDatabaseAsync(),
        size: size,
        maxWaiters: maxWaiters,
        checkoutTimeout: checkoutTimeout,
        logger: silentLogger
    )
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Collects values from callbacks on other threads.
final class Collector<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])

    func append(_ value: Value) {
        storage.withLock { $0.append(value) }
    }

    var values: [Value] {
        storage.withLock { $0 }
    }
}
