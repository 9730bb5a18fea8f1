import CoprModel

/// A task of the build queue: `BUILDID-CHROOT` for an RPM build of one chroot, `BUILDID` for the SRPM build that
/// URL, SCM and other sources need first (docs/internal-api.md). On the wire it is that string.
public struct TaskID: Sendable, Hashable, Codable, CustomStringConvertible, LosslessStringConvertible {
    public let buildID: Int
    /// `nil` for an SRPM build task.
    public let chroot: String?

    public init(buildID: Int, chroot: String?) {
        self.buildID = buildID
        self.chroot = chroot
    }

    /// Parses `BUILDID-CHROOT` or `BUILDID`; nil for anything else.
    public init?(_ description: String) {
        if let dash = description.firstIndex(of: "-") {
            guard let build = Int(description[..<dash]), build > 0 else { return nil }
            let chroot = String(description[description.index(after: dash)...])
            guard !chroot.isEmpty else { return nil }
            self.init(buildID: build, chroot: chroot)
        } else {
            guard let build = Int(description), build > 0 else { return nil }
            self.init(buildID: build, chroot: nil)
        }
    }

    public var description: String { self.chroot.map { "\(self.buildID)-\($0)" } ?? String(self.buildID) }

    public var isSRPMTask: Bool { self.chroot == nil }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = TaskID(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "malformed task id")
            )
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}

/// What a task builds: the SRPM of a source, or the RPMs of one chroot.
public enum TaskKind: String, Sendable, Codable {
    case srpm
    case rpm
}

/// The directory of an SRPM build's results: `srpm-builds/NNNNNNNN` (upstream's `%08d`).
public func srpmResultDirName(buildID: Int) -> String {
    paddedBuildID(buildID)
}
