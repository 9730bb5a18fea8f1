internal import AtomicFile
internal import Dispatch
internal import Glibc
internal import Synchronization

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

    init(
        size: Int64,
        mtimeSeconds: Int64,
        mtimeNanoseconds: Int64,
        ctimeSeconds: Int64,
        ctimeNanoseconds: Int64,
        inode: UInt64,
        device: UInt64
    ) {
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
    /// `HrefTable.hash(href)`, computed by the `stat` workers.
    var hash: UInt64
}

/// Walks a repository directory the way createrepo_c 0.17.3 does (`fill_pool`): recursively, following
/// symbolic links to directories and files (`g_file_test` uses `stat`), taking regular files whose name ends
/// in `.rpm`. A directory reached twice (a symlink loop) is walked once. Unlike createrepo_c, `repodata/`
/// and `.koper-repodata/` at the root are not searched (they change at every publish and hold no packages).
///
/// `stat` dominates (a path lookup per file; ~2.5 µs each on our VMs), so the walk hands out candidate paths
/// in batches while it reads directories (using `d_type`: only symbolic links and unknown types are
/// `stat`ed during the walk), and other threads `stat` the batches meanwhile.
enum DirectoryScanner {
    struct Result {
        var files: [ScannedFile]
        /// Directories that could not be opened (createrepo_c warns and goes on).
        var unreadable: [String]
    }

    /// Candidate `.rpm` paths relative to the root, each NUL-terminated, in one buffer.
    struct Batch: Sendable {
        var bytes: [UInt8] = []
        /// Start of each path in `bytes`; its length runs up to (not including) the NUL.
        var starts: [Int] = []
        var lengths: [Int] = []
        /// Candidates already `stat`ed during the walk (symbolic links), by index in the batch.
        var known: [Int: stat] = [:]

        var count: Int { self.starts.count }

        mutating func append(_ prefix: [UInt8], _ name: UnsafeBufferPointer<UInt8>) {
            self.starts.append(self.bytes.count)
            self.lengths.append(prefix.count + name.count)
            self.bytes.append(contentsOf: prefix)
            self.bytes.append(contentsOf: name)
            self.bytes.append(0)
        }
    }

    static let batchSize = 512

    /// Batches from the walk to the `stat` workers, and their results.
    final class Pipeline: Sendable {
        private struct State {
            var batches: [Batch] = []
            var taken = 0
            var done = false
            var results: [Int: [ScannedFile]] = [:]
            var unreadable: [String] = []
        }

        private let state = Mutex(State())
        private let available = DispatchSemaphore(value: 0)
        let rootDescriptor: Int32

        init(rootDescriptor: Int32) {
            self.rootDescriptor = rootDescriptor
        }

        func push(_ batch: Batch) {
            self.state.withLock { $0.batches.append(batch) }
            self.available.signal()
        }

        /// No more batches; wakes every waiting worker (at most `workers`).
        func finish(unreadable: [String], workers: Int) {
            self.state.withLock {
                $0.done = true
                $0.unreadable = unreadable
            }
            for _ in 0..<workers { self.available.signal() }
        }

        /// `stat`s batches until the walk has finished and none is left.
        func work() {
            while true {
                let next = self.state.withLock { state -> (Int, Batch)? in
                    guard state.taken < state.batches.count else { return nil }
                    state.taken += 1
                    return (state.taken - 1, state.batches[state.taken - 1])
                }
                if let (index, batch) = next {
                    let files = DirectoryScanner.statBatch(batch, rootDescriptor: self.rootDescriptor)
                    self.state.withLock { $0.results[index] = files }
                    continue
                }
                if self.state.withLock({ $0.done && $0.taken >= $0.batches.count }) { return }
                self.available.wait()
            }
        }

        /// The scan, once every worker has returned.
        func result() -> Result {
            self.state.withLock { state in
                var files: [ScannedFile] = []
                files.reserveCapacity(state.batches.reduce(0) { $0 + $1.count })
                for index in 0..<state.batches.count {
                    files.append(contentsOf: state.results[index] ?? [])
                }
                return Result(files: files, unreadable: state.unreadable)
            }
        }
    }

    /// Reads the directory tree below `rootDescriptor`, pushing candidate package paths to `pipeline`.
    /// Always calls `pipeline.finish`, also when it throws.
    ///
    /// A directory whose device, inode, mtime and ctime equal those in `cache` (and that was not modified
    /// within the racy window before it was listed) is not read again: creating, removing or renaming an
    /// entry changes its mtime and ctime. The files themselves are still `stat`ed. Returns the listings for
    /// the next walk.
    static func walk(
        rootDescriptor: Int32,
        rootPath: String,
        cache: DirectoryCache,
        pipeline: Pipeline,
        workers: Int
    ) throws(RepoPublisherError) -> (listings: DirectoryCache, reread: Int) {
        var unreadable: [String] = []
        var reread = 0
        defer { pipeline.finish(unreadable: unreadable, workers: workers) }
        var batch = Batch()
        batch.bytes.reserveCapacity(Self.batchSize * 64)
        var listings = DirectoryCache()
        let now = Sys.now()
        let rootInfo = try Sys.fstat(rootDescriptor, path: rootPath)
        var visited: Set<[UInt64]> = [[UInt64(rootInfo.st_dev), UInt64(rootInfo.st_ino)]]
        var stack: [(prefix: [UInt8], info: stat)] = [([], rootInfo)]
        while let (prefix, info) = stack.popLast() {
            let identity = DirectoryCache.Identity(info)
            let entries: DirectoryCache.Entries
            if let cached = cache.directories[HrefKey(prefix)], cached.identity == identity, !cached.racy {
                entries = cached.entries
            } else {
                do {
                    entries = try Self.list(rootDescriptor: rootDescriptor, prefix: prefix, rootPath: rootPath)
                    reread += 1
                } catch {
                    unreadable.append(rootPath + "/" + String(decoding: prefix, as: UTF8.self))
                    continue
                }
            }
            let racy = RepoEngine.isRacy(
                FileKey(
                    size: 0,
                    mtimeSeconds: identity.mtimeSeconds,
                    mtimeNanoseconds: identity.mtimeNanoseconds,
                    ctimeSeconds: identity.ctimeSeconds,
                    ctimeNanoseconds: identity.ctimeNanoseconds,
                    inode: identity.inode,
                    device: identity.device
                ),
                hashTime: now
            )
            listings.directories[HrefKey(prefix)] = DirectoryCache.Listing(
                identity: identity,
                racy: racy,
                entries: entries
            )
            var subdirectories: [[UInt8]] = []
            entries.names.withUnsafeBufferPointer { names in
                for index in 0..<entries.types.count {
                    let start = Int(entries.starts[index])
                    let end = index + 1 < entries.starts.count ? Int(entries.starts[index + 1]) : names.count
                    let name = UnsafeBufferPointer(rebasing: names[start..<end])
                    if entries.types[index] == UInt8(DT_REG) {
                        batch.append(prefix, name)
                        if batch.count >= Self.batchSize {
                            pipeline.push(batch)
                            batch = Batch()
                            batch.bytes.reserveCapacity(Self.batchSize * 64)
                        }
                    } else if !(prefix.isEmpty
                        && (name.elementsEqual(Self.repodataName) || name.elementsEqual(Self.indexName)))
                    {
                        // Our own directories are skipped (createrepo_c walks them, but they hold no packages).
                        subdirectories.append(Array(name))
                    }
                }
            }
            // Directories, symbolic links and unknown types: follow them as createrepo_c does.
            for name in subdirectories {
                let path = prefix + name
                guard let child = try Sys.statAt(rootDescriptor, path) else { continue }  // vanished, dangling
                let mode = child.st_mode & S_IFMT
                if mode == S_IFDIR {
                    guard visited.insert([UInt64(child.st_dev), UInt64(child.st_ino)]).inserted else { continue }
                    stack.append((path + [0x2F], child))
                } else if mode == S_IFREG && Self.isRPMName(name) {
                    batch.known[batch.count] = child
                    name.withUnsafeBufferPointer { batch.append(prefix, $0) }
                }
            }
        }
        if batch.count > 0 {
            pipeline.push(batch)
        }
        return (listings, reread)
    }

    static let repodataName: [UInt8] = Array("repodata".utf8)
    static let indexName: [UInt8] = Array(RepoEngine.indexDirectoryName.utf8)

    static func isRPMName(_ name: [UInt8]) -> Bool {
        name.count > 4 && name[name.count - 4] == 0x2E && name[name.count - 3] == 0x72
            && name[name.count - 2] == 0x70 && name[name.count - 1] == 0x6D
    }

    /// The entries of one directory that matter: `.rpm` regular files and everything that may be a
    /// directory or a link to a package (directories, symbolic links, unknown types).
    static func list(
        rootDescriptor: Int32,
        prefix: [UInt8],
        rootPath: String
    ) throws(RepoPublisherError)
        -> DirectoryCache.Entries
    {
        let descriptor = try Sys.openAt(rootDescriptor, prefix.isEmpty ? [0x2E] : prefix, O_RDONLY | O_DIRECTORY)
        let displayPath = rootPath + "/" + String(decoding: prefix, as: UTF8.self)
        guard let stream = fdopendir(descriptor) else {
            let error = errno
            Sys.close(descriptor)
            throw RepoPublisherError.system("fdopendir", displayPath, errno: error)
        }
        defer { closedir(stream) }
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        var entries = DirectoryCache.Entries()
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw RepoPublisherError.system("readdir", displayPath) }
                break
            }
            let type = entry.pointee.d_type
            let namePointer = (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: UInt8.self)
            let length = strlen(UnsafeRawPointer(namePointer).assumingMemoryBound(to: CChar.self))
            let name = UnsafeBufferPointer(start: namePointer, count: length)
            if name.count <= 2 && name.allSatisfy({ $0 == 0x2E }) { continue }
            switch Int32(type) {
            case Int32(DT_REG):
                let isRPMName =
                    name.count > 4 && name[name.count - 4] == 0x2E && name[name.count - 3] == 0x72
                    && name[name.count - 2] == 0x70 && name[name.count - 1] == 0x6D
                if isRPMName { entries.append(name, type: type) }
            case Int32(DT_DIR), Int32(DT_LNK), Int32(DT_UNKNOWN):
                entries.append(name, type: type)
            default:
                continue
            }
        }
        return entries
    }

    /// `fstatat` of every candidate in `batch` relative to the root; drops candidates that vanished or are
    /// not regular files.
    static func statBatch(_ batch: Batch, rootDescriptor: Int32) -> [ScannedFile] {
        var files: [ScannedFile] = []
        files.reserveCapacity(batch.count)
        batch.bytes.withUnsafeBufferPointer { buffer in
            for index in 0..<batch.count {
                let start = batch.starts[index]
                let length = batch.lengths[index]
                var info = stat()
                if let known = batch.known[index] {
                    info = known
                } else {
                    let pointer = UnsafeRawPointer(buffer.baseAddress! + start).assumingMemoryBound(to: CChar.self)
                    let result = retryingOnInterrupt { fstatat(rootDescriptor, pointer, &info, 0) }
                    guard result == 0 else { continue }
                }
                guard info.st_mode & S_IFMT == S_IFREG else { continue }
                let href = Array(buffer[start..<(start + length)])
                files.append(ScannedFile(href: href, key: FileKey(info), hash: HrefTable.hash(href)))
            }
        }
        return files
    }
}

/// The listings of the directories of one repository as the last walk saw them
/// (`DIR/.koper-repodata/directories`).
struct DirectoryCache: Sendable {
    struct Identity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
        var mtimeSeconds: Int64
        var mtimeNanoseconds: Int64
        var ctimeSeconds: Int64
        var ctimeNanoseconds: Int64

        init(
            device: UInt64,
            inode: UInt64,
            mtimeSeconds: Int64,
            mtimeNanoseconds: Int64,
            ctimeSeconds: Int64,
            ctimeNanoseconds: Int64
        ) {
            self.device = device
            self.inode = inode
            self.mtimeSeconds = mtimeSeconds
            self.mtimeNanoseconds = mtimeNanoseconds
            self.ctimeSeconds = ctimeSeconds
            self.ctimeNanoseconds = ctimeNanoseconds
        }

        init(_ info: stat) {
            self.device = UInt64(info.st_dev)
            self.inode = UInt64(info.st_ino)
            self.mtimeSeconds = Int64(info.st_mtim.tv_sec)
            self.mtimeNanoseconds = Int64(info.st_mtim.tv_nsec)
            self.ctimeSeconds = Int64(info.st_ctim.tv_sec)
            self.ctimeNanoseconds = Int64(info.st_ctim.tv_nsec)
        }
    }

    /// The names of one directory's relevant entries in one buffer (no allocation per name).
    struct Entries: Sendable {
        var names: [UInt8] = []
        /// Where each name starts in `names`; it ends where the next one starts.
        var starts: [UInt32] = []
        /// `d_type`: DT_REG (only `.rpm` names are kept), DT_DIR, DT_LNK or DT_UNKNOWN.
        var types: [UInt8] = []

        mutating func append(_ name: UnsafeBufferPointer<UInt8>, type: UInt8) {
            self.starts.append(UInt32(self.names.count))
            self.names.append(contentsOf: name)
            self.types.append(type)
        }
    }

    struct Listing: Sendable {
        var identity: Identity
        /// Modified within the racy window before it was listed: read it again next time.
        var racy: Bool
        var entries: Entries
    }

    /// By the directory's href prefix (`""` for the root, else `a/b/`).
    var directories: [HrefKey: Listing] = [:]

    static let magic: [UInt8] = Array("KOPRDIR1".utf8)

    func encoded() -> [UInt8] {
        var out = Self.magic
        func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        func blob(_ bytes: [UInt8]) {
            u64(UInt64(bytes.count))
            out.append(contentsOf: bytes)
        }
        u64(UInt64(self.directories.count))
        for (key, listing) in self.directories {
            blob(key.bytes)
            let identity = listing.identity
            for value in [
                identity.device, identity.inode, UInt64(bitPattern: identity.mtimeSeconds),
                UInt64(bitPattern: identity.mtimeNanoseconds), UInt64(bitPattern: identity.ctimeSeconds),
                UInt64(bitPattern: identity.ctimeNanoseconds),
            ] {
                u64(value)
            }
            out.append(listing.racy ? 1 : 0)
            blob(listing.entries.names)
            u64(UInt64(listing.entries.types.count))
            out.append(contentsOf: listing.entries.types)
            for start in listing.entries.starts {
                withUnsafeBytes(of: start.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// Decodes a cache file; an unreadable one gives an empty cache (every directory is read).
    static func decode(_ bytes: [UInt8]) -> DirectoryCache {
        var cache = DirectoryCache()
        guard bytes.count >= 16, Array(bytes[0..<8]) == Self.magic else { return cache }
        var reader = ByteReader(bytes: UnsafeRawBufferPointer(start: nil, count: 0), end: 0)
        let decoded = bytes.withUnsafeBytes { raw -> DirectoryCache? in
            reader = ByteReader(bytes: raw, end: raw.count)
            reader.position = 8
            do throws(RepoPublisherError) {
                var result = DirectoryCache()
                let count = Int(truncatingIfNeeded: try reader.u64())
                guard count >= 0, count <= bytes.count / 16 else { return nil }
                for _ in 0..<count {
                    let prefix = try reader.bytes(Int(truncatingIfNeeded: try reader.u64()))
                    let identity = Identity(
                        device: try reader.u64(),
                        inode: try reader.u64(),
                        mtimeSeconds: try reader.i64(),
                        mtimeNanoseconds: try reader.i64(),
                        ctimeSeconds: try reader.i64(),
                        ctimeNanoseconds: try reader.i64()
                    )
                    let racy = try reader.u8() != 0
                    var entries = Entries()
                    entries.names = try reader.bytes(Int(truncatingIfNeeded: try reader.u64()))
                    let entryCount = Int(truncatingIfNeeded: try reader.u64())
                    guard entryCount >= 0, entryCount <= bytes.count else { return nil }
                    entries.types = try reader.bytes(entryCount)
                    entries.starts.reserveCapacity(entryCount)
                    for _ in 0..<entryCount {
                        let start = try reader.u32()
                        guard start <= entries.names.count, start >= (entries.starts.last ?? 0) else { return nil }
                        entries.starts.append(start)
                    }
                    result.directories[HrefKey(prefix)] = Listing(identity: identity, racy: racy, entries: entries)
                }
                return reader.position == reader.end ? result : nil
            } catch {
                return nil
            }
        }
        if let decoded { cache = decoded }
        return cache
    }
}
