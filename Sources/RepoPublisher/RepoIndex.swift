internal import Glibc
internal import LibCrypto

/// A SHA-256 value held inline (no heap allocation per index entry).
struct Digest: Hashable, Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64)

    static let zero = Digest(words: (0, 0, 0, 0))

    init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// From 32 bytes (big-endian words, so `bytes` round-trips).
    init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest has 32 bytes")
        func word(_ index: Int) -> UInt64 {
            var value: UInt64 = 0
            for offset in 0..<8 { value = value << 8 | UInt64(bytes[index * 8 + offset]) }
            return value
        }
        self.words = (word(0), word(1), word(2), word(3))
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for word in [self.words.0, self.words.1, self.words.2, self.words.3] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
        return out
    }

    static func == (a: Digest, b: Digest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.words.0)
        hasher.combine(self.words.1)
        hasher.combine(self.words.2)
        hasher.combine(self.words.3)
    }
}

/// Three values, one per document (`MetadataKind.rawValue`), stored inline.
struct PerDocument<Value: Sendable>: Sendable {
    var primary: Value
    var filelists: Value
    var other: Value

    init(_ value: Value) {
        self.primary = value
        self.filelists = value
        self.other = value
    }

    subscript(kind: Int) -> Value {
        get {
            switch kind {
            case 0: return self.primary
            case 1: return self.filelists
            default: return self.other
            }
        }
        set {
            switch kind {
            case 0: self.primary = newValue
            case 1: self.filelists = newValue
            default: self.other = newValue
            }
        }
    }

    var all: [Value] { [self.primary, self.filelists, self.other] }
}

/// Where one package's uncompressed fragment lives in the blob file.
struct FragmentLocation: Equatable, Sendable {
    var offset: Int
    var length: Int
    /// SHA-256 of the uncompressed fragment (checked by `RepoIndex.verify`).
    var digest: Digest

    static let empty = FragmentLocation(offset: 0, length: 0, digest: .zero)
}

/// A gzip member in the blob file.
struct MemberLocation: Equatable, Sendable {
    var offset: Int
    var length: Int

    static let empty = MemberLocation(offset: 0, length: 0)
}

/// A run of consecutive packages (in repository order) whose fragments are compressed together into one
/// gzip member per document. A publish recompresses only the runs whose packages changed.
struct Chunk: Sendable {
    var count: Int
    var members: PerDocument<MemberLocation>
}

/// One package in the index, keyed by its href; its fragments are keyed by the content digest (plus the
/// `time file` they were rendered with, the only stat-derived value in them besides the size).
struct IndexEntry: Sendable {
    var href: [UInt8]
    var key: FileKey
    /// The file changed less than `racyWindow` before it was hashed: re-hash it at the next publish even if
    /// its stat key is unchanged (coarse timestamps can hide a second write in the same tick).
    var racy: Bool
    var digest: Digest
    var mtime: Int64
    /// Uncompressed fragments, indexed by `MetadataKind.rawValue`.
    var fragments: PerDocument<FragmentLocation>
    /// Offset of the file name in `href` (after the last `/`), for repository order.
    var nameStart: Int

    init(
        href: [UInt8],
        key: FileKey,
        racy: Bool,
        digest: Digest,
        mtime: Int64,
        fragments: PerDocument<FragmentLocation>
    ) {
        self.href = href
        self.key = key
        self.racy = racy
        self.digest = digest
        self.mtime = mtime
        self.fragments = fragments
        self.nameStart = (href.lastIndex(of: 0x2F) ?? -1) + 1
    }

    /// createrepo_c's order: file name, then directory (byte-wise).
    static func precedes(_ a: IndexEntry, _ b: IndexEntry) -> Bool {
        a.href.withUnsafeBufferPointer { left in
            b.href.withUnsafeBufferPointer { right in
                let nameA = UnsafeBufferPointer(rebasing: left[a.nameStart...])
                let nameB = UnsafeBufferPointer(rebasing: right[b.nameStart...])
                let order = compareBytes(nameA, nameB)
                if order != 0 { return order < 0 }
                let directoryA = UnsafeBufferPointer(rebasing: left[0..<max(0, a.nameStart - 1)])
                let directoryB = UnsafeBufferPointer(rebasing: right[0..<max(0, b.nameStart - 1)])
                return compareBytes(directoryA, directoryB) < 0
            }
        }
    }
}

/// `memcmp`-then-length comparison (C `strcmp` on strings without NULs).
func compareBytes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
    let common = min(a.count, b.count)
    if common > 0 {
        let order = memcmp(a.baseAddress!, b.baseAddress!, common)
        if order != 0 { return Int(order) }
    }
    return a.count - b.count
}

/// A metadata file that repomd.xml no longer references, and since when (it is deleted after the grace
/// period, so a reader holding the previous repomd.xml can still fetch it).
struct RetiredFile: Sendable, Equatable {
    var name: String
    var retiredAt: Int64
}

/// The persistent index of one repository directory (`DIR/.koper-repodata/index`), written atomically
/// after every publish. Fragments live in an append-only blob file (`DIR/.koper-repodata/blobs-<generation>`)
/// so a publish appends only what is new.
struct IndexState: Sendable {
    static let magic: [UInt8] = Array("KOPRIDX1".utf8)
    static let blobMagic: [UInt8] = Array("KOPRBLB1".utf8)
    static let formatVersion: UInt32 = 1
    static let blobHeaderSize = 24

    var changelogLimit: Int
    /// Random id of the blob file this index points into (its name and its header carry it).
    var generation: [UInt8]
    /// Bytes of the blob file that the entries may reference (anything after is garbage from a crash).
    var blobLength: Int
    /// Entries in repository order.
    var entries: [IndexEntry]
    /// The compressed runs covering `entries` in order (their counts add up to `entries.count`).
    var chunks: [Chunk]
    var rejected: [RejectedFile]
    var retired: [RetiredFile]
    /// SHA-256 of the repomd.xml this index last wrote (zero: none), and the revision written in it.
    var repomdDigest: Digest
    var revision: Int64

    static func empty(changelogLimit: Int, generation: [UInt8]) -> IndexState {
        IndexState(
            changelogLimit: changelogLimit,
            generation: generation,
            blobLength: Self.blobHeaderSize,
            entries: [],
            chunks: [],
            rejected: [],
            retired: [],
            repomdDigest: .zero,
            revision: 0
        )
    }

    static func blobFileName(_ generation: [UInt8]) -> String {
        "blobs-" + Crypto.hex(generation)
    }

    var blobFileName: String { Self.blobFileName(self.generation) }

    // MARK: Encoding

    /// Bytes of one entry after its href: key, racy, digest, mtime, three fragment locations.
    static let entryFixedSize = 56 + 1 + 32 + 8 + 3 * (8 + 4 + 32)
    static let chunkSize = 4 + 3 * (8 + 4)

    func encoded() -> [UInt8] {
        var size = 8 + 4 + 8 + 16 + 8 + 32 + 8 + 4
        for entry in self.entries {
            size += 4 + entry.href.count + Self.entryFixedSize
        }
        size += 4 + self.chunks.count * Self.chunkSize
        size += 4
        for rejected in self.rejected {
            size += 4 + rejected.href.count + 56 + 4 + min(rejected.reason.utf8.count, 1000)
        }
        size += 4
        for retired in self.retired {
            size += 4 + retired.name.utf8.count + 8
        }
        size += 32
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var out = RawWriter(buffer.baseAddress!)
            out.bytes(Self.magic)
            out.u32(Self.formatVersion)
            out.u64(UInt64(bitPattern: Int64(self.changelogLimit)))
            out.bytes(self.generation)
            out.u64(UInt64(self.blobLength))
            out.digest(self.repomdDigest)
            out.u64(UInt64(bitPattern: self.revision))
            out.u32(UInt32(self.entries.count))
            for entry in self.entries {
                out.blob(entry.href)
                out.key(entry.key)
                out.u8(entry.racy ? 1 : 0)
                out.digest(entry.digest)
                out.u64(UInt64(bitPattern: entry.mtime))
                for fragment in [entry.fragments.primary, entry.fragments.filelists, entry.fragments.other] {
                    out.u64(UInt64(fragment.offset))
                    out.u32(UInt32(fragment.length))
                    out.digest(fragment.digest)
                }
            }
            out.u32(UInt32(self.chunks.count))
            for chunk in self.chunks {
                out.u32(UInt32(chunk.count))
                for member in [chunk.members.primary, chunk.members.filelists, chunk.members.other] {
                    out.u64(UInt64(member.offset))
                    out.u32(UInt32(member.length))
                }
            }
            out.u32(UInt32(self.rejected.count))
            for rejected in self.rejected {
                out.blob(rejected.href)
                out.key(rejected.key)
                out.blob(Array(rejected.reason.utf8.prefix(1000)))
            }
            out.u32(UInt32(self.retired.count))
            for retired in self.retired {
                out.blob(Array(retired.name.utf8))
                out.u64(UInt64(bitPattern: retired.retiredAt))
            }
            let bodySize = out.pointer - UnsafeMutableRawPointer(buffer.baseAddress!)
            precondition(bodySize == size - 32, "index size computed wrongly")
            let hasher = DigestHasher(.sha256)
            hasher.update(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: bodySize))
            out.bytes(hasher.finalize())
            initialized = size
        }
    }

    static func decode(_ bytes: [UInt8]) throws(RepoPublisherError) -> IndexState {
        try Sys.typed { try bytes.withUnsafeBytes { try Self.decode($0) } }
    }

    /// Decodes an index file; throws `.corruptIndex` for anything unexpected (the caller then rebuilds).
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(RepoPublisherError) -> IndexState {
        func corrupt(_ why: String) -> RepoPublisherError {
            RepoPublisherError(code: .corruptIndex, detail: why)
        }
        guard bytes.count >= 8 + 32, bytes.prefix(8).elementsEqual(Self.magic) else { throw corrupt("bad magic") }
        let hasher = DigestHasher(.sha256)
        hasher.update(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 32)]))
        guard hasher.finalize().elementsEqual(bytes[(bytes.count - 32)...]) else { throw corrupt("checksum mismatch") }
        var reader = ByteReader(bytes: bytes, end: bytes.count - 32)
        reader.position = 8
        guard try reader.u32() == Self.formatVersion else { throw corrupt("unknown format version") }
        let changelogLimit = Int(try reader.i64())
        let generation = try reader.bytes(16)
        let blobLength = Int(try reader.u64())
        let repomdDigest = try reader.digest()
        let revision = try reader.i64()
        let entryCount = Int(try reader.u32())
        guard entryCount <= bytes.count / 100 + 1 else { throw corrupt("entry count too large") }
        var entries: [IndexEntry] = []
        entries.reserveCapacity(entryCount)
        for _ in 0..<entryCount {
            let href = try reader.blob()
            try reader.require(Self.entryFixedSize)
            let key = reader.uncheckedKey()
            let racy = reader.uncheckedU8() != 0
            let digest = reader.uncheckedDigest()
            let mtime = Int64(bitPattern: reader.uncheckedU64())
            var fragments = PerDocument(FragmentLocation.empty)
            for kind in 0..<3 {
                let offset = Int(truncatingIfNeeded: reader.uncheckedU64())
                let length = Int(reader.uncheckedU32())
                let fragmentDigest = reader.uncheckedDigest()
                guard offset >= Self.blobHeaderSize, offset <= blobLength, length <= blobLength - offset else {
                    throw corrupt("fragment outside the blob file")
                }
                fragments[kind] = FragmentLocation(offset: offset, length: length, digest: fragmentDigest)
            }
            entries.append(
                IndexEntry(href: href, key: key, racy: racy, digest: digest, mtime: mtime, fragments: fragments)
            )
        }
        let chunkCount = Int(try reader.u32())
        guard chunkCount <= entryCount else { throw corrupt("more chunks than entries") }
        var chunks: [Chunk] = []
        chunks.reserveCapacity(chunkCount)
        var covered = 0
        for _ in 0..<chunkCount {
            let count = Int(try reader.u32())
            var members = PerDocument(MemberLocation.empty)
            for kind in 0..<3 {
                let offset = Int(try reader.u64())
                let length = Int(try reader.u32())
                guard offset >= Self.blobHeaderSize, offset <= blobLength, length <= blobLength - offset else {
                    throw corrupt("member outside the blob file")
                }
                members[kind] = MemberLocation(offset: offset, length: length)
            }
            guard count > 0 else { throw corrupt("empty chunk") }
            covered += count
            chunks.append(Chunk(count: count, members: members))
        }
        guard covered == entryCount else { throw corrupt("chunks do not cover the entries") }
        let rejectedCount = Int(try reader.u32())
        var rejected: [RejectedFile] = []
        for _ in 0..<rejectedCount {
            let href = try reader.blob()
            let key = try reader.key()
            let reason = String(decoding: try reader.blob(), as: UTF8.self)
            rejected.append(RejectedFile(href: href, key: key, reason: reason))
        }
        let retiredCount = Int(try reader.u32())
        var retired: [RetiredFile] = []
        for _ in 0..<retiredCount {
            let name = String(decoding: try reader.blob(), as: UTF8.self)
            retired.append(RetiredFile(name: name, retiredAt: try reader.i64()))
        }
        guard reader.position == reader.end else { throw corrupt("trailing bytes") }
        return IndexState(
            changelogLimit: changelogLimit,
            generation: generation,
            blobLength: blobLength,
            entries: entries,
            chunks: chunks,
            rejected: rejected,
            retired: retired,
            repomdDigest: repomdDigest,
            revision: revision
        )
    }
}

// MARK: - Little-endian byte I/O for the index file

/// Writes little-endian fields through a raw cursor into a buffer the caller sized exactly.
struct RawWriter {
    var pointer: UnsafeMutableRawPointer

    init(_ base: UnsafeMutablePointer<UInt8>) {
        self.pointer = UnsafeMutableRawPointer(base)
    }

    @inline(__always)
    mutating func bytes(_ value: [UInt8]) {
        value.withUnsafeBytes { source in
            if let base = source.baseAddress {
                self.pointer.copyMemory(from: base, byteCount: source.count)
            }
        }
        self.pointer += value.count
    }

    @inline(__always)
    mutating func u8(_ value: UInt8) {
        self.pointer.storeBytes(of: value, as: UInt8.self)
        self.pointer += 1
    }

    @inline(__always)
    mutating func u32(_ value: UInt32) {
        self.pointer.storeBytes(of: value.littleEndian, as: UInt32.self)
        self.pointer += 4
    }

    @inline(__always)
    mutating func u64(_ value: UInt64) {
        self.pointer.storeBytes(of: value.littleEndian, as: UInt64.self)
        self.pointer += 8
    }

    @inline(__always)
    mutating func digest(_ value: Digest) {
        self.u64(value.words.0)
        self.u64(value.words.1)
        self.u64(value.words.2)
        self.u64(value.words.3)
    }

    @inline(__always)
    mutating func blob(_ value: [UInt8]) {
        self.u32(UInt32(value.count))
        self.bytes(value)
    }

    @inline(__always)
    mutating func key(_ key: FileKey) {
        self.u64(UInt64(bitPattern: key.size))
        self.u64(UInt64(bitPattern: key.mtimeSeconds))
        self.u64(UInt64(bitPattern: key.mtimeNanoseconds))
        self.u64(UInt64(bitPattern: key.ctimeSeconds))
        self.u64(UInt64(bitPattern: key.ctimeNanoseconds))
        self.u64(key.inode)
        self.u64(key.device)
    }
}

struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let end: Int
    var position = 0

    init(bytes: UnsafeRawBufferPointer, end: Int) {
        self.bytes = bytes
        self.end = end
    }

    @inline(__always)
    private func need(_ count: Int) throws(RepoPublisherError) {
        guard count >= 0, self.end - self.position >= count else {
            throw RepoPublisherError(code: .corruptIndex, detail: "index file truncated")
        }
    }

    /// Checks that `count` more bytes exist; the `unchecked…` readers may then read them.
    func require(_ count: Int) throws(RepoPublisherError) {
        try self.need(count)
    }

    @inline(__always)
    mutating func uncheckedU8() -> UInt8 {
        defer { self.position += 1 }
        return self.bytes.load(fromByteOffset: self.position, as: UInt8.self)
    }

    @inline(__always)
    mutating func uncheckedU32() -> UInt32 {
        defer { self.position += 4 }
        return UInt32(littleEndian: self.bytes.loadUnaligned(fromByteOffset: self.position, as: UInt32.self))
    }

    @inline(__always)
    mutating func uncheckedU64() -> UInt64 {
        defer { self.position += 8 }
        return UInt64(littleEndian: self.bytes.loadUnaligned(fromByteOffset: self.position, as: UInt64.self))
    }

    @inline(__always)
    mutating func uncheckedDigest() -> Digest {
        Digest(words: (self.uncheckedU64(), self.uncheckedU64(), self.uncheckedU64(), self.uncheckedU64()))
    }

    @inline(__always)
    mutating func uncheckedKey() -> FileKey {
        FileKey(
            size: Int64(bitPattern: self.uncheckedU64()),
            mtimeSeconds: Int64(bitPattern: self.uncheckedU64()),
            mtimeNanoseconds: Int64(bitPattern: self.uncheckedU64()),
            ctimeSeconds: Int64(bitPattern: self.uncheckedU64()),
            ctimeNanoseconds: Int64(bitPattern: self.uncheckedU64()),
            inode: self.uncheckedU64(),
            device: self.uncheckedU64()
        )
    }

    mutating func u8() throws(RepoPublisherError) -> UInt8 {
        try self.need(1)
        defer { self.position += 1 }
        return self.bytes[self.position]
    }

    @inline(__always)
    mutating func u32() throws(RepoPublisherError) -> UInt32 {
        try self.need(4)
        let value = self.bytes.loadUnaligned(fromByteOffset: self.position, as: UInt32.self)
        self.position += 4
        return UInt32(littleEndian: value)
    }

    @inline(__always)
    mutating func u64() throws(RepoPublisherError) -> UInt64 {
        try self.need(8)
        let value = self.bytes.loadUnaligned(fromByteOffset: self.position, as: UInt64.self)
        self.position += 8
        return UInt64(littleEndian: value)
    }

    mutating func i64() throws(RepoPublisherError) -> Int64 { Int64(bitPattern: try self.u64()) }

    mutating func digest() throws(RepoPublisherError) -> Digest {
        Digest(words: (try self.u64(), try self.u64(), try self.u64(), try self.u64()))
    }

    mutating func bytes(_ count: Int) throws(RepoPublisherError) -> [UInt8] {
        try self.need(count)
        let source = self.bytes.baseAddress! + self.position
        self.position += count
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: count)
            }
            initialized = count
        }
    }

    mutating func blob() throws(RepoPublisherError) -> [UInt8] {
        let count = Int(try self.u32())
        return try self.bytes(count)
    }

    mutating func key() throws(RepoPublisherError) -> FileKey {
        FileKey(
            size: try self.i64(),
            mtimeSeconds: try self.i64(),
            mtimeNanoseconds: try self.i64(),
            ctimeSeconds: try self.i64(),
            ctimeNanoseconds: try self.i64(),
            inode: try self.u64(),
            device: try self.u64()
        )
    }
}

/// A hash key over raw href bytes that hashes them in one call (an `[UInt8]` key hashes byte by byte).
struct HrefKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func hash(into hasher: inout Hasher) {
        self.bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: HrefKey, b: HrefKey) -> Bool {
        a.bytes == b.bytes
    }
}

/// An open-addressing table from href bytes to an index into an array of entries (FNV-1a hashes; faster
/// than `Dictionary` with byte-array keys, which hashes element by element).
struct HrefTable {
    private var slots: [Int32]
    private var hashes: [UInt64]
    private let mask: Int

    init<S: Sequence>(_ hrefs: S, count: Int) where S.Element == [UInt8] {
        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        self.slots = [Int32](repeating: -1, count: capacity)
        self.hashes = [UInt64](repeating: 0, count: capacity)
        self.mask = capacity - 1
        for (index, href) in hrefs.enumerated() {
            let hash = Self.hash(href)
            var slot = Int(truncatingIfNeeded: hash) & self.mask
            while self.slots[slot] >= 0 { slot = (slot + 1) & self.mask }
            self.slots[slot] = Int32(index)
            self.hashes[slot] = hash
        }
    }

    /// The index of the entry whose href equals `href` (whose `hash(_:)` is `hash`).
    func find(_ href: [UInt8], hash: UInt64, in entries: UnsafeBufferPointer<IndexEntry>) -> Int? {
        var slot = Int(truncatingIfNeeded: hash) & self.mask
        while self.slots[slot] >= 0 {
            if self.hashes[slot] == hash {
                let index = Int(self.slots[slot])
                let equal = entries[index].href.withUnsafeBytes { left in
                    href.withUnsafeBytes { right in
                        left.count == right.count
                            && (left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0)
                    }
                }
                if equal { return index }
            }
            slot = (slot + 1) & self.mask
        }
        return nil
    }

    static func hash(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBufferPointer { buffer in
            for byte in buffer {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
        }
        // FNV's low bits mix poorly; finish with MurmurHash3's fmix64 before masking.
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return hash
    }
}
