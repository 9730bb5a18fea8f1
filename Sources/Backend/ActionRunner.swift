import Foundation
import KoperProtocol
import Logging

/// Work for the Backend that is not a build (docs/internal-api.md "actions"): deleting builds and projects (their
/// files go, then the chroot's repodata is republished), regenerating repodata, forks. Actions arrive with the
/// Dispatcher's poll; they run one at a time in arrival order, each is acknowledged once done, and an action the
/// next poll still lists (not yet acknowledged) is not queued twice.
actor ActionRunner {
    let context: BackendContext
    var logger: Logger { self.context.logger }
    var results: String { self.context.config.resultsDir }
    /// Queued or running, by id.
    private var known: Set<Int> = []
    /// Recently finished ids (a poll answered before the acknowledgement committed lists them again).
    private var finished: [Int] = []
    private var queue: [BackendAction] = []
    private var worker: Task<Void, Never>?

    init(context: BackendContext) {
        self.context = context
    }

    func submit(_ actions: [BackendAction]) {
        for action in actions where !self.known.contains(action.id) && !self.finished.contains(action.id) {
            self.known.insert(action.id)
            self.queue.append(action)
        }
        if self.worker == nil, !self.queue.isEmpty {
            self.worker = Task { await self.drain() }
        }
    }

    func stop() {
        self.worker?.cancel()
    }

    private func drain() async {
        while !Task.isCancelled, !self.queue.isEmpty {
            let action = self.queue.removeFirst()
            let ok = await self.perform(action)
            do {
                try await self.context.frontend.actionDone(action.id, result: ok ? .success : .failure)
            } catch {
                self.logger.warning(
                    "acknowledging an action failed",
                    metadata: ["action.id": "\(action.id)", "error": "\(error)"]
                )
            }
            self.known.remove(action.id)
            self.finished.append(action.id)
            if self.finished.count > 1000 { self.finished.removeFirst(self.finished.count - 1000) }
        }
        self.worker = nil
    }

    func perform(_ action: BackendAction) async -> Bool {
        do {
            switch action.payload {
            case .createrepo(let d):
                guard [d.ownername, d.projectDirname, d.chroot].allSatisfy(isSafeComponent) else { return false }
                let path = "\(self.results)/\(d.ownername)/\(d.projectDirname)/\(d.chroot)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                // An explicit request (regenerate-repos, a new chroot): read every package again, trust no index.
                _ = try await self.context.publisher.publish(directory: path, fullRebuild: true)
                if isSafeComponent(d.projectname) {
                    try? await publishPublicKey(self.context, owner: d.ownername, project: d.projectname)
                }
                return true
            case .deleteProject(let d):
                return try await self.deleteProject(d)
            case .deleteBuilds(let d):
                return try await self.deleteBuilds(d)
            case .fork(let d):
                return try await self.fork(d)
            case .unsupported(let type):
                self.logger.notice("action not supported by this backend", metadata: ["action.type": "\(type)"])
                return false
            }
        } catch {
            self.logger.error("action failed", metadata: ["action.type": "\(action.actionType)", "error": "\(error)"])
            return false
        }
    }

    /// Copies the result directories of forked builds (`builds_map`: chroot → {source dir → fork dir}) into the
    /// fork, re-signs their RPMs with the fork's key, then publishes the fork's chroots and public key. Each copy is
    /// made in a temporary directory and renamed into place once signed, so a retried action skips what is done
    /// and a reader never sees a half-copied or unsigned build.
    func fork(_ data: BackendAction.Fork) async throws -> Bool {
        let (srcOwner, srcDir, dstOwner, dstDir) = (
            data.sourceOwnername, data.sourceDirname, data.targetOwnername, data.targetDirname
        )
        guard [srcOwner, srcDir, dstOwner, dstDir].allSatisfy(isSafeComponent) else { return false }
        let fm = FileManager.default
        // Outside the chroot directories: a publish of a chroot must not index unsigned copies.
        let stagingRoot = "\(self.results)/\(dstOwner)/\(dstDir)/.fork-staging"
        var ok = true
        for (chroot, dirs) in data.buildsMap.sorted(by: { $0.key < $1.key }) where isSafeComponent(chroot) {
            let dstChroot = "\(self.results)/\(dstOwner)/\(dstDir)/\(chroot)"
            try fm.createDirectory(atPath: dstChroot, withIntermediateDirectories: true)
            for (old, new) in dirs.sorted(by: { $0.key < $1.key }) {
                guard isSafeComponent(old), isSafeComponent(new) else {
                    ok = false
                    continue
                }
                let source = "\(self.results)/\(srcOwner)/\(srcDir)/\(chroot)/\(old)"
                let target = "\(dstChroot)/\(new)"
                if fm.fileExists(atPath: target) { continue }
                guard fm.fileExists(atPath: source) else {
                    self.logger.warning(
                        "forked build has no results to copy",
                        metadata: ["chroot": "\(chroot)", "build.dir": "\(old)"]
                    )
                    ok = false
                    continue
                }
                let staging = "\(stagingRoot)/\(chroot)-\(new)"
                // Copying a whole result directory blocks: on blockingQueue, not the cooperative pool.
                let rpms = try await runBlocking {
                    let fm = FileManager.default
                    try? fm.removeItem(atPath: staging)
                    try fm.createDirectory(atPath: stagingRoot, withIntermediateDirectories: true)
                    try fm.copyItem(atPath: source, toPath: staging)
                    return ((try? fm.contentsOfDirectory(atPath: staging)) ?? []).filter { $0.hasSuffix(".rpm") }
                        .sorted()
                }
                try await signRPMs(self.context, in: staging, names: rpms, owner: dstOwner, project: dstDir)
                try fm.moveItem(atPath: staging, toPath: target)
            }
            _ = try await self.context.publisher.publish(directory: dstChroot)
        }
        try await publishPublicKey(self.context, owner: dstOwner, project: dstDir)
        return ok
    }

    /// Removes a project's results: its directory and its CoprDirs (`project:custom:x`).
    func deleteProject(_ d: BackendAction.DeleteProject) async throws -> Bool {
        let (owner, project) = (d.ownername, d.projectname)
        guard isSafeComponent(owner), isSafeComponent(project) else { return false }
        // Removing whole trees blocks: on blockingQueue.
        let ownerDir = "\(self.results)/\(owner)"
        _ = try? await runBlocking {
            let fm = FileManager.default
            for entry in (try? fm.contentsOfDirectory(atPath: ownerDir)) ?? []
            where entry == project || entry.hasPrefix(project + ":") {
                try? fm.removeItem(atPath: "\(ownerDir)/\(entry)")
            }
        }
        return true
    }

    /// Removes build result directories, then republishes each chroot.
    func deleteBuilds(_ d: BackendAction.DeleteBuilds) async throws -> Bool {
        guard isSafeComponent(d.ownername), isSafeComponent(d.projectDirname) else { return false }
        for (chroot, dirs) in d.chrootBuilddirs.sorted(by: { $0.key < $1.key }) where isSafeComponent(chroot) {
            let path = "\(self.results)/\(d.ownername)/\(d.projectDirname)/\(chroot)"
            let builds = dirs.filter(isSafeComponent)
            let exists = try await runBlocking {
                let fm = FileManager.default
                for dir in builds {
                    try? fm.removeItem(atPath: "\(path)/\(dir)")
                }
                return fm.fileExists(atPath: path)
            }
            if exists { _ = try await self.context.publisher.publish(directory: path) }
        }
        return true
    }
}
