import HTTPCore
import Testing

// MARK: - Helpers

/// The outcome of feeding a byte stream through a parser: the events (adjacent body chunks merged) and the error
/// that ended it, if any.
private struct ParseOutcome: Equatable {
    var events: [HTTPParserEvent] = []
    var error: HTTPParseError?
    /// Bytes left unconsumed in the queue at the end.
    var leftover = 0

    var heads: [HTTPRequestHead] {
        self.events.compactMap { if case .head(let h) = $0 { return h } else { return nil } }
    }

    /// The concatenated body bytes of each request, in order.
    var bodies: [[UInt8]] {
        var out: [[UInt8]] = []
        for event in self.events {
            switch event {
            case .head: out.append([])
            case .body(let b): out[out.count - 1] += b
            case .end: break
            }
        }
        return out
    }

    var endCount: Int { self.events.filter { $0 == .end }.count }

    /// Same events and the same refusal status (reasons may be worded differently).
    static func == (a: ParseOutcome, b: ParseOutcome) -> Bool {
        a.events == b.events && a.error?.status == b.error?.status
    }
}

private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Feeds `input` in pieces of `chunkSizes` (cycled), draining the parser after each piece.
private func parse(
    _ input: [UInt8],
    chunkSizes: [Int] = [Int.max],
    limits: HTTPParserLimits = HTTPParserLimits()
) -> ParseOutcome {
    var parser = HTTPRequestParser(limits: limits)
    var queue = ByteQueue()
    var outcome = ParseOutcome()
    var offset = 0
    var k = 0
    while offset < input.count {
        let size = min(chunkSizes[k % chunkSizes.count], input.count - offset)
        k += 1
        queue.append(contentsOf: input[offset..<(offset + size)])
        offset += size
        do {
            while let event = try parser.next(&queue) {
                if case .body(let b) = event, case .body(let prev)? = outcome.events.last {
                    outcome.events[outcome.events.count - 1] = .body(prev + b)
                } else {
                    outcome.events.append(event)
                }
            }
        } catch {
            outcome.error = error
            break
        }
    }
    outcome.leftover = queue.readableCount
    return outcome
}

private func parse(
    _ text: String,
    chunkSizes: [Int] = [Int.max],
    limits: HTTPParserLimits = HTTPParserLimits()
) -> ParseOutcome {
    parse(bytes(text), chunkSizes: chunkSizes, limits: limits)
}

/// The status the parser refuses `text` with (nil if it accepts it).
private func refusal(_ text: String, limits: HTTPParserLimits = HTTPParserLimits()) -> Int? {
    let whole = parse(text, limits: limits)
    let byteWise = parse(text, chunkSizes: [1], limits: limits)
    #expect(
        whole.error?.status == byteWise.error?.status,
        "whole and byte-at-a-time feeding disagree for \(text.debugDescription.prefix(120))"
    )
    return whole.error?.status
}

private func singleHead(_ text: String) throws -> HTTPRequestHead {
    let outcome = parse(text)
    #expect(outcome.error == nil)
    return try #require(outcome.heads.first)
}

private let pipelinedStream = bytes(
    "GET /first?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
        + "POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
        + "PUT /third HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;name=value\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n"
        + "DELETE /fourth HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)

// MARK: - Request parsing

@Suite("HTTP request parser")
struct ParserTests {
    @Test func simpleGET() throws {
        let outcome = parse(
            "GET /api_3/build/1?a=b HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n"
        )
        #expect(outcome.error == nil)
        #expect(outcome.events.count == 2)
        #expect(outcome.events.last == .end)
        #expect(outcome.leftover == 0)
        let head = try #require(outcome.heads.first)
        #expect(head.method == "GET")
        #expect(head.target == "/api_3/build/1?a=b")
        #expect(head.rawPath == "/api_3/build/1")
        #expect(head.rawQuery == "a=b")
        #expect(head.versionMajor == 1 && head.versionMinor == 1)
        #expect(head.framing == .none)
        #expect(head.headers.count == 4)
        #expect(head.headers["host"] == "example.org")
        #expect(head.headers["HOST"] == "example.org")
        #expect(head.headers.values("X-DUP") == ["1", "2"])
        #expect(head.headers.fields.map(\.name) == ["Host", "Accept", "X-Dup", "x-dup"])
        #expect(head.keepAlive)
        #expect(!head.expectsContinue)
    }

    @Test func noMoreEventsUntilMoreBytes() throws {
        var parser = HTTPRequestParser()
        var queue = ByteQueue(bytes("GET / HTTP/1.1\r\nHost: a\r\n"))
        #expect(try parser.next(&queue) == nil)
        #expect(parser.isAtRequestBoundary)
        queue.append(contentsOf: bytes("\r\n"))
        guard case .head(let head)? = try parser.next(&queue) else {
            Issue.record("expected a head")
            return
        }
        #expect(head.target == "/")
        #expect(try parser.next(&queue) == .end)
        #expect(parser.isAtRequestBoundary)
        #expect(try parser.next(&queue) == nil)
        #expect(queue.isEmpty)
    }

    @Test func headerValuesAreTrimmedAndEmptyValuesKept() throws {
        let head = try singleHead("GET / HTTP/1.1\r\nHost:   a.example \t\r\nX-Empty:\r\nX-Inner: a  b\r\n\r\n")
        #expect(head.headers["Host"] == "a.example")
        #expect(head.headers["X-Empty"] == "")
        #expect(head.headers["X-Inner"] == "a  b")
    }

    @Test func leadingEmptyLinesAreIgnored() throws {
        let outcome = parse("\r\n\r\n\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(outcome.error == nil)
        #expect(outcome.heads.map(\.target) == ["/x"])
    }

    @Test func bareLFLineEndingsAreAccepted() throws {
        let outcome = parse("POST /lf HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc")
        #expect(outcome.error == nil)
        #expect(outcome.heads.first?.headers["Host"] == "a")
        #expect(outcome.bodies == [bytes("abc")])
        #expect(outcome.endCount == 1)
    }

    @Test func pipelinedRequestsInOneBuffer() throws {
        let outcome = parse(pipelinedStream)
        #expect(outcome.error == nil)
        #expect(outcome.leftover == 0)
        #expect(outcome.heads.map(\.method) == ["GET", "POST", "PUT", "DELETE"])
        #expect(outcome.heads.map(\.target) == ["/first?x=1", "/second", "/third", "/fourth"])
        #expect(outcome.heads.map(\.framing) == [.none, .contentLength(11), .chunked, .none])
        #expect(outcome.bodies == [[], bytes("hello world"), bytes("Wikipedia"), []])
        #expect(outcome.endCount == 4)
        #expect(outcome.heads.last?.keepAlive == false)
    }

    @Test func byteAtATimeFeedingGivesIdenticalEvents() throws {
        let whole = parse(pipelinedStream)
        let byteWise = parse(pipelinedStream, chunkSizes: [1])
        #expect(byteWise == whole)
        #expect(byteWise.events.count == whole.events.count)
        var rng = SplitMix64(state: 42)
        for _ in 0..<50 {
            let sizes = (0..<7).map { _ in Int.random(in: 1...40, using: &rng) }
            #expect(parse(pipelinedStream, chunkSizes: sizes) == whole, "chunk sizes \(sizes)")
        }
    }

    @Test func contentLengthBodyIsDeliveredExactly() throws {
        let body = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let request =
            bytes("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n") + body
            + bytes("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        for sizes in [[Int.max], [1], [100, 7, 4096]] {
            let outcome = parse(request, chunkSizes: sizes)
            #expect(outcome.error == nil)
            #expect(outcome.heads.map(\.target) == ["/upload", "/next"])
            #expect(outcome.heads.first?.framing == .contentLength(5000))
            #expect(outcome.bodies == [body, []])
            #expect(outcome.endCount == 2)
        }
    }

    @Test func zeroContentLengthMeansNoBody() throws {
        let head = try singleHead("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        #expect(head.framing == .none)
    }

    @Test func incompleteBodyWaits() throws {
        var parser = HTTPRequestParser()
        var queue = ByteQueue(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"))
        guard case .head? = try parser.next(&queue) else {
            Issue.record("expected a head")
            return
        }
        #expect(try parser.next(&queue) == .body(bytes("abc")[...]))
        #expect(try parser.next(&queue) == nil)
        #expect(!parser.isAtRequestBoundary)
        queue.append(contentsOf: bytes("defghijGET"))
        #expect(try parser.next(&queue) == .body(bytes("defghij")[...]))
        #expect(try parser.next(&queue) == .end)
        #expect(try parser.next(&queue) == nil)
        #expect(queue.readableCount == 3)  // "GET" of the next request stays queued
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let text =
            "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n"
            + "6 ; quoted=\"a;b\"\r\n world\r\n"
            + "A\r\n0123456789\r\n"
            + "a\r\nabcdefghij\r\n"
            + "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
            + "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"
        for sizes in [[Int.max], [1], [3, 11]] {
            let outcome = parse(text, chunkSizes: sizes)
            #expect(outcome.error == nil)
            #expect(outcome.heads.map(\.target) == ["/c", "/after"])
            #expect(outcome.heads.first?.framing == .chunked)
            #expect(outcome.bodies == [bytes("hello world0123456789abcdefghij"), []])
            #expect(outcome.endCount == 2)
            #expect(outcome.leftover == 0)
        }
    }

    @Test func emptyChunkedBody() throws {
        let outcome = parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        #expect(outcome.error == nil)
        #expect(outcome.bodies == [[]])
        #expect(outcome.endCount == 1)
    }

    @Test func transferEncodingIsCaseInsensitive() throws {
        let head = try singleHead("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
        #expect(head.framing == .chunked)
    }

    @Test func malformedChunkedBodiesAreRefused() {
        let prefix = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(refusal(prefix + "zz\r\nhello\r\n0\r\n\r\n") == 400)  // not hex
        #expect(refusal(prefix + "-5\r\nhello\r\n0\r\n\r\n") == 400)
        #expect(refusal(prefix + "0x5\r\nhello\r\n0\r\n\r\n") == 400)
        #expect(refusal(prefix + ";ext\r\nhello\r\n0\r\n\r\n") == 400)  // size missing
        #expect(refusal(prefix + "1000000000000000\r\n") == 400)  // 16 hex digits: overflow guard
        #expect(refusal(prefix + "5\r\nhelloXY0\r\n\r\n") == 400)  // no CRLF after the data
        #expect(refusal(prefix + "5\r\nhello\rX0\r\n\r\n") == 400)
        // A chunk line too long.
        #expect(refusal(prefix + "5;" + String(repeating: "e", count: 5000) + "\r\nhello\r\n0\r\n\r\n") == 400)
    }

    @Test func trailersAreBoundedAcrossReads() {
        // Many small trailer lines, arriving in many reads, must still hit the header-block bound.
        let limits = HTTPParserLimits(maxHeaderBytes: 1024)
        let trailers = String(repeating: "X-T: 0123456789\r\n", count: 200)
        let text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + trailers + "\r\n"
        #expect(parse(text, limits: limits).error?.status == 431)
        #expect(parse(text, chunkSizes: [17], limits: limits).error?.status == 431)
        #expect(parse(text, chunkSizes: [1], limits: limits).error?.status == 431)
    }

    // MARK: Limits and refusals

    @Test func requestLineLimitIs414() {
        let limits = HTTPParserLimits(maxRequestLine: 100)
        let fits = "GET /" + String(repeating: "a", count: 100 - "GET / HTTP/1.1".count) + " HTTP/1.1"
        #expect(fits.utf8.count == 100)
        #expect(refusal(fits + "\r\nHost: a\r\n\r\n", limits: limits) == nil)
        let tooLong = "GET /" + String(repeating: "a", count: 101 - "GET / HTTP/1.1".count) + " HTTP/1.1"
        #expect(refusal(tooLong + "\r\nHost: a\r\n\r\n", limits: limits) == 414)
        // Without a line end at all the parser must not wait for more than the limit.
        #expect(refusal("GET /" + String(repeating: "a", count: 200), limits: limits) == 414)
        // The default limit is 8 KiB.
        #expect(refusal("GET /" + String(repeating: "b", count: 9000) + " HTTP/1.1\r\n\r\n") == 414)
        #expect(refusal("GET /" + String(repeating: "b", count: 8000) + " HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
    }

    @Test func headerBlockLimitIs431() {
        let limits = HTTPParserLimits(maxHeaderBytes: 1000)
        let header = "X-Big: " + String(repeating: "v", count: 1100) + "\r\n"
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\n" + header + "\r\n", limits: limits) == 431)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\n" + header, limits: limits) == 431)  // incomplete head too
        #expect(
            refusal(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Small: " + String(repeating: "v", count: 900) + "\r\n\r\n",
                limits: limits
            ) == nil
        )
        // The default limit is 64 KiB.
        let big = (0..<70).map { "X-H\($0): " + String(repeating: "x", count: 1000) + "\r\n" }.joined()
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\n" + big + "\r\n") == 431)
    }

    @Test func headerFieldCountLimitIs431() {
        let hundred = "Host: a\r\n" + (0..<99).map { "X-\($0): v\r\n" }.joined()  // Host counts as a field
        #expect(refusal("GET / HTTP/1.1\r\n" + hundred + "\r\n") == nil)
        #expect(refusal("GET / HTTP/1.1\r\n" + hundred + "X-Extra: v\r\n\r\n") == 431)
        let limits = HTTPParserLimits(maxHeaderFields: 3)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits) == nil)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", limits: limits) == 431)
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET /\r\n\r\n",  // HTTP/0.9 style, no version
        "GET  / HTTP/1.1\r\n\r\n",  // two spaces
        "GET / HTTP/1.1 \r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",  // not a token
        " GET / HTTP/1.1\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/x.1\r\n\r\n",
        "GET /a\u{7F}b HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",  // space before the colon
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nX(y): 1\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",  // bare CR in a value
        "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",  // obs-fold
        "GET / HTTP/1.1\r\nX: a\r\n\tfolded\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5,\r\n\r\nhello",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ])
    func malformedRequestsAre400(_ text: String) {
        #expect(refusal(text) == 400)
    }

    @Test func unsupportedVersionsAre505() {
        #expect(refusal("GET / HTTP/2.0\r\n\r\n") == 505)
        #expect(refusal("GET / HTTP/0.9\r\n\r\n") == 505)
        #expect(refusal("GET / HTTP/3.0\r\nHost: a\r\n\r\n") == 505)
    }

    @Test func unsupportedTransferCodingsAre501() {
        #expect(refusal("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n") == 501)
        #expect(refusal("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501)
        #expect(refusal("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == 501)
        #expect(refusal("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n") == 501)
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host; HTTP/1.0 may omit it. §3.2.2: the absolute form
    /// is accepted, and its authority replaces the Host field.
    @Test func hostRulesAndTheAbsoluteForm() throws {
        #expect(refusal("GET / HTTP/1.1\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n") == 400)
        #expect(refusal("GET / HTTP/1.0\r\n\r\n") == nil)
        let absolute = try singleHead("GET http://example.org:8080/api_3/build/7?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        #expect(absolute.target == "/api_3/build/7?x=1")
        #expect(absolute.rawPath == "/api_3/build/7")
        #expect(absolute.headers.values("Host") == ["example.org:8080"])
        #expect(try singleHead("GET HTTPS://h HTTP/1.1\r\n\r\n").target == "/")
        #expect(try singleHead("GET http://h?q=1 HTTP/1.1\r\n\r\n").target == "/?q=1")
        // Not the absolute form: userinfo, or no authority.
        #expect(refusal("GET http://user@h/ HTTP/1.1\r\n\r\n") == 400)
        #expect(refusal("GET http:///x HTTP/1.1\r\n\r\n") == 400)
    }

    @Test func repeatedEqualContentLengthsAreAccepted() throws {
        #expect(
            try singleHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello").framing
                == .contentLength(5)
        )
        #expect(
            try singleHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello").framing
                == .contentLength(5)
        )
        #expect(
            try singleHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\nhelloab").framing
                == .contentLength(7)
        )
    }

    @Test func failedParserStaysFailed() {
        var parser = HTTPRequestParser()
        var queue = ByteQueue(bytes("BROKEN\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
        #expect(throws: HTTPParseError.self) { try parser.next(&queue) }
        #expect(throws: HTTPParseError.self) { try parser.next(&queue) }
        #expect(!parser.isAtRequestBoundary)
    }

    @Test func parseErrorDescribesItself() {
        let error = HTTPParseError(status: 431, reason: "too many header fields")
        #expect(error.description == "HTTP 431: too many header fields")
    }

    // MARK: Connection semantics

    @Test func keepAliveRules() throws {
        #expect(try singleHead("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive)
        #expect(try !singleHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive)
        #expect(try !singleHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n").keepAlive)
        #expect(try !singleHead("GET / HTTP/1.0\r\n\r\n").keepAlive)
        #expect(try singleHead("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive)
        #expect(try singleHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
        #expect(try !singleHead("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keepAlive)
        #expect(try !singleHead("GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n").keepAlive)
        let v10 = try singleHead("GET / HTTP/1.0\r\n\r\n")
        #expect(v10.versionMajor == 1 && v10.versionMinor == 0)
    }

    @Test func expectContinueDetection() throws {
        #expect(
            try singleHead("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .expectsContinue
        )
        #expect(
            try singleHead("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expectsContinue
        )
        #expect(
            try !singleHead("POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\n")
                .expectsContinue
        )
        #expect(try !singleHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n").expectsContinue)
        // RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request.
        #expect(try !singleHead("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expectsContinue)
    }

    @Test func rawPathAndQuery() {
        let plain = HTTPRequestHead(method: "GET", target: "/a/b")
        #expect(plain.rawPath == "/a/b")
        #expect(plain.rawQuery == nil)
        let query = HTTPRequestHead(method: "GET", target: "/a?x=1&y=?")
        #expect(query.rawPath == "/a")
        #expect(query.rawQuery == "x=1&y=?")
        let emptyQuery = HTTPRequestHead(method: "GET", target: "/a?")
        #expect(emptyQuery.rawQuery == "")
    }

    // MARK: Robustness

    /// Seeded random mutations of valid requests, fed whole and in random pieces: the parser must never crash,
    /// every refusal must carry one of the statuses it documents, the event stream must be well formed, and the
    /// way the bytes are split must not change the outcome.
    @Test func randomMutationsNeverCrash() {
        let corpus: [[UInt8]] = [
            pipelinedStream,
            bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            bytes("POST /x HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nabcd"),
            bytes("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nT: 1\r\n\r\n"),
            bytes("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        ]
        let alphabet =
            bytes("\r\n :;,0123456789abcdefABCDEF/?%GETPOSTHTTP/1.1chunkedContent-LengthTransfer-Encoding\t\u{0}\u{7F}")
            + [0xFF, 0xC3]
        let allowed: Set<Int> = [400, 414, 431, 501, 505]
        var rng = SplitMix64(state: 0x0DDB_A11C_0FFE)
        var refused = 0
        var accepted = 0
        for iteration in 0..<3000 {
            var input = corpus[iteration % corpus.count]
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let pos = Int.random(in: 0...input.count, using: &rng)
                switch Int.random(in: 0..<6, using: &rng) {
                case 0 where pos < input.count: input[pos] = UInt8.random(in: 0...255, using: &rng)
                case 1: input.insert(alphabet.randomElement(using: &rng)!, at: pos)
                case 2 where pos < input.count: input.remove(at: pos)
                case 3:
                    let end = min(input.count, pos + Int.random(in: 1...30, using: &rng))
                    input.insert(contentsOf: input[pos..<end], at: pos)
                case 4: input = Array(input[0..<pos])
                default: input.insert(contentsOf: bytes("\r\n"), at: pos)
                }
            }
            let whole = parse(input)
            let sizes = (0..<5).map { _ in Int.random(in: 1...9, using: &rng) }
            let pieces = parse(input, chunkSizes: sizes)
            #expect(pieces == whole, "iteration \(iteration): splitting changed the outcome")
            if let error = whole.error {
                refused += 1
                #expect(allowed.contains(error.status), "iteration \(iteration): unexpected status \(error.status)")
            } else {
                accepted += 1
            }
            // Events alternate head, body*, end.
            var inRequest = false
            for event in whole.events {
                switch event {
                case .head:
                    #expect(!inRequest)
                    inRequest = true
                case .body: #expect(inRequest)
                case .end:
                    #expect(inRequest)
                    inRequest = false
                }
            }
        }
        #expect(refused > 100)
        #expect(accepted > 100)
    }

    /// The same with tiny limits, so the limit paths are exercised too.
    @Test func randomInputWithTinyLimitsNeverCrashes() {
        let limits = HTTPParserLimits(maxRequestLine: 24, maxHeaderBytes: 40, maxHeaderFields: 2, maxChunkLine: 6)
        var rng = SplitMix64(state: 7)
        let alphabet = bytes(
            "GET / HTTP/1.1\r\nA:b\r\n\r\n0123456789abcdef;Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"
        )
        var statuses: Set<Int> = []
        for _ in 0..<3000 {
            let count = Int.random(in: 0...200, using: &rng)
            let input = (0..<count).map { _ in alphabet.randomElement(using: &rng)! }
            let outcome = parse(input, chunkSizes: [Int.random(in: 1...50, using: &rng)], limits: limits)
            if let error = outcome.error {
                statuses.insert(error.status)
                #expect([400, 414, 431, 501, 505].contains(error.status))
            }
        }
        #expect(statuses.isSuperset(of: [400, 414]))
    }
}

// MARK: - Buffers and headers

@Suite("ByteQueue and HTTPHeaders")
struct ByteQueueAndHeaderTests {
    @Test func byteQueueIsFIFOAcrossCompaction() {
        var queue = ByteQueue()
        var expected: [UInt8] = []
        var received: [UInt8] = []
        var rng = SplitMix64(state: 99)
        for round in 0..<2000 {
            let chunk = (0..<Int.random(in: 0...3000, using: &rng)).map { UInt8(truncatingIfNeeded: $0 + round) }
            queue.append(contentsOf: chunk)
            expected += chunk
            let slice = queue.read(upTo: Int.random(in: 0...3500, using: &rng))
            received += slice
            #expect(queue.readableCount == expected.count - received.count)
        }
        received += queue.read(upTo: Int.max)
        #expect(received == expected)
        #expect(queue.isEmpty)
    }

    @Test func byteQueueConsumeAndReadable() {
        var queue = ByteQueue(bytes("hello world"))
        queue.consume(6)
        #expect(Array(queue.readable) == bytes("world"))
        bytes("!").withUnsafeBytes { queue.append($0) }
        #expect(Array(queue.read(upTo: 100)) == bytes("world!"))
        #expect(queue.isEmpty)
        #expect(queue.read(upTo: 5).isEmpty)
    }

    @Test func headersEditing() {
        var headers: HTTPHeaders = ["Content-Type": "text/plain", "X-A": "1"]
        headers.add(name: "x-a", value: "2")
        #expect(headers.values("X-A") == ["1", "2"])
        headers.replaceOrAdd(name: "X-A", value: "3")
        #expect(headers.values("x-a") == ["3"])
        #expect(headers.count == 2)
        headers.remove(name: "CONTENT-TYPE")
        #expect(!headers.contains("Content-Type"))
        #expect(headers.contains("X-A"))
        #expect(Array(headers).map(\.name) == ["X-A"])
    }

    @Test func headerTokens() {
        let headers: HTTPHeaders = ["Connection": "keep-alive, Upgrade", "Accept-Encoding": "gzip"]
        #expect(headers.hasToken("upgrade", in: "connection"))
        #expect(headers.hasToken("Keep-Alive", in: "Connection"))
        #expect(!headers.hasToken("close", in: "Connection"))
        #expect(!headers.hasToken("gzip", in: "Connection"))
        #expect(asciiCaseInsensitiveEquals("Content-Length", "content-LENGTH"))
        #expect(!asciiCaseInsensitiveEquals("Content-Length", "Content-Lengt"))
        #expect(!asciiCaseInsensitiveEquals("é", "É"))
    }
}

// MARK: - Response serialisation

@Suite("HTTP response serialisation")
struct ResponseTests {
    private func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

    @Test func okWithBody() {
        let response = HTTPResponse(status: 200, contentType: "text/plain", body: "hello")
        #expect(
            text(response.serializeHead(keepAlive: true))
                == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        )
        #expect(response.body == bytes("hello"))
    }

    @Test func connectionCloseAndServerOwnedHeaders() {
        var response = HTTPResponse(
            status: 404,
            headers: ["Content-Length": "999", "Connection": "keep-alive", "X-Y": "z"],
            body: bytes("nope")
        )
        response.headers.add(name: "connection", value: "upgrade")
        let head = text(response.serializeHead(keepAlive: false))
        #expect(head == "HTTP/1.1 404 Not Found\r\nX-Y: z\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
        #expect(!text(response.serializeHead(keepAlive: true)).contains("Connection"))
    }

    @Test func headResponseKeepsTheOmittedBodysLength() {
        let response = HTTPResponse(status: 200, body: [])
        #expect(
            text(response.serializeHead(keepAlive: true, contentLength: 12345)).contains(
                "\r\nContent-Length: 12345\r\n"
            )
        )
    }

    @Test func noContentLengthWhereNoBodyIsAllowed() {
        for status in [100, 101, 204, 304] {
            let head = text(HTTPResponse(status: status).serializeHead(keepAlive: true))
            #expect(!head.contains("Content-Length"), "status \(status)")
            #expect(head.hasPrefix("HTTP/1.1 \(status) "))
            #expect(head.hasSuffix("\r\n\r\n"))
        }
        #expect(text(HTTPResponse(status: 500).serializeHead(keepAlive: true)).contains("Content-Length: 0\r\n"))
    }

    @Test func reasonPhrases() {
        #expect(
            text(HTTPResponse(status: 413).serializeHead(keepAlive: false)).hasPrefix(
                "HTTP/1.1 413 Content Too Large\r\n"
            )
        )
        #expect(
            text(HTTPResponse(status: 431).serializeHead(keepAlive: false)).hasPrefix(
                "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            )
        )
        #expect(HTTPStatus.reason(408) == "Request Timeout")
        #expect(!HTTPStatus.reason(599).isEmpty)
    }

    @Test func headerValuesCannotSplitTheResponse() {
        let response = HTTPResponse(
            status: 302,
            headers: ["Location": "/x\r\nSet-Cookie: evil=1", "X-Bad\r\nName": "v"]
        )
        let head = text(response.serializeHead(keepAlive: true))
        let lines = head.components(separatedBy: "\r\n")
        #expect(!lines.contains { $0.hasPrefix("Set-Cookie") })
        #expect(lines.filter { $0.isEmpty }.count == 2)  // only the blank line that ends the head (and the split tail)
        #expect(!head.dropLast(4).contains("\n\n") && !head.dropLast(4).contains("\r\n\r\n"))
    }
}

extension String {
    fileprivate func components(separatedBy separator: String) -> [String] {
        var out: [String] = []
        var rest = Substring(self)
        while let r = rest.firstRange(of: separator) {
            out.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        out.append(String(rest))
        return out
    }
}
