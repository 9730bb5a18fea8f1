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
        /// The build is over on our side (results published, builder given back); `report` is the final update
        /// that the Frontend has not acknowledged yet. It is retried until it is, also by a restarted Backend.
        case reporting
    }

    /// The description the claim answered with (the wire contract's type, uploaded to the builder as is).
    var task: TaskDescription
    var phase: Phase
    var attempt: Int
    var ticket: Int64?
    var remoteDir: String?
    var workerID: String
    /// Set in `reporting`: the update to deliver.
    var report: BackendUpdate?
    /// Random per claim: part of every update id, so that a task handed back to the queue and claimed again never
    /// repeats an earlier claim's update ids (the Frontend ignores a repeated id). Nil in job files of older
    /// Backends (their ids stay `TASK#ATTEMPT#STATE`).
    var claimID: String?
    /// Attempts that ended in an infrastructure failure (counted apart from builders lost: `max_infra_retries`).
    var infraFailures: Int = 0

    var taskID: TaskID { self.task.taskID }

    init(
        task: TaskDescription,
        phase: Phase,
        attempt: Int,
        ticket: Int64?,
        remoteDir: String?,
        workerID: String,
        claimID: String? = nil
    ) {
        self.task = task
        self.phase = phase
        self.attempt = attempt
        self.ticket = ticket
        self.remoteDir = remoteDir
        self.workerID = workerID
        self.claimID = claimID
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.task = try c.decode(TaskDescription.self, forKey: .task)
        self.phase = try c.decode(Phase.self, forKey: .phase)
        self.attempt = try c.decode(Int.self, forKey: .attempt)
        self.ticket = try c.decodeIfPresent(Int64.self, forKey: .ticket)
        self.remoteDir = try c.decodeIfPresent(String.self, forKey: .remoteDir)
        self.workerID = try c.decode(String.self, forKey: .workerID)
        self.report = try c.decodeIfPresent(BackendUpdate.self, forKey: .report)
        self.claimID = try c.decodeIfPresent(String.self, forKey: .claimID)
        self.infraFailures = try c.decodeIfPresent(Int.self, forKey: .infraFailures) ?? 0
    }

    /// The idempotency key of this attempt's update to `state`.
    func updateID(_ state: String) -> String {
        if let claim = self.claimID { return "\(self.taskID)#\(claim)#\(self.attempt)#\(state)" }
        return "\(self.taskID)#\(self.attempt)#\(state)"
    }

    enum CodingKeys: String, CodingKey {
        case task, phase, attempt, ticket, report
        case remoteDir = "remote_dir"
        case workerID = "worker_id"
        case claimID = "claim_id"
        case infraFailures = "infra_failures"
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
