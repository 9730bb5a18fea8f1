public import Foundation
public import KoperJSON

/// A Swift value that can be bound as a query parameter (text format) with its PostgreSQL type.
public protocol PGEncodable: Sendable {
    /// The parameter type; `.unknown` lets the server infer it from the context.
    static var pgType: PGType { get }
    /// The value in PostgreSQL's text format.
    var pgText: String { get }
}

/// A Swift value that can be read from a column in PostgreSQL's text format.
public protocol PGDecodable: Sendable {
    /// The value, or nil if `pgText` is not a valid text form of this type.
    init?(pgText: String)
    /// The type's name in decoding errors.
    static var pgTypeName: String { get }
}

/// A record read from one row (a store's row type).
public protocol PGRecord: Sendable {
    init(row: PGRow) throws
}

// MARK: Scalars

extension String: PGEncodable, PGDecodable {
    /// Strings are sent untyped, as a quoted literal would be: the same value fills a text, varchar, enum, json or
    /// timestamp parameter, and the server checks it against the column.
    public static var pgType: PGType { .unknown }
    public var pgText: String { self }
    public init?(pgText: String) { self = pgText }
    public static var pgTypeName: String { "text" }
}

extension Int: PGEncodable, PGDecodable {
    public static var pgType: PGType { .int8 }
    public var pgText: String { String(self) }
    public init?(pgText: String) {
        guard let value = Int(pgText) else { return nil }
        self = value
    }
    public static var pgTypeName: String { "an integer" }
}

extension Int64: PGEncodable, PGDecodable {
    public static var pgType: PGType { .int8 }
    public var pgText: String { String(self) }
    public init?(pgText: String) {
        guard let value = Int64(pgText) else { return nil }
        self = value
    }
    public static var pgTypeName: String { "an integer" }
}

extension Int32: PGEncodable, PGDecodable {
    public static var pgType: PGType { .int4 }
    public var pgText: String { String(self) }
    public init?(pgText: String) {
        guard let value = Int32(pgText) else { return nil }
        self = value
    }
    public static var pgTypeName: String { "a 32-bit integer" }
}

extension Double: PGEncodable, PGDecodable {
    public static var pgType: PGType { .float8 }
    public var pgText: String { self.description }
    public init?(pgText: String) {
        switch pgText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let value = Double(pgText) else { return nil }
            self = value
        }
    }
    public static var pgTypeName: String { "a number" }
}

extension Bool: PGEncodable, PGDecodable {
    public static var pgType: PGType { .bool }
    public var pgText: String { self ? "t" : "f" }
    public init?(pgText: String) {
        switch pgText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
    public static var pgTypeName: String { "a boolean" }
}

// MARK: Arrays (one-dimensional)

extension Array: PGEncodable where Element: PGArrayElement {
    public static var pgType: PGType { Element.pgArrayType }
    public var pgText: String { PGArrayLiteral.encode(self.map(\.pgText)) }
}

extension Array: PGDecodable where Element: PGArrayElement {
    public init?(pgText: String) {
        guard let items = PGArrayLiteral.decode(pgText) else { return nil }
        var values: [Element] = []
        values.reserveCapacity(items.count)
        for item in items {
            guard let item, let value = Element(pgText: item) else { return nil }
            values.append(value)
        }
        self = values
    }
    public static var pgTypeName: String { "an array" }
}

/// A type whose arrays can be bound and read (`int8[]`, `text[]`).
public protocol PGArrayElement: PGEncodable, PGDecodable {
    static var pgArrayType: PGType { get }
}

extension Int: PGArrayElement {
    public static var pgArrayType: PGType { .int8Array }
}

extension Int64: PGArrayElement {
    public static var pgArrayType: PGType { .int8Array }
}

extension String: PGArrayElement {
    public static var pgArrayType: PGType { .textArray }
}

/// PostgreSQL's text form of a one-dimensional array: `{1,2}`, `{"a b",NULL,"c\"d"}`.
enum PGArrayLiteral {
    static func encode(_ items: [String]) -> String {
        var out = "{"
        for (index, item) in items.enumerated() {
            if index > 0 { out += "," }
            out += "\""
            for ch in item.unicodeScalars {
                if ch == "\"" || ch == "\\" { out += "\\" }
                out.unicodeScalars.append(ch)
            }
            out += "\""
        }
        return out + "}"
    }

    /// The elements (nil for NULL), or nil if the text is not a one-dimensional array literal.
    static func decode(_ text: String) -> [String?]? {
        let bytes = Array(text.utf8)
        guard bytes.first == UInt8(ascii: "{"), bytes.last == UInt8(ascii: "}") else { return nil }
        var items: [String?] = []
        var i = 1
        let end = bytes.count - 1
        if i == end { return [] }
        while i <= end {
            var element: [UInt8] = []
            var quoted = false
            if bytes[i] == UInt8(ascii: "\"") {
                quoted = true
                i += 1
                while true {
                    guard i < end else { return nil }
                    let b = bytes[i]
                    if b == UInt8(ascii: "\\") {
                        guard i + 1 < end else { return nil }
                        element.append(bytes[i + 1])
                        i += 2
                    } else if b == UInt8(ascii: "\"") {
                        i += 1
                        break
                    } else {
                        element.append(b)
                        i += 1
                    }
                }
            } else {
                while i < end, bytes[i] != UInt8(ascii: ",") {
                    if bytes[i] == UInt8(ascii: "{") || bytes[i] == UInt8(ascii: "\"") { return nil }
                    element.append(bytes[i])
                    i += 1
                }
            }
            let value = String(decoding: element, as: UTF8.self)
            items.append(!quoted && value == "NULL" ? nil : value)
            if i == end { break }
            guard bytes[i] == UInt8(ascii: ",") else { return nil }
            i += 1
            if i == end { return nil }
        }
        return items
    }
}

// MARK: JSON

extension JSON: PGEncodable, PGDecodable {
    /// Sent as `json`; a `jsonb` column takes it by assignment.
    public static var pgType: PGType { .json }
    public var pgText: String { self.text }
    public init?(pgText: String) {
        guard let value = try? JSONParser.parse(Array(pgText.utf8)) else { return nil }
        self = value
    }
    public static var pgTypeName: String { "JSON" }
}

// MARK: Dates

extension Date: PGEncodable, PGDecodable {
    public static var pgType: PGType { .timestamptz }

    /// `YYYY-MM-DD HH:MM:SS.ffffff+00` (UTC).
    public var pgText: String {
        let seconds = self.timeIntervalSince1970
        let whole = Int64(seconds.rounded(.down))
        let micros = Int64(((seconds - Double(whole)) * 1_000_000).rounded())
        let (days, secondOfDay) = whole.floorDivided(by: 86_400)
        let (y, m, d) = PGCivilDate.civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let micro = String(micros)
        let fraction = String(repeating: "0", count: max(0, 6 - micro.count)) + micro
        return
            "\(y)-\(two(m))-\(two(d)) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))"
            + ".\(fraction)+00"
    }

    /// A `timestamptz`/`timestamp` in the ISO DateStyle (a zone-less timestamp is taken as UTC), or a number of
    /// seconds since the epoch (`extract(epoch from …)`).
    public init?(pgText: String) {
        if let epoch = Double(pgText) {
            self = Date(timeIntervalSince1970: epoch)
            return
        }
        guard let seconds = PGCivilDate.parseTimestamp(pgText) else { return nil }
        self = Date(timeIntervalSince1970: seconds)
    }

    public static var pgTypeName: String { "a timestamp" }
}

extension Int64 {
    fileprivate func floorDivided(by divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        var q = self / divisor
        var r = self % divisor
        if r < 0 {
            q -= 1
            r += divisor
        }
        return (q, r)
    }
}

/// Proleptic Gregorian calendar arithmetic for timestamps (days since 1970-01-01).
enum PGCivilDate {
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]]` → seconds since the epoch.
    static func parseTimestamp(_ text: String) -> Double? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int64? {
            guard i + width <= b.count else { return nil }
            var v: Int64 = 0
            for k in i..<(i + width) {
                guard b[k] >= 48, b[k] <= 57 else { return nil }
                v = v * 10 + Int64(b[k] - 48)
            }
            i += width
            return v
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            expect(" "), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
            let second = number(2)
        else { return nil }
        var fraction = 0.0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                fraction += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset: Int64 = 0
        if i < b.count {
            let sign: Int64
            switch b[i] {
            case UInt8(ascii: "+"): sign = 1
            case UInt8(ascii: "-"): sign = -1
            default: return nil
            }
            i += 1
            guard let oh = number(2) else { return nil }
            var seconds = oh * 3600
            if expect(":") {
                guard let om = number(2) else { return nil }
                seconds += om * 60
                if expect(":") {
                    guard let os = number(2) else { return nil }
                    seconds += os
                }
            }
            offset = sign * seconds
        }
        guard i == b.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        let days = days(fromCivil: year, month, day)
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second - offset) + fraction
    }
}

// MARK: Rows

extension PGRow {
    /// The value of a column as `T`. Throws `.decoding`, naming the column (never the value), if the column is
    /// missing, NULL or not a valid `T`.
    public func decode<T: PGDecodable>(_ column: String, as type: T.Type = T.self) throws(PostgresError) -> T {
        guard let value = try self.decode(column, as: T?.self) else {
            throw PostgresError(code: .decoding, message: "column \"\(column)\" is NULL")
        }
        return value
    }

    /// The value of a column as `T`, nil if NULL. Throws `.decoding`, naming the column, if the column is missing
    /// or not a valid `T`.
    public func decode<T: PGDecodable>(_ column: String, as type: T?.Type = T?.self) throws(PostgresError) -> T? {
        guard let position = self.columns.index[column] else {
            throw PostgresError(code: .decoding, message: "no column \"\(column)\" in result")
        }
        guard let text = self.values[position] else { return nil }
        guard let value = T(pgText: text) else {
            throw PostgresError(code: .decoding, message: "column \"\(column)\" is not \(T.pgTypeName)")
        }
        return value
    }
}

extension PGConnection {
    /// Every row of the statement's result as a record.
    public func all<R: PGRecord>(_ query: PGQuery, as type: R.Type = R.self) throws -> [R] {
        try self.query(query).rows.map { try R(row: $0) }
    }

    /// The first row of the statement's result as a record; nil if there is none.
    public func one<R: PGRecord>(_ query: PGQuery, as type: R.Type = R.self) throws -> R? {
        try self.query(query).rows.first.map { try R(row: $0) }
    }

    /// The first column of the first row; nil if there is no row or the value is NULL.
    public func value<T: PGDecodable>(_ query: PGQuery, as type: T.Type = T.self) throws -> T? {
        let result = try self.query(query)
        guard let row = result.rows.first, let name = result.columns.first else { return nil }
        return try row.decode(name, as: T?.self)
    }

    /// Whether the statement returns at least one row.
    public func exists(_ query: PGQuery) throws -> Bool {
        try self.query(query).rows.first != nil
    }
}
