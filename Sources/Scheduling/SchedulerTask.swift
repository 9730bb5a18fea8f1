/// One queued unit of build work as the dispatcher sees it: the scheduling-relevant fields of a task object from
/// `GET /backend/pending-jobs` (internal-api.md).
public struct SchedulerTask: Sendable, Hashable {
    /// Which queue family a task belongs to. SRPM tasks come before RPM tasks of the same lane, because every RPM
    /// build of a URL or SCM build waits for its SRPM.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case srpm
        case rpm
    }

    /// `task_id`: `BUILDID` for an SRPM task, `BUILDID-CHROOT` for an RPM task. Unique among queued and running tasks.
    public var id: String
    /// `type`.
    public var kind: Kind
    /// `project_owner`: the unit of fairness.
    public var owner: String
    /// `arch`: the builder architecture the task needs.
    public var arch: String
    /// `sandbox` (`owner/project--submitter`): builders are reused only within a sandbox.
    public var sandbox: String
    /// `background`: served after all normal work, until it has aged (``SchedulerConfiguration/backgroundAgeing``).
    public var background: Bool
    /// `submitted_on`, unix seconds; only used for ageing background tasks.
    public var submitted: Int64
    /// Arrival order, assigned by the caller. Tasks should be enqueued in increasing `sequence`; it orders the
    /// ageing of background tasks that were submitted in the same second.
    public var sequence: UInt64

    public init(
        id: String,
        kind: Kind,
        owner: String,
        arch: String,
        sandbox: String,
        background: Bool = false,
        submitted: Int64,
        sequence: UInt64
    ) {
        self.id = id
        self.kind = kind
        self.owner = owner
        self.arch = arch
        self.sandbox = sandbox
        self.background = background
        self.submitted = submitted
        self.sequence = sequence
    }
}

/// Where a known task is.
public enum SchedulerTaskStatus: Sendable, Hashable {
    /// Queued, waiting for ``Scheduler/next(now:isArchAvailable:)``.
    case pending
    /// Handed out by ``Scheduler/next(now:isArchAvailable:)`` and not yet finished, removed or requeued.
    case running
}
