import KoperProtocol

/// koper-builder reads the task description the Backend uploads next to the build (`task.json`): the wire
/// contract's `TaskDescription`, decoded and validated. An invalid task ends the build with status 2.
extension TaskDescription {
    static let maxTaskBytes = 1 << 20

    /// Decodes and validates the JSON bytes of a task description.
    static func parse(_ bytes: [UInt8]) throws(BuilderError) -> TaskDescription {
        guard bytes.count <= self.maxTaskBytes else {
            throw .infrastructure("task description is larger than \(self.maxTaskBytes) bytes")
        }
        do {
            let task = try Wire.decode(TaskDescription.self, from: bytes)
            try task.validate()
            return task
        } catch {
            throw .infrastructure("task description: \(error)")
        }
    }
}
