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
            default:
                // Forks copy no results yet: the new project starts empty (its builds are made anew).
                self.logger.notice("action not supported by this backend", metadata: ["action.type": "\(type)"])
                return false
            }
        } catch {
            self.logger.error("action failed", metadata: ["action.type": "\(type)", "error": "\(error)"])
            return false
        }
    }

    func delete(_ action: JSON, _ data: JSON) async throws -> Bool {
        guard let owner = data["ownername"]?.stringValue ?? action["ownername"]?.stringValue, isSafeComponent(owner) else { return false }
        let fm = FileManager.default
        switch data["object_type"]?.stringValue {
        case "copr":
            guard let project = data["projectname"]?.stringValue, isSafeComponent(project) else { return false }
            // The project dir and its CoprDirs (`project:custom:x`).
            for entry in (try? fm.contentsOfDirectory(atPath: "\(self.results)/\(owner)")) ?? [] where entry == project || entry.hasPrefix(project + ":") {
                try? fm.removeItem(atPath: "\(self.results)/\(owner)/\(entry)")
            }
            return true
        case "builds":
            guard let dir = data["project_dirname"]?.stringValue, isSafeComponent(dir), let chroots = data["chroot_builddirs"]?.objectValue else { return false }
            for (chroot, dirs) in chroots.pairs where isSafeComponent(chroot) {
                for d in dirs.arrayValue?.compactMap(\.stringValue) ?? [] where isSafeComponent(d) {
                    try? fm.removeItem(atPath: "\(self.results)/\(owner)/\(dir)/\(chroot)/\(d)")
                }
                let path = "\(self.results)/\(owner)/\(dir)/\(chroot)"
                if fm.fileExists(atPath: path) { _ = try await self.context.publisher.publish(directory: path) }
            }
            return true
        default:
            return false
        }
    }
}
