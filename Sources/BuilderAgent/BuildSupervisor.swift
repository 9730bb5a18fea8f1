import Dispatch
import Glibc
import Synchronization

/// Knows the process groups of the running build steps and kills them on SIGTERM/SIGINT (cancel) or on
/// request (timeout).
///
/// Every step runs as the leader of its own process group (pgid = its pid). A group is signalled only while
/// it is registered, and `ProcessRunner` unregisters it before the leader is reaped, so a pgid is never
/// signalled after the kernel could have reused it.
final class BuildSupervisor: Sendable {
    private struct State {
        var canceled = false
        var cancelSignal: Int32 = 0
        var groups: Set<pid_t> = []
    }

    private let state = Mutex(State())
    // Set once by installSignalHandlers, before the build starts any task; only keeps the sources alive.
    private nonisolated(unsafe) var signalSources: [any DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "koper-builder.signals")

    /// Seconds between SIGTERM and SIGKILL when a group is terminated.
    let killGraceSeconds: Int

    init(killGraceSeconds: Int = 10) {
        self.killGraceSeconds = killGraceSeconds
    }

    /// Turns SIGTERM and SIGINT into a cancel of the build, and ignores SIGHUP (the builder runs detached;
    /// a closing SSH session must not kill it). Children get default dispositions back (swift-subprocess
    /// resets every signal before exec).
    func installSignalHandlers(onCancel: @escaping @Sendable (Int32) -> Void) {
        _ = Glibc.signal(SIGHUP, SIG_IGN)
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
        var sources: [any DispatchSourceSignal] = []
        for signo in [SIGTERM, SIGINT] {
            _ = Glibc.signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: self.queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if self.cancel(signal: signo) {
                    onCancel(signo)
                }
            }
            source.resume()
            sources.append(source)
        }
        self.signalSources = sources
    }

    /// Whether the build was canceled.
    var isCanceled: Bool {
        self.state.withLock { $0.canceled }
    }

    /// Marks the build canceled and terminates every registered group. Returns `false` if it already was.
    @discardableResult
    func cancel(signal signo: Int32) -> Bool {
        let groups: Set<pid_t>? = self.state.withLock { state in
            if state.canceled {
                return nil
            }
            state.canceled = true
            state.cancelSignal = signo
            return state.groups
        }
        guard let groups else {
            return false
        }
        for group in groups {
            self.terminate(group: group)
        }
        return true
    }

    /// Registers a running step's process group. Returns `false` (and kills the group at once) if the build
    /// was canceled before the step started.
    func register(group: pid_t) -> Bool {
        let canceled = self.state.withLock { state in
            state.groups.insert(group)
            return state.canceled
        }
        if canceled {
            self.terminate(group: group)
            return false
        }
        return true
    }

    /// Forgets a group. Call before its leader is reaped.
    func unregister(group: pid_t) {
        _ = self.state.withLock { $0.groups.remove(group) }
    }

    /// Sends SIGTERM to a registered group now and SIGKILL after ``killGraceSeconds`` if it is still registered.
    func terminate(group: pid_t) {
        guard self.send(SIGTERM, toGroup: group) else {
            return
        }
        self.queue.asyncAfter(deadline: .now() + .seconds(self.killGraceSeconds)) { [weak self] in
            _ = self?.send(SIGKILL, toGroup: group)
        }
    }

    /// Sends `signo` to a group if it is registered; returns whether it was.
    @discardableResult
    func send(_ signo: Int32, toGroup group: pid_t) -> Bool {
        // Holding the lock while signalling keeps unregister-then-reap from racing with the kill.
        self.state.withLock { state in
            guard state.groups.contains(group) else {
                return false
            }
            _ = kill(-group, signo)
            return true
        }
    }
}
