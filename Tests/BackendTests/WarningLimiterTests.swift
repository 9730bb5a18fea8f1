import InMemoryLogging
import Logging
import Testing

@testable import Backend

/// The rate limiter of warnings (pure: the test passes the time) and the log handler around it.
struct WarningLimiterTests {
    let t0 = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant { self.t0 + .milliseconds(Int64(seconds * 1000)) }

    /// Five a second for a minute: the first at once, then one per interval, the interval doubling (10, 20, 40 s)
    /// up to its maximum, each with the count of repeats dropped since the last.
    @Test func outageIsLoggedOncePerBackedOffIntervalWithCounts() {
        var limiter = WarningRateLimiter(interval: .seconds(10), maxInterval: .seconds(40))
        var logged: [(Double, Int)] = []
        for i in 0..<(5 * 120) {
            let t = Double(i) / 5
            if case .log(let suppressed) = limiter.admit("frontend down", now: self.at(t)) {
                logged.append((t, suppressed))
            }
        }
        #expect(logged.map(\.0) == [0, 10, 30, 70, 110], "\(logged)")
        #expect(logged.map(\.1) == [0, 49, 99, 199, 199], "\(logged)")
        let pending = limiter.entries["frontend down"]?.suppressed ?? 0
        #expect(pending == 49)
        #expect(logged.map(\.1).reduce(0, +) + logged.count + pending == 5 * 120, "every warning is logged or counted")
    }

    @Test func distinctConditionsAreIndependent() {
        var limiter = WarningRateLimiter(interval: .seconds(10), maxInterval: .seconds(40))
        #expect(limiter.admit("a", now: self.at(0)) == .log(suppressed: 0))
        #expect(limiter.admit("b", now: self.at(0.1)) == .log(suppressed: 0))
        #expect(limiter.admit("a", now: self.at(0.2)) == .suppress)
        #expect(limiter.admit("b", now: self.at(0.3)) == .suppress)
        #expect(limiter.admit("a", now: self.at(10)) == .log(suppressed: 1))
    }

    /// A condition that stays quiet for a whole interval starts a new episode: logged at once, base interval.
    @Test func quietConditionStartsOver() {
        var limiter = WarningRateLimiter(interval: .seconds(10), maxInterval: .seconds(40))
        #expect(limiter.admit("x", now: self.at(0)) == .log(suppressed: 0))
        #expect(limiter.admit("x", now: self.at(1)) == .suppress)
        #expect(limiter.admit("x", now: self.at(10)) == .log(suppressed: 1))  // interval now 20 s
        #expect(limiter.admit("x", now: self.at(100)) == .log(suppressed: 0))  // quiet 90 s: new episode
        #expect(limiter.admit("x", now: self.at(105)) == .suppress)
        #expect(limiter.admit("x", now: self.at(110)) == .log(suppressed: 1), "back to the 10 s interval")
    }

    @Test func remembersAtMostCapacityConditions() {
        var limiter = WarningRateLimiter(interval: .seconds(10), maxInterval: .seconds(10), capacity: 3)
        for (i, name) in ["a", "b", "c", "d"].enumerated() { _ = limiter.admit(name, now: self.at(Double(i))) }
        #expect(limiter.entries.count == 3)
        #expect(limiter.entries["a"] == nil, "the least recently seen went")
        #expect(limiter.admit("a", now: self.at(5)) == .log(suppressed: 0))
    }

    /// Through a Logger: warnings and errors are limited per message, info passes, the repeat carries `suppressed`.
    @Test func handlerLimitsWarningsAndPassesInfo() {
        let memory = InMemoryLogHandler()
        let shared = RateLimitedLogHandler.Shared(
            WarningRateLimiter(interval: .seconds(3600), maxInterval: .seconds(3600))
        )
        var logger = Logger(label: "t") { label in RateLimitedLogHandler(label: label, wrapping: memory, shared: shared)
        }
        logger.logLevel = .debug
        for i in 0..<20 {
            logger.warning("polling the frontend failed", metadata: ["try": "\(i)"])
            logger.error("cannot report", metadata: ["try": "\(i)"])
            logger.info("progress", metadata: ["try": "\(i)"])
        }
        let messages = memory.entries.map(\.message.description)
        #expect(messages.filter { $0 == "polling the frontend failed" }.count == 1)
        #expect(messages.filter { $0 == "cannot report" }.count == 1)
        #expect(messages.filter { $0 == "progress" }.count == 20)
    }
}
