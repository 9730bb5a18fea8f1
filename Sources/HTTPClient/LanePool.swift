internal import Dispatch
internal import Synchronization

/// A counting semaphore over lane indices for async callers, with a deadline and cancellation for every wait.
///
/// Waiters are served first come, first served. A waiter that reaches its deadline gets `.timeout`, a cancelled one
/// `.cancelled`; either way it is removed at once. Nothing here blocks a thread.
final class LanePool: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Int, any Error>
    }

    private struct State {
        var free: [Int]
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let state: Mutex<State>

    init(count: Int) {
        self.state = Mutex(State(free: Array((0..<count).reversed())))
    }

    /// Waits for a free lane until `deadline`. The caller must `release` the lane it gets.
    func acquire(deadline: ContinuousClock.Instant) async throws -> Int {
        let id = self.state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                enum Decision {
                    case lane(Int)
                    case cancelled
                    case wait
                }
                let decision = self.state.withLock { state -> Decision in
                    // Checked under the lock: a cancellation handler that already ran found no waiter to remove.
                    if Task.isCancelled { return .cancelled }
                    if let lane = state.free.popLast() { return .lane(lane) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .wait
                }
                switch decision {
                case .lane(let lane):
                    continuation.resume(returning: lane)
                case .cancelled:
                    continuation.resume(throwing: HTTPClientError(code: .cancelled, message: "request cancelled"))
                case .wait:
                    let delay = ContinuousClock.now.duration(to: deadline)
                    DispatchQueue.global().asyncAfter(deadline: .now() + delay.dispatchInterval) { [weak self] in
                        self?.remove(
                            id,
                            error: HTTPClientError(
                                code: .timeout,
                                message: "timed out waiting for a free connection slot"
                            )
                        )
                    }
                }
            }
        } onCancel: {
            self.remove(id, error: HTTPClientError(code: .cancelled, message: "request cancelled"))
        }
    }

    /// Returns a lane: hands it to the oldest waiter, or marks it free.
    func release(_ lane: Int) {
        let next = self.state.withLock { state -> CheckedContinuation<Int, any Error>? in
            if state.waiters.isEmpty {
                state.free.append(lane)
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume(returning: lane)
    }

    private func remove(_ id: UInt64, error: HTTPClientError) {
        let waiter = self.state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }
}

extension Duration {
    /// Whole milliseconds, clamped to `0...1e12` (about 31 years).
    var clampedMilliseconds: Int {
        let (seconds, attoseconds) = self.components
        if seconds < 0 { return 0 }
        if seconds >= 1_000_000_000 { return 1_000_000_000_000 }
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }

    var dispatchInterval: DispatchTimeInterval {
        .milliseconds(min(self.clampedMilliseconds, Int(Int32.max)))
    }
}
