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

    var generation: UInt64 { self.state.withLock { $0.generation } }

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
