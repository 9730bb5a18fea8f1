internal import AtomicFile
internal import Glibc

/// A failed system call: the call, the errno and the path it was about. The description never contains
/// file contents.
public struct RepoPublisherError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case systemCall
            case notADirectory
            case corruptIndex
            case internalError
            case invalidKey
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// A system call failed; `errno` and `call` say which.
        public static let systemCall = Code(.systemCall)
        /// The repository path is not a directory.
        public static let notADirectory = Code(.notADirectory)
        /// The index file is unreadable or inconsistent (it is then rebuilt; surfaced only by `RepoIndex`).
        public static let corruptIndex = Code(.corruptIndex)
        /// A library below failed for a reason that is not the input's fault (zlib, libcrypto).
        public static let internalError = Code(.internalError)
        /// The public key given to the verifier is unreadable or unusable (not an RSA OpenPGP v4 key, too small).
        public static let invalidKey = Code(.invalidKey)

        public var description: String {
            switch self.value {
            case .systemCall: return "systemCall"
            case .notADirectory: return "notADirectory"
            case .corruptIndex: return "corruptIndex"
            case .internalError: return "internalError"
            case .invalidKey: return "invalidKey"
            }
        }
    }

    public let code: Code
    /// The failing C function (`open`, `rename`, …), if any.
    public let call: String?
    /// The errno value, if any.
    public let errno: Int32?
    /// The path concerned, if any.
    public let path: String?
    public let detail: String

    public init(code: Code, call: String? = nil, errno: Int32? = nil, path: String? = nil, detail: String = "") {
        self.code = code
        self.call = call
        self.errno = errno
        self.path = path
        self.detail = detail
    }

    public var description: String {
        var text = "RepoPublisherError(\(self.code))"
        if let call { text += " \(call)" }
        if let path { text += " \(path)" }
        if let errno { text += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        if !self.detail.isEmpty { text += ": \(self.detail)" }
        return text
    }

    static func system(_ call: String, _ path: String?, errno value: Int32 = Glibc.errno) -> RepoPublisherError {
        RepoPublisherError(code: .systemCall, call: call, errno: value, path: path)
    }
}

/// The one checked path for the system calls this module makes: retry on EINTR, map -1 to a typed error.
enum Sys {
    /// Runs `body` until it does not fail with EINTR (``retryingOnInterrupt(_:)``); returns its result or throws
    /// with `call` and `path`.
    @inline(__always)
    static func retrying<T: SignedInteger>(
        _ call: String,
        _ path: String?,
        _ body: () -> T
    ) throws(RepoPublisherError) -> T {
        let result = retryingOnInterrupt(body)
        if result >= 0 { return result }
        throw RepoPublisherError.system(call, path, errno: errno)
    }

    /// Runs `body` (which calls a standard-library API whose `rethrows` loses the error type) and restores
    /// the typed error.
    @inline(__always)
    static func typed<T>(_ body: () throws -> T) throws(RepoPublisherError) -> T {
        do {
            return try body()
        } catch let error as RepoPublisherError {
            throw error
        } catch {
            throw RepoPublisherError(code: .internalError, detail: "\(error)")
        }
    }

    /// `open` with `O_CLOEXEC` always added. The corresponding C function is `open`.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(RepoPublisherError) -> Int32 {
        try self.retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    static func close(_ descriptor: Int32) {
        // close is never retried on Linux: the descriptor is released even when it reports EINTR.
        _ = Glibc.close(descriptor)
    }

    static func fstat(_ descriptor: Int32, path: String) throws(RepoPublisherError) -> stat {
        var info = stat()
        _ = try self.retrying("fstat", path) { Glibc.fstat(descriptor, &info) }
        return info
    }

    /// `stat` following symbolic links; nil when the path does not exist.
    static func statIfExists(_ path: String) throws(RepoPublisherError) -> stat? {
        var info = stat()
        if retryingOnInterrupt({ fstatat(AT_FDCWD, path, &info, 0) }) == 0 { return info }
        let error = errno
        if error == ENOENT || error == ENOTDIR { return nil }
        throw RepoPublisherError.system("stat", path, errno: error)
    }

    /// Reads up to `count` bytes at `offset` (short only at end of file).
    static func pread(
        _ descriptor: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int,
        path: String
    )
        throws(RepoPublisherError) -> Int
    {
        var done = 0
        while done < buffer.count {
            let n = try self.retrying("pread", path) {
                Glibc.pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads until `buffer` is full or end of file.
    static func read(
        _ descriptor: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        path: String
    )
        throws(RepoPublisherError) -> Int
    {
        var done = 0
        while done < buffer.count {
            let n = try self.retrying("read", path) {
                Glibc.read(descriptor, buffer.baseAddress! + done, buffer.count - done)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `bytes`.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(RepoPublisherError)
    {
        var done = 0
        while done < bytes.count {
            let n = try self.retrying("write", path) {
                Glibc.write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            }
            done += n
        }
    }

    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8], path: String) throws(RepoPublisherError) {
        try self.typed {
            try bytes.withUnsafeBytes { (buffer) throws in
                try self.writeAll(descriptor, buffer, path: path)
            }
        }
    }

    /// Writes every segment, in order, with `writev` in batches of at most `IOV_MAX` segments.
    static func writeSegments(
        _ descriptor: Int32,
        _ segments: [UnsafeRawBufferPointer],
        path: String
    )
        throws(RepoPublisherError)
    {
        var vectors = segments.filter { $0.count > 0 }.map {
            iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count)
        }
        var start = 0
        while start < vectors.count {
            let batch = min(vectors.count - start, 1024)
            let written = try self.typed {
                try vectors.withUnsafeMutableBufferPointer { (buffer) throws -> Int in
                    try self.retrying("writev", path) {
                        Glibc.writev(descriptor, buffer.baseAddress! + start, Int32(batch))
                    }
                }
            }
            // Advance past fully written vectors; trim a partially written one.
            var remaining = written
            while remaining > 0 {
                let length = vectors[start].iov_len
                if remaining >= length {
                    remaining -= length
                    start += 1
                } else {
                    vectors[start].iov_base = vectors[start].iov_base.map { $0 + remaining }
                    vectors[start].iov_len = length - remaining
                    remaining = 0
                }
            }
        }
    }

    static func fsync(_ descriptor: Int32, path: String) throws(RepoPublisherError) {
        _ = try self.retrying("fsync", path) { Glibc.fsync(descriptor) }
    }

    static func rename(_ from: String, _ to: String) throws(RepoPublisherError) {
        _ = try self.retrying("rename", to) { Glibc.rename(from, to) }
    }

    /// `unlink`; a missing file is not an error.
    static func unlinkIfExists(_ path: String) throws(RepoPublisherError) {
        if retryingOnInterrupt({ Glibc.unlink(path) }) == 0 { return }
        let error = errno
        if error == ENOENT { return }
        throw RepoPublisherError.system("unlink", path, errno: error)
    }

    /// `mkdir`; an existing directory is not an error.
    static func makeDirectory(_ path: String) throws(RepoPublisherError) {
        if retryingOnInterrupt({ Glibc.mkdir(path, 0o755) }) == 0 { return }
        let error = errno
        if error == EEXIST { return }
        throw RepoPublisherError.system("mkdir", path, errno: error)
    }

    /// Takes an exclusive `flock` on `descriptor`, waiting for it.
    static func lockExclusive(_ descriptor: Int32, path: String) throws(RepoPublisherError) {
        _ = try self.retrying("flock", path) { flock(descriptor, LOCK_EX) }
    }

    /// Names in a directory (without `.` and `..`) as raw bytes, with their `d_type`. Lists and closes
    /// `descriptor`.
    static func listDirectory(
        descriptor: Int32,
        path: String
    ) throws(RepoPublisherError)
        -> [(name: [UInt8], type: UInt8)]
    {
        guard let stream = fdopendir(descriptor) else {
            let error = errno
            self.close(descriptor)
            throw RepoPublisherError.system("fdopendir", path, errno: error)
        }
        defer { closedir(stream) }
        var names: [(name: [UInt8], type: UInt8)] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw RepoPublisherError.system("readdir", path) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                let length = bytes.firstIndex(of: 0) ?? bytes.count
                return Array(bytes[0..<length])
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append((name, entry.pointee.d_type))
        }
        return names
    }

    /// Names in the directory at `path`.
    static func listDirectory(_ path: String) throws(RepoPublisherError) -> [(name: [UInt8], type: UInt8)] {
        let descriptor = try self.open(path, O_RDONLY | O_DIRECTORY)
        return try self.listDirectory(descriptor: descriptor, path: path)
    }

    /// `openat` for a raw-byte relative name, `O_CLOEXEC` always added.
    static func openAt(
        _ directory: Int32,
        _ name: [UInt8],
        _ flags: Int32,
        mode: mode_t = 0o644
    )
        throws(RepoPublisherError) -> Int32
    {
        let terminated = name + [0]
        return try self.typed {
            try terminated.withUnsafeBufferPointer { (buffer) throws -> Int32 in
                let pointer = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                return try self.retrying("openat", String(decoding: name, as: UTF8.self)) {
                    Glibc.openat(directory, pointer, flags | O_CLOEXEC, mode)
                }
            }
        }
    }

    /// `fstatat` (following symbolic links) for a raw-byte relative name; nil when it vanished.
    static func statAt(_ directory: Int32, _ name: [UInt8]) throws(RepoPublisherError) -> stat? {
        var info = stat()
        let terminated = name + [0]
        return try self.typed {
            try terminated.withUnsafeBufferPointer { (buffer) throws -> stat? in
                let pointer = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
                if retryingOnInterrupt({ Glibc.fstatat(directory, pointer, &info, 0) }) == 0 { return info }
                let error = errno
                if error == ENOENT || error == ENOTDIR || error == ELOOP { return nil }
                throw RepoPublisherError.system("fstatat", String(decoding: name, as: UTF8.self), errno: error)
            }
        }
    }

    /// Seconds since the epoch (`CLOCK_REALTIME`).
    static func now() -> (seconds: Int64, nanoseconds: Int64) {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return (Int64(time.tv_sec), Int64(time.tv_nsec))
    }

    /// Monotonic nanoseconds, for durations.
    static func monotonicNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

/// A read-only shared mapping of a file; unmapped in `deinit`. Owned by one engine, used from its queue.
final class MappedFile {
    let base: UnsafeRawPointer?
    let count: Int

    /// Maps the first `length` bytes of `path` (nothing when `length` is 0).
    /// The corresponding C function is `mmap` (`PROT_READ`, `MAP_SHARED`).
    init(path: String, length: Int) throws(RepoPublisherError) {
        guard length > 0 else {
            self.base = nil
            self.count = 0
            return
        }
        let descriptor = try Sys.open(path, O_RDONLY)
        defer { Sys.close(descriptor) }
        let info = try Sys.fstat(descriptor, path: path)
        guard Int(info.st_size) >= length else {
            throw RepoPublisherError(code: .corruptIndex, path: path, detail: "blob file shorter than the index says")
        }
        let address = mmap(nil, length, PROT_READ, MAP_SHARED, descriptor, 0)
        guard let address, address != MAP_FAILED else {
            throw RepoPublisherError.system("mmap", path)
        }
        self.base = UnsafeRawPointer(address)
        self.count = length
    }

    deinit {
        if let base = self.base {
            munmap(UnsafeMutableRawPointer(mutating: base), self.count)
        }
    }

    /// The bytes `offset ..< offset + length`; the caller has checked the range against `count`.
    func bytes(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer {
        precondition(offset >= 0 && length >= 0 && offset + length <= self.count, "range outside the mapping")
        guard let base = self.base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: length)
    }
}
