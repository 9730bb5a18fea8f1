import AtomicFile
import Foundation
import KoperJSON

#if canImport(Glibc)
import Glibc
#endif

/// What the Backend must remember about an in-flight build to survive a kill -9: one small JSON file per task,
/// replaced atomically (write temp, fsync, rename) at every phase change.
struct JobRecord: Sendable {
    enum Phase: String, Sendable {
        /// Claimed; waiting for a builder.
        case leasing
        /// A builder is leased; the build is being started or runs detached there.
        case running
        /// Results are being collected and reported.
        case collecting
    }

    var task: JSON
    var taskID: String
    var phase: Phase
    var attempt: Int
    var ticket: Int64?
    var remoteDir: String?
    var workerID: String

    var json: JSON {
        [
            "task": self.task, "task_id": .string(self.taskID), "phase": .string(self.phase.rawValue), "attempt": .int(self.attempt),
            "ticket": self.ticket.map { .int(Int($0)) } ?? .null, "remote_dir": JSON(self.remoteDir), "worker_id": .string(self.workerID),
        ]
    }

    init(task: JSON, taskID: String, phase: Phase, attempt: Int, ticket: Int64?, remoteDir: String?, workerID: String) {
        self.task = task
        self.taskID = taskID
        self.phase = phase
        self.attempt = attempt
        self.ticket = ticket
        self.remoteDir = remoteDir
        self.workerID = workerID
    }

    init?(_ v: JSON) {
        guard let task = v["task"], let id = v["task_id"]?.stringValue, let phase = v["phase"]?.stringValue.flatMap(Phase.init(rawValue:)),
            let attempt = v["attempt"]?.intValue, let worker = v["worker_id"]?.stringValue
        else { return nil }
        self.init(task: task, taskID: id, phase: phase, attempt: attempt, ticket: v["ticket"]?.intValue.map(Int64.init), remoteDir: v["remote_dir"]?.stringValue, workerID: worker)
    }
}

struct JobStore: Sendable {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ taskID: String) -> String { "\(self.directory)/\(taskID).json" }

    func save(_ record: JobRecord) throws {
        try writeAtomically(record.json.serialized(), to: self.path(record.taskID))
    }

    func remove(_ taskID: String) {
        unlink(self.path(taskID))
    }

    func all() -> [JobRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: "\(self.directory)/\(name)"),
                let v = try? JSONParser.parse([UInt8](data))
            else { return nil }
            return JobRecord(v)
        }
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees either the old or the new content (AtomicFile).
func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    do {
        try AtomicFile.write(bytes, to: path)
    } catch {
        throw BackendError("\(error)")
    }
}
