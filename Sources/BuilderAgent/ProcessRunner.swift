import AtomicFile
import Foundation
import Glibc
import Subprocess
import Synchronization
import SystemPackage

/// One command to run: an absolute executable path, its arguments and its complete environment (nothing is
/// inherited implicitly).
struct ProcessSpec: Sendable, Equatable {
    var executable: String
    var arguments: [String]
    var environment: [String: String]
    var workingDirectory: String?

    /// The command as a shell would read it, for the log. Multi-line arguments (the constant scripts of
    /// ``SandboxScripts``, documented in docs/builder.md) are shown by their size only.
    var displayString: String {
        ([self.executable] + self.arguments).map { argument in
            argument.contains("\n")
                ? "<script: \(argument.split(separator: "\n").count) lines>"
                : ShellQuote.quote(argument)
        }.joined(separator: " ")
    }
}

/// How a step's process ended.
struct ProcessOutcome: Sendable, Equatable {
    /// Exit code, or `nil` when the process was killed by a signal.
    var exitCode: Int32?
    var signal: Int32?
    /// The step's deadline passed and the runner killed its process group.
    var timedOut: Bool
    /// The build was canceled while the step ran.
    var canceled: Bool

    var succeeded: Bool { self.exitCode == 0 && !self.timedOut && !self.canceled }
}

/// Runs build steps with swift-subprocess: each in its own process group, stdout and stderr line by line into
/// the live log (or stdout into a ``ResultStreamReceiver``), with an optional deadline, and killable by the
/// ``BuildSupervisor``.
struct ProcessRunner: Sendable {
    let log: LiveLog
    let supervisor: BuildSupervisor

    /// Waits `duration`, or less: throws `.canceled` as soon as the build is canceled (SIGTERM/SIGINT).
    func sleep(for duration: Duration) async throws(BuilderError) {
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end {
            if self.supervisor.isCanceled { throw BuilderError(.canceled, "canceled while waiting") }
            try? await Task.sleep(for: min(.milliseconds(100), end - ContinuousClock.now))
        }
        if self.supervisor.isCanceled { throw BuilderError(.canceled, "canceled while waiting") }
    }

    /// Runs `spec` to completion.
    ///
    /// - Parameters:
    ///   - deadline: when reached, the process group gets SIGTERM, then SIGKILL after the supervisor's grace.
    ///   - resultStream: receives stdout instead of the log (stderr still goes to the log).
    ///   - observer: sees every log line of this step (e.g. to pick up curl's status line).
    func run(
        _ spec: ProcessSpec,
        deadline: ContinuousClock.Instant? = nil,
        resultStream: ResultStreamReceiver? = nil,
        observer: (@Sendable ([UInt8]) -> Void)? = nil
    ) async throws(BuilderError) -> ProcessOutcome {
        self.log.info("running: " + Self.truncated(spec.displayString, 16 * 1024))
        let logPipe = try Self.makePipe()
        let logReader = PipeReader(fd: logPipe.read, consumer: LogLineConsumer(log: self.log, observer: observer))
        logReader.start()
        var resultReader: PipeReader?
        var resultWriteEnd: Int32 = -1
        if let resultStream {
            let pipe: (read: Int32, write: Int32)
            do {
                pipe = try Self.makePipe()
            } catch {
                _ = close(logPipe.write)
                await logReader.stop(maxWait: .seconds(1))
                throw error
            }
            resultWriteEnd = pipe.write
            let reader = PipeReader(fd: pipe.read, consumer: resultStream)
            reader.start()
            resultReader = reader
        }

        var options = PlatformOptions()
        options.processGroupID = 0
        var environment: [Environment.Key: String] = [:]
        for (key, value) in spec.environment {
            environment[Environment.Key(stringLiteral: key)] = value
        }
        let timedOut = AtomicFlag()
        let supervisor = self.supervisor
        let log = self.log

        let status: TerminationStatus
        do {
            let body: (pid_t) async -> Void = { pid in
                _ = supervisor.register(group: pid)
                let watchdog: Task<Void, Never>? = deadline.map { deadline in
                    Task {
                        do {
                            try await Task.sleep(until: deadline, clock: .continuous)
                        } catch {
                            return
                        }
                        timedOut.set()
                        log.info("time limit reached: terminating the step's processes")
                        supervisor.terminate(group: pid)
                    }
                }
                await Self.waitForExitWithoutReaping(pid)
                watchdog?.cancel()
                // Leftovers of the step (daemons started by the build) die with it; the leader is still a
                // zombie here, so this pgid cannot belong to anyone else yet.
                _ = kill(-pid, SIGKILL)
                supervisor.unregister(group: pid)
            }
            let workingDirectory = spec.workingDirectory.map { FilePath($0) }
            if resultStream != nil {
                let result = try await Subprocess.run(
                    .path(FilePath(spec.executable)),
                    arguments: Arguments(spec.arguments),
                    environment: .custom(environment),
                    workingDirectory: workingDirectory,
                    platformOptions: options,
                    input: .none,
                    output: .fileDescriptor(FileDescriptor(rawValue: resultWriteEnd), closeAfterSpawningProcess: true),
                    error: .fileDescriptor(FileDescriptor(rawValue: logPipe.write), closeAfterSpawningProcess: true)
                ) { execution in
                    await body(execution.processIdentifier.value)
                }
                status = result.terminationStatus
            } else {
                let result = try await Subprocess.run(
                    .path(FilePath(spec.executable)),
                    arguments: Arguments(spec.arguments),
                    environment: .custom(environment),
                    workingDirectory: workingDirectory,
                    platformOptions: options,
                    input: .none,
                    output: .fileDescriptor(FileDescriptor(rawValue: logPipe.write), closeAfterSpawningProcess: true),
                    error: .combinedWithOutput
                ) { execution in
                    await body(execution.processIdentifier.value)
                }
                status = result.terminationStatus
            }
        } catch {
            await logReader.stop(maxWait: .seconds(2))
            await resultReader?.stop(maxWait: .seconds(2))
            throw .infrastructure("cannot start \(spec.executable): \(error)")
        }
        await logReader.stop(maxWait: .seconds(5))
        await resultReader?.stop(maxWait: .seconds(5))

        var outcome = ProcessOutcome(
            exitCode: nil,
            signal: nil,
            timedOut: timedOut.isSet,
            canceled: supervisor.isCanceled
        )
        switch status {
        case .exited(let code):
            outcome.exitCode = code
        case .signaled(let signo):
            outcome.signal = signo
        }
        return outcome
    }

    /// Polls until `pid` has exited, leaving it a zombie for swift-subprocess to reap.
    private static func waitForExitWithoutReaping(_ pid: pid_t) async {
        while true {
            var info = siginfo_t()
            let rc = retryingOnInterrupt { waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) }
            if rc == 0 && info._sifields._sigchld.si_pid != 0 {
                return
            }
            if rc < 0 {
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    private static func makePipe() throws(BuilderError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw .infrastructure("pipe failed: \(String(cString: strerror(errno)))")
        }
        // Close-on-exec, so no other child inherits them (swift-subprocess also closes strays at spawn).
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }

    static func truncated(_ s: String, _ maxBytes: Int) -> String {
        guard s.utf8.count > maxBytes else {
            return s
        }
        return String(decoding: s.utf8.prefix(maxBytes), as: UTF8.self) + " …"
    }
}

/// A one-way boolean flag shared between tasks.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() {
        self.value.store(true, ordering: .sequentiallyConsistent)
    }

    var isSet: Bool { self.value.load(ordering: .sequentiallyConsistent) }
}

/// POSIX shell quoting for log lines and generated scripts.
enum ShellQuote {
    /// `word` unchanged when it has only safe characters, else single-quoted.
    static func quote(_ word: String) -> String {
        let safe =
            !word.isEmpty
            && word.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                    || "_./=:,+@%-".utf8.contains(c)
            }
        if safe {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
