/// Limits and ageing for a ``Scheduler``. A cap of 0 means unlimited.
public struct SchedulerConfiguration: Sendable, Hashable {
    /// Seconds after `submitted` at which a background task is served as a normal one, so that background work
    /// never waits forever behind a steady stream of normal work. Default 30 minutes; `Int64.max` disables ageing.
    public var backgroundAgeing: Int64
    /// Most tasks one owner may have running at once.
    public var maxPerOwner: Int
    /// Most tasks that may run at once on one architecture, over all owners.
    public var maxPerArch: Int
    /// Most tasks one owner may have running at once on one architecture.
    public var maxPerOwnerArch: Int

    public init(
        backgroundAgeing: Int64 = 30 * 60,
        maxPerOwner: Int = 0,
        maxPerArch: Int = 0,
        maxPerOwnerArch: Int = 0
    ) {
        precondition(backgroundAgeing >= 0, "backgroundAgeing must not be negative")
        precondition(
            maxPerOwner >= 0 && maxPerArch >= 0 && maxPerOwnerArch >= 0,
            "caps must not be negative"
        )
        self.backgroundAgeing = backgroundAgeing
        self.maxPerOwner = maxPerOwner
        self.maxPerArch = maxPerArch
        self.maxPerOwnerArch = maxPerOwnerArch
    }
}
