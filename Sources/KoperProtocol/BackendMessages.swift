public import CoprModel
public import KoperJSON

/// One queued task as the Backend's scheduler sees it: enough to order and place it, not the full description
/// (that travels once, in the claim answer).
public struct TaskSummary: Sendable, Equatable, Codable {
    public var taskID: TaskID
    public var kind: TaskKind
    public var projectOwner: String
    public var projectName: String
    public var arch: String
    public var tags: [String]
    public var sandbox: String
    public var background: Bool
    /// Seconds since the epoch.
    public var submittedOn: Int64

    public var buildID: Int { self.taskID.buildID }

    public init(
        taskID: TaskID,
        projectOwner: String,
        projectName: String,
        arch: String,
        tags: [String],
        sandbox: String,
        background: Bool,
        submittedOn: Int64
    ) {
        self.taskID = taskID
        self.kind = taskID.isSRPMTask ? .srpm : .rpm
        self.projectOwner = projectOwner
        self.projectName = projectName
        self.arch = arch
        self.tags = tags
        self.sandbox = sandbox
        self.background = background
        self.submittedOn = submittedOn
    }

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
        case kind = "type"
        case projectOwner = "project_owner"
        case projectName = "project_name"
        case arch, tags, sandbox, background
        case submittedOn = "submitted_on"
    }
}

/// The answer to the Backend's one long-poll (`GET /backend/poll?after=G&wait=S`): every pending task, every
/// cancel request not yet acknowledged and every pending action. The Frontend holds the request while its
/// generation still equals `after` (nothing changed since the Backend's last answer), up to `wait` seconds.
public struct BackendPoll: Sendable, Equatable, Codable {
    /// Pass it back as `after`; it changes whenever tasks, cancels or actions may have changed.
    public var generation: String
    public var tasks: [TaskSummary]
    public var cancels: [TaskID]
    public var actions: [BackendAction]

    public init(generation: String, tasks: [TaskSummary], cancels: [TaskID], actions: [BackendAction]) {
        self.generation = generation
        self.tasks = tasks
        self.cancels = cancels
        self.actions = actions
    }
}

/// `POST /backend/claim`.
public struct ClaimRequest: Sendable, Equatable, Codable {
    public var taskID: TaskID
    public var workerID: String

    public init(taskID: TaskID, workerID: String) {
        self.taskID = taskID
        self.workerID = workerID
    }

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
        case workerID = "worker_id"
    }
}

/// `POST /backend/release-claims`, sent by a Backend as it starts: every task claimed by `workerID` that is not in
/// `keep` (the tasks its job files name) goes back to `pending`. A Backend killed between a claim and writing the
/// claim's job file would otherwise leave that task `starting` for good.
public struct ReleaseClaims: Sendable, Equatable, Codable {
    public var workerID: String
    public var keep: [TaskID]

    public init(workerID: String, keep: [TaskID]) {
        self.workerID = workerID
        self.keep = keep
    }

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id"
        case keep
    }
}

/// The answer to `ReleaseClaims`: the tasks that went back to `pending`.
public struct ReleasedClaims: Sendable, Equatable, Codable {
    public var released: [TaskID]

    public init(released: [TaskID]) {
        self.released = released
    }
}

/// The answer to a claim: the full description when claimed (`pending → starting`, or the same worker again).
public struct ClaimAnswer: Sendable, Equatable, Codable {
    public var claimed: Bool
    public var canceled: Bool
    /// The task's state when it was not claimed.
    public var state: BuildState?
    public var task: TaskDescription?

    public static func claimed(_ task: TaskDescription) -> ClaimAnswer {
        ClaimAnswer(claimed: true, canceled: false, state: nil, task: task)
    }

    public static let canceled = ClaimAnswer(claimed: false, canceled: true, state: nil, task: nil)

    public static func taken(state: BuildState) -> ClaimAnswer {
        ClaimAnswer(claimed: false, canceled: false, state: state, task: nil)
    }
}

/// One package a build produced.
public struct BuiltPackage: Sendable, Equatable, Codable {
    public var name: String
    public var epoch: Int?
    public var version: String
    public var release: String
    public var arch: String

    public init(name: String, epoch: Int?, version: String, release: String, arch: String) {
        self.name = name
        self.epoch = epoch
        self.version = version
        self.release = release
        self.arch = arch
    }

    /// Always writes `epoch` (null when absent), as API v3's built-packages answers do.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.epoch, forKey: .epoch)
        try c.encode(self.version, forKey: .version)
        try c.encode(self.release, forKey: .release)
        try c.encode(self.arch, forKey: .arch)
    }
}

/// The SRPM an SRPM build produced: the Frontend records its NEVR and releases the build's chroots.
public struct SourcePackage: Sendable, Equatable, Codable {
    public var name: String
    public var epoch: Int?
    public var version: String
    public var release: String
    /// Where the SRPM lies in the results tree.
    public var url: String?

    public init(name: String, epoch: Int?, version: String, release: String, url: String?) {
        self.name = name
        self.epoch = epoch
        self.version = version
        self.release = release
        self.url = url
    }
}

/// `POST /backend/update`: a state change of one task, idempotent by `updateID`.
public struct BackendUpdate: Sendable, Equatable, Codable {
    /// States a worker may report.
    public static let reportableStates: Set<BuildState> = [.starting, .running, .succeeded, .failed, .pending]

    public var updateID: String
    public var taskID: TaskID
    public var state: BuildState
    public var resultDir: String?
    public var builtPackages: [BuiltPackage]?
    public var srpm: SourcePackage?

    public init(
        updateID: String,
        taskID: TaskID,
        state: BuildState,
        resultDir: String? = nil,
        builtPackages: [BuiltPackage]? = nil,
        srpm: SourcePackage? = nil
    ) {
        self.updateID = updateID
        self.taskID = taskID
        self.state = state
        self.resultDir = resultDir
        self.builtPackages = builtPackages
        self.srpm = srpm
    }

    enum CodingKeys: String, CodingKey {
        case updateID = "update_id"
        case taskID = "task_id"
        case state
        case resultDir = "result_dir"
        case builtPackages = "built_packages"
        case srpm
    }
}

/// The answer to an update.
public struct UpdateAnswer: Sendable, Equatable, Codable {
    public var applied: Bool
    /// The same `update_id` was applied before.
    public var duplicate: Bool?
    /// The task had reached a final state already.
    public var final: Bool?
    /// The build was canceled: the worker should stop.
    public var canceled: Bool?
    public var buildState: BuildState?

    public init(
        applied: Bool,
        duplicate: Bool? = nil,
        final: Bool? = nil,
        canceled: Bool? = nil,
        buildState: BuildState? = nil
    ) {
        self.applied = applied
        self.duplicate = duplicate
        self.final = final
        self.canceled = canceled
        self.buildState = buildState
    }

    enum CodingKeys: String, CodingKey {
        case applied, duplicate, final, canceled
        case buildState = "build_state"
    }
}

/// `POST /backend/cancel-request-done`.
public struct CancelDone: Sendable, Equatable, Codable {
    public var taskID: TaskID

    public init(taskID: TaskID) { self.taskID = taskID }

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
    }
}

/// Work for the Backend that is not a build: deleting results, regenerating repodata, copying a fork's builds.
public struct BackendAction: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case delete
        case createrepo
        case fork
    }

    /// What the action does, with its typed data.
    public enum Payload: Sendable, Equatable {
        /// Removes a project's results (`object_type: copr`) or some build directories (`builds`), then republishes.
        case deleteProject(DeleteProject)
        case deleteBuilds(DeleteBuilds)
        /// A full repodata rebuild of one chroot directory.
        case createrepo(Createrepo)
        case fork(Fork)
        /// An action type or data this Backend does not understand; it is acknowledged as failed.
        case unsupported(type: String)
    }

    public struct DeleteProject: Sendable, Equatable, Codable {
        public var ownername: String
        public var projectname: String

        public init(ownername: String, projectname: String) {
            self.ownername = ownername
            self.projectname = projectname
        }
    }

    public struct DeleteBuilds: Sendable, Equatable, Codable {
        public var ownername: String
        public var projectDirname: String
        /// chroot → result directory names.
        public var chrootBuilddirs: [String: [String]]

        public init(ownername: String, projectDirname: String, chrootBuilddirs: [String: [String]]) {
            self.ownername = ownername
            self.projectDirname = projectDirname
            self.chrootBuilddirs = chrootBuilddirs
        }

        enum CodingKeys: String, CodingKey {
            case ownername
            case projectDirname = "project_dirname"
            case chrootBuilddirs = "chroot_builddirs"
        }
    }

    public struct Createrepo: Sendable, Equatable, Codable {
        public var ownername: String
        public var projectname: String
        public var projectDirname: String
        public var chroot: String

        public init(ownername: String, projectname: String, projectDirname: String, chroot: String) {
            self.ownername = ownername
            self.projectname = projectname
            self.projectDirname = projectDirname
            self.chroot = chroot
        }

        enum CodingKeys: String, CodingKey {
            case ownername, projectname, chroot
            case projectDirname = "project_dirname"
        }
    }

    public struct Fork: Sendable, Equatable, Codable {
        public var sourceOwnername: String
        public var sourceDirname: String
        public var targetOwnername: String
        public var targetDirname: String
        /// chroot → {source result dir → fork result dir}.
        public var buildsMap: [String: [String: String]]

        public init(
            sourceOwnername: String,
            sourceDirname: String,
            targetOwnername: String,
            targetDirname: String,
            buildsMap: [String: [String: String]]
        ) {
            self.sourceOwnername = sourceOwnername
            self.sourceDirname = sourceDirname
            self.targetOwnername = targetOwnername
            self.targetDirname = targetDirname
            self.buildsMap = buildsMap
        }

        enum CodingKeys: String, CodingKey {
            case sourceOwnername = "source_ownername"
            case sourceDirname = "source_dirname"
            case targetOwnername = "target_ownername"
            case targetDirname = "target_dirname"
            case buildsMap = "builds_map"
        }
    }

    public var id: Int
    public var payload: Payload

    public init(id: Int, payload: Payload) {
        self.id = id
        self.payload = payload
    }

    /// The stored form: `action_type` and the `data` object, as in the `actions` table.
    public var actionType: String {
        switch self.payload {
        case .deleteProject, .deleteBuilds: return Kind.delete.rawValue
        case .createrepo: return Kind.createrepo.rawValue
        case .fork: return Kind.fork.rawValue
        case .unsupported(let type): return type
        }
    }

    public var data: JSON {
        func json<T: Encodable>(_ value: T) -> JSON { (try? Wire.json(value)) ?? [:] }
        switch self.payload {
        case .deleteProject(let d):
            var o = json(d).objectValue ?? [:]
            o["object_type"] = "copr"
            return .object(o)
        case .deleteBuilds(let d):
            var o = json(d).objectValue ?? [:]
            o["object_type"] = "builds"
            return .object(o)
        case .createrepo(let d): return json(d)
        case .fork(let d): return json(d)
        case .unsupported: return [:]
        }
    }

    /// Reads an action from its stored type and data; data that does not fit the type gives `.unsupported`.
    public init(id: Int, actionType: String, data: JSON) {
        self.id = id
        func decode<T: Decodable>(_ type: T.Type) -> T? { try? Wire.decode(type, from: data) }
        switch (Kind(rawValue: actionType), data["object_type"]?.stringValue) {
        case (.delete, "copr"):
            self.payload = decode(DeleteProject.self).map { .deleteProject($0) } ?? .unsupported(type: actionType)
        case (.delete, "builds"):
            self.payload = decode(DeleteBuilds.self).map { .deleteBuilds($0) } ?? .unsupported(type: actionType)
        case (.createrepo, _):
            self.payload = decode(Createrepo.self).map { .createrepo($0) } ?? .unsupported(type: actionType)
        case (.fork, _):
            self.payload = decode(Fork.self).map { .fork($0) } ?? .unsupported(type: actionType)
        default:
            self.payload = .unsupported(type: actionType)
        }
    }

    enum CodingKeys: String, CodingKey {
        case id
        case actionType = "action_type"
        case data
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(Int.self, forKey: .id),
            actionType: try c.decode(String.self, forKey: .actionType),
            data: try c.decodeIfPresent(JSON.self, forKey: .data) ?? [:]
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.actionType, forKey: .actionType)
        try c.encode(self.data, forKey: .data)
    }
}

/// `POST /backend/action-done`.
public struct ActionDone: Sendable, Equatable, Codable {
    public enum Result: String, Sendable, Codable {
        case success
        case failure
    }

    public var id: Int
    public var result: Result

    public init(id: Int, result: Result) {
        self.id = id
        self.result = result
    }
}
