import CoprModel
import HTTPCore
import KoperJSON
import KoperProtocol
import KoperStore
import Postgres

/// Bounded pagination shared by every list endpoint: integer `meta.offset` / `meta.limit` echo the request.
struct Page: Sendable {
    static let maxLimit = 1000
    let limit: Int
    let offset: Int

    init(_ ctx: RequestContext, defaultLimit: Int = 1000) throws {
        let l = try optionalInt(ctx.q("limit").map { .string($0) }, field: "limit") ?? defaultLimit
        let o = try optionalInt(ctx.q("offset").map { .string($0) }, field: "offset") ?? 0
        guard l >= 0, o >= 0 else { throw APIError.badRequest("limit and offset must not be negative") }
        self.limit = min(l, Self.maxLimit)
        self.offset = o
    }

    func meta(order: String = "id", orderType: String) -> JSON {
        [
            "limit": .int(self.limit), "offset": .int(self.offset), "order": .string(order),
            "order_type": .string(orderType),
        ]
    }
}
