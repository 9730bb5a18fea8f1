/// One thing wrong with a published repository directory. Paths are relative to the directory.
public struct RepoProblem: Sendable, Hashable, CustomStringConvertible {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case unreadableRepomd
            case missingMetadataFile
            case metadataChecksumMismatch
            case metadataContentMismatch
            case malformedPrimary
            case listedRPMMissing
            case listedRPMMismatch
            case unlistedRPM
            case corruptRPM
            case unsignedRPM
            case wrongKey
            case badSignature
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// `repodata/repomd.xml` is missing, too large, not well-formed XML or has no usable `<data>` record.
        public static let unreadableRepomd = Kind(.unreadableRepomd)
        /// A file a `<data>` record points to does not exist.
        public static let missingMetadataFile = Kind(.missingMetadataFile)
        /// A metadata file's size or checksum differs from its `<data>` record (`size`, `checksum`).
        public static let metadataChecksumMismatch = Kind(.metadataChecksumMismatch)
        /// A compressed metadata file does not decompress, or its content differs from `open-size`/`open-checksum`.
        public static let metadataContentMismatch = Kind(.metadataContentMismatch)
        /// There is no primary record, or primary.xml is not a readable package list.
        public static let malformedPrimary = Kind(.malformedPrimary)
        /// A package primary.xml lists does not exist.
        public static let listedRPMMissing = Kind(.listedRPMMissing)
        /// A listed package's file differs from its entry (`size package`, the `pkgid` checksum).
        public static let listedRPMMismatch = Kind(.listedRPMMismatch)
        /// A package file the publisher would index is not listed.
        public static let unlistedRPM = Kind(.unlistedRPM)
        /// A `.rpm` file that is not a readable package, or whose payload does not match its PAYLOADDIGEST.
        public static let corruptRPM = Kind(.corruptRPM)
        /// A package without an OpenPGP signature (tags 268, 267, 1002, 1005).
        public static let unsignedRPM = Kind(.unsignedRPM)
        /// A package signed by another key than the project's.
        public static let wrongKey = Kind(.wrongKey)
        /// A package whose signature names the project's key but does not verify (or cannot be parsed).
        public static let badSignature = Kind(.badSignature)

        public static let all: [Kind] = [
            .unreadableRepomd, .missingMetadataFile, .metadataChecksumMismatch, .metadataContentMismatch,
            .malformedPrimary, .listedRPMMissing, .listedRPMMismatch, .unlistedRPM, .corruptRPM, .unsignedRPM,
            .wrongKey, .badSignature,
        ]

        /// Whether writing the repository metadata again (`publish(fullRebuild: true)`) removes this problem: true
        /// for metadata and listing problems, false for problems of the package files themselves.
        public var isRepairableByRepublish: Bool {
            switch self.value {
            case .unreadableRepomd, .missingMetadataFile, .metadataChecksumMismatch, .metadataContentMismatch,
                .malformedPrimary, .listedRPMMissing, .listedRPMMismatch, .unlistedRPM:
                return true
            case .corruptRPM, .unsignedRPM, .wrongKey, .badSignature:
                return false
            }
        }

        public var description: String {
            switch self.value {
            case .unreadableRepomd: return "unreadable-repomd"
            case .missingMetadataFile: return "missing-metadata-file"
            case .metadataChecksumMismatch: return "metadata-checksum-mismatch"
            case .metadataContentMismatch: return "metadata-content-mismatch"
            case .malformedPrimary: return "malformed-primary"
            case .listedRPMMissing: return "listed-rpm-missing"
            case .listedRPMMismatch: return "listed-rpm-mismatch"
            case .unlistedRPM: return "unlisted-rpm"
            case .corruptRPM: return "corrupt-rpm"
            case .unsignedRPM: return "unsigned-rpm"
            case .wrongKey: return "wrong-key"
            case .badSignature: return "bad-signature"
            }
        }
    }

    public let kind: Kind
    /// The file concerned, relative to the repository directory (`repodata/repomd.xml`, `00001-foo/foo.rpm`).
    public let path: String
    /// What differs, in words (sizes, checksums, key IDs; never file contents).
    public let detail: String

    public init(kind: Kind, path: String, detail: String) {
        self.kind = kind
        self.path = path
        self.detail = detail
    }

    /// `KIND PATH: DETAIL`, one line.
    public var description: String {
        "\(self.kind) \(self.path): \(self.detail)"
    }
}

/// The result of checking one published repository directory against its files and the project's key.
public struct RepoVerification: Sendable {
    /// The directory checked (as given).
    public var directory: String
    /// Everything found wrong, sorted by path then kind; empty when the repository is sound.
    public var problems: [RepoProblem]
    /// `<data>` records in repomd.xml.
    public var metadataRecords: Int
    /// Packages primary.xml lists.
    public var listedPackages: Int
    /// Package files found below the directory (the ones the publisher indexes).
    public var packageFiles: Int
    /// Package files whose content was read (checksum, signature).
    public var checkedPackages: Int
    /// Wall time, in seconds.
    public var seconds: Double

    public init(
        directory: String,
        problems: [RepoProblem] = [],
        metadataRecords: Int = 0,
        listedPackages: Int = 0,
        packageFiles: Int = 0,
        checkedPackages: Int = 0,
        seconds: Double = 0
    ) {
        self.directory = directory
        self.problems = problems
        self.metadataRecords = metadataRecords
        self.listedPackages = listedPackages
        self.packageFiles = packageFiles
        self.checkedPackages = checkedPackages
        self.seconds = seconds
    }

    public var isClean: Bool { self.problems.isEmpty }

    /// Some problem would go away with a full republish.
    public var needsRepublish: Bool { self.problems.contains { $0.kind.isRepairableByRepublish } }

    /// The problems of one kind.
    public func problems(_ kind: RepoProblem.Kind) -> [RepoProblem] {
        self.problems.filter { $0.kind == kind }
    }
}

/// What `RepoPublisher.repair` did.
public struct RepoRepair: Sendable {
    /// The verification the repair started from.
    public var before: RepoVerification
    /// Whether the directory was republished (only when some problem was repairable by a republish).
    public var republished: Bool
    /// The verification after the republish (`before` when nothing was republished).
    public var after: RepoVerification

    public init(before: RepoVerification, republished: Bool, after: RepoVerification) {
        self.before = before
        self.republished = republished
        self.after = after
    }
}

/// Size caps for what the verifier reads into memory.
public struct RepoVerifierLimits: Sendable {
    /// repomd.xml.
    public var maxRepomdBytes: Int
    /// One metadata file as stored (compressed).
    public var maxMetadataFileBytes: Int
    /// One metadata file's uncompressed content.
    public var maxOpenMetadataBytes: Int
    /// The lead and both headers of one package (`RPMReader` caps each header at 64 MiB).
    public var maxPackageHeaderBytes: Int
    /// `<data>` records in repomd.xml.
    public var maxMetadataRecords: Int
    /// Parallel workers reading package files.
    public var workers: Int

    public init(
        maxRepomdBytes: Int = 1 << 20,
        maxMetadataFileBytes: Int = 512 << 20,
        maxOpenMetadataBytes: Int = 2 << 30,
        maxPackageHeaderBytes: Int = 128 << 20,
        maxMetadataRecords: Int = 64,
        workers: Int = 2
    ) {
        self.maxRepomdBytes = maxRepomdBytes
        self.maxMetadataFileBytes = maxMetadataFileBytes
        self.maxOpenMetadataBytes = maxOpenMetadataBytes
        self.maxPackageHeaderBytes = maxPackageHeaderBytes
        self.maxMetadataRecords = maxMetadataRecords
        self.workers = max(1, workers)
    }
}
