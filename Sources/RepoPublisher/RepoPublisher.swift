internal import Dispatch
internal import Glibc
public import Logging
internal import Synchronization

/// Publishes yum/dnf repodata for chroot directories, incrementally.
///
/// Each directory gets a worker with its own serial queue (the blocking file I/O never runs on the Swift
/// concurrency pool) and an in-memory copy of its index. Calls for one directory that arrive while a write
/// is in progress are coalesced into the next single write, which starts after they arrived and so sees
/// every file they added; all of them get that write's result.
///
/// The index (`DIR/.koper-repodata/index`, keyed by content digest) and the `flock` on
/// `DIR/.koper-repodata/lock` are shared with `CreateRepo`, so the daemon and the standalone command can
/// take turns on one directory.
public actor RepoPublisher {
    private let logger: Logger
    private let configuration: RepoPublisherConfiguration
    private var workers: [String: DirectoryWorker] = [:]
    /// Directory keys by last use, most recent last (eviction of idle cached indexes).
    private var recent: [String] = []

    public init(logger: Logger, configuration: RepoPublisherConfiguration = RepoPublisherConfiguration()) {
        self.logger = logger
        self.configuration = configuration
    }

    /// Brings `directory/repodata` up to date with the `.rpm` files below `directory`.
    ///
    /// - Parameter fullRebuild: read and render every package again and rewrite the index (the
    ///   `regenerate-repos` action; for an index an operator no longer trusts). Coalesced with concurrent calls:
    ///   the batch's one write is a full rebuild if any caller in it asked for one.
    public func publish(directory: String, fullRebuild: Bool = false) async throws(RepoPublisherError) -> PublishResult
    {
        let key = Self.canonicalPath(directory)
        let worker: DirectoryWorker
        if let existing = self.workers[key] {
            worker = existing
        } else {
            worker = DirectoryWorker(
                engine: RepoEngine(rootPath: key, configuration: self.configuration, logger: self.logger),
                label: "koper.repo-publisher"
            )
            self.workers[key] = worker
        }
        self.touch(key)
        return try await worker.publish(fullRebuild: fullRebuild)
    }

    /// Waits until every directory has finished its writes, including the index saves that follow the
    /// answers to `publish` (call before exiting so the next run starts from a current index).
    public func waitUntilIdle() async {
        for worker in self.workers.values {
            await worker.waitUntilIdle()
        }
    }

    private func touch(_ key: String) {
        self.recent.removeAll { $0 == key }
        self.recent.append(key)
        guard self.workers.count > self.configuration.maxCachedDirectories else { return }
        // Forget the least recently used idle directories; their index is reloaded from disk when needed.
        for candidate in self.recent where self.workers.count > self.configuration.maxCachedDirectories {
            if candidate != key, let worker = self.workers[candidate], worker.isIdle {
                self.workers[candidate] = nil
            }
        }
        self.recent.removeAll { self.workers[$0] == nil }
    }

    /// `realpath`, so that two spellings of one directory share a worker; the path itself when it does not
    /// resolve (the publish then reports the error).
    static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// Serialises and coalesces publishes of one directory.
final class DirectoryWorker: Sendable {
    private struct State {
        var running = false
        var waiting: [CheckedContinuation<PublishResult, any Error>] = []
        var fullRebuild = false
    }

    private let queue: DispatchQueue
    private let state = Mutex(State())
    /// Touched only on `queue`.
    private let engine: EngineBox

    init(engine: RepoEngine, label: String) {
        self.queue = DispatchQueue(label: label)
        self.engine = EngineBox(engine)
    }

    var isIdle: Bool {
        self.state.withLock { !$0.running && $0.waiting.isEmpty }
    }

    /// Returns once the work queued before this call (a running drain, its index save) is done.
    func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            self.queue.async { continuation.resume() }
        }
    }

    func publish(fullRebuild: Bool = false) async throws(RepoPublisherError) -> PublishResult {
        do {
            return try await withCheckedThrowingContinuation { continuation in
                let start = self.state.withLock { state -> Bool in
                    state.waiting.append(continuation)
                    state.fullRebuild = state.fullRebuild || fullRebuild
                    if state.running { return false }
                    state.running = true
                    return true
                }
                if start {
                    self.queue.async { self.drain() }
                }
            }
        } catch let error as RepoPublisherError {
            throw error
        } catch {
            throw RepoPublisherError(code: .internalError, detail: "\(error)")
        }
    }

    /// Runs on `queue`: one write per batch of waiting callers until nobody waits.
    private func drain() {
        while true {
            let next = self.state.withLock {
                state -> (batch: [CheckedContinuation<PublishResult, any Error>], full: Bool)? in
                if state.waiting.isEmpty {
                    state.running = false
                    return nil
                }
                let batch = state.waiting
                let full = state.fullRebuild
                state.waiting = []
                state.fullRebuild = false
                return (batch, full)
            }
            guard let (batch, full) = next else { return }
            let result: Result<PublishResult, any Error>
            do {
                var published = try self.engine.engine.publish(fullRebuild: full, deferIndexSave: true)
                published.coalescedRequests = batch.count
                result = .success(published)
            } catch {
                result = .failure(error)
            }
            // The new repomd.xml is in place: answer, then save the index (still under the directory lock).
            for continuation in batch {
                continuation.resume(with: result)
            }
            do {
                try self.engine.engine.completeDeferredWork()
            } catch {
                self.engine.engine.logger.warning(
                    "index not saved; the next publish reloads it",
                    metadata: ["repo.path": "\(self.engine.engine.rootPath)", "error": "\(error)"]
                )
            }
        }
    }
}

/// `@unchecked Sendable` invariant: the engine is used only from its `DirectoryWorker`'s serial queue.
final class EngineBox: @unchecked Sendable {
    let engine: RepoEngine

    init(_ engine: RepoEngine) {
        self.engine = engine
    }
}

/// The standalone command (`koper-backend createrepo [--update] DIR`): one publish in the calling process.
public enum CreateRepo {
    /// The publisher's private directory inside each repository (index, blobs, lock): not for HTTP clients.
    public static let privateDirectoryName = RepoEngine.indexDirectoryName

    /// Publishes `directory`.
    ///
    /// - Parameter update: reuse `DIR/.koper-repodata/index` (only new or changed files are read); without it
    ///   every package is read and rendered again, and the index is rewritten.
    @discardableResult
    public static func run(
        directory: String,
        update: Bool,
        logger: Logger = Logger(label: "koper.createrepo", factory: { _ in SwiftLogNoOpLogHandler() }),
        configuration: RepoPublisherConfiguration = RepoPublisherConfiguration()
    ) throws(RepoPublisherError) -> PublishResult {
        let engine = RepoEngine(
            rootPath: RepoPublisher.canonicalPath(directory),
            configuration: configuration,
            logger: logger
        )
        return try engine.publish(fullRebuild: !update)
    }
}
