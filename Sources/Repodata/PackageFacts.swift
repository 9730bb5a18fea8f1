public import RPM

/// What createrepo_c learns about a package file from outside its header: where it is, its `stat`, and the
/// SHA-256 of the whole file (the `pkgid`).
public struct PackageFileFacts: Sendable, Hashable {
    /// Path relative to the repository root, `/`-separated, as raw bytes (`location href`).
    public var locationHref: [UInt8]
    /// File size in bytes (`size package`).
    public var size: Int64
    /// `stat().st_mtime`, whole seconds (`time file`).
    public var mtime: Int64
    /// Lowercase hex SHA-256 of the whole file (`checksum`, `pkgid`).
    public var checksum: String
    /// `hdrStart ..< hdrEnd` of the main header (`rpm:header-range`).
    public var headerRange: Range<Int>

    public init(locationHref: [UInt8], size: Int64, mtime: Int64, checksum: String, headerRange: Range<Int>) {
        self.locationHref = locationHref
        self.size = size
        self.mtime = mtime
        self.checksum = checksum
        self.headerRange = headerRange
    }

    public init(locationHref: String, size: Int64, mtime: Int64, checksum: String, headerRange: Range<Int>) {
        self.init(
            locationHref: Array(locationHref.utf8),
            size: size,
            mtime: mtime,
            checksum: checksum,
            headerRange: headerRange
        )
    }

    /// Facts for `package` with its own header range.
    public init(package: RPMPackage, locationHref: String, size: Int64, mtime: Int64, checksum: String) {
        self.init(
            locationHref: locationHref,
            size: size,
            mtime: mtime,
            checksum: checksum,
            headerRange: package.mainHeaderRange
        )
    }
}

/// The three `<package>` elements of one package, each ending with a newline, exactly as createrepo_c
/// 0.17.3 writes them into primary.xml, filelists.xml and other.xml.
public struct PackageFragments: Sendable, Hashable {
    public var primary: [UInt8]
    public var filelists: [UInt8]
    public var other: [UInt8]

    public init(primary: [UInt8], filelists: [UInt8], other: [UInt8]) {
        self.primary = primary
        self.filelists = filelists
        self.other = other
    }

    public subscript(kind: MetadataKind) -> [UInt8] {
        switch kind {
        case .primary: return self.primary
        case .filelists: return self.filelists
        case .other: return self.other
        }
    }
}

/// One of the three metadata documents.
public enum MetadataKind: Int, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case primary = 0
    case filelists = 1
    case other = 2

    /// The `<data type="…">` of its repomd record, also used in file names.
    public var recordType: String {
        switch self {
        case .primary: return "primary"
        case .filelists: return "filelists"
        case .other: return "other"
        }
    }

    public var description: String { self.recordType }

    /// The document head: XML declaration and root element with the package count, ending with a newline.
    public func head(packageCount: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(200)
        out.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        switch self {
        case .primary:
            out.append(
                "<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\""
            )
        case .filelists:
            out.append("<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" packages=\"")
        case .other:
            out.append("<otherdata xmlns=\"http://linux.duke.edu/metadata/other\" packages=\"")
        }
        out.appendDecimal(Int64(packageCount))
        out.append("\">\n")
        return out
    }

    /// The document tail: the closing root tag, with no newline after it.
    public var tail: [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .primary: out.append("</metadata>")
        case .filelists: out.append("</filelists>")
        case .other: out.append("</otherdata>")
        }
        return out
    }

    /// The whole uncompressed document for `fragments` (already in repository order).
    public func document(_ fragments: [[UInt8]]) -> [UInt8] {
        var out = self.head(packageCount: fragments.count)
        out.reserveCapacity(out.count + fragments.reduce(0) { $0 + $1.count } + 16)
        for fragment in fragments {
            out.append(contentsOf: fragment)
        }
        out.append(contentsOf: self.tail)
        return out
    }
}
