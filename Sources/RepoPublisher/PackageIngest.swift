internal import Glibc
internal import LibCrypto
internal import RPM
internal import Repodata

/// One package file read from disk: its content digest and, when it had to be (re)rendered, its three
/// fragments.
struct IngestedPackage {
    var href: [UInt8]
    var key: FileKey
    var digest: Digest
    /// nil when the caller's previous fragments could be reused (same digest, href and mtime).
    var fragments: GeneratedFragments?
}

struct GeneratedFragments {
    /// Uncompressed fragments and their SHA-256, indexed by `MetadataKind.rawValue`.
    var raw: [[UInt8]]
    var rawDigests: [Digest]
}

/// Why a file is not in the repository (createrepo_c skips such files with a warning).
struct RejectedFile: Sendable {
    var href: [UInt8]
    var key: FileKey
    var reason: String
}

enum PackageIngest {
    /// Bytes read for the header before parsing; larger headers are read with a second `pread`.
    static let initialPrefix = 256 * 1024
    static let chunkSize = 1 << 20

    enum Outcome {
        case ingested(IngestedPackage)
        case rejected(RejectedFile)
        case vanished
    }

    /// Reads `href` below `rootDescriptor`, hashes the whole file and, unless `reusable` says the old
    /// fragments still apply, renders new ones.
    ///
    /// - Parameter reusable: the digest and `time file` of the fragments the index already holds for this
    ///   href, if any.
    static func ingest(
        rootDescriptor: Int32,
        rootPath: String,
        href: [UInt8],
        reusable: (digest: Digest, mtime: Int64)?,
        changelogLimit: Int,
        buffer: UnsafeMutableRawBufferPointer
    ) throws(RepoPublisherError) -> Outcome {
        let displayPath = rootPath + "/" + String(decoding: href, as: UTF8.self)
        let descriptor: Int32
        do {
            descriptor = try Sys.openAt(rootDescriptor, href, O_RDONLY)
        } catch {
            if error.errno == ENOENT || error.errno == ENOTDIR { return .vanished }
            throw error
        }
        defer { Sys.close(descriptor) }
        let info = try Sys.fstat(descriptor, path: displayPath)
        let key = FileKey(info)

        // Hash the whole file in chunks, keeping the first bytes for the header.
        let hasher = DigestHasher(.sha256)
        var prefix: [UInt8] = []
        prefix.reserveCapacity(min(Int(info.st_size), Self.initialPrefix))
        var total = 0
        while true {
            let n = try Sys.read(descriptor, into: buffer, path: displayPath)
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher.update(chunk)
            if prefix.count < Self.initialPrefix {
                prefix.append(contentsOf: chunk.prefix(Self.initialPrefix - prefix.count))
            }
            total += n
            if n < buffer.count { break }
        }
        let digestBytes = hasher.finalize()
        let digest = Digest(digestBytes)
        if let reusable, reusable.digest == digest, reusable.mtime == key.mtimeSeconds {
            return .ingested(IngestedPackage(href: href, key: key, digest: digest, fragments: nil))
        }

        // Parse the header, reading more when it is larger than the prefix.
        var package: RPMPackage?
        var failure = ""
        while package == nil {
            do {
                package = try RPMReader.parse(prefix)
            } catch {
                if error.code == .truncated, let needed = error.bytesNeeded, needed > prefix.count, needed <= total {
                    let start = prefix.count
                    prefix.append(contentsOf: repeatElement(0, count: needed - start))
                    let got = try Sys.typed {
                        try prefix.withUnsafeMutableBytes { (raw) throws -> Int in
                            try Sys.pread(
                                descriptor,
                                into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]),
                                at: start,
                                path: displayPath
                            )
                        }
                    }
                    if got < needed - start {
                        failure = "file shrank while being read"
                        break
                    }
                    continue
                }
                failure = error.description
                break
            }
        }
        guard let package else {
            return .rejected(RejectedFile(href: href, key: key, reason: failure))
        }
        let facts = PackageFileFacts(
            locationHref: href,
            size: Int64(total),
            mtime: key.mtimeSeconds,
            checksum: Crypto.hex(digestBytes),
            headerRange: package.mainHeaderRange
        )
        let fragments: PackageFragments
        do {
            fragments = try PackageXML.fragments(for: package, file: facts, changelogLimit: changelogLimit)
        } catch {
            return .rejected(RejectedFile(href: href, key: key, reason: error.description))
        }
        var generated = GeneratedFragments(raw: [], rawDigests: [])
        for kind in MetadataKind.allCases {
            let raw = fragments[kind]
            generated.raw.append(raw)
            generated.rawDigests.append(Digest(Crypto.sha256(raw)))
        }
        // `size package` is the file size at the time we read it (`total`), as createrepo_c's stat+read.
        return .ingested(IngestedPackage(href: href, key: key, digest: digest, fragments: generated))
    }
}
