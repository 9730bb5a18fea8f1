#if canImport(Glibc)
import Glibc
#endif

/// What was opened below the root.
enum OpenedNode {
    /// A regular file; the descriptor belongs to the caller.
    case file(fd: Int32, size: Int, modified: Int)
    /// A directory; the descriptor belongs to the caller.
    case directory(fd: Int32, modified: Int)
}

/// One row of a directory listing.
struct ListingEntry {
    var name: String
    var isDirectory: Bool
    var size: Int
    var modified: Int
}

/// Opens paths below a root directory and refuses anything that resolves outside it.
///
/// The rule: a path is resolved with `realpath` (symlinks anywhere in it followed), the result must be the root or
/// lie below it, and the opened descriptor is checked again through `/proc/self/fd` so that a component swapped
/// for a symlink between the check and the `open` (TOCTOU) cannot smuggle in an outside file. Symlinks that stay
/// inside the root work.
struct ConfinedFileSystem: Sendable {
    /// The canonical root (`realpath` of the configured one), or nil while it does not exist.
    let configuredRoot: String
    /// Names that are never served or listed at any depth (a publisher's private index): a path that passes
    /// through one, directly or through a symlink, is refused like a missing one.
    let hiddenNames: Set<String>

    init(root: String, hiddenNames: Set<String> = []) {
        self.configuredRoot = root
        self.hiddenNames = hiddenNames
    }

    /// `path` (canonical, inside `root`) passes through a hidden name below the root.
    func isHidden(_ path: String, root: String) -> Bool {
        if self.hiddenNames.isEmpty { return false }
        let below = path.dropFirst(root == "/" ? 0 : root.count)
        return below.split(separator: "/").contains { self.hiddenNames.contains(String($0)) }
    }

    /// The root's canonical path right now (it may be created after the handler).
    func canonicalRoot() -> String? { Self.realPath(self.configuredRoot) }

    /// `path` is inside `root` (both canonical).
    static func isInside(_ path: String, root: String) -> Bool {
        if root == "/" { return path.hasPrefix("/") }
        return path == root || path.hasPrefix(root + "/")
    }

    /// Opens `segments` below the root. Nil for anything missing, outside, or neither a regular file nor a
    /// directory — the caller answers all of these with the same 404.
    func open(segments: [String]) -> OpenedNode? {
        guard let root = self.canonicalRoot() else { return nil }
        let candidate = segments.isEmpty ? root : (root == "/" ? "" : root) + "/" + segments.joined(separator: "/")
        guard let resolved = Self.realPath(candidate), Self.isInside(resolved, root: root),
            !self.isHidden(resolved, root: root)
        else { return nil }
        // O_NOFOLLOW: `resolved` has no symlinks left, so a symlink in the last place now is a swap: refuse it.
        // O_NONBLOCK: opening a FIFO for reading must not hang the queue (it is refused below anyway).
        let fd = Glibc.open(resolved, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        guard Self.descriptorPathMatches(fd, expected: resolved) else {
            Glibc.close(fd)
            return nil
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            Glibc.close(fd)
            return nil
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            return .file(fd: fd, size: Int(st.st_size), modified: Int(st.st_mtim.tv_sec))
        case S_IFDIR:
            return .directory(fd: fd, modified: Int(st.st_mtim.tv_sec))
        default:
            Glibc.close(fd)
            return nil
        }
    }

    /// Lists an opened directory (takes ownership of `fd` and closes it). Entries that are neither regular files
    /// nor directories, symlinks that leave the root or dangle, and names that are not UTF-8 are left out: they
    /// could not be fetched anyway. At most `limit` entries are read.
    func list(directoryFD fd: Int32, limit: Int) -> (entries: [ListingEntry], truncated: Bool) {
        guard let dir = fdopendir(fd) else {
            Glibc.close(fd)
            return ([], false)
        }
        defer { closedir(dir) }
        let root = self.canonicalRoot()
        let directoryPath = Self.descriptorPath(dirfd(dir))
        var entries: [ListingEntry] = []
        var truncated = false
        while let entry = readdir(dir) {
            let name: String? = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(validatingCString: $0)
                }
            }
            guard let name, name != ".", name != "..", !self.hiddenNames.contains(name) else { continue }
            if entries.count >= limit {
                truncated = true
                break
            }
            var st = stat()
            guard fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFLNK {
                // Follow only a link whose target stays inside the root.
                guard let root, let directoryPath, let target = Self.realPath(directoryPath + "/" + name),
                    Self.isInside(target, root: root), !self.isHidden(target, root: root), stat(target, &st) == 0
                else { continue }
            }
            let kind = st.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFDIR else { continue }
            entries.append(
                ListingEntry(
                    name: name,
                    isDirectory: kind == S_IFDIR,
                    size: Int(st.st_size),
                    modified: Int(st.st_mtim.tv_sec)
                )
            )
        }
        return (entries, truncated)
    }

    /// The corresponding C function is `realpath` (with a NULL buffer, freed here).
    static func realPath(_ path: String) -> String? {
        guard let p = Glibc.realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(validatingCString: p)
    }

    /// What the kernel says an open descriptor refers to, via `/proc/self/fd`. Nil if `/proc` is unavailable.
    static func descriptorPath(_ fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when the descriptor refers to `expected`, or when the kernel cannot tell (no `/proc`): the `realpath`
    /// check then stands alone.
    static func descriptorPathMatches(_ fd: Int32, expected: String) -> Bool {
        guard let actual = Self.descriptorPath(fd) else { return access("/proc/self/fd", F_OK) != 0 }
        return actual == expected
    }
}
