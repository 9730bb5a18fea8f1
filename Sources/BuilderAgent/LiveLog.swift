import Glibc
import Synchronization
import SystemPackage

/// Splits a byte stream into lines (without the `\n`), bounding the length of each line.
///
/// A line longer than `maxLineBytes` is emitted once with its first `maxLineBytes` bytes and
/// `truncated == true`; the rest of it, up to the next `\n`, is dropped. Memory use is bounded by
/// `maxLineBytes` whatever the input.
struct LineSplitter {
    let maxLineBytes: Int
    private var pending: [UInt8] = []
    private var discarding = false

    init(maxLineBytes: Int) {
        precondition(maxLineBytes > 0)
        self.maxLineBytes = maxLineBytes
    }

    /// Feeds bytes; calls `emit(line, truncated)` for every line they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: ([UInt8], Bool) -> Void) {
        var start = 0
        let count = bytes.count
        while start < count {
            var newline = start
            while newline < count && bytes[newline] != 0x0A {
                newline += 1
            }
            let hasNewline = newline < count
            if !self.discarding {
                let room = self.maxLineBytes - self.pending.count
                let take = min(room, newline - start)
                if take > 0 {
                    self.pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + take)]))
                }
                if newline - start > room || (!hasNewline && self.pending.count >= self.maxLineBytes) {
                    emit(self.pending, true)
                    self.pending.removeAll(keepingCapacity: true)
                    self.discarding = true
                } else if hasNewline {
                    emit(self.pending, false)
                    self.pending.removeAll(keepingCapacity: true)
                }
            }
            if hasNewline {
                self.discarding = false
            }
            start = hasNewline ? newline + 1 : count
        }
    }

    /// Emits a final line that had no `\n`, if any.
    mutating func finish(emit: ([UInt8], Bool) -> Void) {
        if !self.pending.isEmpty {
            emit(self.pending, false)
            self.pending.removeAll()
        }
        self.discarding = false
    }
}

/// `DIR/builder-live.log`: every line of every subprocess plus Koper's own timestamped lines, written with
/// one `write(2)` per line to an `O_APPEND` descriptor so the Backend can tail it while the build runs.
///
/// Bounded: lines longer than `maxLineBytes` are cut (with a marker), and once `maxTotalBytes` have been
/// written, further subprocess output is dropped (one notice says so); Koper's own lines are still written.
final class LiveLog: Sendable {
    private struct State {
        var fd: Int32
        var written: Int
        var dropping: Bool
    }

    let path: String
    let maxLineBytes: Int
    let maxTotalBytes: Int
    private let echoToStandardError: Bool
    private let state: Mutex<State>

    static let truncationMarker = Array(" [line truncated by koper-builder]".utf8)

    /// Creates (or truncates) the log file.
    init(path: String, maxLineBytes: Int, maxTotalBytes: Int, echoToStandardError: Bool) throws(BuilderError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw .infrastructure("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.maxLineBytes = maxLineBytes
        self.maxTotalBytes = maxTotalBytes
        self.echoToStandardError = echoToStandardError
        self.state = Mutex(State(fd: fd, written: 0, dropping: false))
    }

    /// Writes one of Koper's own lines: `2026-11-23T02:35:02Z koper-builder: message`. A message with
    /// several lines gives several log lines.
    func info(_ message: String) {
        let prefix = Self.timestamp() + " koper-builder: "
        for line in message.split(separator: "\n", omittingEmptySubsequences: false) {
            var bytes = Array(prefix.utf8)
            bytes.append(contentsOf: line.utf8.prefix(self.maxLineBytes))
            bytes.append(0x0A)
            self.state.withLock { state in
                Self.writeAll(state.fd, bytes)
                state.written += bytes.count
            }
            if self.echoToStandardError {
                Self.writeAll(2, bytes)
            }
        }
    }

    /// Writes one line of subprocess output (without its `\n`).
    func output(_ line: [UInt8], truncated: Bool) {
        var bytes = line
        if truncated {
            bytes.append(contentsOf: Self.truncationMarker)
        }
        bytes.append(0x0A)
        let notice: [UInt8]? = self.state.withLock { state in
            if state.dropping {
                return nil
            }
            if state.written + bytes.count > self.maxTotalBytes {
                state.dropping = true
                let notice = Array(
                    (Self.timestamp()
                        + " koper-builder: the live log reached \(self.maxTotalBytes) bytes; further build output is dropped\n")
                        .utf8
                )
                Self.writeAll(state.fd, notice)
                state.written += notice.count
                return notice
            }
            Self.writeAll(state.fd, bytes)
            state.written += bytes.count
            return nil
        }
        if let notice, self.echoToStandardError {
            Self.writeAll(2, notice)
        }
    }

    /// Closes the file; later writes are ignored.
    func close() {
        self.state.withLock { state in
            if state.fd >= 0 {
                _ = Glibc.close(state.fd)
                state.fd = -1
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, UTC.
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes all bytes, retrying on EINTR and short writes; gives up silently on other errors (a full disk
    /// must not kill the build's bookkeeping).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        guard fd >= 0 else {
            return
        }
        _ = try? FileDescriptor(rawValue: fd).writeAll(bytes)
    }
}
