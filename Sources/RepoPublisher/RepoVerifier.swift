internal import AtomicFile
internal import Dispatch
internal import Glibc
internal import Gzip
internal import LibCrypto
public import OpenPGP
internal import RPM
internal import RPMSign
internal import Repodata

/// Checks a published repository directory (a chroot directory of the results tree) against its files and the
/// project's public key:
///
/// - `repodata/repomd.xml` parses; every `<data>` file exists with its `size` and `checksum`, and a compressed one
///   decompresses to its `open-size` and `open-checksum`;
/// - every package primary.xml lists exists with its `size package` and `pkgid` checksum;
/// - every `.rpm` file the publisher indexes (`DirectoryScanner`: the whole tree, symbolic links followed, without
///   the root's `repodata/` and `.koper-repodata/`) is listed;
/// - every package file is signed with the project's key: each OpenPGP signature in its signature header (268 RSA
///   header, the one Koper writes; 1002 header+payload from older rpmsign) must name the key (issuer key ID) and
///   verify (RSASSA-PKCS1-v1_5 over the digest `OpenPGPSignature.signedDigest` defines); the payload must match its
///   PAYLOADDIGEST, since the header signature covers the payload only through it.
///
/// Everything found is reported as a `RepoProblem`; only a directory that cannot be opened (or a key that cannot be
/// used) throws. Reads are bounded (`RepoVerifierLimits`); package files are streamed in 1 MiB chunks.
///
/// The metadata and the directory listing are read under a shared `flock` on `.koper-repodata/lock` (when it
/// exists), so a publish of the same directory never shows half-way; the package files are read after the lock is
/// released (a publish may wait behind the metadata check, never behind reading every package). A build that adds
/// its packages while the check runs may show as `unlistedRPM` until its own publish.
///
/// Blocking: the async entry points run the work on the verifier's own serial queue, never on the Swift concurrency
/// pool (`verifyBlocking` runs on the calling thread).
public enum RepoVerifier {
    /// Verifications run here, one at a time (they read whole repositories; two at once only compete for the disk).
    private static let queue = DispatchQueue(label: "koper.repo-verifier")

    /// Checks `directory` on the verifier's queue. See the type's documentation.
    ///
    /// - Throws: `RepoPublisherError` when `directory` cannot be opened as a directory or `publicKey` is not a usable
    ///   RSA key; never for a problem of the repository.
    public static func verify(
        directory: String,
        publicKey: OpenPGPPublicKey,
        limits: RepoVerifierLimits = RepoVerifierLimits()
    ) async throws(RepoPublisherError) -> RepoVerification {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<RepoVerification, RepoPublisherError>, Never>) in
            Self.queue.async {
                continuation.resume(
                    returning: Result { () throws(RepoPublisherError) -> RepoVerification in
                        try Self.verifyBlocking(directory: directory, publicKey: publicKey, limits: limits)
                    }
                )
            }
        }
        return try result.get()
    }

    /// Reads a project's public key (`results/OWNER/PROJECT/pubkey.gpg`: ASCII-armored as Keygen serves it, or
    /// binary) on the verifier's queue.
    public static func loadPublicKey(path: String) async throws(RepoPublisherError) -> OpenPGPPublicKey {
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<OpenPGPPublicKey, RepoPublisherError>, Never>) in
            Self.queue.async {
                continuation.resume(
                    returning: Result { () throws(RepoPublisherError) -> OpenPGPPublicKey in
                        try Self.loadPublicKeyBlocking(path: path)
                    }
                )
            }
        }
        return try result.get()
    }

    /// `loadPublicKey(path:)` on the calling thread.
    public static func loadPublicKeyBlocking(path: String) throws(RepoPublisherError) -> OpenPGPPublicKey {
        let bytes = try RepoEngine.readWholeFile(path, limit: OpenPGPSecretKey.maxTransferableBytes)
        return try self.publicKey(bytes, path: path)
    }

    /// Parses a public key export (armored or binary).
    public static func publicKey(_ bytes: [UInt8], path: String? = nil) throws(RepoPublisherError) -> OpenPGPPublicKey {
        do {
            var binary = bytes
            if bytes.first == UInt8(ascii: "-") {
                let armored = try OpenPGPArmor.dearmor(bytes)
                guard armored.kind == .publicKey else {
                    throw RepoPublisherError(code: .invalidKey, path: path, detail: "armored \(armored.kind.rawValue)")
                }
                binary = armored.bytes
            }
            return try OpenPGPPublicKey.parseTransferable(binary, hashes: LibCryptoHashes())
        } catch let error as RepoPublisherError {
            throw error
        } catch {
            throw RepoPublisherError(code: .invalidKey, path: path, detail: "not a usable public key: \(error)")
        }
    }

    /// `verify` on the calling thread (blocking file I/O: not for the Swift concurrency pool).
    public static func verifyBlocking(
        directory: String,
        publicKey: OpenPGPPublicKey,
        limits: RepoVerifierLimits = RepoVerifierLimits()
    ) throws(RepoPublisherError) -> RepoVerification {
        guard publicKey.algorithm.isRSA else {
            throw RepoPublisherError(code: .invalidKey, detail: "key algorithm \(publicKey.algorithm) is not RSA")
        }
        let rsa: RSAPublicKey
        do {
            rsa = try RSAPublicKey(modulus: publicKey.modulus, exponent: publicKey.exponent)
        } catch {
            throw RepoPublisherError(code: .invalidKey, detail: "libcrypto refused the key: \(error)")
        }
        let started = Sys.monotonicNanoseconds()
        let root = RepoPublisher.canonicalPath(directory)
        let rootDescriptor: Int32
        do {
            rootDescriptor = try Sys.open(root, O_RDONLY | O_DIRECTORY)
        } catch {
            if error.errno == ENOTDIR { throw RepoPublisherError(code: .notADirectory, path: root) }
            throw error
        }
        defer { Sys.close(rootDescriptor) }
        var run = Run(root: root, rootDescriptor: rootDescriptor, limits: limits)

        // Metadata and listing under the publisher's lock (shared: verifications do not exclude each other).
        let lockPath = root + "/" + RepoEngine.indexDirectoryName + "/" + RepoEngine.lockFileName
        var lockDescriptor: Int32 = -1
        if (try? Sys.statIfExists(lockPath)) != nil, let descriptor = try? Sys.open(lockPath, O_RDONLY) {
            lockDescriptor = descriptor
            _ = retryingOnInterrupt { flock(descriptor, LOCK_SH) }
        }
        let listed: [PrimaryEntry]
        let scan: DirectoryScanner.Result
        do {
            defer { if lockDescriptor >= 0 { Sys.close(lockDescriptor) } }
            listed = run.checkMetadata()
            let pipeline = DirectoryScanner.Pipeline(rootDescriptor: rootDescriptor)
            _ = try DirectoryScanner.walk(
                rootDescriptor: rootDescriptor,
                rootPath: root,
                cache: DirectoryCache(),
                pipeline: pipeline,
                workers: 1
            )
            pipeline.work()
            scan = pipeline.result()
        }

        // Package files: every listed one and every one on disk, each read once.
        var work: [PackageWork] = []
        var index: [String: Int] = [:]
        for entry in listed {
            guard index[entry.locationHref] == nil else { continue }
            index[entry.locationHref] = work.count
            work.append(PackageWork(href: entry.locationHref, listed: entry, listingKnown: run.listingKnown))
        }
        for file in scan.files {
            let href = String(decoding: file.href, as: UTF8.self)
            if index[href] == nil {
                index[href] = work.count
                work.append(PackageWork(href: href, listed: nil, listingKnown: run.listingKnown))
            }
        }
        for path in scan.unreadable {
            run.report(.unlistedRPM, Self.relative(path, root: root), "directory cannot be read")
        }
        let outcomes = UnsafeResults<[RepoProblem]>(count: work.count)
        let checked = AtomicCounter()
        let next = AtomicCounter()
        let shared = UnsafeSendable(work)
        let key = UnsafeSendable((publicKey, rsa))
        let capturedRoot = root
        DispatchQueue.concurrentPerform(iterations: min(limits.workers, max(1, work.count))) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: PackageIngest.chunkSize, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let item = next.increment()
                if item >= shared.value.count { break }
                let (problems, read) = PackageCheck.check(
                    shared.value[item],
                    rootDescriptor: rootDescriptor,
                    rootPath: capturedRoot,
                    key: key.value.0,
                    rsa: key.value.1,
                    limits: limits,
                    buffer: buffer
                )
                if read { _ = checked.increment() }
                outcomes.set(item, problems)
            }
        }
        for item in 0..<work.count {
            run.problems += outcomes.take(item)
        }
        run.problems.sort {
            ($0.path, $0.kind.description, $0.detail) < ($1.path, $1.kind.description, $1.detail)
        }
        return RepoVerification(
            directory: directory,
            problems: run.problems,
            metadataRecords: run.records,
            listedPackages: listed.count,
            packageFiles: scan.files.count,
            checkedPackages: checked.increment(),
            seconds: Double(Sys.monotonicNanoseconds() - started) / 1e9
        )
    }

    static func relative(_ path: String, root: String) -> String {
        guard path.hasPrefix(root + "/") else { return path }
        return String(path.dropFirst(root.count + 1))
    }

    /// Whether `href` stays inside the repository: relative, no empty, `.` or `..` component.
    static func isConfined(_ href: String) -> Bool {
        guard !href.isEmpty, !href.hasPrefix("/") else { return false }
        return !href.split(separator: "/", omittingEmptySubsequences: false).contains {
            $0.isEmpty || $0 == "." || $0 == ".."
        }
    }

    /// The metadata part of one verification.
    private struct Run {
        let root: String
        let rootDescriptor: Int32
        let limits: RepoVerifierLimits
        var problems: [RepoProblem] = []
        var records = 0
        /// primary.xml was read: a package file missing from it is unlisted (otherwise the listing is unknown).
        var listingKnown = false

        init(root: String, rootDescriptor: Int32, limits: RepoVerifierLimits) {
            self.root = root
            self.rootDescriptor = rootDescriptor
            self.limits = limits
        }

        mutating func report(_ kind: RepoProblem.Kind, _ path: String, _ detail: String) {
            self.problems.append(RepoProblem(kind: kind, path: path, detail: detail))
        }

        /// Checks repomd.xml and the files it names; returns primary.xml's packages (empty when unreadable).
        mutating func checkMetadata() -> [PrimaryEntry] {
            let repomdPath = "repodata/repomd.xml"
            let bytes: [UInt8]
            switch self.read(repomdPath, limit: self.limits.maxRepomdBytes) {
            case .success(let read): bytes = read
            case .failure(let failure):
                self.report(.unreadableRepomd, repomdPath, failure.reason)
                return []
            }
            let entries: [RepomdEntry]
            do {
                entries = try RepodataDocuments.repomd(bytes)
            } catch {
                self.report(.unreadableRepomd, repomdPath, error.description)
                return []
            }
            self.records = entries.count
            guard !entries.isEmpty, entries.count <= self.limits.maxMetadataRecords else {
                self.report(.unreadableRepomd, repomdPath, "\(entries.count) <data> records")
                return []
            }
            var primary: [UInt8]?
            var sawPrimary = false
            for entry in entries {
                let content = self.checkRecord(entry, repomdPath: repomdPath)
                if entry.type == "primary" {
                    sawPrimary = true
                    primary = content
                }
            }
            guard sawPrimary else {
                self.report(.malformedPrimary, repomdPath, "no primary record")
                return []
            }
            guard let primary else { return [] }  // the record's problem is reported
            do {
                let (packages, declared) = try RepodataDocuments.primary(primary)
                if let declared, declared != packages.count {
                    self.report(
                        .malformedPrimary,
                        repomdPath,
                        "primary declares \(declared) packages and lists \(packages.count)"
                    )
                }
                self.listingKnown = true
                var seen: Set<String> = []
                var usable: [PrimaryEntry] = []
                for package in packages {
                    guard RepoVerifier.isConfined(package.locationHref) else {
                        self.report(.malformedPrimary, package.locationHref, "location outside the repository")
                        continue
                    }
                    guard seen.insert(package.locationHref).inserted else {
                        self.report(.malformedPrimary, package.locationHref, "listed twice")
                        continue
                    }
                    usable.append(package)
                }
                return usable
            } catch {
                self.report(.malformedPrimary, entries.first { $0.type == "primary" }?.locationHref ?? "", "\(error)")
                return []
            }
        }

        /// Checks one `<data>` record; returns the file's (uncompressed) content when it is sound.
        mutating func checkRecord(_ entry: RepomdEntry, repomdPath: String) -> [UInt8]? {
            let href = entry.locationHref
            guard RepoVerifier.isConfined(href) else {
                self.report(.unreadableRepomd, repomdPath, "record \(entry.type) points outside the repository")
                return nil
            }
            guard let stored = DigestName.algorithm(entry.checksumType) else {
                self.report(.unreadableRepomd, repomdPath, "record \(entry.type): checksum type \(entry.checksumType)")
                return nil
            }
            let bytes: [UInt8]
            switch self.read(href, limit: self.limits.maxMetadataFileBytes) {
            case .success(let read): bytes = read
            case .failure(let failure):
                self.report(
                    failure.reason == DigestName.missing ? .missingMetadataFile : .metadataChecksumMismatch,
                    href,
                    failure.reason
                )
                return nil
            }
            var sound = true
            if let size = entry.size, size != Int64(bytes.count) {
                self.report(.metadataChecksumMismatch, href, "size \(bytes.count), repomd.xml says \(size)")
                sound = false
            }
            let actual = Crypto.hex(Crypto.digest(stored, bytes))
            if actual != entry.checksum.lowercased() {
                self.report(
                    .metadataChecksumMismatch,
                    href,
                    "\(entry.checksumType) \(actual), repomd.xml says \(entry.checksum)"
                )
                sound = false
            }
            guard href.hasSuffix(".gz") else { return sound ? bytes : nil }
            let content: [UInt8]
            do {
                content = try Gzip.decompress(bytes, limit: self.limits.maxOpenMetadataBytes)
            } catch {
                self.report(.metadataContentMismatch, href, "does not decompress: \(error)")
                return nil
            }
            if let openSize = entry.openSize, openSize != Int64(content.count) {
                self.report(.metadataContentMismatch, href, "open size \(content.count), repomd.xml says \(openSize)")
                sound = false
            }
            if let openChecksum = entry.openChecksum {
                if let algorithm = DigestName.algorithm(entry.openChecksumType ?? "") {
                    let actualOpen = Crypto.hex(Crypto.digest(algorithm, content))
                    if actualOpen != openChecksum.lowercased() {
                        self.report(
                            .metadataContentMismatch,
                            href,
                            "open \(entry.openChecksumType ?? "") \(actualOpen), repomd.xml says \(openChecksum)"
                        )
                        sound = false
                    }
                } else {
                    self.report(.unreadableRepomd, repomdPath, "open checksum type \(entry.openChecksumType ?? "")")
                }
            }
            // The content is still parsed when only the stored file's checksum is off (the listing may be fine).
            return content
        }

        /// Reads a file below the root, or says why not (`DigestName.missing` when it does not exist).
        func read(_ href: String, limit: Int) -> Result<[UInt8], ReadFailure> {
            let descriptor: Int32
            do {
                descriptor = try Sys.openAt(self.rootDescriptor, Array(href.utf8), O_RDONLY)
            } catch {
                if error.errno == ENOENT || error.errno == ENOTDIR { return .failure(ReadFailure(DigestName.missing)) }
                return .failure(ReadFailure("cannot open: \(error)"))
            }
            defer { Sys.close(descriptor) }
            do {
                let info = try Sys.fstat(descriptor, path: href)
                guard info.st_mode & S_IFMT == S_IFREG else { return .failure(ReadFailure("not a regular file")) }
                let size = Int(info.st_size)
                guard size <= limit else { return .failure(ReadFailure("\(size) bytes (limit \(limit))")) }
                var bytes = [UInt8](repeating: 0, count: size)
                let got = try Sys.typed {
                    try bytes.withUnsafeMutableBytes { (buffer) throws -> Int in
                        try Sys.read(descriptor, into: buffer, path: href)
                    }
                }
                return .success(Array(bytes[0..<got]))
            } catch {
                return .failure(ReadFailure("cannot read: \(error)"))
            }
        }
    }

    struct ReadFailure: Error {
        var reason: String

        init(_ reason: String) {
            self.reason = reason
        }
    }
}

/// Checksum type names of repodata (`sha256`, `sha512`, `sha1`/`sha`).
enum DigestName {
    static let missing = "does not exist"

    static func algorithm(_ name: String) -> DigestAlgorithm? {
        switch name.lowercased() {
        case "sha256": return .sha256
        case "sha512": return .sha512
        case "sha1", "sha": return .sha1
        default: return nil
        }
    }
}

/// One package file to check: listed in primary.xml, found on disk, or both.
struct PackageWork {
    var href: String
    var listed: PrimaryEntry?
    /// Whether primary.xml could be read (an unreadable one is reported once, not as every package unlisted).
    var listingKnown: Bool
}

extension RepoPublisher {
    /// Repairs what a republish can: when `verification` holds a problem that is `isRepairableByRepublish`,
    /// publishes its directory again with `fullRebuild: true` (every package read and rendered again, the index
    /// rewritten) and verifies again. Problems of the package files themselves (unsigned, wrong key, bad signature,
    /// corrupt) stay in `after`: they need the packages signed again or removed.
    ///
    /// - Throws: what `publish` or `RepoVerifier.verify` throw (the directory is gone, a system call failed).
    public func repair(
        _ verification: RepoVerification,
        publicKey: OpenPGPPublicKey,
        limits: RepoVerifierLimits = RepoVerifierLimits()
    ) async throws(RepoPublisherError) -> RepoRepair {
        guard verification.needsRepublish else {
            return RepoRepair(before: verification, republished: false, after: verification)
        }
        _ = try await self.publish(directory: verification.directory, fullRebuild: true)
        let after = try await RepoVerifier.verify(
            directory: verification.directory,
            publicKey: publicKey,
            limits: limits
        )
        return RepoRepair(before: verification, republished: true, after: after)
    }

    /// `RepoVerifier.verify`, then `repair` when needed: what the Backend runs after a publish.
    public func verifyAndRepair(
        directory: String,
        publicKey: OpenPGPPublicKey,
        limits: RepoVerifierLimits = RepoVerifierLimits()
    ) async throws(RepoPublisherError) -> RepoRepair {
        let before = try await RepoVerifier.verify(directory: directory, publicKey: publicKey, limits: limits)
        return try await self.repair(before, publicKey: publicKey, limits: limits)
    }
}
