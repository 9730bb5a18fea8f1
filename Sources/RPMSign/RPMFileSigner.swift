import LibCrypto
import OpenPGP
import RPM

#if canImport(Glibc)
import Glibc
#endif

/// An RPM file read and checked for signing: what the signature must cover, and enough to detect a change of the
/// file before the signed copy replaces it. Made by `RPMFileSigner.prepare(path:)`.
public struct PreparedRPM: Sendable {
    public let path: String
    public let package: RPMPackage
    /// The main header bytes `[hdrStart, hdrEnd)`: exactly what the header signature covers.
    public let mainHeader: [UInt8]
    /// File size when prepared.
    public var fileSize: Int { self.identity.size }
    /// Bytes `[0, hdrEnd)` of the file.
    let prefix: [UInt8]
    let identity: FileIdentity
}

/// What `RPMFileSigner` did.
public struct RPMSignResult: Sendable {
    /// 268 (RSAHEADER) or 267 (DSAHEADER).
    public let tag: UInt32
    public let signature: OpenPGPSignature
    /// The signature header kept its size (reserved space absorbed the change), so the main header did not move.
    public let keptLayout: Bool
    public let oldFileSize: Int
    public let newFileSize: Int
    /// The count of tag 1008 in the new signature header, if there is one.
    public let reservedSpace: Int?
}

/// Signs RPM files on disk, following docs/rpm-repodata-signing.md §4.3.
///
/// 1. `prepare`: read the lead and both headers (bounded by `RPMReader`'s limits), check the main header's SHA-256
///    (tag 273; SHA-1 tag 269 for packages without it) and the size (tag 1000/270 = EOF − hdrStart).
/// 2. The caller obtains a detached signature over `mainHeader` (in process with `OpenPGPKeySigner`, or remotely).
/// 3. `finish`: validate the packet (`RPMSignaturePacket.validate`), build the new signature header
///    (`RPMSignatureWriter`), write lead + new signature header + the original `[hdrStart, EOF)` to a temporary
///    file in the same directory (payload copied in `copyChunkSize` chunks and checked against tag 5092 on the way),
///    copy the mode and (when permitted) owner, `fsync`, check that the original was neither replaced nor modified
///    since `prepare`, `rename` it over the original and `fsync` the directory. On any error the temporary file is
///    removed and the original is untouched. A concurrent reader sees either the old or the new file, never a mix.
///
/// Symlinks are refused (`O_NOFOLLOW`). Blocking I/O: call from a thread or queue that may block, not from the
/// cooperative pool.
public enum RPMFileSigner {
    /// Size of the chunks in which the payload is copied.
    public static let copyChunkSize = 1 << 20

    public static func prepare(path: String) throws(RPMSignError) -> PreparedRPM {
        let fd = try FileIO.openForReading(path)
        defer { FileIO.close(fd) }
        let identity = try FileIO.fileStatus(fd, path)
        guard identity.isRegularFile else {
            throw RPMSignError(code: .io, detail: "\(path) is not a regular file")
        }
        let (package, prefix) = try self.readHeaders(fd, path: path, size: identity.size)
        let mainHeader = Array(prefix[package.mainHeaderRange])

        // The main header digest rpm recorded must match, as rpmsign checks before signing.
        let sig = package.signature
        if let expected = sig.string(RPMTag.sigSHA256Header) {
            guard expected.lowercased() == Crypto.sha256Hex(mainHeader) else {
                throw RPMSignError(code: .invalidPackage, detail: "\(path): main header does not match SHA256HEADER")
            }
        } else if let expected = sig.string(RPMTag.sigSHA1Header) {
            guard expected.lowercased() == Crypto.hex(Crypto.sha1(mainHeader)) else {
                throw RPMSignError(code: .invalidPackage, detail: "\(path): main header does not match SHA1HEADER")
            }
        } else {
            throw RPMSignError(code: .invalidPackage, detail: "\(path): no header digest (tags 273/269) to check")
        }
        let recordedSize = sig.uint64s(RPMTag.sigLongSize)?.first ?? sig.uint64s(RPMTag.sigSize)?.first
        if let recordedSize {
            let actual = UInt64(identity.size - package.mainHeaderRange.lowerBound)
            guard recordedSize == actual else {
                throw RPMSignError(
                    code: .invalidPackage,
                    detail: "\(path): header and payload are \(actual) bytes, the signature header says \(recordedSize)"
                )
            }
        }
        return PreparedRPM(path: path, package: package, mainHeader: mainHeader, prefix: prefix, identity: identity)
    }

    /// Inserts `signaturePacket` (binary, or ASCII-armored "PGP SIGNATURE") into the prepared file and replaces it.
    @discardableResult
    public static func finish(
        _ prepared: PreparedRPM,
        signaturePacket: [UInt8],
        expectedKeyID: [UInt8]? = nil
    ) throws(RPMSignError) -> RPMSignResult {
        let path = prepared.path
        var packet = signaturePacket
        if packet.first == UInt8(ascii: "-") {
            do {
                let armored = try OpenPGPArmor.dearmor(packet)
                guard armored.kind == .signature else {
                    throw RPMSignError(
                        code: .invalidSignature,
                        detail: "armored \(armored.kind.rawValue), not a signature"
                    )
                }
                packet = armored.bytes
            } catch let error as RPMSignError {
                throw error
            } catch {
                throw RPMSignError(code: .invalidSignature, detail: "bad armor", underlyingError: error)
            }
        }
        let (tag, signature) = try RPMSignaturePacket.validate(
            packet,
            mainHeader: prepared.mainHeader,
            expectedKeyID: expectedKeyID
        )
        let newPrefix: [UInt8]
        let plan: RPMSignatureWriter.Plan
        do {
            (newPrefix, plan) = try RPMSignatureWriter.signedPrefix(
                prepared.prefix,
                package: prepared.package,
                tag: tag,
                packet: packet
            )
        } catch {
            throw RPMSignError(
                code: .invalidPackage,
                detail: "\(path): cannot build the signature header",
                underlyingError: error
            )
        }

        let source = try FileIO.openForReading(path)
        defer { FileIO.close(source) }
        guard try FileIO.fileStatus(source, path) == prepared.identity else {
            throw RPMSignError(code: .fileChanged, detail: "\(path) changed since it was prepared")
        }
        let hdrStart = prepared.package.mainHeaderRange.lowerBound
        let hdrEnd = prepared.package.mainHeaderRange.upperBound
        guard try FileIO.read(source, count: hdrEnd, at: 0, path: path) == prepared.prefix else {
            throw RPMSignError(code: .fileChanged, detail: "\(path) changed since it was prepared")
        }

        let (directory, name) = self.split(path)
        let suffix: String
        do {
            suffix = Crypto.hex(try Crypto.randomBytes(8))
        } catch {
            throw RPMSignError(code: .io, detail: "no random bytes for a temporary name", underlyingError: error)
        }
        let tempPath = directory + "/." + name + ".koper-sign." + suffix
        let temp = try FileIO.createExclusive(tempPath)
        var tempOpen = true
        var renamed = false
        defer {
            if tempOpen { FileIO.close(temp) }
            if !renamed { _ = unlink(tempPath) }
        }

        try FileIO.write(temp, newPrefix, path: tempPath)
        try self.copyRest(
            from: source,
            path: path,
            to: temp,
            tempPath: tempPath,
            start: hdrStart,
            payloadStart: hdrEnd,
            end: prepared.identity.size,
            payloadDigest: self.payloadDigest(prepared.package.main)
        )
        guard fchmod(temp, mode_t(prepared.identity.mode & 0o7777)) == 0 else {
            throw FileIO.failure("fchmod", tempPath)
        }
        if prepared.identity.uid != getuid() || prepared.identity.gid != getgid() {
            _ = fchown(temp, uid_t(prepared.identity.uid), gid_t(prepared.identity.gid))  // best effort
        }
        try FileIO.fsync(temp, path: tempPath)
        FileIO.close(temp)
        tempOpen = false

        // The path must still name the file we read, unmodified.
        guard try FileIO.pathStatus(path) == prepared.identity,
            try FileIO.fileStatus(source, path) == prepared.identity
        else {
            throw RPMSignError(code: .fileChanged, detail: "\(path) changed while it was being signed")
        }
        guard rename(tempPath, path) == 0 else { throw FileIO.failure("rename", tempPath) }
        renamed = true
        FileIO.syncDirectory(directory)

        let newSize = prepared.identity.size + plan.sizeChange
        return RPMSignResult(
            tag: tag,
            signature: signature,
            keptLayout: plan.keepsLayout,
            oldFileSize: prepared.identity.size,
            newFileSize: newSize,
            reservedSpace: plan.reservedSpace
        )
    }

    /// `prepare`, sign the main header with `signer`, `finish`.
    @discardableResult
    public static func signRPM(path: String, signer: some RPMHeaderSigner) throws(RPMSignError) -> RPMSignResult {
        let prepared = try self.prepare(path: path)
        let packet: [UInt8]
        do {
            packet = try signer.signature(forHeader: prepared.mainHeader)
        } catch let error as RPMSignError {
            throw error
        } catch {
            throw RPMSignError(code: .signerFailed, detail: "signer failed", underlyingError: error)
        }
        return try self.finish(prepared, signaturePacket: packet, expectedKeyID: signer.expectedKeyID)
    }

    // MARK: - Helpers

    /// Reads `[0, hdrEnd)`, growing the read as `RPMReader` asks (its header limits bound every request).
    private static func readHeaders(_ fd: Int32, path: String, size: Int) throws(RPMSignError) -> (RPMPackage, [UInt8])
    {
        var want = min(size, 64 << 10)
        var prefix: [UInt8] = []
        while true {
            if want > prefix.count {
                prefix += try FileIO.read(fd, count: want - prefix.count, at: prefix.count, path: path)
            }
            do {
                let package = try RPMReader.parse(prefix)
                return (package, Array(prefix[0..<package.mainHeaderRange.upperBound]))
            } catch {
                guard error.code == .truncated, let needed = error.bytesNeeded, needed <= size, needed > prefix.count
                else {
                    throw RPMSignError(
                        code: .invalidPackage,
                        detail: "\(path) is not a valid RPM",
                        underlyingError: error
                    )
                }
                want = needed
            }
        }
    }

    private struct PayloadDigest {
        var algorithm: DigestAlgorithm
        var expectedHex: String
    }

    /// Tag 5092 (PAYLOADDIGEST) with algorithm 5093 = 8 (SHA-256) or 10 (SHA-512); nil when absent or another hash.
    private static func payloadDigest(_ main: RPMHeader) -> PayloadDigest? {
        guard let expected = main.strings(RPMTag.payloadDigest)?.first, !expected.isEmpty else { return nil }
        switch main.uint32s(RPMTag.payloadDigestAlgo)?.first {
        case 8: return PayloadDigest(algorithm: .sha256, expectedHex: expected.lowercased())
        case 10: return PayloadDigest(algorithm: .sha512, expectedHex: expected.lowercased())
        default: return nil
        }
    }

    /// Copies `[start, end)` of the source to the end of the temp file in bounded chunks, hashing `[payloadStart,
    /// end)` for the payload digest check.
    private static func copyRest(
        from source: Int32,
        path: String,
        to temp: Int32,
        tempPath: String,
        start: Int,
        payloadStart: Int,
        end: Int,
        payloadDigest: PayloadDigest?
    ) throws(RPMSignError) {
        let hasher = payloadDigest.map { DigestHasher($0.algorithm) }
        var offset = start
        while offset < end {
            let count = min(self.copyChunkSize, end - offset)
            let chunk = try FileIO.read(source, count: count, at: offset, path: path)
            if let hasher, offset + count > payloadStart {
                let from = max(0, payloadStart - offset)
                hasher.update(chunk[from...])
            }
            try FileIO.write(temp, chunk, path: tempPath)
            offset += count
        }
        if let payloadDigest, let hasher {
            guard Crypto.hex(hasher.finalize()) == payloadDigest.expectedHex else {
                throw RPMSignError(code: .invalidPackage, detail: "\(path): payload does not match PAYLOADDIGEST")
            }
        }
    }

    /// Directory and file name of `path`.
    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
