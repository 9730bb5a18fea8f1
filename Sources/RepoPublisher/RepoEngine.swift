internal import Dispatch
internal import Glibc
internal import Gzip
internal import LibCrypto
internal import Logging
internal import Repodata

/// Publishes one repository directory: scan, hash what changed, render what is new, write the three
/// metadata files under unique names, then swap repomd.xml with a rename. Synchronous and blocking; the
/// caller runs it off the Swift concurrency pool (`RepoPublisher` on a per-directory queue, `CreateRepo`
/// on the calling thread).
///
/// Not thread-safe: one owner calls `publish` from one thread at a time (the in-memory index cache is
/// unsynchronised). Processes are serialised by an exclusive `flock` on `DIR/.koper-repodata/lock`.
final class RepoEngine {
    /// Hidden directory beside `repodata/` holding the index, its blob file and the lock. It is outside
    /// `repodata/` so that a createrepo_c run (which replaces `repodata/`) does not throw the index away.
    static let indexDirectoryName = ".koper-repodata"
    static let indexFileName = "index"
    static let lockFileName = "lock"
    static let directoriesFileName = "directories"
    static let temporaryPrefix = ".koper-tmp-"
    static let blobPrefix = "blobs-"
    /// A file modified this close (nanoseconds) to the moment it was hashed is re-hashed next time: a second
    /// write within the same timestamp tick (a jiffy, at most 10 ms) would leave its stat key unchanged.
    static let racyWindowNanoseconds: Int64 = 20_000_000
    /// Same for file systems without sub-second timestamps (both nanosecond fields 0).
    static let coarseRacyWindowNanoseconds: Int64 = 2_000_000_000

    let rootPath: String
    let configuration: RepoPublisherConfiguration
    let logger: Logger
    private var cache: Cache?
    private let readBuffers: [UnsafeMutableRawBufferPointer]

    private struct Cache {
        var state: IndexState
        var blobs: MappedFile
        /// Lookup from href to entry index for `state.entries`.
        var table: HrefTable
        /// Identity of the index file as we last read or wrote it.
        var indexKey: FileKey
    }

    /// Work left after the new repomd.xml is in place (saving the index, removing stale files), done by
    /// `completeDeferredWork` while the directory lock is still held.
    private struct Deferred {
        var state: IndexState
        var blobs: MappedFile
        var lockDescriptor: Int32
        var now: Int64
        var save: Bool
        /// Directory listings to write, when some directory was read again.
        var directories: DirectoryCache?
    }

    private var deferred: Deferred?
    /// The directory listings of the last walk (in memory between publishes; on disk for the next process).
    private var directories: DirectoryCache?

    init(rootPath: String, configuration: RepoPublisherConfiguration, logger: Logger) {
        self.rootPath = rootPath
        self.configuration = configuration
        self.logger = logger
        self.readBuffers = (0..<configuration.workers).map { _ in
            UnsafeMutableRawBufferPointer.allocate(byteCount: PackageIngest.chunkSize, alignment: 64)
        }
    }

    deinit {
        for buffer in self.readBuffers {
            buffer.deallocate()
        }
    }

    var repodataPath: String { self.rootPath + "/repodata" }
    var indexDirectoryPath: String { self.rootPath + "/" + Self.indexDirectoryName }

    // MARK: - Publish

    /// Publishes the directory. With `deferIndexSave`, returns as soon as the new repomd.xml is in place and
    /// leaves saving the index to `completeDeferredWork()`, which the caller must call next (it keeps the
    /// directory lock until then); readers see the new metadata either way.
    func publish(fullRebuild: Bool, deferIndexSave: Bool = false) throws(RepoPublisherError) -> PublishResult {
        precondition(self.deferred == nil, "completeDeferredWork() was not called after the previous publish")
        do {
            var result = try self.publishLocked(fullRebuild: fullRebuild)
            if !deferIndexSave {
                let started = Sys.monotonicNanoseconds()
                try self.completeDeferredWork()
                let seconds = Double(Sys.monotonicNanoseconds() - started) / 1e9
                result.phaseSeconds.append(("save index", seconds))
                result.seconds += seconds
            }
            return result
        } catch {
            // The in-memory cache may be ahead of or behind the files now; reload next time.
            self.cache = nil
            self.directories = nil
            if let deferred = self.deferred {
                Sys.close(deferred.lockDescriptor)
                self.deferred = nil
            }
            throw error
        }
    }

    /// Saves the index of the last publish, removes stale files and releases the directory lock.
    func completeDeferredWork() throws(RepoPublisherError) {
        guard let deferred = self.deferred else { return }
        self.deferred = nil
        defer { Sys.close(deferred.lockDescriptor) }  // releases the flock
        do {
            if let directories = deferred.directories {
                try self.writeFileAtomically(
                    self.indexDirectoryPath + "/" + Self.directoriesFileName,
                    directories.encoded()
                )
            }
            guard deferred.save else { return }
            try self.saveIndex(deferred.state, blobs: deferred.blobs)
            try self.removeStaleFiles(currentBlob: deferred.state.blobFileName, now: deferred.now)
        } catch {
            self.cache = nil
            self.directories = nil
            throw error
        }
    }

    private func publishLocked(fullRebuild: Bool) throws(RepoPublisherError) -> PublishResult {
        let started = Sys.monotonicNanoseconds()
        var phases = PhaseClock(start: started)
        let rootDescriptor: Int32
        do {
            rootDescriptor = try Sys.open(self.rootPath, O_RDONLY | O_DIRECTORY)
        } catch {
            if error.errno == ENOTDIR {
                throw RepoPublisherError(code: .notADirectory, path: self.rootPath)
            }
            throw error
        }
        defer { Sys.close(rootDescriptor) }
        try Sys.makeDirectory(self.repodataPath)
        try Sys.makeDirectory(self.indexDirectoryPath)
        let lockPath = self.indexDirectoryPath + "/" + Self.lockFileName
        let lockDescriptor = try Sys.open(lockPath, O_RDWR | O_CREAT)
        var lockHandedOver = false
        defer { if !lockHandedOver { Sys.close(lockDescriptor) } }  // closing releases the flock
        try Sys.lockExclusive(lockDescriptor, path: lockPath)

        // Read the directory tree on this thread while the index loads on another; every thread stats the
        // candidate paths the walk hands out in batches.
        let pipeline = DirectoryScanner.Pipeline(rootDescriptor: rootDescriptor)
        let loadResult = UnsafeResults<Result<(IndexState, MappedFile, HrefTable), RepoPublisherError>>(count: 1)
        let engine = UnsafeSendable(self)
        let group = DispatchGroup()
        let helpers = max(1, self.configuration.workers) - 1
        DispatchQueue.global().async(group: group) {
            loadResult.set(
                0,
                Result { () throws(RepoPublisherError) -> (IndexState, MappedFile, HrefTable) in
                    try engine.value.loadState(fullRebuild: fullRebuild)
                }
            )
            pipeline.work()
        }
        for _ in 0..<max(0, helpers - 1) {
            DispatchQueue.global().async(group: group) { pipeline.work() }
        }
        let walkError: RepoPublisherError?
        var listings: (listings: DirectoryCache, reread: Int)?
        do {
            let cache = fullRebuild ? DirectoryCache() : (self.directories ?? self.loadDirectoryCache())
            listings = try DirectoryScanner.walk(
                rootDescriptor: rootDescriptor,
                rootPath: self.rootPath,
                cache: cache,
                pipeline: pipeline,
                workers: helpers + 1
            )
            walkError = nil
        } catch {
            walkError = error
        }
        phases.mark("read directories")
        pipeline.work()
        group.wait()
        if let walkError { throw walkError }
        let loaded = try loadResult.take(0).get()
        var state = loaded.0
        var blobs = loaded.1
        let oldIndex = loaded.2
        let scan = pipeline.result()
        phases.mark("stat, load index")
        for path in scan.unreadable {
            self.logger.warning("cannot open directory", metadata: ["repo.path": "\(path)"])
        }

        // Classify every file: unchanged (stat key equal, not racy), or to be hashed.
        var rejectedIndex: [HrefKey: RejectedFile] = [:]
        for rejected in state.rejected {
            rejectedIndex[HrefKey(rejected.href)] = rejected
        }
        var keep = [Bool](repeating: false, count: state.entries.count)
        var rejected: [RejectedFile] = []
        var work: [(file: ScannedFile, old: Int?)] = []
        var matched = 0
        state.entries.withUnsafeBufferPointer { entries in
            for file in scan.files {
                if let index = oldIndex.find(file.href, hash: file.hash, in: entries) {
                    matched += 1
                    if entries[index].key == file.key && !entries[index].racy {
                        keep[index] = true
                    } else {
                        work.append((file, index))
                    }
                } else if let previous = rejectedIndex[HrefKey(file.href)], previous.key == file.key {
                    rejected.append(previous)
                } else {
                    work.append((file, nil))
                }
            }
        }
        let removedCount = state.entries.count - matched

        phases.mark("classify")
        // Hash (and where needed render) the files that may have changed, in parallel.
        let hashTime = Sys.now()
        let outcomes = try self.ingest(
            work.map { item in
                (item.file.href, item.file.key, item.old.map { (state.entries[$0].digest, state.entries[$0].mtime) })
            },
            rootDescriptor: rootDescriptor
        )
        phases.mark("hash and render")

        // The chunk each old entry belongs to.
        var oldChunkOf = [Int32](repeating: 0, count: state.entries.count)
        var position = 0
        for (chunkIndex, chunk) in state.chunks.enumerated() {
            for _ in 0..<chunk.count where position < oldChunkOf.count {
                oldChunkOf[position] = Int32(chunkIndex)
                position += 1
            }
        }

        var added = 0
        var changed = 0
        var renderedCount = 0
        var newlyRejected = 0
        var fresh: [(entry: IndexEntry, oldChunk: Int32, generated: GeneratedFragments?)] = []
        for (item, outcome) in zip(work, outcomes) {
            switch outcome {
            case .vanished:
                continue
            case .rejected(let file):
                rejected.append(file)
                newlyRejected += 1
                self.logger.warning(
                    "package skipped",
                    metadata: [
                        "repo.path": "\(self.rootPath)", "rpm.href": "\(String(decoding: file.href, as: UTF8.self))",
                        "reason": "\(file.reason)",
                    ]
                )
            case .ingested(let package):
                let racy = Self.isRacy(package.key, hashTime: hashTime)
                if let old = item.old {
                    if state.entries[old].digest != package.digest { changed += 1 }
                } else {
                    added += 1
                }
                if let fragments = package.fragments {
                    renderedCount += 1
                    let entry = IndexEntry(
                        href: package.href,
                        key: package.key,
                        racy: racy,
                        digest: package.digest,
                        mtime: package.key.mtimeSeconds,
                        fragments: PerDocument(FragmentLocation.empty)
                    )
                    fresh.append((entry, -1, fragments))
                } else if let old = item.old {
                    var entry = state.entries[old]
                    entry.key = package.key
                    entry.racy = racy
                    fresh.append((entry, oldChunkOf[old], nil))
                }
            }
        }
        let hashedFiles = outcomes.reduce(0) { count, outcome in
            if case .vanished = outcome { return count }
            return count + 1
        }

        // Entries in repository order: the kept ones are already in order; merge the new ones in.
        fresh.sort { IndexEntry.precedes($0.entry, $1.entry) }
        var entries: [IndexEntry] = []
        var entryChunks: [Int32] = []
        var generated: [Int: GeneratedFragments] = [:]
        do {
            let total = keep.reduce(0) { $0 + ($1 ? 1 : 0) } + fresh.count
            entries.reserveCapacity(total)
            entryChunks.reserveCapacity(total)
            var i = 0
            var j = 0
            let old = state.entries
            while true {
                while i < old.count && !keep[i] { i += 1 }
                if i == old.count && j == fresh.count { break }
                if j == fresh.count || (i < old.count && IndexEntry.precedes(old[i], fresh[j].entry)) {
                    entries.append(old[i])
                    entryChunks.append(oldChunkOf[i])
                    i += 1
                } else {
                    if let fragments = fresh[j].generated { generated[entries.count] = fragments }
                    entries.append(fresh[j].entry)
                    entryChunks.append(fresh[j].oldChunk)
                    j += 1
                }
            }
        }
        let oldChunkCount = state.chunks.count
        let plan = ChunkPlanner.plan(
            entries: entries,
            entryChunks: entryChunks,
            generated: generated,
            oldChunks: state.chunks,
            packagesPerMember: self.configuration.packagesPerMember
        )
        phases.mark("merge and plan")

        // Rewrite the blob file when most of it is garbage; otherwise append to it.
        var live = 0
        for (index, entry) in entries.enumerated() where generated[index] == nil {
            live += entry.fragments.primary.length + entry.fragments.filelists.length + entry.fragments.other.length
        }
        for chunk in plan {
            if let members = chunk.reuse?.members {
                live += members.primary.length + members.filelists.length + members.other.length
            }
        }
        let garbage = state.blobLength - IndexState.blobHeaderSize - live
        let compact = garbage > max(live, self.configuration.compactionThresholdBytes)
        let packageChanges = added + changed + removedCount + newlyRejected
        let dirtyChunks = plan.reduce(0) { $0 + ($1.reuse == nil ? 1 : 0) }
        var chunks: [Chunk] = []
        let originalRejected = state.rejected.count
        let originalRetired = state.retired
        let blobsChanged = compact || !generated.isEmpty || dirtyChunks > 0 || plan.count != oldChunkCount
        state.entries = []  // drop the old copy before more memory is touched
        if blobsChanged {
            (state, blobs, chunks) = try self.writeBlobs(
                state: state,
                oldBlobs: blobs,
                entries: &entries,
                generated: generated,
                plan: plan,
                compact: compact
            )
            phases.mark("blob file")
        } else {
            chunks = plan.compactMap(\.reuse)
        }
        state.entries = entries
        state.chunks = chunks
        state.rejected = rejected

        // Nothing changed and repomd.xml is ours and intact: keep it.
        var wroteMetadata = false
        var records: [RepomdRecord] = []
        let now = Sys.now().seconds
        if packageChanges == 0 && dirtyChunks == 0 && !compact, let current = try self.currentRecords(state) {
            records = current
        } else {
            records = try self.writeMetadata(state: &state, blobs: blobs, now: now)
            phases.mark("metadata files")
            wroteMetadata = true
        }
        try self.retireOldFiles(state: &state, referenced: Set(records.map { Self.fileName(of: $0) }), now: now)
        phases.mark("retire")
        let indexChanged =
            blobsChanged || wroteMetadata || !work.isEmpty || removedCount > 0
            || rejected.count != originalRejected || state.retired != originalRetired
        // Directory listings are written only when a directory had to be read again.
        let changedListings = listings.flatMap { $0.reread > 0 ? $0.listings : nil }
        self.directories = listings?.listings
        self.deferred = Deferred(
            state: state,
            blobs: blobs,
            lockDescriptor: lockDescriptor,
            now: now,
            save: indexChanged,
            directories: changedListings
        )
        lockHandedOver = true

        let seconds = Double(Sys.monotonicNanoseconds() - started) / 1e9
        let result = PublishResult(
            packageCount: state.entries.count,
            added: added,
            removed: removedCount,
            changed: changed,
            hashedFiles: hashedFiles,
            renderedPackages: renderedCount,
            directoriesRead: listings?.reread ?? 0,
            rejected: rejected.map { (String(decoding: $0.href, as: UTF8.self), $0.reason) },
            wroteMetadata: wroteMetadata,
            records: records,
            revision: String(state.revision),
            coalescedRequests: 1,
            seconds: seconds,
            phaseSeconds: phases.phases
        )
        self.logger.info(
            "repository published",
            metadata: [
                "repo.path": "\(self.rootPath)", "repo.packages": "\(result.packageCount)",
                "repo.added": "\(added)", "repo.removed": "\(removedCount)", "repo.changed": "\(changed)",
                "repo.hashed": "\(hashedFiles)", "repo.rendered": "\(renderedCount)",
                "repo.chunks.recompressed": "\(dirtyChunks)", "repo.wrote": "\(wroteMetadata)",
                "repo.seconds": "\(seconds)",
            ]
        )
        return result
    }

    /// Wall time per phase of a publish (for logs and benchmarks).
    struct PhaseClock {
        var last: UInt64
        var phases: [(phase: String, seconds: Double)] = []

        init(start: UInt64) {
            self.last = start
        }

        mutating func mark(_ phase: String) {
            let now = Sys.monotonicNanoseconds()
            self.phases.append((phase, Double(now - self.last) / 1e9))
            self.last = now
        }
    }

    static func isRacy(_ key: FileKey, hashTime: (seconds: Int64, nanoseconds: Int64)) -> Bool {
        let window =
            key.mtimeNanoseconds == 0 && key.ctimeNanoseconds == 0
            ? Self.coarseRacyWindowNanoseconds : Self.racyWindowNanoseconds
        let now = hashTime.seconds &* 1_000_000_000 &+ hashTime.nanoseconds
        let modified = max(
            key.mtimeSeconds &* 1_000_000_000 &+ key.mtimeNanoseconds,
            key.ctimeSeconds &* 1_000_000_000 &+ key.ctimeNanoseconds
        )
        return modified > now - window
    }

    static func fileName(of record: RepomdRecord) -> String {
        String(record.locationHref.split(separator: "/").last ?? "")
    }

    // MARK: - Ingest

    private func ingest(
        _ items: [(href: [UInt8], key: FileKey, reusable: (digest: Digest, mtime: Int64)?)],
        rootDescriptor: Int32
    )
        throws(RepoPublisherError) -> [PackageIngest.Outcome]
    {
        if items.isEmpty { return [] }
        let results = UnsafeResults<Result<PackageIngest.Outcome, RepoPublisherError>>(count: items.count)
        let workers = min(self.configuration.workers, items.count)
        let next = AtomicCounter()
        let rootPath = self.rootPath
        let limit = self.configuration.changelogLimit
        let buffers = UnsafeSendable(self.readBuffers)
        let shared = UnsafeSendable(items)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let buffer = buffers.value[worker]
            while true {
                let index = next.increment()
                if index >= shared.value.count { break }
                let item = shared.value[index]
                results.set(
                    index,
                    Result { () throws(RepoPublisherError) -> PackageIngest.Outcome in
                        do throws(RepoPublisherError) {
                            return try PackageIngest.ingest(
                                rootDescriptor: rootDescriptor,
                                rootPath: rootPath,
                                href: item.href,
                                reusable: item.reusable,
                                changelogLimit: limit,
                                buffer: buffer
                            )
                        } catch {
                            // An unreadable file is skipped, as createrepo_c does; it is tried again once
                            // its stat key changes.
                            guard error.code == .systemCall else { throw error }
                            return .rejected(RejectedFile(href: item.href, key: item.key, reason: error.description))
                        }
                    }
                )
            }
        }
        var outcomes: [PackageIngest.Outcome] = []
        outcomes.reserveCapacity(items.count)
        for index in 0..<items.count {
            outcomes.append(try results.take(index).get())
        }
        return outcomes
    }

    // MARK: - Index load and save

    /// The directory listings the last process saved; empty when there are none or they are unreadable.
    private func loadDirectoryCache() -> DirectoryCache {
        let path = self.indexDirectoryPath + "/" + Self.directoriesFileName
        guard let bytes = try? Self.readWholeFile(path, limit: 1 << 30) else { return DirectoryCache() }
        return DirectoryCache.decode(bytes)
    }

    private func loadState(fullRebuild: Bool) throws(RepoPublisherError) -> (IndexState, MappedFile, HrefTable) {
        let fresh = { () throws(RepoPublisherError) -> (IndexState, MappedFile, HrefTable) in
            let generation = try Self.randomBytes(16)
            return (
                IndexState.empty(changelogLimit: self.configuration.changelogLimit, generation: generation),
                try MappedFile(path: "", length: 0),
                HrefTable([], count: 0)
            )
        }
        if fullRebuild {
            self.cache = nil
            return try fresh()
        }
        let indexPath = self.indexDirectoryPath + "/" + Self.indexFileName
        guard let info = try Sys.statIfExists(indexPath) else {
            self.cache = nil
            return try fresh()
        }
        let key = FileKey(info)
        if let cache = self.cache, cache.indexKey == key {
            return (cache.state, cache.blobs, cache.table)
        }
        self.cache = nil
        do {
            let mapped = try MappedFile(path: indexPath, length: Int(info.st_size))
            let state = try IndexState.decode(mapped.bytes(0, mapped.count))
            guard state.changelogLimit == self.configuration.changelogLimit else {
                self.logger.info(
                    "index built with another changelog limit; rebuilding",
                    metadata: ["repo.path": "\(self.rootPath)"]
                )
                return try fresh()
            }
            let blobPath = self.indexDirectoryPath + "/" + state.blobFileName
            let header = try Self.readPrefix(blobPath, count: IndexState.blobHeaderSize)
            guard header == IndexState.blobMagic + state.generation else {
                throw RepoPublisherError(code: .corruptIndex, path: blobPath, detail: "blob file header mismatch")
            }
            let blobs = try MappedFile(path: blobPath, length: state.blobLength)
            let table = HrefTable(state.entries.lazy.map(\.href), count: state.entries.count)
            self.cache = Cache(state: state, blobs: blobs, table: table, indexKey: key)
            return (state, blobs, table)
        } catch {
            self.logger.warning(
                "index unusable; rebuilding",
                metadata: ["repo.path": "\(self.rootPath)", "error": "\(error)"]
            )
            return try fresh()
        }
    }

    private func saveIndex(_ state: IndexState, blobs: MappedFile) throws(RepoPublisherError) {
        let bytes = state.encoded()
        let indexPath = self.indexDirectoryPath + "/" + Self.indexFileName
        try self.writeFileAtomically(indexPath, bytes)
        guard let info = try Sys.statIfExists(indexPath) else {
            throw RepoPublisherError(code: .internalError, path: indexPath, detail: "index vanished after rename")
        }
        let table = HrefTable(state.entries.lazy.map(\.href), count: state.entries.count)
        self.cache = Cache(state: state, blobs: blobs, table: table, indexKey: FileKey(info))
    }

    // MARK: - Blob file

    /// Writes what the blob file lacks: the fragments of newly rendered packages, then one gzip member per
    /// document for every chunk that changed. With `compact`, writes a new blob file (new generation) with
    /// only live data instead of appending. Returns the new state, mapping and chunk list.
    private func writeBlobs(
        state: IndexState,
        oldBlobs: MappedFile,
        entries: inout [IndexEntry],
        generated: [Int: GeneratedFragments],
        plan: [PlannedChunk],
        compact: Bool
    ) throws(RepoPublisherError) -> (IndexState, MappedFile, [Chunk]) {
        var state = state
        if compact {
            state.generation = try Self.randomBytes(16)
            state.blobLength = IndexState.blobHeaderSize
        }
        let path = self.indexDirectoryPath + "/" + state.blobFileName
        let descriptor = try Sys.open(path, O_WRONLY | O_CREAT | (compact ? O_TRUNC : 0))
        defer { Sys.close(descriptor) }
        let info = try Sys.fstat(descriptor, path: path)
        if Int(info.st_size) < IndexState.blobHeaderSize {
            _ = try Sys.retrying("ftruncate", path) { ftruncate(descriptor, 0) }
            state.blobLength = IndexState.blobHeaderSize
            _ = try Sys.retrying("lseek", path) { lseek(descriptor, 0, SEEK_SET) }
            try Sys.writeAll(descriptor, IndexState.blobMagic + state.generation, path: path)
        } else if Int(info.st_size) != state.blobLength {
            // Garbage from an interrupted publish: nobody references it.
            _ = try Sys.retrying("ftruncate", path) { ftruncate(descriptor, off_t(state.blobLength)) }
        }
        _ = try Sys.retrying("lseek", path) { lseek(descriptor, off_t(state.blobLength), SEEK_SET) }
        var writer = BlobWriter(descriptor: descriptor, path: path, offset: state.blobLength)

        // Fragments, grouped per document so that consecutive packages are contiguous.
        let renderedIndexes = generated.keys.sorted()
        for kind in 0..<3 {
            if compact {
                for index in entries.indices {
                    if let fragments = generated[index] {
                        let bytes = fragments.raw[kind]
                        entries[index].fragments[kind] = FragmentLocation(
                            offset: try writer.append(bytes),
                            length: bytes.count,
                            digest: fragments.rawDigests[kind]
                        )
                    } else {
                        let old = entries[index].fragments[kind]
                        entries[index].fragments[kind].offset = try writer.append(
                            oldBlobs.bytes(old.offset, old.length)
                        )
                    }
                }
            } else {
                for index in renderedIndexes {
                    let fragments = generated[index]!
                    let bytes = fragments.raw[kind]
                    entries[index].fragments[kind] = FragmentLocation(
                        offset: try writer.append(bytes),
                        length: bytes.count,
                        digest: fragments.rawDigests[kind]
                    )
                }
            }
        }
        try writer.flush()
        var blobs = try MappedFile(path: path, length: writer.offset)

        // Compress the changed chunks, (chunk, document) pairs in parallel.
        let dirty = plan.indices.filter { plan[$0].reuse == nil }
        let members = try self.compressChunks(dirty.map { plan[$0].range }, entries: entries, blobs: blobs)
        var chunks = plan.map {
            Chunk(count: $0.range.count, members: $0.reuse?.members ?? PerDocument(MemberLocation.empty))
        }
        for kind in 0..<3 {
            for (position, chunkIndex) in dirty.enumerated() {
                let member = members[position][kind]
                chunks[chunkIndex].members[kind] = MemberLocation(
                    offset: try writer.append(member),
                    length: member.count
                )
            }
            if compact {
                for chunkIndex in plan.indices where plan[chunkIndex].reuse != nil {
                    let old = chunks[chunkIndex].members[kind]
                    chunks[chunkIndex].members[kind].offset = try writer.append(oldBlobs.bytes(old.offset, old.length))
                }
            }
        }
        try writer.flush()
        if self.configuration.durable {
            try Sys.fsync(descriptor, path: path)
        }
        state.blobLength = writer.offset
        blobs = try MappedFile(path: path, length: state.blobLength)
        if compact {
            self.logger.info(
                "index blob file compacted",
                metadata: ["repo.path": "\(self.rootPath)", "repo.blob.bytes": "\(writer.offset)"]
            )
        }
        return (state, blobs, chunks)
    }

    /// One gzip member per document for each range of entries, compressed in parallel.
    private func compressChunks(
        _ ranges: [Range<Int>],
        entries: [IndexEntry],
        blobs: MappedFile
    )
        throws(RepoPublisherError) -> [[[UInt8]]]
    {
        if ranges.isEmpty { return [] }
        let jobs = ranges.count * MetadataKind.allCases.count
        let results = UnsafeResults<Result<[UInt8], RepoPublisherError>>(count: jobs)
        let next = AtomicCounter()
        let shared = UnsafeSendable((ranges, entries, blobs))
        DispatchQueue.concurrentPerform(iterations: min(self.configuration.workers, jobs)) { _ in
            let (ranges, entries, blobs) = shared.value
            while true {
                let job = next.increment()
                if job >= jobs { break }
                let range = ranges[job / 3]
                let kind = job % 3
                results.set(
                    job,
                    Result { () throws(RepoPublisherError) -> [UInt8] in
                        do {
                            let compressor = try GzipCompressor(level: 6)
                            var member: [UInt8] = []
                            for index in range {
                                let fragment = entries[index].fragments[kind]
                                member += try compressor.append(blobs.bytes(fragment.offset, fragment.length))
                            }
                            member += try compressor.finish()
                            return member
                        } catch {
                            throw RepoPublisherError(code: .internalError, detail: "gzip: \(error)")
                        }
                    }
                )
            }
        }
        var members: [[[UInt8]]] = []
        members.reserveCapacity(ranges.count)
        for chunk in ranges.indices {
            var perKind: [[UInt8]] = []
            for kind in 0..<MetadataKind.allCases.count {
                perKind.append(try results.take(chunk * 3 + kind).get())
            }
            members.append(perKind)
        }
        return members
    }

    // MARK: - Metadata files and repomd.xml

    /// repomd.xml's records if it is the one this index wrote last and every file it names exists.
    private func currentRecords(_ state: IndexState) throws(RepoPublisherError) -> [RepomdRecord]? {
        guard state.repomdDigest != .zero else { return nil }
        let path = self.repodataPath + "/repomd.xml"
        guard (try? Sys.statIfExists(path)) != nil else { return nil }
        guard let bytes = try? Self.readWholeFile(path, limit: 1 << 20),
            Digest(Crypto.sha256(bytes)) == state.repomdDigest
        else {
            return nil
        }
        guard let records = RepomdScanner.records(bytes) else { return nil }
        for record in records {
            guard try Sys.statIfExists(self.rootPath + "/" + record.locationHref) != nil else { return nil }
        }
        return records
    }

    private func writeMetadata(
        state: inout IndexState,
        blobs: MappedFile,
        now: Int64
    )
        throws(RepoPublisherError) -> [RepomdRecord]
    {
        let entries = state.entries
        let count = entries.count
        // Per document: coalesced segments of the blob file, for the gzip members and the raw XML.
        var gzipSegments: [[(Int, Int)]] = []
        var rawSegments: [[(Int, Int)]] = []
        for kind in MetadataKind.allCases {
            gzipSegments.append(
                Self.coalesce(
                    state.chunks.lazy.map { ($0.members[kind.rawValue].offset, $0.members[kind.rawValue].length) }
                )
            )
            rawSegments.append(
                Self.coalesce(
                    entries.lazy.map { ($0.fragments[kind.rawValue].offset, $0.fragments[kind.rawValue].length) }
                )
            )
        }
        let heads = MetadataKind.allCases.map { $0.head(packageCount: count) }
        let tails = MetadataKind.allCases.map { $0.tail }
        var headMembers: [[UInt8]] = []
        var tailMembers: [[UInt8]] = []
        do {
            for kind in MetadataKind.allCases {
                headMembers.append(try Gzip.compress(heads[kind.rawValue], level: 6))
                tailMembers.append(try Gzip.compress(tails[kind.rawValue], level: 6))
            }
        } catch {
            throw RepoPublisherError(code: .internalError, detail: "gzip: \(error)")
        }

        struct Written: Sendable {
            var temporaryPath: String
            var checksum: String
            var size: Int64
            var timestamp: Int64
        }
        let written = UnsafeResults<Result<Written, RepoPublisherError>>(count: 3)
        let opened = UnsafeResults<(String, Int64)>(count: 3)
        let repodata = self.repodataPath
        let durable = self.configuration.durable
        let shared = UnsafeSendable((blobs, gzipSegments, rawSegments, headMembers, tailMembers, heads, tails))
        let suffix = Crypto.hex(try Self.randomBytes(6))
        // Six independent jobs: write+hash each .xml.gz, and hash each uncompressed document.
        // The uncompressed documents are ten times larger than the compressed ones: hash them first (largest
        // first) so the two threads finish together.
        // Without open checksums only the three compressed files are hashed (jobs 3...5).
        let openChecksums = self.configuration.openChecksums
        DispatchQueue.concurrentPerform(iterations: openChecksums ? 6 : 3) { iteration in
            let (blobs, gzipSegments, rawSegments, headMembers, tailMembers, heads, tails) = shared.value
            let job = openChecksums ? iteration : iteration + 3
            let kind = job % 3
            if job >= 3 {
                written.set(
                    kind,
                    Result { () throws(RepoPublisherError) -> Written in
                        let path =
                            repodata + "/" + RepoEngine.temporaryPrefix
                            + "\(MetadataKind.allCases[kind].recordType)-\(suffix)"
                        let descriptor = try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL)
                        var closed = false
                        defer { if !closed { Sys.close(descriptor) } }
                        let hasher = DigestHasher(.sha256)
                        var pieces: [UnsafeRawBufferPointer] = []
                        pieces.reserveCapacity(gzipSegments[kind].count + 2)
                        return try Sys.typed {
                            try headMembers[kind].withUnsafeBytes { (head) throws -> Written in
                                try tailMembers[kind].withUnsafeBytes { (tail) throws -> Written in
                                    pieces.append(head)
                                    for (offset, length) in gzipSegments[kind] {
                                        pieces.append(blobs.bytes(offset, length))
                                    }
                                    pieces.append(tail)
                                    var size = 0
                                    for piece in pieces {
                                        hasher.update(piece)
                                        size += piece.count
                                    }
                                    try Sys.writeSegments(descriptor, pieces, path: path)
                                    if durable {
                                        try Sys.fsync(descriptor, path: path)
                                    }
                                    let info = try Sys.fstat(descriptor, path: path)
                                    Sys.close(descriptor)
                                    closed = true
                                    return Written(
                                        temporaryPath: path,
                                        checksum: Crypto.hex(hasher.finalize()),
                                        size: Int64(size),
                                        timestamp: Int64(info.st_mtim.tv_sec)
                                    )
                                }
                            }
                        }
                    }
                )
            } else {
                let hasher = DigestHasher(.sha256)
                var size = 0
                heads[kind].withUnsafeBytes { hasher.update($0) }
                size += heads[kind].count
                for (offset, length) in rawSegments[kind] {
                    hasher.update(blobs.bytes(offset, length))
                    size += length
                }
                tails[kind].withUnsafeBytes { hasher.update($0) }
                size += tails[kind].count
                opened.set(kind, (Crypto.hex(hasher.finalize()), Int64(size)))
            }
        }
        var records: [RepomdRecord] = []
        var temporaries: [String] = []
        var failure: RepoPublisherError?
        for kind in MetadataKind.allCases {
            switch written.take(kind.rawValue) {
            case .success(let file):
                temporaries.append(file.temporaryPath)
                let (openChecksum, openSize): (String?, Int64?) =
                    openChecksums ? opened.take(kind.rawValue) : (nil, nil)
                let name = Repomd.fileName(checksum: file.checksum, kind: kind)
                records.append(
                    RepomdRecord(
                        type: kind.recordType,
                        checksum: file.checksum,
                        openChecksum: openChecksum,
                        locationHref: Repomd.locationHref(fileName: name),
                        timestamp: file.timestamp,
                        size: file.size,
                        openSize: openSize
                    )
                )
            case .failure(let error):
                failure = failure ?? error
            }
        }
        if let failure {
            for path in temporaries { try? Sys.unlinkIfExists(path) }
            throw failure
        }
        // Unique names first, repomd.xml last: a reader sees the old or the new set, never a mix.
        for (record, temporary) in zip(records, temporaries) {
            try Sys.rename(temporary, self.rootPath + "/" + record.locationHref)
        }
        let revision = max(now, state.revision)
        let repomd = Repomd.render(revision: String(revision), records: records)
        if durable {
            try Self.syncDirectory(repodata)
        }
        try self.writeFileAtomically(repodata + "/repomd.xml", repomd)
        state.repomdDigest = Digest(Crypto.sha256(repomd))
        state.revision = revision
        return records
    }

    /// Merges adjacent `(offset, length)` ranges.
    static func coalesce<S: Sequence<(Int, Int)>>(_ ranges: S) -> [(Int, Int)] {
        var result: [(Int, Int)] = []
        for (offset, length) in ranges {
            if let last = result.last, last.0 + last.1 == offset {
                result[result.count - 1].1 += length
            } else {
                result.append((offset, length))
            }
        }
        return result
    }

    // MARK: - Retiring and removing files

    /// Metadata files createrepo_c or we write: `<sha256>-<primary|filelists|other>[_db|_zck]…`.
    static func isManagedMetadataName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard bytes.count > 65, bytes[64] == UInt8(ascii: "-"),
            bytes[0..<64].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { return false }
        let rest = String(decoding: bytes[65...], as: UTF8.self)
        for type in ["primary", "filelists", "other"] {
            for form in [
                ".xml", ".xml.gz", ".xml.zst", ".xml.zck", ".xml.xz", ".xml.bz2", ".sqlite", ".sqlite.bz2",
                ".sqlite.gz", ".sqlite.xz", ".sqlite.zst",
            ]
            where rest == type + form {
                return true
            }
        }
        return false
    }

    /// Gives every unreferenced metadata file a retirement time and deletes those retired longer than the
    /// grace period.
    private func retireOldFiles(state: inout IndexState, referenced: Set<String>, now: Int64) throws(RepoPublisherError)
    {
        let names = try Sys.listDirectory(self.repodataPath)
        var known: [String: Int64] = [:]
        for retired in state.retired {
            known[retired.name] = retired.retiredAt
        }
        var retired: [RetiredFile] = []
        for (rawName, _) in names {
            let name = String(decoding: rawName, as: UTF8.self)
            guard Self.isManagedMetadataName(name), !referenced.contains(name) else { continue }
            let since = known[name] ?? now
            if now - since >= self.configuration.gracePeriodSeconds {
                try Sys.unlinkIfExists(self.repodataPath + "/" + name)
                self.logger.debug("retired metadata file removed", metadata: ["repo.file": "\(name)"])
            } else {
                retired.append(RetiredFile(name: name, retiredAt: since))
            }
        }
        state.retired = retired
    }

    /// Deletes blob files of other generations and temporary files older than the grace period (left by a
    /// crash; a normal publish renames or removes its own).
    private func removeStaleFiles(currentBlob: String, now: Int64) throws(RepoPublisherError) {
        for directory in [self.indexDirectoryPath, self.repodataPath] {
            for (rawName, _) in try Sys.listDirectory(directory) {
                let name = String(decoding: rawName, as: UTF8.self)
                let path = directory + "/" + name
                if directory == self.indexDirectoryPath, name.hasPrefix(Self.blobPrefix), name != currentBlob {
                    try Sys.unlinkIfExists(path)
                } else if name.hasPrefix(Self.temporaryPrefix), let info = try Sys.statIfExists(path),
                    now - Int64(info.st_mtim.tv_sec) >= max(60, self.configuration.gracePeriodSeconds)
                {
                    try Sys.unlinkIfExists(path)
                }
            }
        }
    }

    // MARK: - Helpers

    /// Writes `bytes` to a temporary file in the same directory and renames it over `path`.
    private func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws(RepoPublisherError) {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let temporary = directory + "/" + Self.temporaryPrefix + Crypto.hex(try Self.randomBytes(8))
        let descriptor = try Sys.open(temporary, O_WRONLY | O_CREAT | O_EXCL)
        do {
            try Sys.writeAll(descriptor, bytes, path: temporary)
            if self.configuration.durable {
                try Sys.fsync(descriptor, path: temporary)
            }
            Sys.close(descriptor)
            try Sys.rename(temporary, path)
            if self.configuration.durable {
                try Self.syncDirectory(directory)
            }
        } catch {
            Sys.close(descriptor)
            try? Sys.unlinkIfExists(temporary)
            throw error
        }
    }

    static func syncDirectory(_ path: String) throws(RepoPublisherError) {
        let descriptor = try Sys.open(path, O_RDONLY | O_DIRECTORY)
        defer { Sys.close(descriptor) }
        try Sys.fsync(descriptor, path: path)
    }

    static func readWholeFile(_ path: String, limit: Int) throws(RepoPublisherError) -> [UInt8] {
        let descriptor = try Sys.open(path, O_RDONLY)
        defer { Sys.close(descriptor) }
        let info = try Sys.fstat(descriptor, path: path)
        let size = Int(info.st_size)
        guard size <= limit else {
            throw RepoPublisherError(code: .corruptIndex, path: path, detail: "file larger than \(limit) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        let got = try Sys.typed {
            try bytes.withUnsafeMutableBytes { (buffer) throws -> Int in
                try Sys.read(descriptor, into: buffer, path: path)
            }
        }
        return Array(bytes[0..<got])
    }

    static func readPrefix(_ path: String, count: Int) throws(RepoPublisherError) -> [UInt8] {
        let descriptor = try Sys.open(path, O_RDONLY)
        defer { Sys.close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try Sys.typed {
            try bytes.withUnsafeMutableBytes { (buffer) throws -> Int in
                try Sys.read(descriptor, into: buffer, path: path)
            }
        }
        return Array(bytes[0..<got])
    }

    static func randomBytes(_ count: Int) throws(RepoPublisherError) -> [UInt8] {
        do {
            return try Crypto.randomBytes(count)
        } catch {
            throw RepoPublisherError(code: .internalError, detail: "RAND_bytes failed")
        }
    }
}

/// Buffers small appends to the blob file into large writes; returns each piece's offset.
struct BlobWriter {
    let descriptor: Int32
    let path: String
    var offset: Int
    private var pending: [UInt8] = []
    private static let flushSize = 4 << 20

    init(descriptor: Int32, path: String, offset: Int) {
        self.descriptor = descriptor
        self.path = path
        self.offset = offset
        self.pending.reserveCapacity(Self.flushSize + 65536)
    }

    mutating func append(_ bytes: [UInt8]) throws(RepoPublisherError) -> Int {
        let at = self.offset
        self.pending.append(contentsOf: bytes)
        self.offset += bytes.count
        if self.pending.count >= Self.flushSize {
            try self.flush()
        }
        return at
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) throws(RepoPublisherError) -> Int {
        let at = self.offset
        self.pending.append(contentsOf: bytes)
        self.offset += bytes.count
        if self.pending.count >= Self.flushSize {
            try self.flush()
        }
        return at
    }

    mutating func flush() throws(RepoPublisherError) {
        guard !self.pending.isEmpty else { return }
        try Sys.writeAll(self.descriptor, self.pending, path: self.path)
        self.pending.removeAll(keepingCapacity: true)
    }
}

/// Reads the data records back out of a repomd.xml we wrote (only for the "nothing changed" check).
enum RepomdScanner {
    static func records(_ bytes: [UInt8]) -> [RepomdRecord]? {
        var records: [RepomdRecord] = []
        var position = 0
        let open = Array("<data type=\"".utf8)
        while let start = Self.find(open, in: bytes, from: position) {
            let next = Self.find(open, in: bytes, from: start + open.count) ?? bytes.count
            let chunk = Array(bytes[(start + open.count)..<next])
            position = next
            guard let typeEnd = chunk.firstIndex(of: UInt8(ascii: "\"")),
                let checksum = Self.element(chunk, "<checksum type=\"sha256\">", "</checksum>"),
                let href = Self.element(chunk, "<location href=\"", "\"/>"),
                let timestamp = Self.element(chunk, "<timestamp>", "</timestamp>").flatMap({ Int64($0) }),
                let size = Self.element(chunk, "<size>", "</size>").flatMap({ Int64($0) })
            else { return nil }
            records.append(
                RepomdRecord(
                    type: String(decoding: chunk[..<typeEnd], as: UTF8.self),
                    checksum: checksum,
                    openChecksum: Self.element(chunk, "<open-checksum type=\"sha256\">", "</open-checksum>"),
                    locationHref: href,
                    timestamp: timestamp,
                    size: size,
                    openSize: Self.element(chunk, "<open-size>", "</open-size>").flatMap { Int64($0) }
                )
            )
        }
        return records.isEmpty ? nil : records
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        var index = from
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<(index + needle.count)].elementsEqual(needle) {
                return index
            }
            index += 1
        }
        return nil
    }

    private static func element(_ bytes: [UInt8], _ open: String, _ close: String) -> String? {
        let openBytes = Array(open.utf8)
        guard let start = Self.find(openBytes, in: bytes, from: 0),
            let end = Self.find(Array(close.utf8), in: bytes, from: start + openBytes.count)
        else { return nil }
        return String(decoding: bytes[(start + openBytes.count)..<end], as: UTF8.self)
    }
}
