import Dispatch
import Foundation

/// Runs an external program (copr-cli, rpmbuild, dnf, curl) without blocking the Swift concurrency pool:
/// output goes to a temp file, the exit is awaited through `terminationHandler`, and a timeout kills it.
public enum Command {
    public struct Result: Sendable, CustomStringConvertible {
        public let status: Int32
        public let output: String
        public let timedOut: Bool
        public var description: String { "exit \(self.status)\(self.timedOut ? " (timed out)" : ""):\n\(self.output)" }
    }

    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        timeout: Double = 120
    ) async throws -> Result {
        let outPath = NSTemporaryDirectory() + "koper-cmd-\(UInt64.random(in: 0...UInt64.max)).out"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            var env = ProcessInfo.processInfo.environment
            for (k, v) in environment { env[k] = v }
            process.environment = env
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        let timedOut = TimeoutFlag()
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in c.resume() }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                c.resume(throwing: error)
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                if process.isRunning {
                    timedOut.set()
                    process.terminate()
                    DispatchQueue.global().asyncAfter(deadline: .now() + 5) {
                        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                    }
                }
            }
        }
        try? out.close()
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, output: text, timedOut: timedOut.value)
    }

    /// The output of `runWaiting`, with stdout and stderr apart.
    public struct SeparatedResult: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs a program synchronously (for synchronous fixtures; never from a Swift task that must not block) with
    /// `HOME=home`, `LC_ALL=C` and the variables in `unset` removed. Output goes to files rather than pipes, so a
    /// chatty child can never block on a full pipe.
    public static func runWaiting(
        _ executable: String,
        _ arguments: [String],
        home: String,
        unset: [String] = []
    ) throws -> SeparatedResult {
        let base = NSTemporaryDirectory() + "koper-run-\(UInt64.random(in: 0...UInt64.max))"
        let outPath = base + ".out"
        let errPath = base + ".err"
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = home
        environment["LC_ALL"] = "C"
        for name in unset { environment.removeValue(forKey: name) }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try? out.close()
        try? err.close()
        return SeparatedResult(
            status: process.terminationStatus,
            stdout: String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self),
            stderr: String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self)
        )
    }

    /// `/bin/sh -c script`.
    public static func shell(
        _ script: String,
        environment: [String: String]? = nil,
        timeout: Double = 120
    ) async throws -> Result {
        try await run("/bin/sh", ["-c", script], environment: environment, timeout: timeout)
    }
}

final class TimeoutFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { self.lock.withLock { self.flag = true } }
    var value: Bool { self.lock.withLock { self.flag } }
}

/// Makes a fresh temporary directory.
public func makeTemporaryDirectory(prefix: String = "koper-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix).\(UInt64.random(in: 0...UInt64.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
