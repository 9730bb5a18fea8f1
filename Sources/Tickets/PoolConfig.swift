/// One pool of builder machines (resalloc's `pools.yaml` entry).
///
/// Resources come from `staticHosts` (one resource per host at a time), from `allocateCommand`, or both (then
/// the hook prepares a static host and may print nothing). Hooks are `/bin/sh -c` commands run with
/// `RESALLOC_NAME`, `RESALLOC_ID`, `RESALLOC_POOL_ID` and, where the data is known, `KOPER_RESOURCE_DATA` (the
/// resource's data as JSON) in the environment. The allocate hook prints the resource's data on stdout: a JSON
/// object (`{"host", "port", "user", "host_key", …}`) or `[user@]host[:port]` on its last line. The release
/// hook must be idempotent: it also runs for allocations that failed or were interrupted by a restart.
///
/// JSON keys are snake_case (`max_prealloc`, `allocate_command`, …); everything but `name` and `max` has a
/// default.
public struct PoolConfig: Codable, Sendable, Hashable {
    /// Unique; letters, digits, `_`, `.`, `-`. Used in resource names and hook environments.
    public var name: String
    /// A ticket is served by a pool whose tags include all of the ticket's tags.
    public var tags: [String]
    /// At most this many resources exist at once (allocating, ready, in use or being released).
    public var max: Int
    /// Spare (fresh, unused) resources kept ready, within `max`.
    public var maxPrealloc: Int
    /// Fixed hosts; each backs at most one resource at a time. With no `allocateCommand` allocation is instant.
    public var staticHosts: [ResourceData]?
    public var allocateCommand: String?
    public var releaseCommand: String?
    /// Health check of idle resources; a non-zero exit counts as a failure.
    public var checkCommand: String?
    /// Seconds between health checks of an idle resource.
    public var checkInterval: Int
    /// Consecutive failed checks that retire a resource.
    public var checkMaxFailures: Int
    /// How many more tickets of the same sandbox a resource may serve after its first (0: never reused).
    public var reuseMaxCount: Int
    /// Seconds after its first ticket during which a resource may be reused.
    public var reuseMaxSeconds: Int
    /// Seconds an idle, used resource waits for another ticket of its sandbox before it is released.
    public var reuseOpportunitySeconds: Int
    /// Time limits of the hooks, in seconds. A hook that runs longer is killed (its process group) and failed.
    public var allocateTimeout: Int
    public var releaseTimeout: Int
    public var checkTimeout: Int

    public init(
        name: String,
        tags: [String],
        max: Int,
        maxPrealloc: Int = 0,
        staticHosts: [ResourceData]? = nil,
        allocateCommand: String? = nil,
        releaseCommand: String? = nil,
        checkCommand: String? = nil,
        checkInterval: Int = 60,
        checkMaxFailures: Int = 1,
        reuseMaxCount: Int = 8,
        reuseMaxSeconds: Int = 3600,
        reuseOpportunitySeconds: Int = 90,
        allocateTimeout: Int = 600,
        releaseTimeout: Int = 300,
        checkTimeout: Int = 60
    ) {
        self.name = name
        self.tags = tags
        self.max = max
        self.maxPrealloc = maxPrealloc
        self.staticHosts = staticHosts
        self.allocateCommand = allocateCommand
        self.releaseCommand = releaseCommand
        self.checkCommand = checkCommand
        self.checkInterval = checkInterval
        self.checkMaxFailures = checkMaxFailures
        self.reuseMaxCount = reuseMaxCount
        self.reuseMaxSeconds = reuseMaxSeconds
        self.reuseOpportunitySeconds = reuseOpportunitySeconds
        self.allocateTimeout = allocateTimeout
        self.releaseTimeout = releaseTimeout
        self.checkTimeout = checkTimeout
    }

    enum CodingKeys: String, CodingKey {
        case name, tags, max
        case maxPrealloc = "max_prealloc"
        case staticHosts = "static_hosts"
        case allocateCommand = "allocate_command"
        case releaseCommand = "release_command"
        case checkCommand = "check_command"
        case checkInterval = "check_interval"
        case checkMaxFailures = "check_max_failures"
        case reuseMaxCount = "reuse_max_count"
        case reuseMaxSeconds = "reuse_max_seconds"
        case reuseOpportunitySeconds = "reuse_opportunity_seconds"
        case allocateTimeout = "allocate_timeout"
        case releaseTimeout = "release_timeout"
        case checkTimeout = "check_timeout"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = PoolConfig(name: "", tags: [], max: 0)
        self.name = try c.decode(String.self, forKey: .name)
        self.tags = try c.decodeIfPresent([String].self, forKey: .tags) ?? []
        self.max = try c.decode(Int.self, forKey: .max)
        self.maxPrealloc = try c.decodeIfPresent(Int.self, forKey: .maxPrealloc) ?? defaults.maxPrealloc
        self.staticHosts = try c.decodeIfPresent([ResourceData].self, forKey: .staticHosts)
        self.allocateCommand = try c.decodeIfPresent(String.self, forKey: .allocateCommand)
        self.releaseCommand = try c.decodeIfPresent(String.self, forKey: .releaseCommand)
        self.checkCommand = try c.decodeIfPresent(String.self, forKey: .checkCommand)
        self.checkInterval = try c.decodeIfPresent(Int.self, forKey: .checkInterval) ?? defaults.checkInterval
        self.checkMaxFailures =
            try c.decodeIfPresent(Int.self, forKey: .checkMaxFailures) ?? defaults.checkMaxFailures
        self.reuseMaxCount = try c.decodeIfPresent(Int.self, forKey: .reuseMaxCount) ?? defaults.reuseMaxCount
        self.reuseMaxSeconds = try c.decodeIfPresent(Int.self, forKey: .reuseMaxSeconds) ?? defaults.reuseMaxSeconds
        self.reuseOpportunitySeconds =
            try c.decodeIfPresent(Int.self, forKey: .reuseOpportunitySeconds) ?? defaults.reuseOpportunitySeconds
        self.allocateTimeout = try c.decodeIfPresent(Int.self, forKey: .allocateTimeout) ?? defaults.allocateTimeout
        self.releaseTimeout = try c.decodeIfPresent(Int.self, forKey: .releaseTimeout) ?? defaults.releaseTimeout
        self.checkTimeout = try c.decodeIfPresent(Int.self, forKey: .checkTimeout) ?? defaults.checkTimeout
    }

    /// The number of resources the pool can really have: `max`, and at most one per static host.
    var capacity: Int {
        guard let staticHosts else { return Swift.max(0, self.max) }
        return Swift.max(0, Swift.min(self.max, staticHosts.count))
    }

    /// True if the pool's tags include all of `tags`.
    func serves(_ tags: Set<String>) -> Bool {
        tags.isSubset(of: Set(self.tags))
    }

    /// Checks the configuration; the message names the pool and the field.
    func validate() throws(TicketError) {
        func fail(_ message: String) -> TicketError {
            TicketError(code: .invalidConfiguration, message: "pool \"\(self.name)\": \(message)")
        }
        guard Validation.isName(self.name) else { throw fail("name must be 1-64 letters, digits, '_', '.', '-'") }
        for tag in self.tags where !Validation.isTag(tag) {
            throw fail("invalid tag \"\(tag)\" (1-64 letters, digits, '_', '.', ':', '+', '-')")
        }
        guard self.max >= 0, self.maxPrealloc >= 0 else { throw fail("max and max_prealloc must not be negative") }
        guard self.maxPrealloc <= self.max else { throw fail("max_prealloc must not exceed max") }
        guard self.staticHosts != nil || self.allocateCommand != nil else {
            throw fail("needs static_hosts or an allocate_command")
        }
        if let staticHosts {
            guard Set(staticHosts.map(\.identity)).count == staticHosts.count else {
                throw fail("duplicate static host")
            }
        }
        for command in [self.allocateCommand, self.releaseCommand, self.checkCommand] {
            if let command, command.isEmpty || command.utf8.contains(0) {
                throw fail("hook commands must be non-empty and contain no NUL byte")
            }
        }
        guard self.checkInterval >= 1, self.checkMaxFailures >= 1 else {
            throw fail("check_interval and check_max_failures must be at least 1")
        }
        guard self.reuseMaxCount >= 0, self.reuseMaxSeconds >= 0, self.reuseOpportunitySeconds >= 0 else {
            throw fail("reuse limits must not be negative")
        }
        guard self.allocateTimeout >= 1, self.releaseTimeout >= 1, self.checkTimeout >= 1 else {
            throw fail("hook timeouts must be at least 1 second")
        }
    }
}

/// Input checks shared by the configuration and the service API.
enum Validation {
    static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy {
                isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
            }
    }

    static func isTag(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy { byte in
                isAlphanumeric(byte)
                    || [UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "+"), UInt8(ascii: "-")]
                        .contains(byte)
            }
    }

    /// Sandbox and owner strings: 1-512 bytes, no control characters.
    static func isLabel(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 512
            && text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f }
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
