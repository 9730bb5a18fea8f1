import AtomicFile
import Foundation
import Glibc
import Synchronization

/// Receives the bytes a ``PipeReader`` reads. Called only from the reader's own thread.
protocol PipeConsumer: AnyObject, Sendable {
    func consume(_ bytes: UnsafeRawBufferPointer)
    /// End of stream (EOF, or the reader was stopped).
    func finish()
}

/// Reads one pipe on a dedicated thread (never on the cooperative pool) until EOF, or until it is stopped
/// and the pipe has been quiet for a moment.
///
/// Why not swift-subprocess's own streams: it stops reading as soon as the child exits, which can lose the
/// last lines of a build log; this reader drains the pipe after the exit and is bounded in time instead.
final class PipeReader: Sendable {
    private struct State {
        var stopRequested = false
        var stopDeadline: ContinuousClock.Instant? = nil
        var finished = false
        var waiter: CheckedContinuation<Void, Never>? = nil
    }

    private let fd: Int32
    private let consumer: any PipeConsumer
    private let state = Mutex(State())

    /// Takes ownership of `fd` (the read end); it is closed when reading ends.
    init(fd: Int32, consumer: any PipeConsumer) {
        self.fd = fd
        self.consumer = consumer
    }

    func start() {
        let thread = Thread { [self] in
            self.loop()
        }
        thread.name = "koper-builder.pipe"
        thread.start()
    }

    /// Asks the reader to stop once the pipe is quiet (no data for 300 ms) or at the latest after `maxWait`,
    /// and waits until it has.
    func stop(maxWait: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = self.state.withLock { state -> Bool in
                state.stopRequested = true
                state.stopDeadline = .now + maxWait
                if state.finished {
                    return true
                }
                state.waiter = continuation
                return false
            }
            if resumeNow {
                continuation.resume()
            }
        }
    }

    private func loop() {
        let bufferSize = 64 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 8)
        defer { buffer.deallocate() }
        readLoop: while true {
            var pfd = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
            let ready = retryingOnInterrupt { poll(&pfd, 1, 300) }
            if ready < 0 {
                break
            }
            if ready == 0 {
                if self.state.withLock({ $0.stopRequested }) {
                    break
                }
                continue
            }
            let n = read(self.fd, buffer.baseAddress, bufferSize)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN {
                    continue
                }
                break
            }
            if n == 0 {
                break
            }
            self.consumer.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            let overdue = self.state.withLock { state -> Bool in
                guard let deadline = state.stopDeadline else { return false }
                return ContinuousClock.now >= deadline
            }
            if overdue {
                break readLoop
            }
        }
        _ = close(self.fd)
        self.consumer.finish()
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            let w = state.waiter
            state.waiter = nil
            return w
        }
        waiter?.resume()
    }
}

/// Splits a pipe into lines and writes them to the live log (and to an optional observer).
final class LogLineConsumer: PipeConsumer, @unchecked Sendable {
    // Invariant: `splitter` is touched only by the one PipeReader thread that owns this consumer.
    private var splitter: LineSplitter
    private let log: LiveLog
    private let observer: (@Sendable ([UInt8]) -> Void)?

    init(log: LiveLog, observer: (@Sendable ([UInt8]) -> Void)?) {
        self.log = log
        self.splitter = LineSplitter(maxLineBytes: log.maxLineBytes)
        self.observer = observer
    }

    func consume(_ bytes: UnsafeRawBufferPointer) {
        self.splitter.feed(bytes) { line, truncated in
            self.log.output(line, truncated: truncated)
            self.observer?(line)
        }
    }

    func finish() {
        self.splitter.finish { line, truncated in
            self.log.output(line, truncated: truncated)
            self.observer?(line)
        }
    }
}
