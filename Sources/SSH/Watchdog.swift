internal import Dispatch
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Bounds the blocking libssh calls that a session's queue makes.
///
/// libssh's blocking calls wait in `poll()` on the session socket; some of them (SFTP reads, a send into a full
/// socket buffer) retry forever while the peer's kernel still acknowledges but its sshd makes no progress. The
/// owner arms the watchdog before such work, touches it after each unit of progress and disarms it afterwards. If
/// the deadline passes, the watchdog calls `shutdown(2)` on the socket from its own thread: every pending and
/// later libssh call on it then fails at once, and the owner reports `.timeout`.
///
/// `shutdown` is the only thing done to the socket from another thread. It is safe because the watchdog holds the
/// session's own descriptor (not the duplicate libssh owns), which stays open until `invalidate()`, and
/// `shutdown` and `invalidate()` both happen under the lock.
final class Watchdog: Sendable {
    private struct State: Sendable {
        var fd: Int32
        var timeout: Duration = .zero
        var deadline: ContinuousClock.Instant? = nil
        /// The earliest pending check, if any. Later (stale) checks may also be pending; they only re-evaluate.
        var nextCheck: ContinuousClock.Instant? = nil
        var tripped = false
        var aborted = false

        /// Records a check at the deadline unless one is already pending at or before it; returns its delay.
        mutating func scheduleIfNeeded(now: ContinuousClock.Instant) -> Duration? {
            guard let deadline = self.deadline else { return nil }
            if let next = self.nextCheck, next > now, next <= deadline {
                return nil
            }
            self.nextCheck = deadline
            return deadline - now
        }
    }

    private let state: Mutex<State>

    init(fd: Int32) {
        self.state = Mutex(State(fd: fd))
    }

    /// Starts a deadline `timeout` from now (replacing any earlier one).
    func arm(_ timeout: Duration) {
        let check: Duration? = self.state.withLock { state in
            let now = ContinuousClock.now
            state.timeout = timeout
            state.deadline = now + timeout
            return state.scheduleIfNeeded(now: now)
        }
        if let check {
            self.scheduleCheck(after: check)
        }
    }

    /// Records progress: the deadline moves to `timeout` from now.
    func touch() {
        self.state.withLock { state in
            if state.deadline != nil {
                state.deadline = .now + state.timeout
            }
        }
    }

    func disarm() {
        self.state.withLock { $0.deadline = nil }
    }

    /// Whether a deadline passed and the socket was shut down.
    var hasTripped: Bool {
        self.state.withLock { $0.tripped }
    }

    /// Whether an armed operation is in progress.
    var isArmed: Bool {
        self.state.withLock { $0.deadline != nil }
    }

    /// Shuts the socket down now (used by `SSHSession.close()` to end an operation in flight).
    func abort() {
        self.state.withLock { state in
            guard state.fd >= 0, !state.aborted else { return }
            state.aborted = true
            _ = shutdown(state.fd, Int32(SHUT_RDWR))
        }
    }

    /// Stops all use of the descriptor and returns it, so that the owner may close it.
    func invalidate() -> Int32 {
        self.state.withLock { state in
            let fd = state.fd
            state.fd = -1
            state.deadline = nil
            return fd
        }
    }

    private func check() {
        let next: Duration? = self.state.withLock { state in
            guard let deadline = state.deadline, state.fd >= 0 else {
                return nil
            }
            let now = ContinuousClock.now
            if now >= deadline {
                state.tripped = true
                state.deadline = nil
                _ = shutdown(state.fd, Int32(SHUT_RDWR))
                return nil
            }
            if let next = state.nextCheck, next <= now + .milliseconds(5) {
                state.nextCheck = nil  // this is that check (possibly a little early)
            }
            return state.scheduleIfNeeded(now: now)
        }
        if let next {
            self.scheduleCheck(after: next)
        }
    }

    private func scheduleCheck(after delay: Duration) {
        // A millisecond late rather than early: Dispatch and ContinuousClock may disagree slightly.
        DispatchQueue.global().asyncAfter(deadline: .now() + (delay + .milliseconds(1)).dispatchInterval) {
            self.check()
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, clamped to `0...Int32.max` (for `poll` and libssh timeouts).
    var clampedMilliseconds: Int32 {
        let (seconds, attoseconds) = self.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) {
            return 0
        }
        let milliseconds = seconds.multipliedReportingOverflow(by: 1000)
        if milliseconds.overflow {
            return Int32.max
        }
        let total = milliseconds.partialValue + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: total)
    }

    /// Whole seconds, rounded up, at least 1.
    var wholeSecondsRoundedUp: Int {
        let (seconds, attoseconds) = self.components
        return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
    }

    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = self.components
        if seconds < 0 {
            return .nanoseconds(0)
        }
        if seconds > Int64(Int.max / 1_000_000_000) - 1 {
            return .seconds(Int(clamping: seconds))
        }
        return .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
    }
}
