/// The lead, both headers and the identity of one RPM file, as read by `RPMReader.parse(_:)`.
public struct RPMPackage: Sendable {
    /// The lead's type field is 1 ("source"). Legacy; `isSourcePackage` is authoritative.
    public let isSourceLead: Bool
    public let signature: RPMHeader
    public let main: RPMHeader
    /// Byte range of the signature header in the file, without the padding after it.
    public let signatureRange: Range<Int>
    /// Byte range of the main header (`hdrStart ..< hdrEnd`); createrepo_c's `header-range`.
    public let mainHeaderRange: Range<Int>

    /// Tag 1000, a non-empty STRING.
    public let name: String
    /// Tag 1001, a non-empty STRING.
    public let version: String
    /// Tag 1002, a non-empty STRING.
    public let release: String
    /// Tag 1003 (INT32, read as unsigned as rpm does); nil when absent.
    public let epoch: Int?
    /// Tag 1022. For source packages this is the build arch (`noarch`, `x86_64`); repodata says `src`.
    public let arch: String?
    /// Tag 1014.
    public let license: String?
    /// Tag 1004, first (C locale) element.
    public let summary: String?

    /// First byte of the payload.
    public var payloadOffset: Int { self.mainHeaderRange.upperBound }

    /// Whether this is a source package, decided like createrepo_c reading through rpm 4.18
    /// (docs/rpm-repodata-signing.md §1.4): tag 1106 `SOURCEPACKAGE` present → source; otherwise
    /// tag 1044 `SOURCERPM` present → binary; with neither, rpm's retrofit heuristic applies: the
    /// file list has exactly one directory and it is the empty string (for `OLDFILENAMES`
    /// headers: at least one file and no name contains `/`).
    public var isSourcePackage: Bool {
        if self.main.contains(RPMTag.sourcePackage) { return true }
        if self.main.contains(RPMTag.sourceRPM) { return false }
        if let dirNames = self.main.rawStrings(RPMTag.dirNames) {
            return dirNames.count == 1 && dirNames[0].isEmpty
        }
        if let oldFilenames = self.main.rawStrings(RPMTag.oldFilenames) {
            return !oldFilenames.isEmpty && oldFilenames.allSatisfy { !$0.contains(UInt8(ascii: "/")) }
        }
        return false
    }

    /// `epoch:version-release`, with the epoch only when present.
    public var evr: String {
        if let epoch = self.epoch {
            return "\(epoch):\(self.version)-\(self.release)"
        }
        return "\(self.version)-\(self.release)"
    }

    /// `name-version-release.arch.rpm` as rpmbuild names the file (`src` for source packages).
    public var canonicalFilename: String {
        let arch = self.isSourcePackage ? "src" : (self.arch ?? "noarch")
        return "\(self.name)-\(self.version)-\(self.release).\(arch).rpm"
    }

    init(
        isSourceLead: Bool,
        signature: RPMHeader,
        main: RPMHeader,
        signatureRange: Range<Int>,
        mainHeaderRange: Range<Int>
    ) throws(RPMError) {
        self.isSourceLead = isSourceLead
        self.signature = signature
        self.main = main
        self.signatureRange = signatureRange
        self.mainHeaderRange = mainHeaderRange

        self.name = try Self.requiredString(main, RPMTag.name, "NAME")
        self.version = try Self.requiredString(main, RPMTag.version, "VERSION")
        self.release = try Self.requiredString(main, RPMTag.release, "RELEASE")
        if let entry = main.entry(RPMTag.epoch) {
            guard entry.type == .int32, entry.count == 1, let value = main.uint32s(RPMTag.epoch)?.first else {
                throw RPMError(code: .badTagValue, detail: "EPOCH must be one INT32")
            }
            self.epoch = Int(value)
        } else {
            self.epoch = nil
        }
        self.arch = try Self.optionalString(main, RPMTag.arch, "ARCH", allowed: [.string])
        self.license = try Self.optionalString(main, RPMTag.license, "LICENSE", allowed: [.string])
        self.summary = try Self.optionalString(main, RPMTag.summary, "SUMMARY", allowed: [.string, .i18nstring])
        _ = try Self.optionalString(main, RPMTag.sourceRPM, "SOURCERPM", allowed: [.string])
        if let entry = main.entry(RPMTag.sourcePackage) {
            guard entry.type == .int32 else {
                throw RPMError(code: .badTagValue, detail: "SOURCEPACKAGE must be INT32")
            }
        }
    }

    private static func requiredString(_ header: RPMHeader, _ tag: UInt32, _ label: String) throws(RPMError) -> String {
        guard let entry = header.entry(tag) else {
            throw RPMError(code: .badTagValue, detail: "main header has no \(label) (tag \(tag))")
        }
        guard entry.type == .string, let value = header.string(tag), !value.isEmpty else {
            throw RPMError(code: .badTagValue, detail: "\(label) (tag \(tag)) must be a non-empty STRING")
        }
        return value
    }

    private static func optionalString(
        _ header: RPMHeader,
        _ tag: UInt32,
        _ label: String,
        allowed: [RPMTagType]
    ) throws(RPMError) -> String? {
        guard let entry = header.entry(tag) else { return nil }
        guard allowed.contains(entry.type), let value = header.string(tag) else {
            throw RPMError(code: .badTagValue, detail: "\(label) (tag \(tag)) has type \(entry.type)")
        }
        return value
    }
}
