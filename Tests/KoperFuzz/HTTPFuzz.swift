import HTTPCore

/// The HTTP/1.1 request parser (`HTTPRequestParser`) on a byte stream of (pipelined) requests.
///
/// Invariants: no trap; the same events (bodies coalesced) and the same error whether the stream is fed at once or
/// in random chunks; every error is one of the statuses the parser documents; accepted heads respect the limits
/// (fields, header bytes, request line); a fixed-length body is exactly its Content-Length; no empty body event; the
/// parser is at a request boundary after `.end`; every call makes progress.
public struct HTTPParserFuzzTarget: FuzzTarget {
    public init() {}

    public let name = "http"

    public var seeds: [[UInt8]] {
        [
            "GET /api_3/project/list?ownername=alice HTTP/1.1\r\nHost: koper.example\r\nAccept: */*\r\n\r\n",
            "POST /api_3/project/add/alice HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                + "Content-Length: 24\r\n\r\n{\"projectname\":\"hello\"}\n",
            "PUT /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://koper.example:8080/results/x?y HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                + "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
            "\r\nOPTIONS * HTTP/1.1\nHost: h\nExpect: 100-continue\nContent-Length: 0\n\n",
            "DELETE /api_3/build/delete/7 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWxpY2U6dG9rZW4=\r\n"
                + "Content-Length: 2, 2\r\n\r\n{}",
        ].map { Array($0.utf8) }
    }

    public var dictionary: [[UInt8]] {
        [
            "\r\n", "\r\n\r\n", "\n", "\r", " ", "\t", ":", ",", ";", "Host: h\r\n", "Content-Length: ",
            "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n", "Transfer-Encoding: gzip, chunked\r\n",
            "0\r\n\r\n", "ffffffffffffffff\r\n", ";ext=\"v\"", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http://",
            "https://u@h", "Connection: close\r\n", " HTTP/1.1\r\n", "GET ", "POST / HTTP/1.1\r\n",
        ].map { Array($0.utf8) }
    }

    public func mutateStructured(_ bytes: inout [UInt8], _ rng: inout FuzzRNG) -> Bool {
        // Repeat one header line many times (field count and header byte limits).
        guard let crlf = firstIndex(of: [13, 10], in: bytes), crlf + 2 < bytes.count,
            let next = firstIndex(of: [13, 10], in: bytes, from: crlf + 2), next > crlf + 2
        else { return false }
        let line = Array(bytes[(crlf + 2)..<(next + 2)])
        var repeated: [UInt8] = []
        for _ in 0..<(1 + rng.below(120)) { repeated += line }
        bytes.insert(contentsOf: repeated, at: crlf + 2)
        return true
    }

    public func check(_ input: [UInt8]) -> FuzzOutcome {
        let h = fuzzHash(input)
        // Half of the inputs run under small limits that vary with the input, so that every limit is hit often.
        let limits =
            h & 1 == 0
            ? HTTPParserLimits(
                maxRequestLine: 16 + Int(h >> 8 & 63),
                maxHeaderBytes: 32 + Int(h >> 16 & 255),
                maxHeaderFields: Int(h >> 24 & 7),
                maxChunkLine: 1 + Int(h >> 32 & 15)
            ) : HTTPParserLimits()
        let whole = Self.parse([input[...]], limits: limits)
        if let broken = whole.broken { return .violation("one-shot: \(broken)") }
        let pieces = Self.parse(chunks(input, plan: chunkPlan(for: input)), limits: limits)
        if let broken = pieces.broken { return .violation("chunked: \(broken)") }
        guard whole.events == pieces.events else {
            return .violation("chunked feeding gave other events than one-shot feeding")
        }
        // The status decides the response; the reason's wording may differ with where the bytes were split.
        guard whole.error?.status == pieces.error?.status else {
            return .violation(
                "chunked feeding ended in \(pieces.error.map { "\($0)" } ?? "no error"), one-shot in "
                    + "\(whole.error.map { "\($0)" } ?? "no error")"
            )
        }
        if let error = whole.error {
            guard [400, 414, 431, 501, 505].contains(error.status) else {
                return .violation("unexpected status \(error.status)")
            }
            return .rejected
        }
        return whole.events.contains { if case .end = $0 { true } else { false } } ? .accepted : .rejected
    }

    struct Run {
        var events: [HTTPParserEvent] = []
        var error: HTTPParseError?
        var broken: String?
    }

    static func parse(_ chunks: [ArraySlice<UInt8>], limits: HTTPParserLimits) -> Run {
        var run = Run()
        var parser = HTTPRequestParser(limits: limits)
        var queue = ByteQueue()
        var total = 0
        var expectedBody: Int? = nil
        var bodySoFar = 0
        var calls = 0
        for chunk in chunks {
            queue.append(contentsOf: chunk)
            total += chunk.count
            while true {
                calls += 1
                if calls > 4 * total + 16 {
                    run.broken = "no progress (\(calls) calls for \(total) bytes)"
                    return run
                }
                let event: HTTPParserEvent?
                do {
                    event = try parser.next(&queue)
                } catch {
                    run.error = error
                    return run
                }
                guard let event else { break }
                switch event {
                case .head(let head):
                    if let problem = self.limitProblem(head, limits: limits) {
                        run.broken = problem
                        return run
                    }
                    switch head.framing {
                    case .contentLength(let n): expectedBody = n
                    case .none: expectedBody = 0
                    case .chunked: expectedBody = nil
                    }
                    bodySoFar = 0
                    run.events.append(event)
                case .body(let bytes):
                    if bytes.isEmpty {
                        run.broken = "empty body event"
                        return run
                    }
                    bodySoFar += bytes.count
                    if let n = expectedBody, bodySoFar > n {
                        run.broken = "body longer than Content-Length \(n)"
                        return run
                    }
                    if case .body(let earlier)? = run.events.last {
                        run.events[run.events.count - 1] = .body(earlier + bytes)
                    } else {
                        run.events.append(event)
                    }
                case .end:
                    if let n = expectedBody, bodySoFar != n {
                        run.broken = "body of \(bodySoFar) bytes ended, Content-Length \(n)"
                        return run
                    }
                    if !parser.isAtRequestBoundary {
                        run.broken = "not at a request boundary after .end"
                        return run
                    }
                    run.events.append(event)
                }
            }
        }
        return run
    }

    static func limitProblem(_ head: HTTPRequestHead, limits: HTTPParserLimits) -> String? {
        // The absolute form replaces the Host fields with one built from the request line: at most one field (and
        // a request line's worth of bytes) more than the client's header block held.
        if head.headers.count > limits.maxHeaderFields + 1 {
            return "\(head.headers.count) header fields accepted (limit \(limits.maxHeaderFields))"
        }
        let headerBytes = head.headers.fields.reduce(0) { $0 + $1.name.utf8.count + 1 + $1.value.utf8.count + 2 }
        if headerBytes > limits.maxHeaderBytes + limits.maxRequestLine + 8 {
            return "\(headerBytes) header bytes accepted (limit \(limits.maxHeaderBytes))"
        }
        // Rewriting an absolute-form target only shortens it, so the line rebuilt from the head is never longer
        // than the one sent.
        let requestLine = head.method.utf8.count + 1 + head.target.utf8.count + 1 + 8
        if requestLine > limits.maxRequestLine {
            return "request line of \(requestLine) bytes accepted (limit \(limits.maxRequestLine))"
        }
        if head.versionMajor != 1 || head.versionMinor > 9 {
            return "version \(head.versionMajor).\(head.versionMinor)"
        }
        if head.versionMinor >= 1, head.headers["Host"] == nil { return "HTTP/1.1 request without Host accepted" }
        if head.headers.values("Host").count > 1 { return "more than one Host accepted" }
        if head.method.isEmpty || head.target.isEmpty { return "empty method or target accepted" }
        return nil
    }
}

func firstIndex(of needle: [UInt8], in bytes: [UInt8], from start: Int = 0) -> Int? {
    guard needle.count <= bytes.count, start <= bytes.count - needle.count else { return nil }
    var i = start
    while i <= bytes.count - needle.count {
        if bytes[i] == needle[0], bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
        i += 1
    }
    return nil
}
