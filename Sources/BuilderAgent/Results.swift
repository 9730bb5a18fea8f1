import AtomicFile
import CoprModel
import Glibc
import KoperJSON
import LibCrypto
import RPM
import SystemPackage

/// One collected result file.
struct BuiltPackage: Sendable, Equatable {
    /// The file name in the output directory (`name-version-release.arch.rpm`, from the file's own header).
    var fileName: String
    /// `arch` is `src` for the source package, as `built_packages` lists it.
    var nevra: NEVRA
    /// Lowercase hex SHA-256 of the file.
    var sha256: String
}

/// Reading and moving RPM files, and writing `results.json` and `status`.
enum Results {
    /// Reads the lead and both headers of an RPM file (at most ~128 MiB of it).
    static func readHeader(path: String) throws(BuilderError) -> RPMPackage {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw .infrastructure("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { _ = close(fd) }
        var bytes: [UInt8] = []
        var want = 64 * 1024
        let limit = 2 * RPMReader.maxHeaderBytes + 4096
        while true {
            while bytes.count < want {
                var chunk = [UInt8](repeating: 0, count: min(1 << 20, want - bytes.count))
                let n: Int
                do {
                    n = try chunk.withUnsafeMutableBytes { try FileDescriptor(rawValue: fd).read(into: $0) }
                } catch {
                    throw .infrastructure("cannot read \(path): \(error)")
                }
                if n == 0 {
                    break
                }
                bytes.append(contentsOf: chunk[0..<n])
            }
            do throws(RPMError) {
                return try RPMReader.parse(bytes)
            } catch let error where error.code == .truncated {
                guard let need = error.bytesNeeded, need > bytes.count, need <= limit, bytes.count == want else {
                    throw .infrastructure("\(Self.baseName(path)) is not a valid RPM file: \(error.detail)")
                }
                want = need
            } catch {
                throw .infrastructure("\(Self.baseName(path)) is not a valid RPM file: \(error.detail)")
            }
        }
    }

    /// SHA-256 of a file, lowercase hex.
    static func sha256Hex(path: String) throws(BuilderError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            throw .infrastructure("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { _ = close(fd) }
        let hasher = DigestHasher(.sha256)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes { try FileDescriptor(rawValue: fd).read(into: $0) }
            } catch {
                throw .infrastructure("cannot read \(path): \(error)")
            }
            if n == 0 {
                break
            }
            hasher.update(buffer[0..<n])
        }
        return Crypto.hex(hasher.finalize())
    }

    /// Validates the RPM files `names` in `stagingDirectory` (regular files only, each a parseable RPM) and
    /// copies them into `outputDirectory` under the name their header gives. Returns them sorted by file name.
    static func collect(
        names: [String],
        from stagingDirectory: String,
        into outputDirectory: String,
        log: LiveLog
    ) throws(BuilderError) -> [BuiltPackage] {
        var packages: [BuiltPackage] = []
        var seen: Set<String> = []
        for name in names where name.hasSuffix(".rpm") {
            let source = stagingDirectory + "/" + name
            var st = stat()
            guard lstat(source, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                log.info("ignoring \(name): not a regular file")
                continue
            }
            let header = try self.readHeader(path: source)
            let fileName = header.canonicalFilename
            guard ResultStreamReceiver.isSafeFileName(fileName), !seen.contains(fileName) else {
                throw .infrastructure("result file name \(fileName) is unusable or appears twice")
            }
            seen.insert(fileName)
            let destination = outputDirectory + "/" + fileName
            let sha256 = try self.copy(from: source, to: destination)
            let nevra = NEVRA(
                name: header.name,
                epoch: header.epoch,
                version: header.version,
                release: header.release,
                arch: header.isSourcePackage ? "src" : (header.arch ?? "noarch")
            )
            packages.append(BuiltPackage(fileName: fileName, nevra: nevra, sha256: sha256))
            log.info("collected \(fileName) (sha256 \(sha256))")
        }
        return packages.sorted { $0.fileName < $1.fileName }
    }

    /// Copies a file (refusing to overwrite) and returns its SHA-256.
    static func copy(from source: String, to destination: String) throws(BuilderError) -> String {
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard input >= 0 else {
            throw .infrastructure("cannot open \(source): \(String(cString: strerror(errno)))")
        }
        defer { _ = close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard output >= 0 else {
            throw .infrastructure("cannot create \(destination): \(String(cString: strerror(errno)))")
        }
        defer { _ = close(output) }
        let hasher = DigestHasher(.sha256)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes { try FileDescriptor(rawValue: input).read(into: $0) }
            } catch {
                throw .infrastructure("cannot read \(source): \(error)")
            }
            if n == 0 {
                break
            }
            hasher.update(buffer[0..<n])
            do {
                try FileDescriptor(rawValue: output).writeAll(buffer[0..<n])
            } catch {
                throw .infrastructure("cannot write \(destination): \(error)")
            }
        }
        return Crypto.hex(hasher.finalize())
    }

    /// `{"packages": [{name, epoch, version, release, arch}…], "checksums": {"file.rpm": "<sha256 hex>"}}`.
    static func resultsJSON(_ packages: [BuiltPackage]) -> JSON {
        var checksums = JSONObject()
        for p in packages {
            checksums[p.fileName] = .string(p.sha256)
        }
        let list: [JSON] = packages.map { p in
            [
                "name": .string(p.nevra.name),
                "epoch": JSON(p.nevra.epoch),
                "version": .string(p.nevra.version),
                "release": .string(p.nevra.release),
                "arch": .string(p.nevra.arch),
            ]
        }
        return ["packages": .array(list), "checksums": .object(checksums)]
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(BuilderError) {
        do {
            try AtomicFile.write(bytes, to: path)
        } catch {
            throw .infrastructure("\(error)")
        }
    }

    static func baseName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
