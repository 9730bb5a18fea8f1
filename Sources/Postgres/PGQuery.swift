/// One SQL statement with its bound parameters, written as a string literal with interpolations:
///
///     let q: PGQuery = "SELECT name FROM projects WHERE id = \(id) AND ownername = \(owner)"
///
/// Every interpolated value becomes a `$n` parameter sent apart from the SQL text (never spliced into it), with the
/// PostgreSQL type its Swift type maps to (`PGEncodable`). Only the literal parts of a string literal, and other
/// `PGQuery` values, become SQL text: a column list or an ORDER BY key chosen from an allow-list is a `PGQuery`
/// too, so no runtime string can reach the SQL text.
public struct PGQuery: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// The SQL between the parameters: `segments.count == binds.count + 1`.
    var segments: [String]
    var binds: [PGBind]

    public init(stringLiteral value: String) {
        self.segments = [value]
        self.binds = []
    }

    public init(stringInterpolation: StringInterpolation) {
        self.segments = stringInterpolation.segments
        self.binds = stringInterpolation.binds
    }

    /// The SQL text with `$1`, `$2`, … placeholders, as sent to the server.
    public var sql: String {
        var text = self.segments[0]
        for (index, segment) in self.segments.dropFirst().enumerated() {
            text += "$\(index + 1)"
            text += segment
        }
        return text
    }

    /// The parameters' text values (nil for NULL), in placeholder order.
    public var parameterValues: [String?] { self.binds.map(\.text) }

    /// The SQL text only: parameter values are never part of a description.
    public var description: String { self.sql }

    /// Appends SQL and parameters; the other query's placeholders are renumbered after this one's.
    public mutating func append(_ other: PGQuery) {
        self.segments[self.segments.count - 1] += other.segments[0]
        self.segments.append(contentsOf: other.segments.dropFirst())
        self.binds.append(contentsOf: other.binds)
    }

    public static func + (lhs: PGQuery, rhs: PGQuery) -> PGQuery {
        var q = lhs
        q.append(rhs)
        return q
    }

    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        var segments: [String] = [""]
        var binds: [PGBind] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            self.segments.reserveCapacity(interpolationCount + 1)
            self.binds.reserveCapacity(interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) {
            self.segments[self.segments.count - 1] += literal
        }

        /// A bound parameter.
        public mutating func appendInterpolation<T: PGEncodable>(_ value: T) {
            self.binds.append(PGBind(text: value.pgText, type: T.pgType))
            self.segments.append("")
        }

        /// A bound parameter; `nil` is NULL (typed as `T`).
        public mutating func appendInterpolation<T: PGEncodable>(_ value: T?) {
            self.binds.append(PGBind(text: value?.pgText, type: T.pgType))
            self.segments.append("")
        }

        /// A fragment of SQL (a column list, a sort key from an allow-list, a condition) with its own parameters.
        public mutating func appendInterpolation(_ fragment: PGQuery) {
            var q = PGQuery(segments: self.segments, binds: self.binds)
            q.append(fragment)
            self.segments = q.segments
            self.binds = q.binds
        }
    }

    init(segments: [String], binds: [PGBind]) {
        self.segments = segments
        self.binds = binds
    }
}

extension Sequence where Element == PGQuery {
    /// The fragments joined by `separator`, e.g. SET assignments joined by `", "`.
    public func joined(separator: PGQuery) -> PGQuery {
        var result: PGQuery = ""
        for (index, fragment) in self.enumerated() {
            if index > 0 { result.append(separator) }
            result.append(fragment)
        }
        return result
    }
}

/// One bound parameter: its text-format value and its PostgreSQL type.
struct PGBind: Sendable, Hashable {
    let text: String?
    let type: PGType
}

/// The PostgreSQL type of a parameter, by OID. `.unknown` lets the server infer it from the context, as for a
/// quoted literal.
public struct PGType: Sendable, Hashable {
    public let oid: UInt32

    public init(oid: UInt32) { self.oid = oid }

    public static let unknown = PGType(oid: 0)
    public static let bool = PGType(oid: 16)
    public static let int8 = PGType(oid: 20)
    public static let int4 = PGType(oid: 23)
    public static let text = PGType(oid: 25)
    public static let json = PGType(oid: 114)
    public static let float8 = PGType(oid: 701)
    public static let textArray = PGType(oid: 1009)
    public static let int8Array = PGType(oid: 1016)
    public static let timestamptz = PGType(oid: 1184)
}
