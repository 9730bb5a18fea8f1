import Foundation
import KoperJSON
import Logging

/// Work for the Backend that is not a build (docs/internal-api.md "pending-actions"): deleting builds and projects
/// (their files go, then the chroot's repodata is republished), regenerating repodata, forks. Polled every two
/// seconds; each action is acknowledged once done.
struct ActionRunner: Sendable {
    let context: BackendContext
    var logger: Logger { self.context.logger }
    var results: String { self.context.config.resultsDir }

    func run() async {
        while !Task.isCancelled {
            do {
                let v = try await self.context.frontend.call("GET", "/backend/pending-actions")
                for action in v["actions"]?.arrayValue ?? [] {
                    guard let id = action["id"]?.intValue else { continue }
                    let ok = await self.perform(action)
                    _ = try await self.context.frontend.call("POST", "/backend/action-done", body: ["id": .int(id), "result": .string(ok ? "success" : "failure")])
                }
            } catch is CancellationError {
                return
            } catch {
                self.logger.warning("reading actions failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }

    func perform(_ action: JSON) async -> Bool {
        let type = action["action_type"]?.stringValue ?? ""
        let data = action["data"] ?? [:]
        do {
            switch type {
            case "createrepo":
                guard let owner = action["ownername"]?.stringValue, let dir = data["project_dirname"]?.stringValue,
                    let chroot = data["chroot"]?.stringValue, isSafeComponent(owner), isSafeComponent(dir), isSafeComponent(chroot)
                else { return false }
                let path = "\(self.results)/\(owner)/\(dir)/\(chroot)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                // An explicit request (regenerate-repos, a new chroot): read every package again, trust no index.
                _ = try await self.context.publisher.publish(directory: path, fullRebuild: true)
                if let project = action["projectname"]?.stringValue, isSafeComponent(project) {
                    try? await publishPublicKey(self.context, owner: owner, project: project)
                }
                return true
            case "delete":
                return try await self.delete(action, data)
            case "fork":
                return try await self.fork(data)
            default:
                self.logger.notice("action not supported by this backend", metadata: ["action.type": "\(type)"])
                return false
            }
        } catch {
            self.logger.error("action failed", metadata: ["action.type": "\(type)", "error": "\(error)"])
            return false
        }
    }

    /// Copies the result directories of forked builds (`builds_map`: chroot → {source dir → fork dir}) into the
    /// fork, re-signs their RPMs with the fork's key, then publishes the fork's chroots and public key. Each copy is
    /// made in a temporary directory and renamed into place once signed, so a retried action skips what is done
    /// and a reader never sees a half-copied or unsigned build.
    func fork(_ data: JSON) async throws -> Bool {
        guard let srcOwner = data["source_ownername"]?.stringValue, let srcDir = data["source_dirname"]?.stringValue,
            let dstOwner = data["target_ownername"]?.stringValue, let dstDir = data["target_dirname"]?.stringValue,
            [srcOwner, srcDir, dstOwner, dstDir].allSatisfy(isSafeComponent)
        else { return false }
        let map = data["builds_map"]?.objectValue ?? JSONObject()
        let fm = FileManager.default
        // Outside the chroot directories: a publish of a chroot must not index unsigned copies.
        let stagingRoot = "\(self.results)/\(dstOwner)/\(dstDir)/.fork-staging"
        var ok = true
        for (chroot, dirs) in map.pairs where isSafeComponent(chroot) {
            let dstChroot = "\(self.results)/\(dstOwner)/\(dstDir)/\(chroot)"
            try fm.createDirectory(atPath: dstChroot, withIntermediateDirectories: true)
            for (old, new) in dirs.objectValue?.pairs ?? [] {
                guard let new = new.stringValue, isSafeComponent(old), isSafeComponent(new) else { ok = false; continue }
                let source = "\(self.results)/\(srcOwner)/\(srcDir)/\(chroot)/\(old)"
                let target = "\(dstChroot)/\(new)"
                if fm.fileExists(atPath: target) { continue }
                guard fm.fileExists(atPath: source) else {
                    self.logger.warning("forked build has no results to copy", metadata: ["chroot": "\(chroot)", "build.dir": "\(old)"])
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
                    return ((try? fm.contentsOfDirectory(atPath: staging)) ?? []).filter { $0.hasSuffix(".rpm") }.sorted()
                }
                try await signRPMs(self.context, in: staging, names: rpms, owner: dstOwner, project: dstDir)
                try fm.moveItem(atPath: staging, toPath: target)
            }
            _ = try await self.context.publisher.publish(directory: dstChroot)
        }
        try await publishPublicKey(self.context, owner: dstOwner, project: dstDir)
        return ok
    }

    func delete(_ action: JSON, _ data: JSON) async throws -> Bool {
        guard let owner = data["ownername"]?.stringValue ?? action["ownername"]?.stringValue, isSafeComponent(owner) else { return false }
        switch data["object_type"]?.stringValue {
        case "copr":
            guard let project = data["projectname"]?.stringValue, isSafeComponent(project) else { return false }
            // The project dir and its CoprDirs (`project:custom:x`); removing whole trees blocks, so on blockingQueue.
            let ownerDir = "\(self.results)/\(owner)"
            _ = try? await runBlocking {
                let fm = FileManager.default
                for entry in (try? fm.contentsOfDirectory(atPath: ownerDir)) ?? [] where entry == project || entry.hasPrefix(project + ":") {
                    try? fm.removeItem(atPath: "\(ownerDir)/\(entry)")
                }
            }
            return true
        case "builds":
            guard let dir = data["project_dirname"]?.stringValue, isSafeComponent(dir), let chroots = data["chroot_builddirs"]?.objectValue else { return false }
            for (chroot, dirs) in chroots.pairs where isSafeComponent(chroot) {
                let path = "\(self.results)/\(owner)/\(dir)/\(chroot)"
                let builds = (dirs.arrayValue?.compactMap(\.stringValue) ?? []).filter(isSafeComponent)
                let exists = try await runBlocking {
                    let fm = FileManager.default
                    for d in builds {
                        try? fm.removeItem(atPath: "\(path)/\(d)")
                    }
                    return fm.fileExists(atPath: path)
                }
                if exists { _ = try await self.context.publisher.publish(directory: path) }
            }
            return true
        default:
            return false
        }
    }
}
