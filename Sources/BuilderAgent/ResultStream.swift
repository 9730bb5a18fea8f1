import Glibc
import SystemPackage

/// Receives the files a sandboxed build hands out on its standard output, in a small framed format, and
/// writes them into a staging directory on the host.
///
/// The sandbox gets no writable host directory at all: its only ways out are the log pipe (stderr) and this
/// stream (stdout), and both are bounded here, so a build cannot fill the host's disk. The format (written by
/// ``SandboxScripts/emitResults``):
///
///     KOPER-STARTED\n                          first, once the sandbox runs our script
///     KOPER-FILE <size> <name>\n<size bytes>   once per file
///     KOPER-END\n                              after the last file
///
/// Anything else makes the stream invalid (the build then ends with status 2); the rest is read and discarded.
final class ResultStreamReceiver: PipeConsumer, @unchecked Sendable {
    // Invariant: every stored property is touched only by the one PipeReader thread while it runs; the
    // owner reads `result` after `PipeReader.stop` returned (which orders it after the thread's last write).
    struct Result: Sendable, Equatable {
        var started = false
        var ended = false
        var files: [String] = []
        var error: String?
    }

    let directory: String
    let maxTotalBytes: Int
    let maxFiles: Int
    private(set) var result = Result()

    private enum Phase {
        case header
        case body(fd: Int32, remaining: Int)
        case done
        case failed
    }

    private var phase = Phase.header
    private var headerBuffer: [UInt8] = []
    private var totalBytes = 0

    init(directory: String, maxTotalBytes: Int, maxFiles: Int = 10_000) {
        self.directory = directory
        self.maxTotalBytes = maxTotalBytes
        self.maxFiles = maxFiles
    }

    func consume(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count {
            switch self.phase {
            case .done, .failed:
                if case .done = self.phase {
                    self.fail("data after KOPER-END")
                }
                return
            case .header:
                let byte = bytes[index]
                index += 1
                if byte == 0x0A {
                    let line = String(decoding: self.headerBuffer, as: UTF8.self)
                    self.headerBuffer.removeAll(keepingCapacity: true)
                    self.handleHeader(line)
                } else {
                    self.headerBuffer.append(byte)
                    if self.headerBuffer.count > 1024 {
                        self.fail("header line too long")
                        return
                    }
                }
            case .body(let fd, let remaining):
                let take = min(remaining, bytes.count - index)
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)])
                index += take
                if !Self.writeAll(fd, chunk) {
                    _ = close(fd)
                    self.fail("cannot write into \(self.directory): \(String(cString: strerror(errno)))")
                    return
                }
                if remaining - take == 0 {
                    _ = close(fd)
                    self.phase = .header
                } else {
                    self.phase = .body(fd: fd, remaining: remaining - take)
                }
            }
        }
    }

    func finish() {
        switch self.phase {
        case .body(let fd, _):
            _ = close(fd)
            self.fail("stream ended inside a file")
        case .header:
            if !self.headerBuffer.isEmpty {
                self.fail("stream ended inside a header line")
            }
        case .done, .failed:
            break
        }
    }

    private func handleHeader(_ line: String) {
        if line == "KOPER-STARTED" {
            guard !self.result.started else {
                return self.fail("KOPER-STARTED twice")
            }
            self.result.started = true
            return
        }
        guard self.result.started else {
            return self.fail("stream does not start with KOPER-STARTED")
        }
        if line == "KOPER-END" {
            self.result.ended = true
            self.phase = .done
            return
        }
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "KOPER-FILE", let size = Int(parts[1]), size >= 0 else {
            return self.fail("unexpected line in the result stream")
        }
        let name = String(parts[2])
        guard Self.isSafeFileName(name) else {
            return self.fail("unsafe file name in the result stream")
        }
        guard self.result.files.count < self.maxFiles else {
            return self.fail("more than \(self.maxFiles) result files")
        }
        guard size <= self.maxTotalBytes - self.totalBytes else {
            return self.fail("the build's results exceed \(self.maxTotalBytes) bytes")
        }
        self.totalBytes += size
        let path = self.directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            return self.fail("cannot create \(name) in the staging directory: \(String(cString: strerror(errno)))")
        }
        self.result.files.append(name)
        if size == 0 {
            _ = close(fd)
        } else {
            self.phase = .body(fd: fd, remaining: size)
        }
    }

    private func fail(_ message: String) {
        if self.result.error == nil {
            self.result.error = message
        }
        self.phase = .failed
    }

    /// A plain file name: 1...255 bytes, printable ASCII, no `/`, not starting with `.`.
    static func isSafeFileName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 255, bytes[0] != UInt8(ascii: ".") else {
            return false
        }
        return bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "\\") }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        (try? FileDescriptor(rawValue: fd).writeAll(bytes)) != nil
    }
}
