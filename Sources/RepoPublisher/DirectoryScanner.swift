internal import Dispatch
internal import Glibc

/// What `stat` says about a package file; equal keys mean "unchanged" for the cheap check. The content digest
/// stays authoritative: a key that changed always leads to a re-hash, and files modified shortly before they
/// were hashed are re-hashed once more (see `IndexEntry.racy`).
struct FileKey: Hashable, Sendable {
    var size: Int64
    var mtimeSeconds: Int64
    var mtimeNanoseconds: Int64
    var ctimeSeconds: Int64
    var ctimeNanoseconds: Int64
    var inode: UInt64
    var device: UInt64

    init(size: Int64, mtimeSeconds: Int64, mtimeNanoseconds: Int64, ctimeSeconds: Int64, ctimeNanoseconds: Int64,
         inode: UInt64, device: UInt64) {
        self.size = size
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
        self.ctimeSeconds = ctimeSeconds
        self.ctimeNanoseconds = ctimeNanoseconds
        self.inode = inode
        self.device = device
    }

    init(_ info: stat) {
        self.size = Int64(info.st_size)
        self.mtimeSeconds = Int64(info.st_mtim.tv_sec)
        self.mtimeNanoseconds = Int64(info.st_mtim.tv_nsec)
        self.ctimeSeconds = Int64(info.st_ctim.tv_sec)
        self.ctimeNanoseconds = Int64(info.st_ctim.tv_nsec)
        self.inode = UInt64(info.st_ino)
        self.device = UInt64(info.st_dev)
    }
}

/// One `.rpm` file found under the repository root.
struct ScannedFile: Sendable {
    /// Path relative to the root, `/`-separated, raw bytes.
    var href: [UInt8]
    var key: FileKey
}

/// Walks a repository directory the way createrepo_c 0.17.3 does (`fill_pool`): recursively, following
/// symbolic links to directories and files (`g_file_test` uses `stat`), taking regular files whose name ends
/// in `.rpm`. A directory reached twice (a symlink loop) is walked once.
///
/// Two steps, because `stat` dominates (a path lookup per file; ~2.5 µs each on our VMs): `walk` reads the
/// directories (using `d_type`, so only symbolic links and unknown types are `stat`ed there) and collects the
/// candidate paths; `statCandidates` then `stat`s them relative to the root on several threads.
enum DirectoryScanner {
    struct Result {
        var files: [ScannedFile]
        /// Directories that could not be opened (createrepo_c warns and goes on).
        var unreadable: [String]
    }

    /// Candidate `.rpm` paths relative to the root, each NUL-terminated, in one buffer.
    struct Candidates {
        var bytes: [UInt8] = []
        /// Start of each path in `bytes`; its length runs up to (not including) the NUL.
        var starts: [Int] = []
        var lengths: [Int] = []
        /// Candidates already `stat`ed during the walk (symbolic links), by index.
        var known: [Int: stat] = [:]
        var unreadable: [String] = []

        mutating func append(_ prefix: [UInt8], _ name: UnsafeBufferPointer<UInt8>) {
            self.starts.append(self.bytes.count)
            self.lengths.append(prefix.count + name.count)
            self.bytes.append(contentsOf: prefix)
            self.bytes.append(contentsOf: name)
            self.bytes.append(0)
        }
    }

    /// Reads the directory tree below `rootDescriptor` and returns the candidate package paths.
    static func walk(rootDescriptor: Int32, rootPath: String) throws(RepoPublisherError) -> Candidates {
        var candidates = Candidates()
        candidates.bytes.reserveCapacity(1 << 20)
        let rootInfo = try Sys.fstat(rootDescriptor, path: rootPath)
        var visited: Set<[UInt64]> = [[UInt64(rootInfo.st_dev), UInt64(rootInfo.st_ino)]]
        let first = try Sys.openAt(rootDescriptor, [0x2E], O_RDONLY | O_DIRECTORY)
        var stack: [(descriptor: Int32, prefix: [UInt8])] = [(first, [])]
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        while let (descriptor, prefix) = stack.popLast() {
            let displayPath = rootPath + "/" + String(decoding: prefix, as: UTF8.self)
            guard let stream = fdopendir(descriptor) else {
                let error = errno
                Sys.close(descriptor)
                throw RepoPublisherError.system("fdopendir", displayPath, errno: error)
            }
            defer { closedir(stream) }
            let directory = dirfd(stream)
            while true {
                errno = 0
                guard let entry = readdir(stream) else {
                    if errno != 0 { throw RepoPublisherError.system("readdir", displayPath) }
                    break
                }
                let type = Int32(entry.pointee.d_type)
                let namePointer = (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: UInt8.self)
                let name = UnsafeBufferPointer(start: namePointer, count: strlen(UnsafeRawPointer(namePointer).assumingMemoryBound(to: CChar.self)))
                if name.count <= 2 && name.allSatisfy({ $0 == 0x2E }) { continue }
                let isRPMName = name.count > 4 && name[name.count - 4] == 0x2E && name[name.count - 3] == 0x72
                    && name[name.count - 2] == 0x70 && name[name.count - 1] == 0x6D
                if type == Int32(DT_REG) {
                    if isRPMName { candidates.append(prefix, name) }
                    continue
                }
                guard type == Int32(DT_DIR) || type == Int32(DT_LNK) || type == Int32(DT_UNKNOWN) else { continue }
                var info = stat()
                let found = namePointer.withMemoryRebound(to: CChar.self, capacity: name.count + 1) { pointer in
                    var result: Int32
                    repeat { result = fstatat(directory, pointer, &info, 0) } while result != 0 && errno == EINTR
                    return result == 0
                }
                guard found else { continue }  // vanished or a dangling link
                let mode = info.st_mode & S_IFMT
                if mode == S_IFDIR {
                    guard visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else { continue }
                    let childPrefix = prefix + Array(name) + [0x2F]
                    do {
                        let child = try Sys.openAt(directory, Array(name), O_RDONLY | O_DIRECTORY)
                        stack.append((child, childPrefix))
                    } catch {
                        candidates.unreadable.append(rootPath + "/" + String(decoding: childPrefix, as: UTF8.self))
                    }
                } else if mode == S_IFREG && isRPMName {
                    candidates.known[candidates.starts.count] = info
                    candidates.append(prefix, name)
                }
            }
        }
        return candidates
    }

    /// `fstatat` of every candidate relative to the root (split over `workers` threads when there are many);
    /// drops candidates that vanished or are not regular files.
    static func statCandidates(_ candidates: Candidates, rootDescriptor: Int32, workers: Int) -> Result {
        let count = candidates.starts.count
        let parts = count >= 256 ? max(1, workers) : 1
        let results = UnsafeResults<[ScannedFile]>(count: parts)
        let shared = UnsafeSendable(candidates)
        let body = { @Sendable (part: Int) in
            let candidates = shared.value
            let lower = count * part / parts
            let upper = count * (part + 1) / parts
            var files: [ScannedFile] = []
            files.reserveCapacity(upper - lower)
            candidates.bytes.withUnsafeBufferPointer { buffer in
                for index in lower..<upper {
                    let start = candidates.starts[index]
                    let length = candidates.lengths[index]
                    var info = stat()
                    if let known = candidates.known[index] {
                        info = known
                    } else {
                        let pointer = UnsafeRawPointer(buffer.baseAddress! + start).assumingMemoryBound(to: CChar.self)
                        var result: Int32
                        repeat { result = fstatat(rootDescriptor, pointer, &info, 0) } while result != 0 && errno == EINTR
                        guard result == 0 else { continue }
                    }
                    guard info.st_mode & S_IFMT == S_IFREG else { continue }
                    files.append(
                        ScannedFile(href: Array(buffer[start..<(start + length)]), key: FileKey(info))
                    )
                }
            }
            results.set(part, files)
        }
        if parts == 1 {
            body(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: parts, execute: body)
        }
        var files: [ScannedFile] = []
        files.reserveCapacity(count)
        for part in 0..<parts {
            files.append(contentsOf: results.take(part))
        }
        return Result(files: files, unreadable: candidates.unreadable)
    }
}
