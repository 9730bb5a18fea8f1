public import RPM

/// Renders the primary.xml, filelists.xml and other.xml `<package>` elements of one RPM byte-identically to
/// createrepo_c 0.17.3 (`cr_package_from_header` + `cr_xml_dump_*` on libxml2 2.9.14), following
/// docs/rpm-repodata-signing.md §2. Pure: the caller supplies the file facts (href, size, mtime, SHA-256).
public enum PackageXML {
    /// createrepo_c's default `--changelog-limit`.
    public static let defaultChangelogLimit = 10

    /// The three fragments for `package`.
    ///
    /// - Parameter changelogLimit: how many of the newest changelog entries to keep; negative keeps all.
    /// - Throws: `.forbiddenControlCharacters` for packages createrepo_c refuses, `.malformedFileList` for a
    ///   file list that cannot be reassembled, `.invalidArgument` for a checksum that is not lowercase hex.
    public static func fragments(
        for package: RPMPackage,
        file: PackageFileFacts,
        changelogLimit: Int = PackageXML.defaultChangelogLimit
    ) throws(RepodataError) -> PackageFragments {
        guard file.checksum.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
            !file.checksum.isEmpty
        else {
            throw RepodataError(code: .invalidArgument, detail: "checksum must be lowercase hex")
        }
        let model = try PackageModel(package: package, file: file, changelogLimit: changelogLimit)
        return PackageFragments(primary: model.primaryXML(), filelists: model.filelistsXML(), other: model.otherXML())
    }
}

// MARK: - The package as createrepo_c sees it (cr_Package)

typealias Bytes = ArraySlice<UInt8>

struct Dependency {
    var name: Bytes
    var flags: StaticString?
    var epoch: Bytes?
    var version: Bytes?
    var release: Bytes?
    var pre: Bool
}

struct PackageFile {
    enum Kind {
        case file
        case directory
        case ghost
    }

    var path: [UInt8]
    var kind: Kind
}

struct ChangelogEntry {
    var author: Bytes
    var date: Int64
    var text: Bytes
}

enum DependencyKind: Int, CaseIterable {
    case provides = 0
    case requires
    case conflicts
    case obsoletes
    case suggests
    case enhances
    case recommends
    case supplements

    var elementOpen: StaticString {
        switch self {
        case .provides: return "    <rpm:provides"
        case .requires: return "    <rpm:requires"
        case .conflicts: return "    <rpm:conflicts"
        case .obsoletes: return "    <rpm:obsoletes"
        case .suggests: return "    <rpm:suggests"
        case .enhances: return "    <rpm:enhances"
        case .recommends: return "    <rpm:recommends"
        case .supplements: return "    <rpm:supplements"
        }
    }

    var elementClose: StaticString {
        switch self {
        case .provides: return "    </rpm:provides>\n"
        case .requires: return "    </rpm:requires>\n"
        case .conflicts: return "    </rpm:conflicts>\n"
        case .obsoletes: return "    </rpm:obsoletes>\n"
        case .suggests: return "    </rpm:suggests>\n"
        case .enhances: return "    </rpm:enhances>\n"
        case .recommends: return "    </rpm:recommends>\n"
        case .supplements: return "    </rpm:supplements>\n"
        }
    }
}

private let zeroEpoch: Bytes = [UInt8(ascii: "0")][...]
private let srcArch: Bytes = Array("src".utf8)[...]
private let emptyBytes: Bytes = [][...]

struct PackageModel {
    var name: Bytes
    var arch: Bytes
    var epoch: [UInt8]
    var version: Bytes
    var release: Bytes
    var summary: Bytes?
    var description: Bytes?
    var packager: Bytes?
    var url: Bytes?
    var license: Bytes?
    var vendor: Bytes?
    var group: Bytes?
    var buildHost: Bytes?
    var sourceRPM: Bytes?
    var buildTime: UInt64
    var installedSize: UInt64
    var archiveSize: UInt64
    var file: PackageFileFacts
    var files: [PackageFile] = []
    var dependencies: [[Dependency]] = Array(repeating: [], count: DependencyKind.allCases.count)
    var changelogs: [ChangelogEntry] = []

    init(package: RPMPackage, file: PackageFileFacts, changelogLimit: Int) throws(RepodataError) {
        let header = package.main
        self.file = file
        self.name = header.firstStringSlice(RPMTag.name) ?? emptyBytes
        if let isSource = header.firstNumber(RPMTag.sourcePackage) {
            self.arch = isSource != 0 ? srcArch : (header.firstStringSlice(RPMTag.arch) ?? emptyBytes)
        } else if package.isSourcePackage {
            // rpm's applyRetrofits adds SOURCEPACKAGE = 1 to headers that look like source packages.
            self.arch = srcArch
        } else {
            self.arch = header.firstStringSlice(RPMTag.arch) ?? emptyBytes
        }
        var epoch: [UInt8] = []
        epoch.appendDecimal(header.firstNumber(RPMTag.epoch) ?? 0)
        self.epoch = epoch
        self.version = header.firstStringSlice(RPMTag.version) ?? emptyBytes
        self.release = header.firstStringSlice(RPMTag.release) ?? emptyBytes
        self.summary = header.firstStringSlice(RPMTag.summary)
        self.description = header.firstStringSlice(RPMTag.description)
        self.url = header.firstStringSlice(RPMTag.url)
        self.buildTime = header.firstNumber(RPMTag.buildTime) ?? 0
        self.license = header.firstStringSlice(RPMTag.license)
        self.vendor = header.firstStringSlice(RPMTag.vendor)
        self.group = header.firstStringSlice(RPMTag.group)
        self.buildHost = header.firstStringSlice(RPMTag.buildHost)
        self.sourceRPM = header.firstStringSlice(RPMTag.sourceRPM)
        self.packager = header.firstStringSlice(RPMTag.packager)
        // rpm's LONGSIZE / LONGARCHIVESIZE extensions: the 64-bit tag, else the INT32 one. The archive sizes
        // live in the signature header; rpm merges them into the main header when they are not there already.
        self.installedSize = Self.size64(header, RPMTag.longSize, RPMTag.size)
        let signature = package.signature
        if let value = header.firstNumber(RepodataTag.longArchiveSize) {
            self.archiveSize = value
        } else if let value = signature.firstNumber(RepodataTag.longArchiveSize) {
            self.archiveSize = value
        } else if let entry = header.entry(RepodataTag.archiveSize) {
            self.archiveSize = entry.type == .int32 ? (header.firstNumber(RepodataTag.archiveSize) ?? 0) : 0
        } else if let entry = signature.entry(RPMTag.sigPayloadSize), entry.type == .int32 {
            self.archiveSize = signature.firstNumber(RPMTag.sigPayloadSize) ?? 0
        } else {
            self.archiveSize = 0
        }

        let fileNames = try Self.readFiles(header, into: &self.files)
        self.readDependencies(header, fileNames: fileNames)
        self.readChangelogs(header, limit: changelogLimit)
        try self.checkControlCharacters()
    }

    private static func size64(_ header: RPMHeader, _ newTag: UInt32, _ oldTag: UInt32) -> UInt64 {
        if header.contains(newTag) {
            return header.firstNumber(newTag) ?? 0
        }
        guard let entry = header.entry(oldTag), entry.type == .int32 else { return 0 }
        return header.firstNumber(oldTag) ?? 0
    }

    // MARK: Files

    /// Fills `files` in header order; returns the full names of those files (for the requires filter).
    private static func readFiles(
        _ header: RPMHeader,
        into files: inout [PackageFile]
    ) throws(RepodataError)
        -> FileNameSet
    {
        let paths: [[UInt8]]
        if let baseNames = header.stringSlices(RPMTag.baseNames) {
            guard let dirIndexes = header.uint64s(RPMTag.dirIndexes),
                let dirNames = header.stringSlices(RPMTag.dirNames)
            else { return FileNameSet(paths: []) }
            let count = min(baseNames.count, dirIndexes.count)
            var built: [[UInt8]] = []
            built.reserveCapacity(count)
            for index in 0..<count {
                let dirIndex = dirIndexes[index]
                guard dirIndex < UInt64(dirNames.count) else {
                    throw RepodataError(
                        code: .malformedFileList,
                        detail: "directory index \(dirIndex) outside \(dirNames.count) DIRNAMES"
                    )
                }
                var path: [UInt8] = []
                let dir = dirNames[Int(dirIndex)]
                let base = baseNames[index]
                path.reserveCapacity(dir.count + base.count)
                path.append(contentsOf: dir)
                path.append(contentsOf: base)
                built.append(path)
            }
            paths = built
        } else if let oldNames = header.stringSlices(RPMTag.oldFilenames) {
            // rpm converts OLDFILENAMES to DIRNAMES/BASENAMES; the concatenation is the original name.
            paths = oldNames.map { Array($0) }
        } else {
            return FileNameSet(paths: [])
        }
        // createrepo_c lists files (and knows their names for the requires filter) only when all of
        // FILENAMES, DIRINDEXES, BASENAMES, FILEFLAGS and FILEMODES can be read.
        guard let flags = header.uint64s(RPMTag.fileFlags), let modes = header.uint64s(RPMTag.fileModes) else {
            return FileNameSet(paths: [])
        }
        let count = min(paths.count, flags.count, modes.count)
        files.reserveCapacity(count)
        for index in 0..<count {
            let kind: PackageFile.Kind
            if modes[index] & 0o170000 == 0o040000 {
                kind = .directory
            } else if flags[index] & 0x40 != 0 {
                kind = .ghost
            } else {
                kind = .file
            }
            files.append(PackageFile(path: paths[index], kind: kind))
        }
        return FileNameSet(paths: Array(paths.prefix(count)))
    }

    /// The full names of the package's files (rpm's FILENAMES), hashed only when a file require needs it.
    struct FileNameSet {
        var paths: [[UInt8]]
        private var set: Set<[UInt8]>?

        init(paths: [[UInt8]]) {
            self.paths = paths
        }

        mutating func contains(_ name: Bytes) -> Bool {
            if self.set == nil {
                self.set = Set(self.paths)
            }
            return self.set!.contains(Array(name))
        }
    }

    /// createrepo_c's `cr_is_primary`.
    static func isPrimaryFile<C: RandomAccessCollection<UInt8>>(_ path: C) -> Bool where C.Index == Int {
        let etc: [UInt8] = Array("/etc/".utf8)
        if path.count >= etc.count, path.prefix(etc.count).elementsEqual(etc) { return true }
        if path.elementsEqual("/usr/lib/sendmail".utf8) { return true }
        // strstr(path, "bin/")
        guard path.count >= 4 else { return false }
        var index = path.startIndex
        let last = path.endIndex - 4
        while index <= last {
            if path[index] == UInt8(ascii: "b"), path[index + 1] == UInt8(ascii: "i"),
                path[index + 2] == UInt8(ascii: "n"), path[index + 3] == UInt8(ascii: "/")
            {
                return true
            }
            index += 1
        }
        return false
    }

    // MARK: Dependencies

    private struct DependencySource {
        var kind: Int  // index into the parsehdr.c table order
        var nameTag: UInt32
        var flagsTag: UInt32
        var versionTag: UInt32
    }

    /// parsehdr.c's `dep_items`, in its order (the order matters for the requires filters and for where
    /// legacy weak dependencies land).
    private static let sources: [DependencySource] = [
        DependencySource(
            kind: 0,
            nameTag: RPMTag.provideName,
            flagsTag: RPMTag.provideFlags,
            versionTag: RPMTag.provideVersion
        ),
        DependencySource(
            kind: 1,
            nameTag: RPMTag.conflictName,
            flagsTag: RPMTag.conflictFlags,
            versionTag: RPMTag.conflictVersion
        ),
        DependencySource(
            kind: 2,
            nameTag: RPMTag.obsoleteName,
            flagsTag: RPMTag.obsoleteFlags,
            versionTag: RPMTag.obsoleteVersion
        ),
        DependencySource(
            kind: 3,
            nameTag: RPMTag.requireName,
            flagsTag: RPMTag.requireFlags,
            versionTag: RPMTag.requireVersion
        ),
        DependencySource(
            kind: 4,
            nameTag: RepodataTag.suggestName,
            flagsTag: RepodataTag.suggestFlags,
            versionTag: RepodataTag.suggestVersion
        ),
        DependencySource(
            kind: 5,
            nameTag: RepodataTag.enhanceName,
            flagsTag: RepodataTag.enhanceFlags,
            versionTag: RepodataTag.enhanceVersion
        ),
        DependencySource(
            kind: 6,
            nameTag: RepodataTag.recommendName,
            flagsTag: RepodataTag.recommendFlags,
            versionTag: RepodataTag.recommendVersion
        ),
        DependencySource(
            kind: 7,
            nameTag: RepodataTag.supplementName,
            flagsTag: RepodataTag.supplementFlags,
            versionTag: RepodataTag.supplementVersion
        ),
        DependencySource(
            kind: 8,
            nameTag: RepodataTag.oldSuggestsName,
            flagsTag: RepodataTag.oldSuggestsFlags,
            versionTag: RepodataTag.oldSuggestsVersion
        ),
        DependencySource(
            kind: 9,
            nameTag: RepodataTag.oldEnhancesName,
            flagsTag: RepodataTag.oldEnhancesFlags,
            versionTag: RepodataTag.oldEnhancesVersion
        ),
    ]

    private static let senseMissingOK: UInt64 = 1 << 19
    private static let senseStrong: UInt64 = 1 << 27
    private static let sensePre: UInt64 = 0x40 | 0x200 | 0x400  // PREREQ | SCRIPT_PRE | SCRIPT_POST

    /// createrepo_c's `cr_flag_to_str`.
    static func flagsText(_ flags: UInt64) -> StaticString? {
        switch flags & 0xF {
        case 2: return "LT"
        case 4: return "GT"
        case 8: return "EQ"
        case 10: return "LE"
        case 12: return "GE"
        default: return nil
        }
    }

    private mutating func readDependencies(_ header: RPMHeader, fileNames: FileNameSet) {
        var fileNames = fileNames
        var provided = Set<[UInt8]>()
        // Last kept (non-libc) require per name: flags text, version string, pre.
        var lastRequire: [Bytes: (flags: StaticString?, version: Bytes, pre: Bool)] = [:]
        let rpmlibPrefix: [UInt8] = Array("rpmlib(".utf8)
        let libcPrefix: [UInt8] = Array("libc.so.6".utf8)

        for source in Self.sources {
            guard let names = header.stringSlices(source.nameTag),
                let flagsList = header.uint64s(source.flagsTag),
                let versions = header.stringSlices(source.versionTag)
            else { continue }
            var libcHighest: Dependency?
            let count = min(names.count, flagsList.count, versions.count)
            for index in 0..<count {
                let name = names[index]
                let numericFlags = flagsList[index]
                let flags = Self.flagsText(numericFlags)
                let fullVersion = versions[index]
                var pre = false

                if source.kind == 3 {
                    if name.count >= rpmlibPrefix.count, name.prefix(rpmlibPrefix.count).elementsEqual(rpmlibPrefix) {
                        continue
                    }
                    if name.first == UInt8(ascii: "/"), fileNames.contains(name), Self.isPrimaryFile(name) {
                        continue
                    }
                    if !provided.isEmpty, provided.contains(Self.nameFlagsVersion(name, flags, fullVersion)) {
                        continue
                    }
                    pre = numericFlags & Self.sensePre != 0
                    if let previous = lastRequire[name], Self.sameFlags(previous.flags, flags),
                        previous.version.elementsEqual(fullVersion), previous.pre == pre
                    {
                        continue
                    }
                }

                guard let evr = Self.splitEVR(fullVersion) else {
                    continue  // createrepo_c: "Bad epoch in version string", dependency skipped
                }
                var dependency = Dependency(
                    name: name,
                    flags: flags,
                    epoch: evr.epoch,
                    version: evr.version,
                    release: evr.release,
                    pre: false
                )
                switch source.kind {
                case 0:
                    provided.insert(Self.nameFlagsVersion(name, flags, fullVersion))
                    self.dependencies[DependencyKind.provides.rawValue].append(dependency)
                case 1:
                    self.dependencies[DependencyKind.conflicts.rawValue].append(dependency)
                case 2:
                    self.dependencies[DependencyKind.obsoletes.rawValue].append(dependency)
                case 3:
                    if numericFlags & Self.senseMissingOK != 0 {
                        self.dependencies[DependencyKind.recommends.rawValue].append(dependency)
                        continue
                    }
                    dependency.pre = pre
                    if name.count >= libcPrefix.count, name.prefix(libcPrefix.count).elementsEqual(libcPrefix) {
                        if let highest = libcHighest {
                            if Self.compareLibcDependency(highest.name, dependency.name) == 2 {
                                libcHighest = dependency
                            }
                        } else {
                            libcHighest = dependency
                        }
                        continue
                    }
                    self.dependencies[DependencyKind.requires.rawValue].append(dependency)
                    lastRequire[name] = (flags, fullVersion, pre)
                case 4:
                    self.dependencies[DependencyKind.suggests.rawValue].append(dependency)
                case 5:
                    self.dependencies[DependencyKind.enhances.rawValue].append(dependency)
                case 6:
                    self.dependencies[DependencyKind.recommends.rawValue].append(dependency)
                case 7:
                    self.dependencies[DependencyKind.supplements.rawValue].append(dependency)
                case 8:
                    let kind: DependencyKind = numericFlags & Self.senseStrong != 0 ? .recommends : .suggests
                    self.dependencies[kind.rawValue].append(dependency)
                default:
                    let kind: DependencyKind = numericFlags & Self.senseStrong != 0 ? .supplements : .enhances
                    self.dependencies[kind.rawValue].append(dependency)
                }
            }
            if source.kind == 3, let libcHighest {
                self.dependencies[DependencyKind.requires.rawValue].append(libcHighest)
            }
        }
    }

    private static func sameFlags(_ a: StaticString?, _ b: StaticString?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let a?, let b?): return a.utf8Start == b.utf8Start || a.description == b.description
        default: return false
        }
    }

    private static func nameFlagsVersion(_ name: Bytes, _ flags: StaticString?, _ version: Bytes) -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(name.count + 2 + version.count)
        key.append(contentsOf: name)
        if let flags { key.append(flags) }
        key.append(contentsOf: version)
        return key
    }

    /// createrepo_c's `cr_str_to_evr`; nil for a non-numeric epoch (the dependency is then dropped).
    static func splitEVR(_ string: Bytes) -> (epoch: Bytes?, version: Bytes?, release: Bytes?)? {
        if string.isEmpty { return (nil, nil, nil) }
        var epoch: Bytes?
        var rest = string
        if let colon = string.firstIndex(of: UInt8(ascii: ":")) {
            guard Self.strtolEnd(string) == colon else { return nil }
            if colon > string.startIndex {
                epoch = string[string.startIndex..<colon]
            }
            rest = string[(colon + 1)...]
        }
        if epoch == nil {
            epoch = zeroEpoch
        }
        if let dash = rest.firstIndex(of: UInt8(ascii: "-")) {
            let release = rest[(dash + 1)...]
            return (epoch, rest[rest.startIndex..<dash], release.isEmpty ? nil : release)
        }
        return (epoch, rest, nil)
    }

    /// Where C's `strtol(string, &end, 10)` leaves `end`: after optional white space, a sign and at least one
    /// digit; at the start when there is no number.
    static func strtolEnd(_ string: Bytes) -> Int {
        var index = string.startIndex
        while index < string.endIndex, [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D].contains(string[index]) {
            index += 1
        }
        if index < string.endIndex, string[index] == UInt8(ascii: "+") || string[index] == UInt8(ascii: "-") {
            index += 1
        }
        let digitsStart = index
        while index < string.endIndex, string[index] >= 0x30, string[index] <= 0x39 {
            index += 1
        }
        return index == digitsStart ? string.startIndex : index
    }

    /// createrepo_c's `cr_compare_dependency` for two `libc.so.6…` names: 0 same, 1 first bigger, 2 second
    /// bigger, -1 error.
    static func compareLibcDependency(_ first: Bytes, _ second: Bytes) -> Int {
        let open = UInt8(ascii: "(")
        let close = UInt8(ascii: ")")
        let version1 = first.firstIndex(of: open)
        let version2 = second.firstIndex(of: open)
        guard let version1 else { return version2 == nil ? 0 : 2 }
        guard let version2 else { return 1 }
        let end1 = first[version1...].firstIndex(of: close)
        let end2 = second[version2...].firstIndex(of: close)
        guard let end1 else { return end2 == nil ? -1 : 2 }
        guard let end2 else { return 1 }
        var start1 = version1 + 1
        var start2 = version2 + 1
        if start1 == end1 && start2 == end2 { return 0 }
        if start1 == end1 { return 2 }
        if start2 == end2 { return 1 }
        while start1 < first.endIndex, !(first[start1] >= 0x30 && first[start1] <= 0x39) { start1 += 1 }
        while start2 < second.endIndex, !(second[start2] >= 0x30 && second[start2] <= 0x39) { start2 += 1 }
        if start1 > end1 && start2 > end2 { return 0 }
        if start1 > end1 { return 2 }
        if start2 > end2 { return 1 }
        let result = rpmVersionCompare(first[start1..<end1], second[start2..<end2])
        return result == -1 ? 2 : result
    }

    // MARK: Changelogs

    private mutating func readChangelogs(_ header: RPMHeader, limit: Int) {
        guard let times = header.uint64s(RPMTag.changelogTime),
            let names = header.stringSlices(RPMTag.changelogName),
            let texts = header.stringSlices(RPMTag.changelogText)
        else { return }
        var count = min(times.count, names.count, texts.count)
        if limit >= 0 {
            count = min(count, limit)
        }
        guard count > 0 else { return }
        // Read order is newest first; createrepo_c prepends, so the output is the reverse of this array.
        var read: [ChangelogEntry] = []
        read.reserveCapacity(count)
        var lastTime: Int64 = 0
        for index in 0..<count {
            let time = Int64(bitPattern: times[index])
            var author = names[index]
            // Remove trailing spaces from the author, never its first character.
            while author.count > 1, author.last == UInt8(ascii: " ") {
                author = author.dropLast()
            }
            read.append(ChangelogEntry(author: author, date: time, text: texts[index]))
            if lastTime == time {
                // Entries with the same time: the newer ones (read earlier) are pushed up by one second each.
                var next = Int64(Int32(truncatingIfNeeded: time))
                var previous = index - 1
                while previous >= 0, read[previous].date == next {
                    read[previous].date += 1
                    next += 1
                    previous -= 1
                }
            } else {
                lastTime = time
            }
        }
        self.changelogs = read.reversed()
    }

    // MARK: Control characters

    private func checkControlCharacters() throws(RepodataError) {
        func bad(_ bytes: Bytes?) -> Bool {
            guard let bytes else { return false }
            return XMLText.hasForbiddenControlCharacters(bytes)
        }
        var found =
            bad(self.name) || bad(self.arch) || bad(self.version) || bad(self.release)
            || bad(self.summary) || bad(self.description) || bad(self.url) || bad(self.license)
            || bad(self.vendor) || bad(self.group) || bad(self.buildHost) || bad(self.sourceRPM)
            || bad(self.packager) || XMLText.hasForbiddenControlCharacters(self.file.locationHref)
        if !found {
            outer: for list in self.dependencies {
                for dependency in list
                where bad(dependency.name) || bad(dependency.epoch) || bad(dependency.version)
                    || bad(dependency.release)
                {
                    found = true
                    break outer
                }
            }
        }
        if !found {
            found =
                self.files.contains { XMLText.hasForbiddenControlCharacters($0.path) }
                || self.changelogs.contains { bad($0.author) || bad($0.text) }
        }
        if found {
            throw RepodataError(
                code: .forbiddenControlCharacters,
                detail: "package \(String(decoding: self.name, as: UTF8.self)) has control characters in its metadata"
            )
        }
    }
}

// MARK: - Serialisation (libxml2 xmlNodeDump, format 1, level 0, then "\n")

extension PackageModel {
    private static func textElement(
        _ open: StaticString,
        _ content: Bytes?,
        _ close: StaticString,
        _ out: inout [UInt8]
    ) {
        out.append(open)
        if let content {
            XMLText.appendText(content, to: &out)
        }
        out.append(close)
    }

    private func appendVersionAttributes(_ out: inout [UInt8], normalised: Bool) {
        out.append(" epoch=\"")
        if normalised {
            XMLText.appendAttribute(self.epoch, to: &out)
        } else {
            XMLText.appendEscapedAttribute(self.epoch, to: &out)
        }
        out.append("\" ver=\"")
        if normalised {
            XMLText.appendAttribute(self.version, to: &out)
        } else {
            XMLText.appendEscapedAttribute(self.version, to: &out)
        }
        out.append("\" rel=\"")
        if normalised {
            XMLText.appendAttribute(self.release, to: &out)
        } else {
            XMLText.appendEscapedAttribute(self.release, to: &out)
        }
        out.append("\"/>\n")
    }

    private func appendFiles(_ out: inout [UInt8], primaryOnly: Bool, indent: StaticString) {
        for file in self.files {
            if primaryOnly && !Self.isPrimaryFile(file.path) { continue }
            out.append(indent)
            switch file.kind {
            case .file: out.append("<file>")
            case .directory: out.append("<file type=\"dir\">")
            case .ghost: out.append("<file type=\"ghost\">")
            }
            XMLText.appendText(file.path, to: &out)
            out.append("</file>\n")
        }
    }

    func primaryXML() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(2048)
        out.append("<package type=\"rpm\">\n")
        Self.textElement("  <name>", self.name, "</name>\n", &out)
        Self.textElement("  <arch>", self.arch, "</arch>\n", &out)
        out.append("  <version")
        self.appendVersionAttributes(&out, normalised: true)
        out.append("  <checksum type=\"sha256\" pkgid=\"YES\">")
        out.append(contentsOf: self.file.checksum.utf8)
        out.append("</checksum>\n")
        Self.textElement("  <summary>", self.summary, "</summary>\n", &out)
        Self.textElement("  <description>", self.description, "</description>\n", &out)
        Self.textElement("  <packager>", self.packager, "</packager>\n", &out)
        Self.textElement("  <url>", self.url, "</url>\n", &out)
        out.append("  <time file=\"")
        out.appendDecimal(self.file.mtime)
        out.append("\" build=\"")
        out.appendDecimal(Int64(bitPattern: self.buildTime))
        out.append("\"/>\n  <size package=\"")
        out.appendDecimal(self.file.size)
        out.append("\" installed=\"")
        out.appendDecimal(Int64(bitPattern: self.installedSize))
        out.append("\" archive=\"")
        out.appendDecimal(Int64(bitPattern: self.archiveSize))
        out.append("\"/>\n  <location href=\"")
        XMLText.appendAttribute(self.file.locationHref, to: &out)
        out.append("\"/>\n  <format>\n")
        Self.textElement("    <rpm:license>", self.license, "</rpm:license>\n", &out)
        Self.textElement("    <rpm:vendor>", self.vendor, "</rpm:vendor>\n", &out)
        Self.textElement("    <rpm:group>", self.group, "</rpm:group>\n", &out)
        Self.textElement("    <rpm:buildhost>", self.buildHost, "</rpm:buildhost>\n", &out)
        Self.textElement("    <rpm:sourcerpm>", self.sourceRPM, "</rpm:sourcerpm>\n", &out)
        out.append("    <rpm:header-range start=\"")
        out.appendDecimal(Int64(self.file.headerRange.lowerBound))
        out.append("\" end=\"")
        out.appendDecimal(Int64(self.file.headerRange.upperBound))
        out.append("\"/>\n")
        for kind in DependencyKind.allCases {
            self.appendDependencies(kind, &out)
        }
        self.appendFiles(&out, primaryOnly: true, indent: "    ")
        out.append("  </format>\n</package>\n")
        return out
    }

    private func appendDependencies(_ kind: DependencyKind, _ out: inout [UInt8]) {
        let list = self.dependencies[kind.rawValue]
        guard !list.isEmpty else { return }
        out.append(kind.elementOpen)
        guard list.contains(where: { !$0.name.isEmpty }) else {
            out.append("/>\n")  // an element without children self-closes
            return
        }
        out.append(">\n")
        for dependency in list where !dependency.name.isEmpty {
            out.append("      <rpm:entry name=\"")
            XMLText.appendAttribute(dependency.name, to: &out)
            out.append("\"")
            if let flags = dependency.flags {
                out.append(" flags=\"")
                out.append(flags)
                out.append("\"")
                if let epoch = dependency.epoch, !epoch.isEmpty {
                    out.append(" epoch=\"")
                    XMLText.appendAttribute(epoch, to: &out)
                    out.append("\"")
                }
                if let version = dependency.version, !version.isEmpty {
                    out.append(" ver=\"")
                    XMLText.appendAttribute(version, to: &out)
                    out.append("\"")
                }
                if let release = dependency.release, !release.isEmpty {
                    out.append(" rel=\"")
                    XMLText.appendAttribute(release, to: &out)
                    out.append("\"")
                }
            }
            if kind == .requires && dependency.pre {
                out.append(" pre=\"1\"")
            }
            out.append("/>\n")
        }
        out.append(kind.elementClose)
    }

    private func appendPackageIdentity(_ out: inout [UInt8]) {
        out.append("<package pkgid=\"")
        out.append(contentsOf: self.file.checksum.utf8)
        out.append("\" name=\"")
        XMLText.appendAttribute(self.name, to: &out)
        out.append("\" arch=\"")
        XMLText.appendAttribute(self.arch, to: &out)
        out.append("\">\n")
    }

    func filelistsXML() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + self.files.count * 64)
        self.appendPackageIdentity(&out)
        out.append("  <version")
        self.appendVersionAttributes(&out, normalised: true)
        self.appendFiles(&out, primaryOnly: false, indent: "  ")
        out.append("</package>\n")
        return out
    }

    func otherXML() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + self.changelogs.reduce(0) { $0 + $1.text.count + 96 })
        self.appendPackageIdentity(&out)
        out.append("  <version")
        self.appendVersionAttributes(&out, normalised: false)
        for entry in self.changelogs {
            out.append("  <changelog author=\"")
            XMLText.appendAttribute(entry.author, to: &out)
            out.append("\" date=\"")
            out.appendDecimal(entry.date)
            out.append("\">")
            XMLText.appendText(entry.text, to: &out)
            out.append("</changelog>\n")
        }
        out.append("</package>\n")
        return out
    }
}
