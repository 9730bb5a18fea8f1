/// A ticket: one request for a resource, persisted until closed.
public struct TicketID: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: Int64

    public init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: TicketID, rhs: TicketID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(self.rawValue) }
}

/// A builder machine leased through a ticket.
public struct Resource: Sendable, Hashable {
    public let id: Int64
    public let pool: String
    /// Unique, e.g. `copr_x86_64_00000042`; passed to the hooks as RESALLOC_NAME.
    public let name: String
    public let data: ResourceData

    public init(id: Int64, pool: String, name: String, data: ResourceData) {
        self.id = id
        self.pool = pool
        self.name = name
        self.data = data
    }
}

/// The life of a resource. Every state but `deleted` counts against the pool's `max`.
public enum ResourceState: String, Sendable, Codable, CaseIterable {
    /// The allocate hook runs (or ran when the process died: then it is released on start).
    case allocating
    /// Up: idle, or assigned to an open ticket.
    case ready
    /// Retired; the release hook runs or will be retried.
    case releasing
    /// Gone. Kept for a while as history.
    case deleted
}

/// An error of the ticket service.
public struct TicketError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. Extensible: new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidConfiguration
            case invalidArgument
            case noMatchingPool
            case unknownTicket
            case ticketClosed
            case ownerHasOpenTicket
            case invalidResourceData
            case shutDown
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// A pool configuration is invalid (see the message).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A tag, sandbox or owner string is invalid.
        public static let invalidArgument = Code(.invalidArgument)
        /// No configured pool has all the tags of the ticket.
        public static let noMatchingPool = Code(.noMatchingPool)
        /// No such ticket.
        public static let unknownTicket = Code(.unknownTicket)
        /// The ticket was closed (by `close`, or because a wait for it was cancelled).
        public static let ticketClosed = Code(.ticketClosed)
        /// The owner already has an open ticket with other tags or another sandbox.
        public static let ownerHasOpenTicket = Code(.ownerHasOpenTicket)
        /// A hook printed, or the database holds, resource data that cannot be used.
        public static let invalidResourceData = Code(.invalidResourceData)
        /// The service was shut down.
        public static let shutDown = Code(.shutDown)

        public var description: String {
            switch self.base {
            case .invalidConfiguration: "invalidConfiguration"
            case .invalidArgument: "invalidArgument"
            case .noMatchingPool: "noMatchingPool"
            case .unknownTicket: "unknownTicket"
            case .ticketClosed: "ticketClosed"
            case .ownerHasOpenTicket: "ownerHasOpenTicket"
            case .invalidResourceData: "invalidResourceData"
            case .shutDown: "shutDown"
            }
        }
    }

    public let code: Code
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "TicketError.\(self.code): \(self.message)" }
}

/// Everything the service knows, for an operator listing. Times are seconds since the Unix epoch.
public struct TicketSnapshot: Sendable, Codable, Hashable {
    public struct Pool: Sendable, Codable, Hashable {
        public let name: String
        public let tags: [String]
        public let max: Int
        public let maxPrealloc: Int
        /// False for a pool that is no longer configured (its resources are being released).
        public let isActive: Bool
    }

    public struct ResourceInfo: Sendable, Codable, Hashable {
        public let id: Int64
        public let pool: String
        public let name: String
        public let state: ResourceState
        public let data: ResourceData?
        /// The sandbox the resource is bound to since its first ticket.
        public let sandbox: String?
        /// Tickets served so far (including the current one).
        public let useCount: Int
        /// The open ticket holding the resource.
        public let ticket: TicketID?
        public let checkFailures: Int
        public let releaseReason: String?
        public let createdAt: Double
    }

    public struct TicketInfo: Sendable, Codable, Hashable {
        public let id: TicketID
        public let tags: [String]
        public let sandbox: String
        public let owner: String
        public let resourceID: Int64?
        public let createdAt: Double
        public let assignedAt: Double?
    }

    public let pools: [Pool]
    /// Resources not yet deleted, by id.
    public let resources: [ResourceInfo]
    /// Open tickets, by id (the order in which they are served).
    public let tickets: [TicketInfo]
}

extension TicketSnapshot: CustomStringConvertible {
    /// Three aligned tables (pools, resources, tickets) for a terminal.
    public var description: String {
        var text = "POOLS\n"
        text += Self.table(
            ["NAME", "TAGS", "MAX", "PREALLOC", "ACTIVE"],
            self.pools.map {
                [$0.name, $0.tags.joined(separator: ","), "\($0.max)", "\($0.maxPrealloc)", $0.isActive ? "yes" : "no"]
            }
        )
        text += "\nRESOURCES\n"
        text += Self.table(
            ["ID", "NAME", "POOL", "STATE", "TICKET", "SANDBOX", "USES", "ADDRESS", "NOTE"],
            self.resources.map { resource in
                [
                    "\(resource.id)", resource.name, resource.pool, resource.state.rawValue,
                    resource.ticket.map { "\($0)" } ?? "-", resource.sandbox ?? "-", "\(resource.useCount)",
                    resource.data.map { "\($0.user)@\($0.host):\($0.port)" } ?? "-",
                    resource.releaseReason
                        ?? (resource.checkFailures > 0 ? "\(resource.checkFailures) failed checks" : ""),
                ]
            }
        )
        text += "\nTICKETS\n"
        text += Self.table(
            ["ID", "OWNER", "SANDBOX", "TAGS", "RESOURCE"],
            self.tickets.map { ticket in
                [
                    "\(ticket.id)", ticket.owner, ticket.sandbox, ticket.tags.joined(separator: ","),
                    ticket.resourceID.map { "\($0)" } ?? "waiting",
                ]
            }
        )
        return text
    }

    private static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        var widths = header.map(\.count)
        for row in all {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
