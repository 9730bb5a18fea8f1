import HTTPCore

/// The multipart/form-data parser (`MultipartParser`). An input is `boundary LF body` (the boundary line is at most
/// 80 bytes; without one the boundary is `b0undary` and the whole input is the body).
///
/// Invariants: no trap; the same events (data coalesced), error and finish result whether the body is fed at once or
/// in random chunks; events are well nested (begin, data…, end), data events are never empty, every part has a
/// name, no more than `maxParts` parts; part content never holds a delimiter; between calls the parser holds at most
/// `boundary + 4` bytes of content and at most `maxPartHeaderBytes` of headers; after an error every call throws
/// the same error; a finished body has closed every part.
public struct MultipartFuzzTarget: FuzzTarget {
    public init() {}

    public let name = "multipart"

    public var seeds: [[UInt8]] {
        [
            "XyZ\n--XyZ\r\nContent-Disposition: form-data; name=\"pkgs\"; filename=\"hello-1.0-1.src.rpm\"\r\n"
                + "Content-Type: application/x-rpm\r\n\r\n\u{ED}\u{AB}\u{EE}\u{DB}binary\r\n--XyZ\r\n"
                + "Content-Disposition: form-data; name=\"chroots\"\r\n\r\nfedora-rawhide-x86_64\r\n--XyZ--\r\n",
            "----WebKitFormBoundary7MA4YWxkTrZu0gW\npreamble\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW  \t\r\n"
                + "content-disposition: form-data; name=a\r\n\r\n\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
                + "Content-Disposition: form-data; name=\"b\\\"q\"\r\n\r\nx\r\n--WebKitFormBoundary7MA4Y\r\n"
                + "\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--epilogue",
            "a\n--a\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--a--",
            "b 'x'(y)+_,-./:=?\n--b 'x'(y)+_,-./:=?\r\nContent-Disposition: form-data; name=\"n\"; filename=\"C:\\f\"\r\n"
                + "X-Extra: \u{00E9}t\u{00E9}\r\n\r\n--b 'x'(y)+_,-./:=X\r\n\r\n--b 'x'(y)+_,-./:=?--\r\n",
            "q\n--q--",
        ].map { Array($0.utf8) }
    }

    public var dictionary: [[UInt8]] {
        [
            "\r\n", "\r\n\r\n", "--", "\r\n--", "Content-Disposition: form-data; name=\"x\"\r\n",
            "Content-Disposition: ", "form-data", "; name=", "; filename=", "\"", "\\\"",
            "Content-Type: text/plain\r\n",
            " ", "\t", ";", "=", ":", "\u{0}", "\u{FF}",
        ].map { Array($0.utf8) }
    }

    public func mutateStructured(_ bytes: inout [UInt8], _ rng: inout FuzzRNG) -> Bool {
        // Insert a (possibly incomplete or padded) delimiter for the input's own boundary somewhere in the body.
        let (boundary, bodyStart) = Self.split(bytes)
        var delimiter: [UInt8] = [13, 10, 45, 45] + Array(boundary.utf8)
        switch rng.below(5) {
        case 0: delimiter.removeLast(rng.below(delimiter.count))
        case 1: delimiter += [45, 45]
        case 2: delimiter += Array(repeating: 32, count: rng.below(300)) + [13, 10]
        case 3: delimiter += Array("\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n".utf8)
        default: delimiter += [UInt8(truncatingIfNeeded: rng.next())]
        }
        bytes.insert(contentsOf: delimiter, at: bodyStart + rng.below(bytes.count - bodyStart + 1))
        return true
    }

    static func split(_ input: [UInt8]) -> (boundary: String, bodyStart: Int) {
        if let lf = input.prefix(81).firstIndex(of: 10) {
            return (String(decoding: input[..<lf], as: UTF8.self), lf + 1)
        }
        return ("b0undary", 0)
    }

    public func check(_ input: [UInt8]) -> FuzzOutcome {
        let (boundary, bodyStart) = Self.split(input)
        let body = Array(input[bodyStart...])
        let h = fuzzHash(input)
        let maxParts = h & 1 == 0 ? 3 : 16
        let maxHeader = h & 2 == 0 ? 96 : 16 * 1024
        let whole = Self.parse(
            [body[...]],
            boundary: boundary,
            maxParts: maxParts,
            maxHeader: maxHeader,
            inspect: false
        )
        if let broken = whole.broken { return .violation("one-shot: \(broken)") }
        let pieces = Self.parse(
            chunks(body, plan: chunkPlan(for: input)),
            boundary: boundary,
            maxParts: maxParts,
            maxHeader: maxHeader,
            inspect: true
        )
        if let broken = pieces.broken { return .violation("chunked: \(broken)") }
        guard whole.error == pieces.error else {
            return .violation(
                "chunked feeding ended in \(pieces.error?.message ?? "success"), one-shot in "
                    + "\(whole.error?.message ?? "success")"
            )
        }
        // A `feed` that throws returns none of the events of that call, so before an error the two runs may have
        // seen different events; the body is refused either way.
        guard whole.error != nil || whole.events == pieces.events else {
            return .violation("chunked feeding gave other events than one-shot feeding")
        }
        return whole.error == nil ? .accepted : .rejected
    }

    struct Run {
        var events: [MultipartEvent] = []
        var error: MultipartError?
        var broken: String?
    }

    static func parse(
        _ chunks: [ArraySlice<UInt8>],
        boundary: String,
        maxParts: Int,
        maxHeader: Int,
        inspect: Bool
    ) -> Run {
        var run = Run()
        var parser = MultipartParser(boundary: boundary, maxParts: maxParts, maxPartHeaderBytes: maxHeader)
        var open = false
        var parts = 0
        let delimiter: [UInt8] = [13, 10, 45, 45] + Array(boundary.utf8)
        var content: [UInt8] = []
        func take(_ events: [MultipartEvent]) -> String? {
            for event in events {
                switch event {
                case .partBegin(let head):
                    if open { return "part begins inside a part" }
                    if head.name == nil { return "part without a name" }
                    open = true
                    parts += 1
                    if parts > maxParts { return "\(parts) parts accepted (limit \(maxParts))" }
                    content = []
                case .partData(let data):
                    if !open { return "data outside a part" }
                    if data.isEmpty { return "empty data event" }
                    content += data
                case .partEnd:
                    if !open { return "part end outside a part" }
                    open = false
                    if let at = firstIndex(of: delimiter, in: content), at + delimiter.count < content.count,
                        [45, 32, 9, 13].contains(content[at + delimiter.count])
                    {
                        return "part content holds a delimiter at \(at)"
                    }
                }
                if case .partData(let more) = event, case .partData(let earlier)? = run.events.last {
                    run.events[run.events.count - 1] = .partData(earlier + more)
                } else {
                    run.events.append(event)
                }
            }
            return nil
        }
        do throws(MultipartError) {
            for (k, chunk) in chunks.enumerated() {
                let events = try parser.feed(chunk)
                if let broken = take(events) {
                    run.broken = broken
                    return run
                }
                // Reading the parser through Mirror is slow: every 8th call and the last one.
                if inspect, k % 8 == 0 || k == chunks.count - 1,
                    let broken = self.heldBytesProblem(parser, boundary: boundary, maxHeader: maxHeader)
                {
                    run.broken = broken
                    return run
                }
            }
            try parser.finish()
            if open { run.broken = "finished with a part open" }
        } catch {
            run.error = error
            // An error is final: the next call throws it again.
            do throws(MultipartError) {
                _ = try parser.feed([UInt8]())
                run.broken = "feed after an error did not throw"
            } catch let again {
                if again != error { run.broken = "feed after an error threw another error" }
            }
        }
        return run
    }

    /// The documented memory bound, read from the parser's stored properties.
    static func heldBytesProblem(_ parser: MultipartParser, boundary: String, maxHeader: Int) -> String? {
        for child in Mirror(reflecting: parser).children {
            if child.label == "buffer", let buffer = child.value as? [UInt8], buffer.count > boundary.utf8.count + 4 {
                return "holds \(buffer.count) bytes between calls (bound \(boundary.utf8.count + 4))"
            }
            if child.label == "headerBytes", let header = child.value as? [UInt8], header.count > maxHeader {
                return "holds \(header.count) header bytes (limit \(maxHeader))"
            }
        }
        return nil
    }
}
