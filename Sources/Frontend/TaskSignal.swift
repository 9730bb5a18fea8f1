import Synchronization

/// Wakes long-polling Backend requests when new tasks may exist. Writers `bump()` after they commit; a PostgreSQL
/// LISTEN on `koper_tasks` bumps it too, so several frontend processes share one queue.
final class TaskSignal: Sendable {
    struct State {
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    static let maxWaiters = 64
    let state = Mutex(State())
    /// Tells this process's generations apart from another's (a restarted or second frontend), so a Backend that
    /// passes a token from elsewhere is answered at once.
    let epoch = UInt64.random(in: 1...UInt64.max)

    var generation: UInt64 { self.state.withLock { $0.generation } }

    /// The generation as the Backend sees it: `EPOCH.GENERATION`.
    func token(_ generation: UInt64) -> String { "\(String(self.epoch, radix: 16)).\(generation)" }

    /// The generation named by a token of this process; nil for another process's token or garbage.
    func generation(parsing token: String) -> UInt64? {
        let parts = token.split(separator: ".")
        guard parts.count == 2, UInt64(parts[0], radix: 16) == self.epoch else { return nil }
        return UInt64(parts[1])
    }

    func bump() {
        let waiters = self.state.withLock { st -> [CheckedContinuation<Void, Never>] in
            st.generation &+= 1
            let w = Array(st.waiters.values)
            st.waiters.removeAll()
            return w
        }
        for w in waiters { w.resume() }
    }

    /// Returns when the generation moves past `seen`, or after `timeout`. Returns at once if there are already
    /// `maxWaiters` waiters (the caller then simply answers with what it has).
    func wait(after seen: UInt64, timeout: Duration) async {
        let id: UInt64? = self.state.withLock { st in
            guard st.generation == seen, st.waiters.count < Self.maxWaiters else { return nil }
            st.nextID &+= 1
            return st.nextID
        }
        guard let id else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = self.state.withLock { st -> Bool in
                        if st.generation != seen { return true }
                        st.waiters[id] = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                let c = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                c?.resume()
            }
            await group.next()
            group.cancelAll()
        }
        // Make sure the continuation is gone whichever side won.
        let c = self.state.withLock { $0.waiters.removeValue(forKey: id) }
        c?.resume()
    }
}
