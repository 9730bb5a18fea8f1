/// A malformed multipart body or a limit violation.
public struct MultipartError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { "multipart/form-data: \(self.message)" }
}

/// The headers of one part.
public struct MultipartPartHead: Sendable, Equatable {
    /// `name` parameter of Content-Disposition. `MultipartParser` always sets it (a part without
    /// one is an error, RFC 7578 §4.2); it is optional so that heads can be built by hand.
    public let name: String?
    /// `filename` parameter of Content-Disposition, if present (taken verbatim, not a safe path).
    public let filename: String?
    /// The Content-Type header value, if present.
    public let contentType: String?
    /// All header fields in order, names as sent, values without surrounding whitespace.
    public let headers: [(name: String, value: String)]

    public init(name: String?, filename: String?, contentType: String?, headers: [(name: String, value: String)]) {
        self.name = name
        self.filename = filename
        self.contentType = contentType
        self.headers = headers
    }

    /// The first header field named `name` (ASCII case-insensitive).
    public func header(_ name: String) -> String? {
        let wanted = MultipartSyntax.asciiLowercased(Array(name.utf8))
        for field in self.headers where MultipartSyntax.asciiLowercased(Array(field.name.utf8)) == wanted {
            return field.value
        }
        return nil
    }

    public static func == (lhs: MultipartPartHead, rhs: MultipartPartHead) -> Bool {
        lhs.name == rhs.name && lhs.filename == rhs.filename && lhs.contentType == rhs.contentType
            && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

public enum MultipartEvent: Sendable, Equatable {
    case partBegin(MultipartPartHead)
    /// Some bytes of the current part's content (never empty).
    case partData([UInt8])
    case partEnd
}

/// An incremental multipart/form-data parser (RFC 7578 on top of RFC 2046 §5.1.1).
///
/// Feed the body in chunks of any size; events come out in order. Part content is streamed:
/// between calls the parser keeps at most `boundary.count + 4` bytes of it (a possible
/// delimiter), so memory does not depend on part size. Part headers are buffered up to
/// `maxPartHeaderBytes`.
///
/// Rules:
/// - A delimiter is CRLF `--boundary` (or `--boundary` at the very start of the body); the CRLF
///   belongs to the delimiter, not to the preceding content. Everything before the first
///   delimiter (the preamble) is discarded.
/// - After a delimiter comes optional transport padding (spaces and tabs) and CRLF, then the part
///   headers up to an empty line; or `--`, which closes the body. Everything after the close
///   delimiter (the epilogue) is ignored.
/// - CRLF `--boundary` followed by any byte other than `-`, space, tab or CR is not a delimiter
///   and stays part of the content. Followed by one of those bytes it is taken as a delimiter, and
///   anything but `--` or padding + CRLF after it is an error.
/// - Each part needs `Content-Disposition: form-data; name="…"`. Header lines must be
///   `name: value` with UTF-8 values; obsolete line folding is rejected.
/// - After an error every further call throws the same error.
public struct MultipartParser: Sendable {
    public let boundary: String
    public let maxParts: Int
    public let maxPartHeaderBytes: Int

    private enum State: Sendable {
        /// Looking for a delimiter; content is emitted when `inPart`, discarded otherwise (preamble).
        case scanning(inPart: Bool)
        /// A delimiter has been matched; expecting `--`, or padding then CRLF.
        case delimiterTail(padding: Int)
        case delimiterLF
        case closeDash
        case headers
        case epilogue
        case finished
        case failed(MultipartError)
    }

    /// CRLF `--` boundary.
    private let delimiter: [UInt8]
    private let boundaryError: MultipartError?
    private var state: State = .scanning(inPart: false)
    /// Unprocessed input carried between calls (bounded, see the type's documentation).
    private var buffer: [UInt8]
    /// How many bytes at the start of `buffer` are a synthetic CRLF rather than content.
    private var syntheticPrefix = 0
    private var headerBytes: [UInt8] = []
    private var partCount = 0

    /// Longest transport padding accepted after a boundary.
    private static let maxTransportPadding = 256

    /// Extracts the boundary from a Content-Type value like `multipart/form-data; boundary=abc`
    /// (quoted or not). Returns nil if the media type is not `multipart/form-data`, or the
    /// boundary is absent or invalid (RFC 2046: 1 to 70 `bchars`, not ending in a space).
    public static func boundary(fromContentType contentType: String) -> String? {
        guard let parsed = MultipartSyntax.parseParameterized(Array(contentType.utf8)[...]) else { return nil }
        guard MultipartSyntax.asciiLowercased(parsed.value) == Array("multipart/form-data".utf8) else { return nil }
        guard let parameter = parsed.parameters.first(where: { $0.name == "boundary" }) else { return nil }
        guard MultipartSyntax.isValidBoundary(parameter.value) else { return nil }
        return String(decoding: parameter.value, as: UTF8.self)
    }

    /// A parser for a body delimited by `boundary`. An invalid boundary (see
    /// `boundary(fromContentType:)`) makes the first `feed` throw.
    public init(boundary: String, maxParts: Int = 16, maxPartHeaderBytes: Int = 16 * 1024) {
        self.boundary = boundary
        self.maxParts = maxParts
        self.maxPartHeaderBytes = maxPartHeaderBytes
        let boundaryBytes = Array(boundary.utf8)
        self.delimiter =
            [MultipartSyntax.cr, MultipartSyntax.lf, MultipartSyntax.dash, MultipartSyntax.dash]
            + boundaryBytes
        self.boundaryError =
            MultipartSyntax.isValidBoundary(boundaryBytes)
            ? nil : MultipartError(message: "invalid boundary")
        // The body may start with the dash-boundary itself: act as if a CRLF preceded it.
        self.buffer = [MultipartSyntax.cr, MultipartSyntax.lf]
    }

    /// Feeds the next chunk of the body (any size; delimiters may straddle chunks) and returns the
    /// resulting events in order. Part content may arrive in several `.partData` events.
    public mutating func feed(_ chunk: ArraySlice<UInt8>) throws(MultipartError) -> [MultipartEvent] {
        switch self.state {
        case .failed(let error):
            throw error
        case .finished:
            throw self.fail(MultipartError(message: "data fed after finish()"))
        default:
            break
        }
        if let boundaryError = self.boundaryError {
            throw self.fail(boundaryError)
        }
        do {
            return try self.process(chunk)
        } catch {
            throw self.fail(error)
        }
    }

    /// Feeds a whole array; see `feed(_:)` for slices.
    public mutating func feed(_ chunk: [UInt8]) throws(MultipartError) -> [MultipartEvent] {
        try self.feed(chunk[...])
    }

    /// Call at the end of the body. Throws if the close delimiter `--boundary--` was not seen.
    public mutating func finish() throws(MultipartError) {
        switch self.state {
        case .failed(let error):
            throw error
        case _ where self.boundaryError != nil:
            // An empty body never reached `feed`: the boundary is still what is wrong.
            throw self.fail(self.boundaryError ?? MultipartError(message: "invalid boundary"))
        case .epilogue, .finished:
            self.state = .finished
            self.buffer = []
        case .scanning(inPart: false) where self.partCount == 0:
            throw self.fail(MultipartError(message: "no boundary found in body"))
        default:
            throw self.fail(MultipartError(message: "body ended before the close delimiter"))
        }
    }

    private mutating func fail(_ error: MultipartError) -> MultipartError {
        self.state = .failed(error)
        self.buffer = []
        self.headerBytes = []
        return error
    }

    // MARK: - State machine

    private mutating func process(_ chunk: ArraySlice<UInt8>) throws(MultipartError) -> [MultipartEvent] {
        var events: [MultipartEvent] = []
        if case .epilogue = self.state {
            return events
        }
        self.buffer.append(contentsOf: chunk)
        var index = 0
        processing: while true {
            switch self.state {
            case .scanning(let inPart):
                let dataStart = index + self.syntheticPrefix
                var searchFrom = index
                while let match = self.findDelimiter(from: searchFrom) {
                    let after = match + self.delimiter.count
                    if after >= self.buffer.count {
                        // Need one more byte to know whether this is a delimiter.
                        if inPart { self.emitData(from: dataStart, to: match, into: &events) }
                        self.holdBack(from: match, dataStart: dataStart)
                        index = match
                        break processing
                    }
                    let next = self.buffer[after]
                    if next == MultipartSyntax.dash || next == MultipartSyntax.space || next == MultipartSyntax.tab
                        || next == MultipartSyntax.cr
                    {
                        if inPart {
                            self.emitData(from: dataStart, to: match, into: &events)
                            events.append(.partEnd)
                        }
                        self.syntheticPrefix = 0
                        self.state = .delimiterTail(padding: 0)
                        index = after
                        continue processing
                    }
                    searchFrom = match + 1  // "--boundary" followed by other content: not a delimiter
                }
                let hold = self.partialMatchStart(from: max(searchFrom, index))
                if inPart { self.emitData(from: dataStart, to: hold, into: &events) }
                self.holdBack(from: hold, dataStart: dataStart)
                index = hold
                break processing

            case .delimiterTail(let padding):
                guard index < self.buffer.count else { break processing }
                let byte = self.buffer[index]
                index += 1
                if byte == MultipartSyntax.dash, padding == 0 {
                    self.state = .closeDash
                } else if byte == MultipartSyntax.space || byte == MultipartSyntax.tab {
                    guard padding < Self.maxTransportPadding else {
                        throw MultipartError(message: "too much transport padding after boundary")
                    }
                    self.state = .delimiterTail(padding: padding + 1)
                } else if byte == MultipartSyntax.cr {
                    self.state = .delimiterLF
                } else {
                    throw MultipartError(message: "unexpected byte after boundary")
                }

            case .delimiterLF:
                guard index < self.buffer.count else { break processing }
                guard self.buffer[index] == MultipartSyntax.lf else {
                    throw MultipartError(message: "boundary line not terminated by CRLF")
                }
                index += 1
                guard self.partCount < self.maxParts else {
                    throw MultipartError(message: "more than \(self.maxParts) parts")
                }
                self.headerBytes = []
                self.state = .headers

            case .closeDash:
                guard index < self.buffer.count else { break processing }
                guard self.buffer[index] == MultipartSyntax.dash else {
                    throw MultipartError(message: "malformed close delimiter")
                }
                index += 1
                self.state = .epilogue

            case .headers:
                var complete = false
                while index < self.buffer.count {
                    let byte = self.buffer[index]
                    index += 1
                    self.headerBytes.append(byte)
                    guard self.headerBytes.count <= self.maxPartHeaderBytes else {
                        throw MultipartError(message: "part headers exceed \(self.maxPartHeaderBytes) bytes")
                    }
                    if byte == MultipartSyntax.lf, MultipartSyntax.endsHeaderBlock(self.headerBytes) {
                        complete = true
                        break
                    }
                }
                guard complete else { break processing }
                let head = try MultipartSyntax.parsePartHead(self.headerBytes)
                self.headerBytes = []
                self.partCount += 1
                events.append(.partBegin(head))
                // The CRLF ending the header block may double as the CRLF of an immediately
                // following delimiter (empty content): re-insert it as a synthetic prefix.
                self.buffer.insert(contentsOf: [MultipartSyntax.cr, MultipartSyntax.lf], at: index)
                self.syntheticPrefix = 2
                self.state = .scanning(inPart: true)

            case .epilogue:
                index = self.buffer.count
                break processing

            case .finished, .failed:
                preconditionFailure("process() called in a terminal state")
            }
        }
        if index >= self.buffer.count {
            self.buffer.removeAll(keepingCapacity: self.buffer.count <= 4096)
        } else if index > 0 {
            self.buffer.removeSubrange(0..<index)
        }
        return events
    }

    private func emitData(from start: Int, to end: Int, into events: inout [MultipartEvent]) {
        guard start < end else { return }
        events.append(.partData(Array(self.buffer[start..<end])))
    }

    /// Records how many of the bytes kept from `hold` on are synthetic rather than content.
    private mutating func holdBack(from hold: Int, dataStart: Int) {
        self.syntheticPrefix = dataStart > hold ? dataStart - hold : 0
    }

    /// First position >= `start` where the whole delimiter matches.
    private func findDelimiter(from start: Int) -> Int? {
        let count = self.buffer.count
        let length = self.delimiter.count
        guard count >= length else { return nil }
        var position = start
        while position <= count - length {
            if self.buffer[position] == MultipartSyntax.cr {
                var matched = 1
                while matched < length, self.buffer[position + matched] == self.delimiter[matched] {
                    matched += 1
                }
                if matched == length { return position }
            }
            position += 1
        }
        return nil
    }

    /// First position >= `start` from which the rest of the buffer is a proper prefix of the
    /// delimiter; `buffer.count` if there is none.
    private func partialMatchStart(from start: Int) -> Int {
        let count = self.buffer.count
        var position = max(start, count - self.delimiter.count + 1)
        while position < count {
            if self.buffer[position] == MultipartSyntax.cr {
                var matched = 1
                while position + matched < count, self.buffer[position + matched] == self.delimiter[matched] {
                    matched += 1
                }
                if position + matched == count { return position }
            }
            position += 1
        }
        return count
    }
}

/// Byte-level helpers for multipart and header parameters (RFC 2046, RFC 7578, RFC 9110 §5.6).
private enum MultipartSyntax {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let dash = UInt8(ascii: "-")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let semicolon = UInt8(ascii: ";")
    static let equals = UInt8(ascii: "=")
    static let colon = UInt8(ascii: ":")

    static func asciiLowercased(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
    }

    static let tokenPunctuation = Array("!#$%&'*+-.^_`|~".utf8)
    static let boundaryPunctuation = Array("'()+_,-./:=? ".utf8)

    /// RFC 9110 tchar.
    static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return tokenPunctuation.contains(byte)
        }
    }

    /// RFC 2046 bchars; 1...70 of them, the last not a space.
    static func isValidBoundary(_ bytes: [UInt8]) -> Bool {
        guard (1...70).contains(bytes.count), bytes.last != space else { return false }
        return bytes.allSatisfy { byte in
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || boundaryPunctuation.contains(byte)
        }
    }

    /// The header block is complete: it is just CRLF, or it ends with CRLF CRLF.
    static func endsHeaderBlock(_ bytes: [UInt8]) -> Bool {
        let count = bytes.count
        if count == 2 { return bytes[0] == cr && bytes[1] == lf }
        return count >= 4 && bytes[count - 4] == cr && bytes[count - 3] == lf && bytes[count - 2] == cr
            && bytes[count - 1] == lf
    }

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, isWhitespace(first) { slice = slice.dropFirst() }
        while let last = slice.last, isWhitespace(last) { slice = slice.dropLast() }
        return slice
    }

    /// Parses `value *( OWS ";" OWS name "=" ( token / quoted-string ) )`. Parameter names are
    /// lowercased. Inside quoted strings `\\` and `\"` are unescaped and any other backslash is
    /// kept (as Werkzeug does, so that unescaped Windows paths survive). Empty parameters
    /// (`a; ; b=c`, a trailing `;`) are tolerated. Returns nil on a syntax error.
    static func parseParameterized(
        _ input: ArraySlice<UInt8>
    ) -> (value: [UInt8], parameters: [(name: String, value: [UInt8])])? {
        var position = input.startIndex
        let end = input.endIndex
        while position < end, input[position] != semicolon { position += 1 }
        let value = Array(trimmed(input[input.startIndex..<position]))
        guard !value.isEmpty else { return nil }
        var parameters: [(name: String, value: [UInt8])] = []
        while position < end {
            // At a ';'.
            position += 1
            while position < end, isWhitespace(input[position]) { position += 1 }
            if position == end { break }
            if input[position] == semicolon { continue }
            let nameStart = position
            while position < end, isToken(input[position]) { position += 1 }
            guard position > nameStart else { return nil }
            let name = String(decoding: asciiLowercased(input[nameStart..<position]), as: UTF8.self)
            while position < end, isWhitespace(input[position]) { position += 1 }
            guard position < end, input[position] == equals else { return nil }
            position += 1
            while position < end, isWhitespace(input[position]) { position += 1 }
            var parameterValue: [UInt8] = []
            if position < end, input[position] == quote {
                position += 1
                var closed = false
                while position < end {
                    let byte = input[position]
                    if byte == quote {
                        closed = true
                        position += 1
                        break
                    }
                    if byte == backslash, position + 1 < end,
                        input[position + 1] == quote || input[position + 1] == backslash
                    {
                        parameterValue.append(input[position + 1])
                        position += 2
                        continue
                    }
                    guard byte == tab || byte >= 0x20, byte != 0x7F else { return nil }
                    parameterValue.append(byte)
                    position += 1
                }
                guard closed else { return nil }
            } else {
                let valueStart = position
                while position < end, isToken(input[position]) { position += 1 }
                guard position > valueStart else { return nil }
                parameterValue = Array(input[valueStart..<position])
            }
            while position < end, isWhitespace(input[position]) { position += 1 }
            guard position == end || input[position] == semicolon else { return nil }
            parameters.append((name: name, value: parameterValue))
        }
        return (value, parameters)
    }

    /// Parses a complete header block (CRLF-terminated lines followed by CRLF).
    static func parsePartHead(_ block: [UInt8]) throws(MultipartError) -> MultipartPartHead {
        var fields: [(name: String, value: String)] = []
        var disposition: [UInt8]?
        var contentType: String?
        let body = block.dropLast(2)  // the empty line
        var lineStart = body.startIndex
        while lineStart < body.endIndex {
            var lineEnd = lineStart
            while body[lineEnd] != cr || body[lineEnd + 1] != lf {
                lineEnd += 1
            }
            let line = body[lineStart..<lineEnd]
            lineStart = lineEnd + 2
            guard let first = line.first, !isWhitespace(first) else {
                throw MultipartError(message: "folded or empty part header line")
            }
            guard !line.contains(cr), !line.contains(lf), !line.contains(0) else {
                throw MultipartError(message: "stray CR, LF or NUL in part header")
            }
            guard let colonIndex = line.firstIndex(of: colon) else {
                throw MultipartError(message: "part header line without ':'")
            }
            let nameBytes = line[line.startIndex..<colonIndex]
            guard !nameBytes.isEmpty, nameBytes.allSatisfy(isToken) else {
                throw MultipartError(message: "invalid part header name")
            }
            let valueBytes = trimmed(line[(colonIndex + 1)...])
            guard let value = String(validating: valueBytes, as: UTF8.self) else {
                throw MultipartError(message: "part header value is not UTF-8")
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let lowerName = asciiLowercased(nameBytes)
            if lowerName == Array("content-disposition".utf8) {
                guard disposition == nil else { throw MultipartError(message: "duplicate Content-Disposition") }
                disposition = Array(valueBytes)
            } else if lowerName == Array("content-type".utf8) {
                guard contentType == nil else { throw MultipartError(message: "duplicate Content-Type") }
                contentType = value
            }
            fields.append((name: name, value: value))
        }
        guard let disposition else {
            throw MultipartError(message: "part without Content-Disposition")
        }
        guard let parsed = parseParameterized(disposition[...]),
            asciiLowercased(parsed.value) == Array("form-data".utf8)
        else {
            throw MultipartError(message: "Content-Disposition is malformed or not form-data")
        }
        var name: String?
        var filename: String?
        for parameter in parsed.parameters where parameter.name == "name" || parameter.name == "filename" {
            guard let value = String(validating: parameter.value, as: UTF8.self) else {
                throw MultipartError(message: "Content-Disposition \(parameter.name) is not UTF-8")
            }
            if parameter.name == "name" {
                guard name == nil else { throw MultipartError(message: "duplicate name parameter") }
                name = value
            } else {
                guard filename == nil else { throw MultipartError(message: "duplicate filename parameter") }
                filename = value
            }
        }
        guard name != nil else {
            throw MultipartError(message: "Content-Disposition without a name parameter")
        }
        return MultipartPartHead(name: name, filename: filename, contentType: contentType, headers: fields)
    }
}
