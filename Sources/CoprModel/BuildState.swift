/// The state of a build, a source build or a build chroot, spelled exactly as upstream's `StatusEnum`
/// (copr-protocol.md §5). The raw value is the string on the wire.
public enum BuildState: String, Sendable, CaseIterable, Codable {
    case failed
    case succeeded
    case canceled
    case running
    case pending
    case skipped
    case starting
    case importing
    case forked
    case waiting
    case unknown

    /// Upstream's `StatusEnum` number: failed 0, succeeded 1, canceled 2, running 3, pending 4, skipped 5,
    /// starting 6, importing 7, forked 8, waiting 9, unknown 1000.
    public var number: Int {
        switch self {
        case .failed: return 0
        case .succeeded: return 1
        case .canceled: return 2
        case .running: return 3
        case .pending: return 4
        case .skipped: return 5
        case .starting: return 6
        case .importing: return 7
        case .forked: return 8
        case .waiting: return 9
        case .unknown: return 1000
        }
    }

    /// The state with upstream number `number`, or `nil` for a number upstream does not define.
    public init?(number: Int) {
        guard let state = BuildState.allCases.first(where: { $0.number == number }) else {
            return nil
        }
        self = state
    }

    /// A state that will not change any more: succeeded, skipped, failed, canceled and forked.
    ///
    /// `forked` is final on the server (a forked build is a copy of a finished one), but copr-cli's watch loop
    /// does not stop on it; see ``endsClientWatch``.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .skipped, .failed, .canceled, .forked:
            return true
        case .running, .pending, .starting, .importing, .waiting, .unknown:
            return false
        }
    }

    /// The states on which copr-cli `watch-build` and python-copr `wait()` stop polling:
    /// succeeded, skipped, failed and canceled. (`unknown` makes them abort with an error instead.)
    public var endsClientWatch: Bool {
        switch self {
        case .succeeded, .skipped, .failed, .canceled:
            return true
        default:
            return false
        }
    }
}

/// How the state of a whole build is derived from its source build and its build chroots.
public enum BuildStateDerivation {
    /// Upstream's rule (copr-protocol.md §5, `models.Build.status`):
    /// 1. a canceled build is `canceled`;
    /// 2. otherwise, when the source state is `starting`, `pending`, `running`, `importing` or `failed`,
    ///    the source state;
    /// 3. otherwise the first chroot state present in the order `running`, `starting`, `pending`, `failed`,
    ///    `succeeded`, `skipped`, `forked`;
    /// 4. otherwise, when some chroot is `waiting`, `pending`.
    ///
    /// Koper's decisions where upstream has no answer:
    /// - **No chroots at all** (upstream logs an inconsistency and answers `waiting`, on which clients would
    ///   poll forever): the source state, except that `waiting` becomes `pending`. So a source build that
    ///   succeeded but produced no chroot builds reads `succeeded`, and a fresh upload build (source
    ///   `pending`) reads `pending`.
    /// - **Chroots only in states outside the list** (upstream answers `None`): `canceled` if any chroot
    ///   was canceled, else `importing` if any is importing, else `unknown`.
    public static func buildState(canceled: Bool, sourceState: BuildState, chrootStates: [BuildState]) -> BuildState {
        if canceled {
            return .canceled
        }
        switch sourceState {
        case .starting, .pending, .running, .importing, .failed:
            return sourceState
        default:
            break
        }
        if chrootStates.isEmpty {
            return sourceState == .waiting ? .pending : sourceState
        }
        let order: [BuildState] = [.running, .starting, .pending, .failed, .succeeded, .skipped, .forked]
        for state in order where chrootStates.contains(state) {
            return state
        }
        if chrootStates.contains(.waiting) {
            return .pending
        }
        if chrootStates.contains(.canceled) {
            return .canceled
        }
        if chrootStates.contains(.importing) {
            return .importing
        }
        return .unknown
    }
}
