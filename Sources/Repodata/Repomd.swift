/// One `<data>` record of repomd.xml.
public struct RepomdRecord: Sendable, Hashable {
    /// `primary`, `filelists`, `other`, …
    public var type: String
    /// Lowercase hex SHA-256 of the (compressed) file.
    public var checksum: String
    /// Lowercase hex SHA-256 of the uncompressed content; nil leaves out `open-checksum` and `open-size`.
    public var openChecksum: String?
    /// `repodata/<checksum>-<type>.xml.gz`.
    public var locationHref: String
    /// The file's mtime (createrepo_c: `stat().st_mtime` of the written file).
    public var timestamp: Int64
    /// Bytes of the file.
    public var size: Int64
    /// Bytes of the uncompressed content; written only together with `openChecksum`.
    public var openSize: Int64?

    public init(
        type: String,
        checksum: String,
        openChecksum: String?,
        locationHref: String,
        timestamp: Int64,
        size: Int64,
        openSize: Int64?
    ) {
        self.type = type
        self.checksum = checksum
        self.openChecksum = openChecksum
        self.locationHref = locationHref
        self.timestamp = timestamp
        self.size = size
        self.openSize = openSize
    }
}

/// repomd.xml as createrepo_c 0.17.3 writes it (`cr_xml_dump_repomd`, docs/rpm-repodata-signing.md §3.1).
public enum Repomd {
    /// The unique file name createrepo_c uses (`--unique-md-filenames`, the default):
    /// `<sha256 of the compressed file>-<type>.xml.gz`.
    public static func fileName(checksum: String, kind: MetadataKind) -> String {
        "\(checksum)-\(kind.recordType).xml.gz"
    }

    /// The location href of a metadata file: `repodata/<fileName>`.
    public static func locationHref(fileName: String) -> String {
        "repodata/\(fileName)"
    }

    /// Record order: primary, filelists, other, primary_db, filelists_db, other_db, then the rest by type
    /// (createrepo_c's `cr_repomd_sort_records`).
    public static func sorted(_ records: [RepomdRecord]) -> [RepomdRecord] {
        let known = [
            "primary", "filelists", "other", "primary_db", "filelists_db", "other_db",
            "primary_zck", "filelists_zck", "other_zck",
        ]
        return records.enumerated().sorted { left, right in
            let leftRank = known.firstIndex(of: left.element.type) ?? known.count
            let rightRank = known.firstIndex(of: right.element.type) ?? known.count
            if leftRank != rightRank { return leftRank < rightRank }
            if leftRank == known.count, left.element.type != right.element.type {
                return Array(left.element.type.utf8).lexicographicallyPrecedes(Array(right.element.type.utf8))
            }
            return left.offset < right.offset
        }.map(\.element)
    }

    /// The document, ending with a newline. `revision` is any string (createrepo_c: the Unix time).
    public static func render(revision: String, records: [RepomdRecord]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(600 + records.count * 520)
        out.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        out.append(
            "<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n"
        )
        out.append("  <revision>")
        self.appendText(revision, &out)
        out.append("</revision>\n")
        for record in self.sorted(records) {
            out.append("  <data type=\"")
            self.appendAttribute(record.type, &out)
            out.append("\">\n    <checksum type=\"sha256\">")
            self.appendText(record.checksum, &out)
            out.append("</checksum>\n")
            if let openChecksum = record.openChecksum {
                out.append("    <open-checksum type=\"sha256\">")
                self.appendText(openChecksum, &out)
                out.append("</open-checksum>\n")
            }
            out.append("    <location href=\"")
            self.appendAttribute(record.locationHref, &out)
            out.append("\"/>\n    <timestamp>")
            out.appendDecimal(record.timestamp)
            out.append("</timestamp>\n    <size>")
            out.appendDecimal(record.size)
            out.append("</size>\n")
            if record.openChecksum != nil, let openSize = record.openSize {
                out.append("    <open-size>")
                out.appendDecimal(openSize)
                out.append("</open-size>\n")
            }
            out.append("  </data>\n")
        }
        out.append("</repomd>\n")
        return out
    }

    // repomd.xml is dumped as a document with encoding UTF-8, so non-ASCII stays raw in attributes too.
    private static func appendText(_ string: String, _ out: inout [UInt8]) {
        XMLText.appendText(Array(string.utf8), to: &out)
    }

    private static func appendAttribute(_ string: String, _ out: inout [UInt8]) {
        var value: [UInt8] = []
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "&"): value.append("&amp;")
            case UInt8(ascii: "<"): value.append("&lt;")
            case UInt8(ascii: ">"): value.append("&gt;")
            case UInt8(ascii: "\""): value.append("&quot;")
            case 0x0A: value.append("&#10;")
            case 0x0D: value.append("&#13;")
            case 0x09: value.append("&#9;")
            default: value.append(byte)
            }
        }
        out.append(contentsOf: value)
    }
}

/// The order createrepo_c writes packages in (`task_cmp`): by file name (byte-wise `strcmp`), then by
/// directory. Works on repository-relative hrefs.
public enum PackageOrder {
    /// Whether the package at `first` comes before the one at `second`.
    public static func precedes(_ first: [UInt8], _ second: [UInt8]) -> Bool {
        let (firstDirectory, firstName) = self.split(first)
        let (secondDirectory, secondName) = self.split(second)
        if !firstName.elementsEqual(secondName) {
            return firstName.lexicographicallyPrecedes(secondName)
        }
        return firstDirectory.lexicographicallyPrecedes(secondDirectory)
    }

    public static func precedes(_ first: String, _ second: String) -> Bool {
        self.precedes(Array(first.utf8), Array(second.utf8))
    }

    /// Sorts hrefs into repository order.
    public static func sorted(_ hrefs: [[UInt8]]) -> [[UInt8]] {
        hrefs.sorted(by: self.precedes)
    }

    /// `(directory, name)`: the directory is empty for files at the root. createrepo_c compares absolute
    /// directory paths that share the repository prefix, which orders exactly like these relative ones.
    static func split(_ href: [UInt8]) -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        guard let slash = href.lastIndex(of: UInt8(ascii: "/")) else {
            return (href[0..<0], href[...])
        }
        return (href[..<slash], href[(slash + 1)...])
    }
}
