internal import CLibPQ
internal import Dispatch
internal import Logging

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Receives libpq notices (server NOTICE/WARNING messages) and logs them at debug level instead of letting
/// libpq print them to stderr. Owned by whoever owns the `PGconn*`, so it outlives it.
final class NoticeSink: Sendable {
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }
}

/// Helpers shared by `PGConnection` and `PGListener`. Every function here touches a `PGconn*` and must be
/// called only on the serial queue of the handle's owner.
enum LibPQ {
    /// Opens a connection. Our defaults (connect timeout, TCP keepalives, application name) come before the
    /// caller's conninfo so that it can override them; `client_encoding=UTF8` comes after, so it always wins.
    /// Blocks for at most `connect_timeout` (default 10 s).
    /// The corresponding C function is `PQconnectdbParams`.
    static func connect(_ conninfo: String, noticeSink: NoticeSink) throws(PostgresError) -> OpaquePointer {
        guard !conninfo.utf8.contains(0) else {
            throw PostgresError(code: .invalidArgument, message: "connection string contains a NUL byte")
        }
        let password = try parseConninfo(conninfo)
        let settings: [(String, String)] = [
            ("connect_timeout", "10"),
            ("keepalives", "1"),
            ("keepalives_idle", "30"),
            ("keepalives_interval", "10"),
            ("keepalives_count", "3"),
            ("fallback_application_name", "koper"),
            ("dbname", conninfo),
            ("client_encoding", "UTF8"),
        ]
        let keys = settings.map { strdup($0.0) }
        let values = settings.map { strdup($0.1) }
        defer {
            for pointer in keys { free(pointer) }
            for pointer in values { free(pointer) }
        }
        guard !keys.contains(nil), !values.contains(nil) else {
            throw PostgresError(code: .connectionFailed, message: "out of memory")
        }
        let keyPointers: [UnsafePointer<CChar>?] = keys.map { $0.map { UnsafePointer($0) } } + [nil]
        let valuePointers: [UnsafePointer<CChar>?] = values.map { $0.map { UnsafePointer($0) } } + [nil]
        guard let conn = PQconnectdbParams(keyPointers, valuePointers, 1) else {
            throw PostgresError(code: .connectionFailed, message: "out of memory")
        }
        guard PQstatus(conn) == CONNECTION_OK else {
            let message = redact(errorMessage(conn), secrets: password.map { [$0] } ?? [])
            PQfinish(conn)
            throw PostgresError(code: .connectionFailed, message: message)
        }
        PQsetNoticeProcessor(
            conn,
            { context, message in
                guard let context, let message else { return }
                let sink = Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
                sink.logger.debug(
                    "postgres notice",
                    metadata: ["pg.notice": "\(LibPQ.trimmed(String(cString: message)))"]
                )
            },
            Unmanaged.passUnretained(noticeSink).toOpaque()
        )
        return conn
    }

    /// Checks the syntax of a connection string without echoing it, and returns its password (for redaction).
    /// libpq's own parse errors quote fragments of the string, which may be the password, so they are dropped.
    /// The corresponding C function is `PQconninfoParse`.
    static func parseConninfo(_ conninfo: String) throws(PostgresError) -> String? {
        var errorPointer: UnsafeMutablePointer<CChar>? = nil
        guard let options = PQconninfoParse(conninfo, &errorPointer) else {
            if let errorPointer { PQfreemem(errorPointer) }
            throw PostgresError(code: .invalidArgument, message: "invalid connection string")
        }
        defer { PQconninfoFree(options) }
        var password: String? = nil
        var option = options
        while let keyword = option.pointee.keyword {
            if String(cString: keyword) == "password", let value = option.pointee.val {
                password = String(cString: value)
            }
            option += 1
        }
        return password
    }

    /// True if an idle connection still looks usable. Reads (without blocking) whatever the server sent while
    /// the connection was idle: after a server shutdown that is a FATAL message and then EOF, which turns the
    /// status into CONNECTION_BAD. The corresponding C functions are `PQconsumeInput` and `PQstatus`.
    static func isAlive(_ conn: OpaquePointer) -> Bool {
        guard PQstatus(conn) == CONNECTION_OK else { return false }
        let fd = PQsocket(conn)
        guard fd >= 0 else { return false }
        for _ in 0..<16 {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { break }
            if PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK {
                return false
            }
            while let notify = PQnotifies(conn) {
                PQfreemem(notify)
            }
        }
        return PQstatus(conn) == CONNECTION_OK
    }

    /// Builds an error from a failed result. The connection is reported as lost if libpq says so.
    static func error(result: OpaquePointer, connection: OpaquePointer, parameters: [String?]) -> PostgresError {
        func field(_ code: Character) -> String? {
            PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) }
        }
        let primary = field("M") ?? trimmed(String(cString: PQresultErrorMessage(result)))
        let message = redact(primary.isEmpty ? "unknown error" : primary, parameters: parameters)
        let lost = PQstatus(connection) == CONNECTION_BAD
        return PostgresError(
            code: lost ? .connectionFailed : .queryFailed,
            message: message,
            sqlState: field("C"),
            constraintName: field("n")
        )
    }

    /// Converts a successful result. The corresponding C functions are `PQgetvalue` and `PQcmdTuples`.
    static func makeResult(_ result: OpaquePointer) -> PGResult {
        let fieldCount = PQnfields(result)
        let rowCount = PQntuples(result)
        var names: [String] = []
        names.reserveCapacity(Int(fieldCount))
        for field in 0..<fieldCount {
            names.append(PQfname(result, field).map { String(cString: $0) } ?? "")
        }
        let columns = PGColumns(names)
        var rows: [PGRow] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(Int(fieldCount))
            for field in 0..<fieldCount {
                if PQgetisnull(result, row, field) == 1 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, row, field))
                    let bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, row, field), count: length)
                    values.append(String(decoding: bytes, as: UTF8.self))
                }
            }
            rows.append(PGRow(columns: columns, values: values))
        }
        let affected = PQcmdTuples(result).map { Int(String(cString: $0)) ?? 0 } ?? 0
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        return PGResult(columns: names, rows: rows, affectedRows: affected, commandTag: tag)
    }

    static func errorMessage(_ conn: OpaquePointer) -> String {
        let message = trimmed(PQerrorMessage(conn).map { String(cString: $0) } ?? "")
        return message.isEmpty ? "unknown libpq error" : message
    }

    /// Quotes an SQL identifier (for LISTEN, which takes no parameters).
    static func quoteIdentifier(_ name: String) -> String {
        "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    /// Replaces each parameter value quoted in a server message by its placeholder. Values shorter than four
    /// bytes are only replaced where they appear in double quotes, so that they do not mangle the message.
    static func redact(_ message: String, parameters: [String?]) -> String {
        let values = parameters.enumerated()
            .compactMap { index, value in value.map { (placeholder: "$\(index + 1)", value: $0) } }
            .filter { !$0.value.isEmpty }
            .sorted { $0.value.utf8.count > $1.value.utf8.count }
        var result = Array(message.utf8)
        for (placeholder, value) in values {
            if value.utf8.count >= 4 {
                result = replace(Array(value.utf8), with: Array(placeholder.utf8), in: result)
            } else {
                result = replace(Array("\"\(value)\"".utf8), with: Array("\"\(placeholder)\"".utf8), in: result)
            }
        }
        return String(decoding: result, as: UTF8.self)
    }

    static func redact(_ message: String, secrets: [String]) -> String {
        var result = Array(message.utf8)
        for secret in secrets where !secret.isEmpty {
            result = replace(Array(secret.utf8), with: Array("***".utf8), in: result)
        }
        return String(decoding: result, as: UTF8.self)
    }

    private static func replace(_ needle: [UInt8], with replacement: [UInt8], in haystack: [UInt8]) -> [UInt8] {
        guard !needle.isEmpty, haystack.count >= needle.count else { return haystack }
        var output: [UInt8] = []
        output.reserveCapacity(haystack.count)
        var index = 0
        while index < haystack.count {
            if index + needle.count <= haystack.count, haystack[index..<index + needle.count].elementsEqual(needle) {
                output.append(contentsOf: replacement)
                index += needle.count
            } else {
                output.append(haystack[index])
                index += 1
            }
        }
        return output
    }

    static func trimmed(_ text: String) -> String {
        var scalars = Substring(text)
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        return String(scalars)
    }
}

extension Duration {
    /// This duration for `DispatchTime` arithmetic, clamped to a sane range.
    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = components
        let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
        return .nanoseconds(Int(max(0, min(nanoseconds, 1e17))))
    }
}
