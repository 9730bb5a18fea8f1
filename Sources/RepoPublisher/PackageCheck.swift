internal import Glibc
internal import LibCrypto
internal import OpenPGP
internal import RPM
internal import RPMSign

/// The checks of one package file for `RepoVerifier`: listed entry (size, `pkgid`), listing, readability, payload
/// digest and OpenPGP signatures. Reads the headers (bounded by `RepoVerifierLimits.maxPackageHeaderBytes`), then
/// streams the whole file once in chunks of `buffer`'s size, feeding every digest it needs.
enum PackageCheck {
    /// Bytes read for the headers before parsing; larger headers are read with a second `pread`.
    static let initialPrefix = 256 * 1024
    /// Signature header tags holding an OpenPGP signature over the main header (268 RSA, 267 DSA/EdDSA).
    static let headerSignatureTags: [UInt32] = [RPMTag.sigRSAHeader, RPMTag.sigDSAHeader]
    /// Tags holding one over the main header and the payload (1002 PGP, 1005 GPG; older rpmsign).
    static let packageSignatureTags: [UInt32] = [RPMTag.sigPGP, RPMTag.sigGPG]

    /// A signature over header and payload, waiting for the streamed digest.
    private struct PendingSignature {
        var tag: UInt32
        var signature: OpenPGPSignature
        var algorithm: DigestAlgorithm
        var hasher: DigestHasher
    }

    /// The problems of `work` and whether its content was read.
    static func check(
        _ work: PackageWork,
        rootDescriptor: Int32,
        rootPath: String,
        key: OpenPGPPublicKey,
        rsa: RSAPublicKey,
        limits: RepoVerifierLimits,
        buffer: UnsafeMutableRawBufferPointer
    ) -> ([RepoProblem], Bool) {
        let href = work.href
        var problems: [RepoProblem] = []
        func report(_ kind: RepoProblem.Kind, _ detail: String) {
            problems.append(RepoProblem(kind: kind, path: href, detail: detail))
        }
        let displayPath = rootPath + "/" + href
        let descriptor: Int32
        do {
            descriptor = try Sys.openAt(rootDescriptor, Array(href.utf8), O_RDONLY)
        } catch {
            if error.errno == ENOENT || error.errno == ENOTDIR {
                // Gone since the scan (a deletion) when it was only on disk: nothing to report.
                if work.listed != nil { report(.listedRPMMissing, DigestName.missing) }
                return (problems, false)
            }
            report(work.listed != nil ? .listedRPMMismatch : .corruptRPM, "cannot open: \(error)")
            return (problems, false)
        }
        defer { Sys.close(descriptor) }
        let size: Int
        do {
            let info = try Sys.fstat(descriptor, path: displayPath)
            guard info.st_mode & S_IFMT == S_IFREG else {
                report(work.listed != nil ? .listedRPMMissing : .corruptRPM, "not a regular file")
                return (problems, false)
            }
            size = Int(info.st_size)
        } catch {
            report(.corruptRPM, "cannot stat: \(error)")
            return (problems, false)
        }

        // Headers.
        var package: RPMPackage?
        var prefix: [UInt8] = []
        var parseFailure = ""
        do {
            prefix = try Self.readAt(descriptor, count: min(size, Self.initialPrefix), offset: 0, path: displayPath)
            while package == nil {
                do {
                    package = try RPMReader.parse(prefix, maxHeaderBytes: limits.maxPackageHeaderBytes)
                } catch {
                    guard error.code == .truncated, let needed = error.bytesNeeded, needed > prefix.count,
                        needed <= size, needed <= limits.maxPackageHeaderBytes + RPMReader.leadSize
                    else {
                        parseFailure = error.description
                        break
                    }
                    prefix += try Self.readAt(
                        descriptor,
                        count: needed - prefix.count,
                        offset: prefix.count,
                        path: displayPath
                    )
                    if prefix.count < needed {
                        parseFailure = "file shrank while being read"
                        break
                    }
                }
            }
        } catch {
            report(.corruptRPM, "cannot read: \(error)")
            return (problems, false)
        }

        // Signatures: the header ones are checked now; header+payload ones get a digest fed by the stream.
        var signatureProblem: (RepoProblem.Kind, String)?
        var pending: [PendingSignature] = []
        var payloadDigest: (algorithm: DigestAlgorithm, expected: String, hasher: DigestHasher)?
        if let package {
            let mainHeader = Array(prefix[package.mainHeaderRange])
            let present = (Self.headerSignatureTags + Self.packageSignatureTags).filter {
                package.signature.contains($0)
            }
            if present.isEmpty {
                signatureProblem = (.unsignedRPM, "no OpenPGP signature in the signature header")
            }
            for tag in present where signatureProblem == nil {
                switch Self.precheck(tag: tag, header: package.signature, key: key) {
                case .failure(let problem):
                    signatureProblem = (problem.kind, problem.detail)
                case .success(let (signature, algorithm)):
                    if Self.headerSignatureTags.contains(tag) {
                        let digest: [UInt8]
                        do {
                            digest = try signature.signedDigest(over: mainHeader, hashes: LibCryptoHashes())
                        } catch {
                            signatureProblem = (.badSignature, "tag \(tag): cannot hash the header: \(error)")
                            continue
                        }
                        signatureProblem = Self.verdict(tag, signature, algorithm, digest: digest, rsa: rsa)
                    } else {
                        pending.append(
                            PendingSignature(
                                tag: tag,
                                signature: signature,
                                algorithm: algorithm,
                                hasher: DigestHasher(algorithm)
                            )
                        )
                    }
                }
            }
            if let expected = package.main.strings(RPMTag.payloadDigest)?.first, !expected.isEmpty {
                let algorithm: DigestAlgorithm? =
                    switch package.main.uint32s(RPMTag.payloadDigestAlgo)?.first {
                    case 8: .sha256
                    case 10: .sha512
                    default: nil
                    }
                if let algorithm {
                    payloadDigest = (algorithm, expected.lowercased(), DigestHasher(algorithm))
                }
            }
        }

        // One pass over the file.
        let fileAlgorithm = work.listed.flatMap { DigestName.algorithm($0.checksumType) } ?? .sha256
        let fileHasher = DigestHasher(fileAlgorithm)
        var total = 0
        let payloadStart = package?.payloadOffset ?? Int.max
        let headerStart = package?.mainHeaderRange.lowerBound ?? Int.max
        do {
            while true {
                let n = try Sys.read(descriptor, into: buffer, path: displayPath)
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                fileHasher.update(chunk)
                if let payloadDigest, total + n > payloadStart {
                    payloadDigest.hasher.update(
                        UnsafeRawBufferPointer(rebasing: chunk[max(0, payloadStart - total)...])
                    )
                }
                if total + n > headerStart {
                    let part = UnsafeRawBufferPointer(rebasing: chunk[max(0, headerStart - total)...])
                    for signature in pending { signature.hasher.update(part) }
                }
                total += n
                if n < buffer.count { break }
            }
        } catch {
            report(.corruptRPM, "cannot read: \(error)")
            return (problems, false)
        }
        let fileDigest = Crypto.hex(fileHasher.finalize())

        // Listing.
        if let listed = work.listed {
            if let listedSize = listed.size, listedSize != Int64(total) {
                report(.listedRPMMismatch, "size \(total), primary.xml says \(listedSize)")
            }
            if DigestName.algorithm(listed.checksumType) == nil {
                report(.listedRPMMismatch, "checksum type \(listed.checksumType) is not supported")
            } else if fileDigest != listed.checksum.lowercased() {
                report(.listedRPMMismatch, "\(listed.checksumType) \(fileDigest), primary.xml says \(listed.checksum)")
            }
        }
        guard package != nil else {
            // The publisher skips files it cannot read as packages; they cannot be listed.
            report(.corruptRPM, "not a readable package: \(parseFailure)")
            return (problems, true)
        }
        if work.listed == nil && work.listingKnown {
            report(.unlistedRPM, "not in primary.xml")
        }
        if let payloadDigest {
            let actual = Crypto.hex(payloadDigest.hasher.finalize())
            if actual != payloadDigest.expected {
                report(.corruptRPM, "payload does not match PAYLOADDIGEST")
            }
        }
        for signature in pending where signatureProblem == nil {
            signature.signature.hashedPart.withUnsafeBytes { signature.hasher.update($0) }
            OpenPGPSignatureBuilder.trailer(hashedPartLength: signature.signature.hashedPart.count).withUnsafeBytes {
                signature.hasher.update($0)
            }
            let digest = signature.hasher.finalize()
            signatureProblem = Self.verdict(
                signature.tag,
                signature.signature,
                signature.algorithm,
                digest: digest,
                rsa: rsa
            )
        }
        if let (kind, detail) = signatureProblem {
            report(kind, detail)
        }
        return (problems, true)
    }

    /// Parses the signature in `tag` and checks what needs no digest: issuer, algorithms, type.
    private static func precheck(
        tag: UInt32,
        header: RPMHeader,
        key: OpenPGPPublicKey
    ) -> Result<(OpenPGPSignature, DigestAlgorithm), SignatureProblem> {
        guard let bytes = header.binary(tag) else {
            return .failure(SignatureProblem(.badSignature, "tag \(tag) is not binary"))
        }
        let signature: OpenPGPSignature
        do {
            signature = try OpenPGPSignature.parse(bytes)
        } catch {
            return .failure(SignatureProblem(.badSignature, "tag \(tag): not a usable signature packet: \(error)"))
        }
        guard let issuer = signature.issuerKeyID else {
            return .failure(SignatureProblem(.badSignature, "tag \(tag): the signature names no issuer"))
        }
        guard issuer == key.keyID else {
            return .failure(
                SignatureProblem(
                    .wrongKey,
                    "tag \(tag): signed by key \(signature.issuerKeyIDHex ?? "?"), the project key is \(key.keyIDHex)"
                )
            )
        }
        guard signature.publicKeyAlgorithm.isRSA, signature.mpis.count == 1 else {
            return .failure(
                SignatureProblem(.badSignature, "tag \(tag): \(signature.publicKeyAlgorithm) signature from an RSA key")
            )
        }
        guard signature.signatureType == OpenPGPSignature.binaryDocumentType else {
            return .failure(SignatureProblem(.badSignature, "tag \(tag): signature type \(signature.signatureType)"))
        }
        guard let algorithm = LibCryptoHashes.digestAlgorithm(signature.hashAlgorithm), algorithm != .sha1 else {
            return .failure(SignatureProblem(.badSignature, "tag \(tag): hash \(signature.hashAlgorithm) not accepted"))
        }
        return .success((signature, algorithm))
    }

    /// nil when `signature` verifies for `digest`.
    private static func verdict(
        _ tag: UInt32,
        _ signature: OpenPGPSignature,
        _ algorithm: DigestAlgorithm,
        digest: [UInt8],
        rsa: RSAPublicKey
    ) -> (RepoProblem.Kind, String)? {
        guard Array(digest.prefix(2)) == signature.digestPrefix else {
            return (.badSignature, "tag \(tag): the signature does not cover this package (digest prefix differs)")
        }
        guard rsa.verify(signature: signature.mpis[0], digest: digest, algorithm: algorithm) else {
            return (.badSignature, "tag \(tag): RSA signature does not verify with the project key")
        }
        return nil
    }

    struct SignatureProblem: Error {
        var kind: RepoProblem.Kind
        var detail: String

        init(_ kind: RepoProblem.Kind, _ detail: String) {
            self.kind = kind
            self.detail = detail
        }
    }

    /// Up to `count` bytes at `offset` (fewer at end of file).
    private static func readAt(
        _ descriptor: Int32,
        count: Int,
        offset: Int,
        path: String
    ) throws(RepoPublisherError)
        -> [UInt8]
    {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try Sys.typed {
            try bytes.withUnsafeMutableBytes { (raw) throws -> Int in
                try Sys.pread(descriptor, into: raw, at: offset, path: path)
            }
        }
        return Array(bytes[0..<got])
    }
}
