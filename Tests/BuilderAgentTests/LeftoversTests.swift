import Foundation
import Glibc
import Testing

@testable import BuilderAgent

/// `koper-builder cleanup`: build directories of builders that are gone are removed; those of running builders,
/// young ones and finished ones the Backend may still collect stay.
@Suite struct LeftoversTests {
    func makeBuild(_ root: String, _ name: String, pid: Bool, status: Bool, age: time_t) throws -> String {
        let dir = "\(root)/\(name)"
        try FileManager.default.createDirectory(atPath: "\(dir)/output/sub", withIntermediateDirectories: true)
        try "{}".write(toFile: "\(dir)/task.json", atomically: false, encoding: .utf8)
        try "log\n".write(toFile: "\(dir)/output/builder-live.log", atomically: false, encoding: .utf8)
        if pid { try "1\n".write(toFile: "\(dir)/output/builder.pid", atomically: false, encoding: .utf8) }
        if status { try "0\n".write(toFile: "\(dir)/output/status", atomically: false, encoding: .utf8) }
        // A read-only directory, as rpmbuild trees can leave.
        chmod("\(dir)/output/sub", 0o500)
        let then = time(nil) - age
        var times = [timeval(tv_sec: then, tv_usec: 0), timeval(tv_sec: then, tv_usec: 0)]
        for path in [
            "\(dir)/output/builder-live.log", "\(dir)/output/status", "\(dir)/output/sub", "\(dir)/output", dir,
        ] {
            _ = utimes(path, &times)
        }
        return dir
    }

    @Test func removesOnlyBuildsWhoseBuilderIsGone() throws {
        let root = NSTemporaryDirectory() + "koper-leftovers-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let hour: time_t = 3600
        let dead = try self.makeBuild(root, "1-fedora-a1-1", pid: true, status: false, age: hour)
        let neverStarted = try self.makeBuild(root, "2-fedora-a1-2", pid: false, status: false, age: hour)
        let running = try self.makeBuild(root, "3-fedora-a1-3", pid: true, status: false, age: hour)
        let young = try self.makeBuild(root, "4-fedora-a1-4", pid: true, status: false, age: 10)
        let finished = try self.makeBuild(root, "5-fedora-a1-5", pid: true, status: true, age: hour)
        let abandoned = try self.makeBuild(root, "6-fedora-a1-6", pid: true, status: true, age: 8 * 24 * hour)

        // The running builder holds its pid file locked, as koper-builder does.
        let lock = open("\(running)/output/builder.pid", O_WRONLY | O_CLOEXEC)
        try #require(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0)
        defer { close(lock) }

        var notes: [String] = []
        let removed = Leftovers.removeOrphanedBuilds(in: root, unfinishedAge: 600, finishedAge: 7 * 86400) {
            notes.append($0)
        }
        #expect(removed == [dead, neverStarted, abandoned], "\(notes)")
        for dir in [dead, neverStarted, abandoned] { #expect(!FileManager.default.fileExists(atPath: dir)) }
        for dir in [running, young, finished] { #expect(FileManager.default.fileExists(atPath: "\(dir)/task.json")) }
        #expect(notes.contains { $0.contains("unfinished, its builder is gone") }, "\(notes)")
        #expect(notes.contains { $0.contains("finished, never collected") }, "\(notes)")

        // Once its builder is gone, the formerly running one goes too; a second run changes nothing else.
        flock(lock, LOCK_UN)
        let again = Leftovers.removeOrphanedBuilds(in: root, unfinishedAge: 600, finishedAge: 7 * 86400) { _ in }
        #expect(again == [running])
        let left = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        #expect(left == ["4-fedora-a1-4", "5-fedora-a1-5"])
    }

    @Test func missingBuildsDirectoryIsNotAnError() {
        #expect(Leftovers.removeOrphanedBuilds(in: "/nonexistent/koper-builds") { _ in }.isEmpty)
    }

    /// A cgroup named after a pid that no longer exists is removed (here: plain directories standing in for the
    /// cgroup hierarchy, which rmdir treats alike when empty); one of a live process stays.
    @Test func orphanedCgroupsOfDeadBuildersAreRemoved() throws {
        let root = NSTemporaryDirectory() + "koper-cgroups-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        // A pid that is not in use: above the kernel's pid_max.
        let deadPid = 4_194_400
        for controller in ["memory", "pids"] {
            for name in ["koper-\(deadPid)", "koper-\(getpid())", "koper-1", "other"] {
                try FileManager.default.createDirectory(
                    atPath: "\(root)/\(controller)/builds/\(name)",
                    withIntermediateDirectories: true
                )
            }
        }
        var notes: [String] = []
        Leftovers.removeOrphanedCgroups(root: root, parent: "builds") { notes.append($0) }
        for controller in ["memory", "pids"] {
            let left = try FileManager.default.contentsOfDirectory(atPath: "\(root)/\(controller)/builds").sorted()
            #expect(left == ["koper-1", "koper-\(getpid())", "other"].sorted(), "\(notes)")
        }
        #expect(notes.count == 2, "\(notes)")
    }
}
