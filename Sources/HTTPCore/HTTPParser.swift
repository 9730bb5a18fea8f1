/// Bounds on what one request may make the parser hold.
public struct HTTPParserLimits: Sendable {
    /// Longest request line (method, target, version) before 414.
    public var maxRequestLine: Int
    /// Largest header block (request line excluded) before 431.
    public var maxHeaderBytes: Int
    /// Most header fields before 431.
    public var maxHeaderFields: Int
    /// Longest chunk-size line (with extensions) in a chunked body.
    public var maxChunkLine: Int

    public init(
        maxRequestLine: Int = 8 * 1024,
        maxHeaderBytes: Int = 64 * 1024,
        maxHeaderFields: Int = 100,
        maxChunkLine: Int = 4096
    ) {
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderFields = maxHeaderFields
        self.maxChunkLine = maxChunkLine
    }
}

/// A request the parser refuses. `status` is the response to send before closing the connection.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "HTTP \(self.status): \(self.reason)" }

    static func bad(_ reason: String) -> HTTPParseError { HTTPParseError(status: 400, reason: reason) }
}

public enum HTTPParserEvent: Sendable, Equatable {
    case head(HTTPRequestHead)
    case body(ArraySlice<UInt8>)
    case end

    public static func == (a: HTTPParserEvent, b: HTTPParserEvent) -> Bool {
        switch (a, b) {
        case (.head(let x), .head(let y)):
            return x.method == y.method && x.target == y.target && x.framing == y.framing
                && x.versionMajor == y.versionMajor && x.versionMinor == y.versionMinor
                && x.headers.fields.elementsEqual(y.headers.fields, by: { $0 == $1 })
        case (.body(let x), .body(let y)): return x.elementsEqual(y)
        case (.end, .end): return true
        default: return false
        }
    }
}

/// An incremental HTTP/1.1 request parser (RFC 9112). It does no I/O: the caller appends bytes to a `ByteQueue`
/// and calls `next(_:)` until it returns nil (more bytes needed). One request at a time: after `.end` the next call
/// starts the following (pipelined) request. A thrown error is final for the connection.
public struct HTTPRequestParser: Sendable {
    enum State: Sendable {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        /// Reading the trailer section; `bytes` and `fields` count what was already taken, so the bound holds across
        /// reads.
        case trailers(bytes: Int, fields: Int)
        case failed
    }

    public let limits: HTTPParserLimits
    var state: State = .head
    /// How far into the buffered head we have already searched for the blank line (so byte-at-a-time input stays linear).
    var scanned = 0
    /// Offset of the request line's LF in the buffered head, once seen.
    var firstLineFeed: Int? = nil

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    /// True between requests (nothing of the next request parsed yet).
    public var isAtRequestBoundary: Bool {
        if case .head = self.state { return true }
        return false
    }

    public mutating func next(_ input: inout ByteQueue) throws(HTTPParseError) -> HTTPParserEvent? {
        do {
            return try self.step(&input)
        } catch {
            self.state = .failed
            throw error
        }
    }

    mutating func step(_ input: inout ByteQueue) throws(HTTPParseError) -> HTTPParserEvent? {
        switch self.state {
        case .failed:
            throw .bad("parser already failed")
        case .head:
            return try self.parseHead(&input)
        case .fixedBody(let remaining):
            if remaining == 0 {
                self.state = .head
                return .end
            }
            guard !input.isEmpty else { return nil }
            let chunk = input.read(upTo: remaining)
            self.state = .fixedBody(remaining: remaining - chunk.count)
            return .body(chunk)
        case .chunkSize:
            guard let line = try self.takeLine(&input, limit: self.limits.maxChunkLine, what: "chunk size line") else {
                return nil
            }
            let sizePart = line.prefix { $0 != UInt8(ascii: ";") }.trimmingOWSBytes()
            guard !sizePart.isEmpty, sizePart.count <= 15 else { throw .bad("bad chunk size") }
            var size = 0
            for b in sizePart {
                guard let d = hexValue(b) else { throw .bad("bad chunk size") }
                size = size * 16 + d
            }
            self.state = size == 0 ? .trailers(bytes: 0, fields: 0) : .chunkData(remaining: size)
            return try self.step(&input)
        case .chunkData(let remaining):
            guard !input.isEmpty else { return nil }
            let chunk = input.read(upTo: remaining)
            self.state = remaining - chunk.count == 0 ? .chunkDataEnd : .chunkData(remaining: remaining - chunk.count)
            return .body(chunk)
        case .chunkDataEnd:
            guard input.readableCount >= 2 else {
                if input.readableCount == 1 && input.readable.first != UInt8(ascii: "\r")
                    && input.readable.first != UInt8(ascii: "\n")
                {
                    throw .bad("missing CRLF after chunk")
                }
                if input.readableCount == 1 && input.readable.first == UInt8(ascii: "\n") {
                    input.consume(1)
                    self.state = .chunkSize
                    return try self.step(&input)
                }
                return nil
            }
            let r = input.readable
            let a = r[r.startIndex]
            let b = r[r.startIndex + 1]
            if a == 13 && b == 10 {
                input.consume(2)
            } else if a == 10 {
                input.consume(1)
            } else {
                throw .bad("missing CRLF after chunk")
            }
            self.state = .chunkSize
            return try self.step(&input)
        case .trailers(var total, var fields):
            // Trailer fields are read and discarded, bounded like the header block (bytes and field count). The
            // running totals live in the state: a trailer section may arrive over many reads.
            while true {
                // +2: room for the line's own CRLF; the running total below is the exact bound.
                let room = self.limits.maxHeaderBytes - total + 2
                let line: ArraySlice<UInt8>?
                do {
                    line = try self.takeLine(&input, limit: room, what: "trailer")
                } catch {
                    throw HTTPParseError(status: 431, reason: "trailers too large")
                }
                guard let line else {
                    self.state = .trailers(bytes: total, fields: fields)
                    return nil
                }
                if line.isEmpty {
                    self.state = .head
                    return .end
                }
                total += line.count + 2
                fields += 1
                if total > self.limits.maxHeaderBytes {
                    throw HTTPParseError(status: 431, reason: "trailers too large")
                }
                if fields > self.limits.maxHeaderFields {
                    throw HTTPParseError(status: 431, reason: "too many trailer fields")
                }
            }
        }
    }

    /// Takes one line ending in CRLF (or bare LF) from the front of `input`, without the line ending.
    mutating func takeLine(
        _ input: inout ByteQueue,
        limit: Int,
        what: String
    ) throws(HTTPParseError) -> ArraySlice<UInt8>? {
        let r = input.readable
        guard let nl = r.firstIndex(of: 10) else {
            // A trailing CR may be the start of the CRLF: it does not count, as it would not once the LF is here.
            let pending = r.last == 13 ? r.count - 1 : r.count
            if pending > limit { throw .bad("\(what) too long") }
            return nil
        }
        var end = nl
        if end > r.startIndex && r[end - 1] == 13 { end -= 1 }
        if end - r.startIndex > limit { throw .bad("\(what) too long") }
        let line = r[r.startIndex..<end]
        input.consume(nl - r.startIndex + 1)
        return line
    }

    mutating func parseHead(_ input: inout ByteQueue) throws(HTTPParseError) -> HTTPParserEvent? {
        // RFC 9112 §2.2: ignore empty lines before the request line.
        while self.scanned == 0, let f = input.readable.first, f == 13 || f == 10 {
            input.consume(1)
        }
        let r = input.readable
        guard !r.isEmpty else { return nil }
        let base = r.startIndex
        // Find the end of the head: LF CR? LF. Only bytes not seen before are scanned (the last 3 again, as the
        // terminator may straddle two reads).
        var i = base + max(0, self.scanned - 3)
        var headEnd: Int? = nil
        while i < r.endIndex {
            if r[i] == 10 {
                if self.firstLineFeed == nil { self.firstLineFeed = i - base }
                if i + 1 < r.endIndex && r[i + 1] == 10 {
                    headEnd = i + 2
                    break
                }
                if i + 2 < r.endIndex && r[i + 1] == 13 && r[i + 2] == 10 {
                    headEnd = i + 3
                    break
                }
            }
            i += 1
        }
        guard let end = headEnd else {
            self.scanned = r.count
            if let fl = self.firstLineFeed {
                try self.checkRequestLine(r, lineFeed: base + fl)
                if r.count - fl > self.limits.maxHeaderBytes {
                    throw HTTPParseError(status: 431, reason: "header block too large")
                }
            } else {
                // No line end yet: a trailing CR may still be the start of the CRLF.
                let length = r.last == 13 ? r.count - 1 : r.count
                if length > self.limits.maxRequestLine {
                    throw HTTPParseError(status: 414, reason: "request line too long")
                }
            }
            return nil
        }
        guard let flOffset = self.firstLineFeed else { throw .bad("malformed head") }
        let fl = base + flOffset
        try self.checkRequestLine(r, lineFeed: fl)
        if end - fl > self.limits.maxHeaderBytes { throw HTTPParseError(status: 431, reason: "header block too large") }
        let head = try self.parseHeadBytes(r[base..<end], firstLineEnd: fl)
        input.consume(end - base)
        self.scanned = 0
        self.firstLineFeed = nil
        switch head.framing {
        case .none:
            self.state = .fixedBody(remaining: 0)
        case .contentLength(let n):
            self.state = .fixedBody(remaining: n)
        case .chunked:
            self.state = .chunkSize
        }
        return .head(head)
    }

    /// The request line (without its CRLF) may be at most `maxRequestLine` bytes.
    func checkRequestLine(_ r: ArraySlice<UInt8>, lineFeed: Int) throws(HTTPParseError) {
        var length = lineFeed - r.startIndex
        if length > 0 && r[lineFeed - 1] == 13 { length -= 1 }
        if length > self.limits.maxRequestLine { throw HTTPParseError(status: 414, reason: "request line too long") }
    }

    /// `http://authority/path?q` → (`authority`, `/path?q`); nil for any other form. An empty path becomes `/`.
    static func splitAbsoluteForm(_ target: String) -> (authority: String, origin: String)? {
        let lower = target.prefix(8).lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") {
            schemeLength = 7
        } else if lower.hasPrefix("https://") {
            schemeLength = 8
        } else {
            return nil
        }
        let rest = target.dropFirst(schemeLength)
        let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = String(rest[..<end])
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        let tail = rest[end...]
        return (authority, tail.first == "/" ? String(tail) : "/" + tail)
    }

    func parseHeadBytes(_ bytes: ArraySlice<UInt8>, firstLineEnd: Int) throws(HTTPParseError) -> HTTPRequestHead {
        var lineEnd = firstLineEnd
        if lineEnd > bytes.startIndex && bytes[lineEnd - 1] == 13 { lineEnd -= 1 }
        let requestLine = bytes[bytes.startIndex..<lineEnd]
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .bad("malformed request line") }
        let methodBytes = parts[0]
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(isTokenByte) else { throw .bad("bad method") }
        let targetBytes = parts[1]
        guard !targetBytes.isEmpty, targetBytes.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw .bad("bad request target")
        }
        let versionBytes = parts[2]
        guard versionBytes.count == 8, versionBytes.starts(with: Array("HTTP/".utf8)),
            let major = digitValue(versionBytes[versionBytes.startIndex + 5]),
            versionBytes[versionBytes.startIndex + 6] == UInt8(ascii: "."),
            let minor = digitValue(versionBytes[versionBytes.startIndex + 7])
        else { throw .bad("bad HTTP version") }
        guard major == 1 else { throw HTTPParseError(status: 505, reason: "HTTP version not supported") }

        var headers = HTTPHeaders()
        var pos = firstLineEnd + 1
        while pos < bytes.endIndex {
            guard let nl = bytes[pos...].firstIndex(of: 10) else { break }
            var e = nl
            if e > pos && bytes[e - 1] == 13 { e -= 1 }
            let line = bytes[pos..<e]
            pos = nl + 1
            if line.isEmpty { break }
            if line.first == 32 || line.first == 9 { throw .bad("obsolete line folding") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .bad("header without colon") }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else { throw .bad("bad header name") }
            let value = line[(colon + 1)...].trimmingOWSBytes()
            guard value.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else { throw .bad("bad header value") }
            if headers.count >= self.limits.maxHeaderFields {
                throw HTTPParseError(status: 431, reason: "too many header fields")
            }
            headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        }

        let method = String(decoding: methodBytes, as: UTF8.self)
        var target = String(decoding: targetBytes, as: UTF8.self)
        let framing = try Self.framing(headers: headers, minor: minor)
        // RFC 9112 §3.2: exactly one Host in an HTTP/1.1 request (any request: at most one). §3.2.2: the
        // absolute form (`http://host/path`) must be accepted; its authority replaces the Host field.
        let hosts = headers.values("Host")
        if hosts.count > 1 { throw .bad("more than one Host header") }
        if let (authority, origin) = Self.splitAbsoluteForm(target) {
            target = origin
            headers.replaceOrAdd(name: "Host", value: authority)
        } else if hosts.isEmpty && minor >= 1 {
            throw .bad("missing Host header")
        }
        return HTTPRequestHead(
            method: method,
            target: target,
            versionMajor: major,
            versionMinor: minor,
            headers: headers,
            framing: framing
        )
    }

    static func framing(headers: HTTPHeaders, minor: Int) throws(HTTPParseError) -> HTTPBodyFraming {
        let te = headers.values("Transfer-Encoding")
        let cl = headers.values("Content-Length")
        if !te.isEmpty {
            if !cl.isEmpty { throw .bad("both Transfer-Encoding and Content-Length") }
            if minor == 0 { throw .bad("Transfer-Encoding in HTTP/1.0") }
            let codings = te.flatMap { $0.split(separator: ",").map { $0.trimmingOWS() } }
            guard let last = codings.last, asciiCaseInsensitiveEquals(last, "chunked") else {
                throw HTTPParseError(status: 501, reason: "unsupported transfer coding")
            }
            guard codings.count == 1 else { throw HTTPParseError(status: 501, reason: "unsupported transfer coding") }
            return .chunked
        }
        if cl.isEmpty { return .none }
        var value: Int? = nil
        for field in cl {
            for part in field.split(separator: ",", omittingEmptySubsequences: false) {
                let t = part.trimmingOWS()
                guard !t.isEmpty, t.utf8.count <= 15, t.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(t) else {
                    throw .bad("bad Content-Length")
                }
                if let v = value, v != n { throw .bad("conflicting Content-Length") }
                value = n
            }
        }
        guard let n = value else { throw .bad("bad Content-Length") }
        return n == 0 ? .none : .contentLength(n)
    }
}

func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(b)
    }
}

func digitValue(_ b: UInt8) -> Int? { (b >= 48 && b <= 57) ? Int(b - 48) : nil }

func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 48...57: return Int(b - 48)
    case 65...70: return Int(b - 55)
    case 97...102: return Int(b - 87)
    default: return nil
    }
}

extension BidirectionalCollection where Element == UInt8, SubSequence == Self {
    func trimmingOWSBytes() -> Self {
        var s = self
        while let f = s.first, f == 32 || f == 9 { s = s.dropFirst() }
        while let l = s.last, l == 32 || l == 9 { s = s.dropLast() }
        return s
    }
}
