import HTTPCore
import Testing

// MARK: - Helpers

private struct MultipartTestRNG: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func mpBytes(_ string: String) -> [UInt8] { Array(string.utf8) }

/// Merges adjacent `.partData` events, so differently chunked runs can be compared.
private func coalescedEvents(_ events: [MultipartEvent]) -> [MultipartEvent] {
    var result: [MultipartEvent] = []
    for event in events {
        if case .partData(let more) = event, case .partData(let data)? = result.last {
            result[result.count - 1] = .partData(data + more)
        } else {
            result.append(event)
        }
    }
    return result
}

/// Feeds `body` in chunks of the given sizes (cycled), then finishes.
private func parseMultipart(
    _ body: [UInt8],
    boundary: String,
    chunkSizes: [Int] = [Int.max],
    maxParts: Int = 16,
    maxPartHeaderBytes: Int = 16 * 1024
) throws -> [MultipartEvent] {
    var parser = MultipartParser(boundary: boundary, maxParts: maxParts, maxPartHeaderBytes: maxPartHeaderBytes)
    var events: [MultipartEvent] = []
    var position = 0
    var sizeIndex = 0
    while position < body.count {
        let size = max(1, chunkSizes[sizeIndex % chunkSizes.count])
        sizeIndex += 1
        let end = size >= body.count - position ? body.count : position + size
        let produced = try parser.feed(body[position..<end])
        for event in produced {
            if case .partData(let data) = event { #expect(!data.isEmpty) }
        }
        events += produced
        position = end
    }
    try parser.finish()
    return coalescedEvents(events)
}

private func expectMultipartFailure(
    _ body: [UInt8],
    boundary: String = "B0undary",
    maxParts: Int = 16,
    maxPartHeaderBytes: Int = 16 * 1024,
    _ messageFragment: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    for chunkSizes in [[Int.max], [1], [3, 7]] {
        let error = #expect(throws: MultipartError.self, sourceLocation: sourceLocation) {
            try parseMultipart(
                body,
                boundary: boundary,
                chunkSizes: chunkSizes,
                maxParts: maxParts,
                maxPartHeaderBytes: maxPartHeaderBytes
            )
        }
        #expect(
            error?.message.contains(messageFragment) == true,
            "\(error?.message ?? "no error") does not mention \(messageFragment)",
            sourceLocation: sourceLocation
        )
    }
}

private func multipartFormPart(_ name: String, _ content: String, boundary: String = "B0undary") -> String {
    "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(content)\r\n"
}

// MARK: - copr-cli upload body

@Suite struct CoprUploadBodyTests {
    static let boundary = "3c1f9a8e07b24d6f9e2a5b7c8d0e1f23"  // 32 hex, like copr-cli / urllib3

    /// Binary content full of CR, LF, `--` and near-delimiters, as an SRPM payload can contain.
    static let srpm: [UInt8] = {
        var generator = MultipartTestRNG(state: 42)
        var data: [UInt8] = [0xED, 0xAB, 0xEE, 0xDB, 3, 0, 0, 1]
        data += (0...255).map { UInt8($0) }
        for _ in 0..<200 {
            data += (0..<Int.random(in: 0..<300, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            switch Int.random(in: 0..<8, using: &generator) {
            case 0: data += mpBytes("\r\n")
            case 1: data += mpBytes("--")
            case 2: data += mpBytes("\r\n--")
            case 3: data += mpBytes("\r\n--" + boundary.dropLast(1))  // one byte short of a delimiter
            case 4: data += mpBytes("--" + boundary + "--")  // no CRLF before: not a delimiter
            case 5: data += mpBytes("\r\n--" + boundary + "x")  // followed by a non-delimiter byte
            case 6: data += mpBytes("\r\r\n\n-\r\n-")
            default: data += mpBytes("\r\n-" + boundary)
            }
        }
        data += mpBytes("\r\n")  // content may end with CRLF; the delimiter's CRLF comes after it
        return data
    }()

    static let json = mpBytes(#"{"chroots": ["fedora-rawhide-x86_64"], "enable_net": false, "timeout": null}"#)

    static let body: [UInt8] = {
        mpBytes("--\(boundary)\r\n")
            + mpBytes("Content-Disposition: form-data; name=\"pkgs\"; filename=\"hello-1.0-1.src.rpm\"\r\n")
            + mpBytes("Content-Type: application/x-rpm\r\n\r\n")
            + srpm + mpBytes("\r\n")
            + mpBytes("--\(boundary)\r\n")
            + mpBytes("Content-Disposition: form-data; name=\"json\"; filename=\"json\"\r\n")
            + mpBytes("Content-Type: application/json\r\n\r\n")
            + json + mpBytes("\r\n")
            + mpBytes("--\(boundary)--\r\n")
    }()

    static let expected: [MultipartEvent] = [
        .partBegin(
            MultipartPartHead(
                name: "pkgs",
                filename: "hello-1.0-1.src.rpm",
                contentType: "application/x-rpm",
                headers: [
                    ("Content-Disposition", "form-data; name=\"pkgs\"; filename=\"hello-1.0-1.src.rpm\""),
                    ("Content-Type", "application/x-rpm"),
                ]
            )
        ),
        .partData(srpm),
        .partEnd,
        .partBegin(
            MultipartPartHead(
                name: "json",
                filename: "json",
                contentType: "application/json",
                headers: [
                    ("Content-Disposition", "form-data; name=\"json\"; filename=\"json\""),
                    ("Content-Type", "application/json"),
                ]
            )
        ),
        .partData(json),
        .partEnd,
    ]

    @Test func boundaryFromCoprContentType() {
        #expect(
            MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=\(Self.boundary)") == Self.boundary
        )
    }

    @Test func wholeBody() throws {
        #expect(try parseMultipart(Self.body, boundary: Self.boundary) == Self.expected)
    }

    @Test func oneByteAtATime() throws {
        #expect(try parseMultipart(Self.body, boundary: Self.boundary, chunkSizes: [1]) == Self.expected)
    }

    @Test(arguments: [1, 2, 3, 4, 5])
    func randomChunks(seed: UInt64) throws {
        var generator = MultipartTestRNG(state: seed)
        let sizes = (0..<500).map { _ in Int.random(in: 1...80, using: &generator) }
        #expect(try parseMultipart(Self.body, boundary: Self.boundary, chunkSizes: sizes) == Self.expected)
        let bigSizes = (0..<50).map { _ in Int.random(in: 1...9000, using: &generator) }
        #expect(try parseMultipart(Self.body, boundary: Self.boundary, chunkSizes: bigSizes) == Self.expected)
    }

    @Test func everySplitPointInTwoChunks() throws {
        // A small body so that every split position is tried, including inside delimiters.
        let body =
            mpBytes("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--Bz\r\n-B\r\n--B\t \r\n")
            + mpBytes("Content-Disposition: form-data; name=\"b\"\r\n\r\n\r\n--B--")
        let expected: [MultipartEvent] = [
            .partBegin(
                MultipartPartHead(
                    name: "a",
                    filename: nil,
                    contentType: nil,
                    headers: [("Content-Disposition", "form-data; name=\"a\"")]
                )
            ),
            .partData(mpBytes("x\r\n--Bz\r\n-B")),
            .partEnd,
            .partBegin(
                MultipartPartHead(
                    name: "b",
                    filename: nil,
                    contentType: nil,
                    headers: [("Content-Disposition", "form-data; name=\"b\"")]
                )
            ),
            .partEnd,
        ]
        for split in 0...body.count {
            var parser = MultipartParser(boundary: "B")
            var events = try parser.feed(body[..<split])
            events += try parser.feed(body[split...])
            try parser.finish()
            #expect(coalescedEvents(events) == expected, "split at \(split)")
        }
    }

    /// Memory stays bounded: at every point, all but `boundary.count + 4` bytes of the content
    /// fed so far have been delivered.
    @Test func holdsBackAtMostTheDelimiterLength() throws {
        var parser = MultipartParser(boundary: Self.boundary)
        let contentStart = try #require(mpFirstIndex(of: Self.srpm, in: Self.body))
        var delivered = 0
        var inFirstPart = false
        for position in 0..<(contentStart + Self.srpm.count) {
            for event in try parser.feed(Self.body[position...position]) {
                switch event {
                case .partBegin(let head): inFirstPart = head.name == "pkgs"
                case .partData(let data): if inFirstPart { delivered += data.count }
                case .partEnd: inFirstPart = false
                }
            }
            if position >= contentStart {
                let fed = position + 1 - contentStart
                #expect(fed - delivered <= Self.boundary.count + 4, "at \(position)")
                #expect(delivered <= fed)
            }
        }
    }
}

private func mpFirstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard needle.count <= haystack.count else { return nil }
    for start in 0...(haystack.count - needle.count)
    where haystack[start..<(start + needle.count)].elementsEqual(needle) {
        return start
    }
    return nil
}

// MARK: - Syntax

@Suite struct MultipartSyntaxTests {
    @Test func boundaryFromContentType() {
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=abc") == "abc")
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data;boundary=abc") == "abc")
        #expect(MultipartParser.boundary(fromContentType: "Multipart/Form-Data; BOUNDARY=abc") == "abc")
        #expect(
            MultipartParser.boundary(fromContentType: "multipart/form-data; charset=utf-8; boundary=\"a b:c\"")
                == "a b:c"
        )
        #expect(
            MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=\"----WebKitFormBoundaryX\" ")
                == "----WebKitFormBoundaryX"
        )
        #expect(
            MultipartParser.boundary(
                fromContentType: "multipart/form-data; boundary=" + String(repeating: "a", count: 70)
            )?.count == 70
        )
        // Absent or invalid.
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=\"\"") == nil)
        #expect(
            MultipartParser.boundary(
                fromContentType: "multipart/form-data; boundary=" + String(repeating: "a", count: 71)
            ) == nil
        )
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=\"abc \"") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=\"a@b\"") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=\"abc") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=abc def") == nil)
        #expect(MultipartParser.boundary(fromContentType: "multipart/mixed; boundary=abc") == nil)
        #expect(MultipartParser.boundary(fromContentType: "text/plain; boundary=abc") == nil)
        #expect(MultipartParser.boundary(fromContentType: "") == nil)
        #expect(MultipartParser.boundary(fromContentType: "; boundary=abc") == nil)
    }

    @Test func preambleEpilogueAndPadding() throws {
        let body =
            mpBytes("This is the preamble.\r\nIt has --B0undaryX lines and \r\n--B0undaryZ too.\r\n")
            + mpBytes("--B0undary \t \r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nvalue\r\n")
            + mpBytes("--B0undary--   \r\nEpilogue --B0undary\r\n with anything in it")
        let events = try parseMultipart(body, boundary: "B0undary")
        #expect(
            events == [
                .partBegin(
                    MultipartPartHead(
                        name: "f",
                        filename: nil,
                        contentType: nil,
                        headers: [("Content-Disposition", "form-data; name=\"f\"")]
                    )
                ),
                .partData(mpBytes("value")),
                .partEnd,
            ]
        )
        #expect(try parseMultipart(body, boundary: "B0undary", chunkSizes: [1]) == events)
    }

    @Test func emptyAndCRLFContent() throws {
        let head = "Content-Disposition: form-data; name=\"e\"\r\n"
        // Empty content, standard form.
        #expect(try parseMultipart(mpBytes("--B\r\n" + head + "\r\n\r\n--B--"), boundary: "B").count == 2)
        // Empty content where the header block's CRLF doubles as the delimiter's.
        let compact = try parseMultipart(mpBytes("--B\r\n" + head + "\r\n--B--"), boundary: "B", chunkSizes: [1])
        #expect(compact.count == 2)
        // Content that is only CRLFs.
        let crlf = try parseMultipart(
            mpBytes("--B\r\n" + head + "\r\n\r\n\r\n\r\n--B--"),
            boundary: "B",
            chunkSizes: [1]
        )
        #expect(crlf[1] == .partData(mpBytes("\r\n\r\n")))
        // No parts at all.
        #expect(try parseMultipart(mpBytes("--B--\r\n"), boundary: "B").isEmpty)
    }

    @Test func nearBoundaryContent() throws {
        let content = "a\r\n--B0undar\r\n--B0undaryy--B0undary--\n--B0undary--\r--B0undary\r\n-B0undary"
        for sizes in [[Int.max], [1], [2], [5]] {
            let events = try parseMultipart(
                mpBytes(multipartFormPart("n", content) + "--B0undary--"),
                boundary: "B0undary",
                chunkSizes: sizes
            )
            #expect(events.count == 3)
            #expect(events[1] == .partData(mpBytes(content)))
        }
    }

    @Test func headerParameters() throws {
        let body =
            mpBytes("--B\r\ncontent-disposition: FORM-DATA; filename=\"C:\\dir\\x.rpm\" ;name=pkgs; extra=\"1\"\r\n")
            + mpBytes("X-Custom:\t spaced value \t\r\nCONTENT-TYPE: application/x-rpm\r\n\r\ndata\r\n")
            + mpBytes(
                "--B\r\nContent-Disposition: form-data; name=\"q\\\"uote\\\\d\"; filename=\"h\u{E9}llo.src.rpm\"\r\n\r\n\r\n"
            )
            + mpBytes("--B--")
        let events = try parseMultipart(body, boundary: "B")
        guard case .partBegin(let first) = events[0], case .partBegin(let second) = events[3] else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(first.name == "pkgs")
        #expect(first.filename == "C:\\dir\\x.rpm")
        #expect(first.contentType == "application/x-rpm")
        #expect(first.headers.map(\.name) == ["content-disposition", "X-Custom", "CONTENT-TYPE"])
        #expect(first.header("x-custom") == "spaced value")
        #expect(first.header("Content-Type") == "application/x-rpm")
        #expect(first.header("missing") == nil)
        #expect(second.name == "q\"uote\\d")
        #expect(second.filename == "h\u{E9}llo.src.rpm")
        #expect(second.contentType == nil)
    }

    @Test func partHeadEquality() {
        let a = MultipartPartHead(name: "a", filename: nil, contentType: nil, headers: [("X", "1")])
        #expect(a == MultipartPartHead(name: "a", filename: nil, contentType: nil, headers: [("X", "1")]))
        #expect(a != MultipartPartHead(name: "a", filename: nil, contentType: nil, headers: [("X", "2")]))
        #expect(a != MultipartPartHead(name: "a", filename: nil, contentType: nil, headers: [("Y", "1")]))
        #expect(a != MultipartPartHead(name: "a", filename: nil, contentType: nil, headers: []))
        #expect(a != MultipartPartHead(name: "a", filename: "f", contentType: nil, headers: [("X", "1")]))
    }
}

// MARK: - Errors and limits

@Suite struct MultipartErrorTests {
    static let head = "Content-Disposition: form-data; name=\"f\"\r\n"

    @Test func missingCloseDelimiter() {
        expectMultipartFailure(mpBytes("--B0undary\r\n" + Self.head + "\r\nunfinished content"), "close delimiter")
        expectMultipartFailure(mpBytes("--B0undary\r\n" + Self.head + "\r\ncontent\r\n"), "close delimiter")
        expectMultipartFailure(mpBytes("--B0undary\r\n" + Self.head + "\r\ncontent\r\n--B0undary"), "close delimiter")
        expectMultipartFailure(mpBytes("--B0undary\r\n" + Self.head + "\r\ncontent\r\n--B0undary-"), "close delimiter")
        expectMultipartFailure(
            mpBytes("--B0undary\r\n" + Self.head + "\r\ncontent\r\n--B0undary\r\n"),
            "close delimiter"
        )
        expectMultipartFailure(mpBytes("--B0undary\r\nContent-Disp"), "close delimiter")
        expectMultipartFailure(mpBytes("no delimiter at all\r\n--B0undar"), "no boundary")
        expectMultipartFailure([], "no boundary")
    }

    @Test func malformedDelimiters() {
        expectMultipartFailure(mpBytes("--B0undary-x\r\n"), "close delimiter")
        expectMultipartFailure(mpBytes("--B0undary \tx\r\n"), "after boundary")
        expectMultipartFailure(mpBytes("--B0undary \t-\r\n"), "after boundary")
        expectMultipartFailure(mpBytes("--B0undary\rX"), "CRLF")
        expectMultipartFailure(mpBytes("--B0undary" + String(repeating: " ", count: 300) + "\r\n"), "padding")
    }

    @Test func limits() {
        let threeParts = mpBytes(
            multipartFormPart("a", "1") + multipartFormPart("b", "2") + multipartFormPart("c", "3") + "--B0undary--"
        )
        expectMultipartFailure(threeParts, maxParts: 2, "more than 2 parts")
        #expect(throws: Never.self) { try parseMultipart(threeParts, boundary: "B0undary", maxParts: 3) }

        let bigHeader = mpBytes(
            "--B0undary\r\n" + Self.head + "X-Pad: " + String(repeating: "p", count: 200) + "\r\n\r\nv\r\n--B0undary--"
        )
        expectMultipartFailure(bigHeader, maxPartHeaderBytes: 200, "exceed 200 bytes")
        #expect(throws: Never.self) { try parseMultipart(bigHeader, boundary: "B0undary", maxPartHeaderBytes: 300) }
        // An endless header block is cut off at the limit, not buffered.
        var endless = MultipartParser(boundary: "B", maxPartHeaderBytes: 1024)
        #expect(throws: Never.self) { _ = try endless.feed(mpBytes("--B\r\nX: ")) }
        let error = #expect(throws: MultipartError.self) {
            for _ in 0..<100 { _ = try endless.feed([UInt8](repeating: 0x61, count: 100)) }
        }
        #expect(error?.message.contains("exceed") == true)
    }

    @Test func badPartHeaders() {
        func body(_ headers: String) -> [UInt8] { mpBytes("--B0undary\r\n" + headers + "\r\nv\r\n--B0undary--") }
        expectMultipartFailure(mpBytes("--B0undary\r\n\r\nv\r\n--B0undary--"), "without Content-Disposition")
        expectMultipartFailure(body("Content-Type: text/plain\r\n"), "without Content-Disposition")
        expectMultipartFailure(body("Content-Disposition: attachment; name=\"f\"\r\n"), "not form-data")
        expectMultipartFailure(body("Content-Disposition: form-data\r\n"), "without a name")
        expectMultipartFailure(body("Content-Disposition: form-data; filename=\"x\"\r\n"), "without a name")
        expectMultipartFailure(body("Content-Disposition: form-data; name=\"a\"; name=\"b\"\r\n"), "duplicate name")
        expectMultipartFailure(body("Content-Disposition: form-data; name=\"unterminated\r\n"), "not form-data")
        expectMultipartFailure(body("Content-Disposition: form-data; name\r\n"), "not form-data")
        expectMultipartFailure(body(Self.head + Self.head), "duplicate Content-Disposition")
        expectMultipartFailure(body(Self.head + "Content-Type: a\r\nContent-Type: b\r\n"), "duplicate Content-Type")
        expectMultipartFailure(body(Self.head + "no colon here\r\n"), "without ':'")
        expectMultipartFailure(body(Self.head + ": empty name\r\n"), "invalid part header name")
        expectMultipartFailure(body(Self.head + "Bad Name: x\r\n"), "invalid part header name")
        expectMultipartFailure(body(Self.head + "X-A: a\r\n folded\r\n"), "folded")
        expectMultipartFailure(body(Self.head + "X-A: a\rb\r\n"), "stray")
        expectMultipartFailure(body(Self.head + "X-A: a\nb\r\n"), "stray")
        expectMultipartFailure(
            mpBytes("--B0undary\r\n" + Self.head) + [0x58, 0x3A, 0xFF, 0x0D, 0x0A, 0x0D, 0x0A]
                + mpBytes("v\r\n--B0undary--"),
            "not UTF-8"
        )
    }

    @Test func invalidBoundaryFailsOnFirstFeed() {
        for boundary in ["", String(repeating: "a", count: 71), "a@b", "trailing "] {
            var parser = MultipartParser(boundary: boundary)
            let error = #expect(throws: MultipartError.self) { _ = try parser.feed(mpBytes("--x--")) }
            #expect(error?.message == "invalid boundary")
        }
    }

    @Test func errorsAreSticky() {
        var parser = MultipartParser(boundary: "B")
        let first = #expect(throws: MultipartError.self) { _ = try parser.feed(mpBytes("--B\r\n\r\n")) }
        let second = #expect(throws: MultipartError.self) {
            _ = try parser.feed(mpBytes(multipartFormPart("a", "b", boundary: "B")))
        }
        #expect(first != nil)
        #expect(first == second)
        #expect(throws: MultipartError.self) { try parser.finish() }
    }

    @Test func epilogueIsIgnoredAndFinishIsFinal() throws {
        var parser = MultipartParser(boundary: "B")
        let events = try parser.feed(mpBytes(multipartFormPart("a", "b", boundary: "B") + "--B--"))
        #expect(events.count == 3)
        #expect(
            try parser.feed(mpBytes("\r\n--B\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nx\r\n--B--"))
                .isEmpty
        )
        try parser.finish()
        let error = #expect(throws: MultipartError.self) { _ = try parser.feed(mpBytes("more")) }
        #expect(error?.message.contains("after finish") == true)
        #expect(MultipartError(message: "x").description.contains("x"))
    }
}
