import CoprModel
import KoperJSON

/// A task as the Frontend describes it (docs/internal-api.md), with the fields the Backend uses pulled out.
struct BuildTask: Sendable {
    enum Kind: String, Sendable { case srpm, rpm }

    let raw: JSON
    let id: String
    let buildID: Int
    let kind: Kind
    let chroot: String?
    let owner: String
    let project: String
    let dirname: String
    let arch: String
    let tags: [String]
    let sandbox: String
    let background: Bool
    let submitted: Int64
    let timeout: Int
    let resultDir: String

    init(_ raw: JSON) throws {
        guard let o = raw.objectValue, let id = o["task_id"]?.stringValue, let build = o["build_id"]?.intValue,
            let owner = o["project_owner"]?.stringValue, let project = o["project_name"]?.stringValue
        else { throw BackendError("malformed task description") }
        self.raw = raw
        self.id = id
        self.buildID = build
        self.chroot = o["chroot"]?.stringValue
        self.kind = self.chroot == nil ? .srpm : .rpm
        self.owner = owner
        self.project = project
        self.dirname = o["project_dirname"]?.stringValue ?? project
        self.arch = o["arch"]?.stringValue ?? "x86_64"
        self.tags = o["tags"]?.arrayValue?.compactMap(\.stringValue) ?? ["arch_\(self.arch)"]
        self.sandbox = o["sandbox"]?.stringValue ?? "\(owner)/\(project)"
        self.background = o["background"]?.boolValue ?? false
        self.submitted = Int64(o["submitted_on"]?.intValue ?? 0)
        self.timeout = o["timeout"]?.intValue ?? 5 * 3600
        let fallback = String(repeating: "0", count: max(0, 8 - String(build).count)) + String(build)
        self.resultDir = o["result_dir"]?.stringValue ?? fallback
        guard isSafeComponent(self.owner), isSafeComponent(self.dirname), isSafeComponent(self.resultDir),
            self.chroot.map(isSafeComponent) ?? true
        else { throw BackendError("task \(id) has unsafe path components") }
    }

    /// `results/OWNER/DIRNAME/CHROOT/NNNNNNNN-PKG` or `results/OWNER/DIRNAME/srpm-builds/NNNNNNNN`.
    var relativeResultPath: String {
        if let chroot { return "\(self.owner)/\(self.dirname)/\(chroot)/\(self.resultDir)" }
        return "\(self.owner)/\(self.dirname)/srpm-builds/\(self.resultDir)"
    }
}

struct BackendError: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ d: String) { self.description = d }
}

func isSafeComponent(_ s: String) -> Bool {
    !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("\0") && s.utf8.count <= 255
}
