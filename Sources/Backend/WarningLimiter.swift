import Logging
import Synchronization

/// Decides which repeats of a warning are logged: the first of a condition (its level and constant message) at
/// once; while it keeps recurring, one per interval, the interval doubling each time up to `maxInterval`, each
/// logged repeat carrying the number suppressed since the last one. A condition quiet for a whole interval starts
/// over. Pure (the caller passes the time), so it is tested without a clock.
struct WarningRateLimiter: Sendable {
    enum Decision: Sendable, Equatable {
        /// Log it; `suppressed` repeats were dropped since the last one logged.
        case log(suppressed: Int)
        case suppress
    }

    struct Entry: Sendable {
        var interval: Duration
        var lastLogged: ContinuousClock.Instant
        var lastSeen: ContinuousClock.Instant
        var suppressed: Int
    }

    let interval: Duration
    let maxInterval: Duration
    /// At most this many conditions are remembered (the oldest go first).
    let capacity: Int
    private(set) var entries: [String: Entry] = [:]

    init(interval: Duration, maxInterval: Duration, capacity: Int = 1024) {
        self.interval = interval
        self.maxInterval = max(interval, maxInterval)
        self.capacity = max(1, capacity)
    }

    mutating func admit(_ condition: String, now: ContinuousClock.Instant) -> Decision {
        guard var entry = self.entries[condition] else {
            if self.entries.count >= self.capacity,
                let oldest = self.entries.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key
            {
                self.entries[oldest] = nil
            }
            self.entries[condition] = Entry(interval: self.interval, lastLogged: now, lastSeen: now, suppressed: 0)
            return .log(suppressed: 0)
        }
        defer { self.entries[condition] = entry }
        if now - entry.lastSeen >= entry.interval && entry.suppressed == 0 {
            // Quiet for a whole interval: a new episode.
            entry = Entry(interval: self.interval, lastLogged: now, lastSeen: now, suppressed: 0)
            return .log(suppressed: 0)
        }
        entry.lastSeen = now
        guard now - entry.lastLogged >= entry.interval else {
            entry.suppressed += 1
            return .suppress
        }
        let suppressed = entry.suppressed
        entry.suppressed = 0
        entry.lastLogged = now
        entry.interval = min(entry.interval * 2, self.maxInterval)
        return .log(suppressed: suppressed)
    }
}

/// A `LogHandler` that passes everything below `warning` on and runs warnings and errors through one shared
/// `WarningRateLimiter` (keyed by label, level and message: messages are constant, values are metadata). A
/// logged repeat gets `suppressed` metadata. During an outage the Backend then says once per interval what is
/// wrong, not five times a second.
struct RateLimitedLogHandler: LogHandler {
    final class Shared: Sendable {
        let limiter: Mutex<WarningRateLimiter>
        init(_ limiter: WarningRateLimiter) { self.limiter = Mutex(limiter) }
    }

    var inner: any LogHandler
    let shared: Shared
    let label: String

    init(label: String, wrapping inner: any LogHandler, shared: Shared) {
        self.label = label
        self.inner = inner
        self.shared = shared
    }

    var logLevel: Logger.Level {
        get { self.inner.logLevel }
        set { self.inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { self.inner.metadata }
        set { self.inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.inner[metadataKey: key] }
        set { self.inner[metadataKey: key] = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { self.inner.metadataProvider }
        set { self.inner.metadataProvider = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if event.level >= .warning && event.level < .critical {
            let key = "\(self.label)|\(event.level)|\(event.message)"
            let now = ContinuousClock.now
            switch self.shared.limiter.withLock({ $0.admit(key, now: now) }) {
            case .suppress:
                return
            case .log(let suppressed):
                if suppressed > 0 {
                    event.metadata = (event.metadata ?? [:]).merging(["suppressed": "\(suppressed)"]) { $1 }
                }
            }
        }
        self.inner.log(event: event)
    }
}
