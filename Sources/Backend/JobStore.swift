import AtomicFile
import Foundation
import KoperProtocol

#if canImport(Glibc)
import Glibc
#endif

/// What the Backend must remember about an in-flight build to survive a kill -9: one small JSON file per task,
/// replaced atomically (write temp, fsync, rename) at every phase change.
struct JobRecord: Sendable, Codable, Equatable {
    enum Phase: String, Sendable, Codable {
        /// Claimed; waiting for a builder.
        case leasing
        /// A builder is leased; the build is being started or runs detached there.
        case running
        /// Results are being collected and reported.
        case collecting
    }

    /// The description the claim answered with (the wire contract's type, uploaded to the builder as is).
    var task: TaskDescription
    var phase: Phase
    var attempt: Int
    var ticket: Int64?
    var remoteDir: String?
    var workerID: String

    var taskID: TaskID { self.task.taskID }

    enum CodingKeys: String, CodingKey {
        case task, phase, attempt, ticket
        case remoteDir = "remote_dir"
        case workerID = "worker_id"
    }
}

struct JobStore: Sendable {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ taskID: TaskID) -> String { "\(self.directory)/\(taskID).json" }

    func save(_ record: JobRecord) throws {
        try writeAtomically(try Wire.encode(record), to: self.path(record.taskID))
    }

    func remove(_ taskID: TaskID) {
        unlink(self.path(taskID))
    }

    func all() -> [JobRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: self.directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: "\(self.directory)/\(name)") else { return nil }
            return try? Wire.decode(JobRecord.self, from: [UInt8](data))
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
