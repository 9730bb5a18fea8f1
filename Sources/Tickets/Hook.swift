internal import Subprocess

/// What a hook run produced.
struct HookOutcome: Sendable {
    /// Exited with status 0 within its time limit, with stdout within its limit.
    var isSuccess: Bool
    /// `exited(N)`, `signaled(N)`, `timed out` or why it could not run.
    var status: String
    var standardOutput: [UInt8]
    /// The last few KiB of stderr, for the log.
    var standardErrorTail: String
}

/// Runs pool hooks (`/bin/sh -c command`) as real processes through swift-subprocess: nothing blocks the Swift
/// concurrency pool, stdout is bounded, only the tail of stderr is kept, and a hook that outlives its time
/// limit (or whose task is cancelled) is torn down with its whole process group: SIGTERM, then SIGKILL 2 s later.
enum Hook {
    static let standardOutputLimit = 64 * 1024
    static let standardErrorTailLimit = 4 * 1024

    /// A session of its own, so that teardown reaches every process the hook started.
    private static var platformOptions: PlatformOptions {
        var options = PlatformOptions()
        options.createSession = true
        options.teardownSequence = [
            .send(signal: .terminate, toProcessGroup: true, allowedDurationToNextStep: .seconds(2))
        ]
        return options
    }

    /// Runs `command` with `environment` added to ours. Throws only `CancellationError` (the calling task was
    /// cancelled; the hook has been torn down); every other failure is an unsuccessful outcome.
    static func run(_ command: String, environment: [String: String], timeout: Duration) async throws -> HookOutcome {
        let options = Self.platformOptions
        var updates: [Environment.Key: String?] = [:]
        for (key, value) in environment {
            if let key = Environment.Key(rawValue: key) { updates[key] = value }
        }
        let processEnvironment = Environment.inherit.updating(updates)
        let stdoutLimit = Self.standardOutputLimit
        let stderrLimit = Self.standardErrorTailLimit

        enum Race: Sendable {
            case finished(HookOutcome)
            case timedOut
        }
        let outcome: HookOutcome? = try await withThrowingTaskGroup(of: Race.self) { group in
            group.addTask {
                do {
                    let result = try await Subprocess.run(
                        .path("/bin/sh"),
                        arguments: ["-c", command],
                        environment: processEnvironment,
                        platformOptions: options,
                        input: .none,
                        output: .bytes(limit: stdoutLimit),
                        error: .sequence
                    ) { execution in
                        var tail: [UInt8] = []
                        for try await buffer in execution.standardError {
                            buffer.withUnsafeBytes { tail.append(contentsOf: $0) }
                            if tail.count > 2 * stderrLimit { tail.removeFirst(tail.count - stderrLimit) }
                        }
                        return Array(tail.suffix(stderrLimit))
                    }
                    return .finished(
                        HookOutcome(
                            isSuccess: result.terminationStatus.isSuccess,
                            status: result.terminationStatus.description,
                            standardOutput: result.standardOutput,
                            standardErrorTail: String(decoding: result.closureResult, as: UTF8.self)
                        )
                    )
                } catch {
                    try Task.checkCancellation()
                    let reason: String
                    if let error = error as? SubprocessError {
                        reason = "failed: \(error.code)"
                    } else {
                        reason = "failed: \(error)"
                    }
                    return .finished(
                        HookOutcome(isSuccess: false, status: reason, standardOutput: [], standardErrorTail: "")
                    )
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return .timedOut
            }
            let first = try await group.next()
            group.cancelAll()
            switch first {
            case .finished(let outcome):
                return outcome
            case .timedOut, nil:
                _ = try? await group.next()  // waits for the teardown of the process group
                return nil
            }
        }
        try Task.checkCancellation()
        return outcome
            ?? HookOutcome(isSuccess: false, status: "timed out", standardOutput: [], standardErrorTail: "")
    }
}
