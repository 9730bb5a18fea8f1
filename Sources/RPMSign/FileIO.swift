import AtomicFile

#if canImport(Glibc)
import Glibc
#endif

/// The identity of a file at one moment: if any of these change, the file was replaced or modified.
struct FileIdentity: Sendable, Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int
    var mtimeSeconds: Int
    var mtimeNanoseconds: Int
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32

    init(_ st: stat) {
        self.device = UInt64(st.st_dev)
        self.inode = UInt64(st.st_ino)
        self.size = Int(st.st_size)
        self.mtimeSeconds = Int(st.st_mtim.tv_sec)
        self.mtimeNanoseconds = Int(st.st_mtim.tv_nsec)
        self.mode = UInt32(st.st_mode)
        self.uid = UInt32(st.st_uid)
        self.gid = UInt32(st.st_gid)
    }

    var isRegularFile: Bool { self.mode & UInt32(S_IFMT) == UInt32(S_IFREG) }
}

/// Thin checked wrappers over the system calls the file signer uses: EINTR is retried, failures become
/// `RPMSignError(.io)` with the call, the path and errno.
enum FileIO {
    static func failure(_ call: String, _ path: String, errno code: Int32 = errno) -> RPMSignError {
        RPMSignError(code: .io, detail: "\(call) \(path)", errno: code)
    }

    /// Opens an existing file read-only; refuses symlinks (`O_NOFOLLOW`). The corresponding C function is `open`.
    static func openForReading(_ path: String) throws(RPMSignError) -> Int32 {
        let fd = retryingOnInterrupt { open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        if fd >= 0 { return fd }
        throw self.failure("open", path)
    }

    /// Creates a new file that must not exist yet (`O_EXCL`), mode 0600 until `fchmod`.
    static func createExclusive(_ path: String) throws(RPMSignError) -> Int32 {
        let fd = retryingOnInterrupt { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        if fd >= 0 { return fd }
        throw self.failure("open(O_CREAT|O_EXCL)", path)
    }

    static func fileStatus(_ fd: Int32, _ path: String) throws(RPMSignError) -> FileIdentity {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw self.failure("fstat", path) }
        return FileIdentity(st)
    }

    /// `lstat`: the identity of whatever `path` names now (nil if it does not exist).
    static func pathStatus(_ path: String) throws(RPMSignError) -> FileIdentity? {
        var st = stat()
        if lstat(path, &st) == 0 { return FileIdentity(st) }
        if errno == ENOENT { return nil }
        throw self.failure("lstat", path)
    }

    /// Reads exactly `count` bytes at `offset`; a short file throws `.fileChanged`.
    static func read(_ fd: Int32, count: Int, at offset: Int, path: String) throws(RPMSignError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = retryingOnInterrupt {
                buffer.withUnsafeMutableBytes { raw in
                    pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                }
            }
            if n > 0 {
                done += n
            } else if n == 0 {
                throw RPMSignError(code: .fileChanged, detail: "\(path) ended early (it shrank while being read)")
            } else {
                throw self.failure("pread", path)
            }
        }
        return buffer
    }

    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(RPMSignError) {
        var done = 0
        while done < bytes.count {
            let n = retryingOnInterrupt { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
            if n > 0 {
                done += n
            } else {
                throw self.failure("write", path)
            }
        }
    }

    static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws(RPMSignError) {
        var failure: RPMSignError? = nil
        bytes.withUnsafeBytes { raw in
            do throws(RPMSignError) { try self.write(fd, raw, path: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    static func fsync(_ fd: Int32, path: String) throws(RPMSignError) {
        if retryingOnInterrupt({ Glibc.fsync(fd) }) != 0 { throw self.failure("fsync", path) }
    }

    static func close(_ fd: Int32) {
        // Linux closes the descriptor even when close() reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    /// Best-effort `fsync` of a directory so a rename in it is durable.
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = Glibc.fsync(fd)
        _ = Glibc.close(fd)
    }
}
