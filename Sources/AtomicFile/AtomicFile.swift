#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// A failed atomic write: which step, on which path, and errno. Never carries the content.
public struct AtomicFileError: Error, Sendable, CustomStringConvertible {
    public let step: String
    public let path: String
    public let errno: Int32

    public var description: String {
        "cannot write \(self.path): \(self.step) failed (\(String(cString: strerror(self.errno))))"
    }
}

/// Replaces a whole file so that a reader (or a crash) sees either the old content or the new one, never a part:
/// a temporary file in the same directory (`PATH.tmp-PID-RANDOM`, created exclusively, not following symlinks), every
/// byte written (EINTR retried), fsync, rename over `path`, fsync of the directory. On failure the temporary file is
/// removed and `path` is untouched.
///
/// The one implementation for the Backend's job records and logs, Keygen's key index and the builder's results;
/// RepoPublisher keeps its own (its temporary names carry a prefix its stale-file sweeper knows, and durability is a
/// configuration there).
public enum AtomicFile {
    public static func write(
        _ bytes: [UInt8],
        to path: String,
        mode: UInt32 = 0o644,
        syncDirectory: Bool = true
    ) throws(AtomicFileError) {
        let temporary = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard fd >= 0 else { throw AtomicFileError(step: "open", path: path, errno: errno) }
        var failure: AtomicFileError?
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = retryingOnInterrupt { Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
                if n < 0 {
                    failure = AtomicFileError(step: "write", path: path, errno: errno)
                    return
                }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = AtomicFileError(step: "fsync", path: path, errno: errno) }
        close(fd)
        if failure == nil, rename(temporary, path) != 0 {
            failure = AtomicFileError(step: "rename", path: path, errno: errno)
        }
        if let failure {
            unlink(temporary)
            throw failure
        }
        guard syncDirectory else { return }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
