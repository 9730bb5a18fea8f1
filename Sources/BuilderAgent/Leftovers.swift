import Foundation
import Glibc

/// What killed builders leave behind, and its removal (`koper-builder cleanup`, also run by the Backend before each
/// build it starts on a builder, and the cgroup part at the start of every `build --cgroup`).
///
/// A builder killed with SIGKILL (OOM killer, a kill of its session, a reboot of the build VM's agent) cannot clean up:
/// its build directory (`BUILDS/TASK-aN-RAND`, made by the Backend, holding `task.json` and `output/`), its private
/// work directory (`koper-build.*`, see ``Builder/removeStaleWorkDirectories(in:note:)``) and its per-build cgroups
/// (`PARENT/koper-PID`) stay until someone removes them.
enum Leftovers {
    /// Removes the build directories in `buildsDirectory` whose builder is gone:
    /// - a directory whose `output/builder.pid` is locked belongs to a running builder and is kept;
    /// - a finished one (`output/status` present) is kept `finishedAge` seconds, so that a Backend that was away can
    ///   still collect it;
    /// - an unfinished one (no status, no running builder: killed, or never started) is removed once nothing in it
    ///   changed for `unfinishedAge` seconds (the Backend creates the directory a moment before the builder starts).
    /// Only directories of this user are touched. Returns the removed paths.
    @discardableResult
    static func removeOrphanedBuilds(
        in buildsDirectory: String,
        unfinishedAge: Int = 600,
        finishedAge: Int = 7 * 86400,
        now: time_t = time(nil),
        note: (String) -> Void
    ) -> [String] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: buildsDirectory) else { return [] }
        var removed: [String] = []
        for name in entries.sorted() where !name.hasPrefix(".") {
            let path = buildsDirectory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else { continue }
            let output = path + "/output"
            if self.isLocked(output + "/" + Builder.pidFileName) { continue }
            let finished = self.modificationTime(output + "/" + Builder.statusFileName)
            let age: time_t
            if let finished {
                age = now - finished
                guard age > finishedAge else { continue }
            } else {
                let newest = [path, output, output + "/" + Builder.liveLogName].compactMap(self.modificationTime).max()
                age = now - (newest ?? st.st_mtim.tv_sec)
                guard age > unfinishedAge else { continue }
            }
            note(
                "removing the build directory \(path) (\(finished == nil ? "unfinished, its builder is gone" : "finished, never collected"); \(age) s old)"
            )
            Builder.removeTree(path, note: note)
            if access(path, F_OK) != 0 { removed.append(path) }
        }
        return removed
    }

    /// Removes the per-build cgroups `PARENT/koper-PID` of both hierarchies whose builder `PID` no longer exists:
    /// whatever still runs in one (a build that outlived its builder) is killed first.
    static func removeOrphanedCgroups(root: String = "/sys/fs/cgroup", parent: String, note: (String) -> Void) {
        for controller in BuildCgroup.controllers {
            let base = "\(root)/\(controller)/\(parent)"
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: base) else { continue }
            for name in entries where name.hasPrefix("koper-") {
                guard let pid = pid_t(name.dropFirst("koper-".count)), pid > 0, pid != getpid() else { continue }
                if kill(pid, 0) == 0 || errno == EPERM { continue }
                let dir = "\(base)/\(name)"
                note("removing the cgroup \(dir) of a builder that is gone")
                for _ in 0..<50 {
                    if rmdir(dir) == 0 || errno == ENOENT { break }
                    let procs = (BuildCgroup.read(dir + "/cgroup.procs") ?? "").split(separator: "\n")
                    for p in procs.compactMap({ pid_t($0) }) { kill(p, SIGKILL) }
                    usleep(20_000)
                }
            }
        }
    }

    /// True while another open file description holds a `flock` on `path` (a builder that runs).
    static func isLocked(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    static func modificationTime(_ path: String) -> time_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mtim.tv_sec : nil
    }
}
