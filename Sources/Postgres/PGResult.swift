/// Column names of one result, shared by all of its rows.
final class PGColumns: Sendable {
    let names: [String]
    let index: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (position, name) in names.enumerated() where index[name] == nil {
            index[name] = position
        }
        self.index = index
    }
}

/// One row of a result, with every value in PostgreSQL's text format (NULL is `nil`).
public struct PGRow: Sendable {
    let columns: PGColumns
    let values: [String?]

    init(columns: PGColumns, values: [String?]) {
        self.columns = columns
        self.values = values
    }

    /// The value at a column position; nil if NULL or out of range.
    public subscript(_ column: Int) -> String? {
        values.indices.contains(column) ? values[column] : nil
    }

    /// The value of the first column with this name; nil if NULL or there is no such column.
    public subscript(_ name: String) -> String? {
        guard let position = columns.index[name] else { return nil }
        return values[position]
    }

    /// The value of a column; throws `.decoding` if the column is missing or NULL.
    public func string(_ name: String) throws -> String {
        guard let value = try optional(name) else {
            throw PostgresError(code: .decoding, message: "column \"\(name)\" is NULL")
        }
        return value
    }

    /// The value of a column, nil if the column is NULL or missing.
    public func optionalString(_ name: String) -> String? {
        self[name]
    }

    /// The value of an integer column; throws `.decoding` if missing, NULL or not an integer.
    public func int(_ name: String) throws -> Int {
        guard let value = try optionalInt(name) else {
            throw PostgresError(code: .decoding, message: "column \"\(name)\" is NULL")
        }
        return value
    }

    /// The value of an integer column, nil if NULL; throws `.decoding` if missing or not an integer.
    public func optionalInt(_ name: String) throws -> Int? {
        guard let text = try optional(name) else { return nil }
        guard let value = Int(text) else {
            // The value itself is deliberately left out of the message.
            throw PostgresError(code: .decoding, message: "column \"\(name)\" is not an integer")
        }
        return value
    }

    /// The value of a boolean column (`t`/`f`); throws `.decoding` if missing, NULL or not a boolean.
    public func bool(_ name: String) throws -> Bool {
        guard let value = try optionalBool(name) else {
            throw PostgresError(code: .decoding, message: "column \"\(name)\" is NULL")
        }
        return value
    }

    /// The value of a boolean column, nil if NULL; throws `.decoding` if missing or not a boolean.
    public func optionalBool(_ name: String) throws -> Bool? {
        switch try optional(name) {
        case nil: return nil
        case "t", "true": return true
        case "f", "false": return false
        default: throw PostgresError(code: .decoding, message: "column \"\(name)\" is not a boolean")
        }
    }

    private func optional(_ name: String) throws(PostgresError) -> String? {
        guard let position = columns.index[name] else {
            throw PostgresError(code: .decoding, message: "no column \"\(name)\" in result")
        }
        return values[position]
    }
}

/// The complete result of one statement.
public struct PGResult: Sendable {
    /// Column names in order.
    public let columns: [String]
    public let rows: [PGRow]
    /// Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/MOVE/FETCH/COPY, otherwise 0.
    /// The corresponding C function is `PQcmdTuples`.
    public let affectedRows: Int
    /// The command tag, e.g. `"INSERT 0 1"`. The corresponding C function is `PQcmdStatus`.
    public let commandTag: String

    init(columns: [String], rows: [PGRow], affectedRows: Int, commandTag: String) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.commandTag = commandTag
    }

    public var first: PGRow? { rows.first }
}
