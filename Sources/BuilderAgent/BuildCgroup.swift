import Foundation
import Glibc

/// Per-build cgroup v1 limits (../shared/docs/sandbox-and-hosts.md, "Optional cgroup delegation"): the operator
/// creates `/sys/fs/cgroup/{memory,pids}/PARENT` once as root, sets the host-wide limits there and chowns the
/// directory and its `cgroup.procs` to the builder user. Each build then makes a child `PARENT/koper-PID`, sets its
/// own limits in it (the kernel also enforces the parent's, which the builder cannot raise), and moves the
/// builder process into it, so the whole build — sandbox, rpmbuild and everything it forks — is counted. At the
/// end the builder moves itself back to the parent, kills anything left in the child and removes it.
///
/// `prlimit --nproc` does not bind a build running as root and counts all of the user's processes; `prlimit --as`
/// breaks Go and JVMs. A pids and memory cgroup has neither problem.
struct BuildCgroup: Sendable {
    static let controllers = ["memory", "pids"]

    let root: String
    let parent: String
    let name: String

    func path(_ controller: String) -> String { "\(self.root)/\(controller)/\(self.parent)/\(self.name)" }
    func parentPath(_ controller: String) -> String { "\(self.root)/\(controller)/\(self.parent)" }

    /// Creates the child cgroups, writes the limits (nil: the parent's apply) and moves this process in.
    static func enter(
        root: String = "/sys/fs/cgroup",
        parent: String,
        memoryLimit: Int?,
        maxProcesses: Int?
    ) throws(BuilderError) -> BuildCgroup {
        guard !parent.isEmpty, !parent.hasPrefix("/"),
            !parent.split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
        else {
            throw .infrastructure("--cgroup must be a relative path below each cgroup hierarchy")
        }
        let group = BuildCgroup(root: root, parent: parent, name: "koper-\(getpid())")
        do throws(BuilderError) {
            for c in controllers {
                let dir = group.path(c)
                if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                    throw .infrastructure("cannot create the build cgroup \(dir): \(String(cString: strerror(errno)))")
                }
            }
            if let memoryLimit { try write("\(memoryLimit)", to: group.path("memory") + "/memory.limit_in_bytes") }
            if let maxProcesses { try write("\(maxProcesses)", to: group.path("pids") + "/pids.max") }
            for c in controllers { try write("\(getpid())", to: group.path(c) + "/cgroup.procs") }
        } catch {
            group.remove()
            throw error
        }
        return group
    }

    /// What the build ran into, for the build log: the number of times the memory limit was hit and fork was
    /// refused.
    func limitHits() -> (memory: Int, processes: Int) {
        let memory = Int(Self.read(self.path("memory") + "/memory.failcnt") ?? "") ?? 0
        // pids.events: "max N"
        let events = Self.read(self.path("pids") + "/pids.events") ?? ""
        let processes =
            events.split(separator: "\n").first { $0.hasPrefix("max ") }.flatMap { Int($0.dropFirst(4)) } ?? 0
        return (memory, processes)
    }

    /// Moves this process back to the parent, kills what is left in the child (a build that escaped the sandbox's
    /// own cleanup), and removes the child.
    func leave() {
        for c in Self.controllers {
            try? Self.write("\(getpid())", to: self.parentPath(c) + "/cgroup.procs")
        }
        self.remove()
    }

    private func remove() {
        for c in Self.controllers {
            let dir = self.path(c)
            for _ in 0..<50 {
                if rmdir(dir) == 0 || errno == ENOENT { break }
                for pid in (Self.read(dir + "/cgroup.procs") ?? "").split(separator: "\n").compactMap({ pid_t($0) })
                where pid != getpid() {
                    kill(pid, SIGKILL)
                }
                usleep(20_000)
            }
        }
    }

    static func write(_ text: String, to path: String) throws(BuilderError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .infrastructure("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw .infrastructure("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .newlines)
    }
}
