import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Suspends until the process receives SIGTERM or SIGINT (both are then ignored by default handling), so a
/// service can drain its `Server` and stop. The one shared signal path of every Koper service.
public func waitForTermination() async {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let queue = DispatchQueue(label: "koper.signals")
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let state = SignalState(continuation: continuation)
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { state.fire() }
            source.resume()
            state.sources.append(source)
        }
    }
}

/// Touched only on the serial signal queue (and once at setup, before any signal source is resumed). Keeps the
/// signal sources alive for the life of the process.
final class SignalState: @unchecked Sendable {
    var continuation: CheckedContinuation<Void, Never>?
    var sources: [any DispatchSourceSignal] = []

    init(continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }

    func fire() {
        self.continuation?.resume()
        self.continuation = nil
    }
}
