/// The outcome of a `Range` header against a representation of `size` bytes (RFC 9110 §14).
enum ByteRangeRequest: Equatable {
    /// No usable range: send the whole representation with 200. Also the answer for several ranges (allowed by
    /// RFC 9110 §14.2, which lets a server ignore `Range`) and for syntax we do not understand.
    case whole
    /// One satisfiable range, `first...last` inclusive, clipped to the size.
    case partial(first: Int, last: Int)
    /// A valid range that selects nothing: 416 with `Content-Range: bytes */size`.
    case unsatisfiable

    /// Evaluates a single `bytes=` range: `a-b`, `a-` or `-n`.
    static func evaluate(_ header: String?, size: Int) -> ByteRangeRequest {
        guard let header else { return .whole }
        let value = header.utf8.drop { $0 == 32 || $0 == 9 }
        guard value.count > 6 else { return .whole }
        guard Substring(value.prefix(6)).lowercased() == "bytes=" else { return .whole }
        let specs = value.dropFirst(6).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            .map { trimOWS($0) }
            .filter { !$0.isEmpty }
        guard specs.count == 1, let spec = specs.first else { return .whole }
        guard let dash = spec.firstIndex(of: UInt8(ascii: "-")) else { return .whole }
        let firstText = spec[spec.startIndex..<dash]
        let lastText = spec[spec.index(after: dash)...]
        if firstText.isEmpty {
            // Suffix range: the last n bytes.
            guard let n = parseDigits(lastText) else { return .whole }
            if n == 0 || size == 0 { return .unsatisfiable }
            return .partial(first: max(0, size - n), last: size - 1)
        }
        guard let first = parseDigits(firstText) else { return .whole }
        var last = size - 1
        if !lastText.isEmpty {
            guard let l = parseDigits(lastText) else { return .whole }
            guard l >= first else { return .whole }  // invalid range-spec: ignore the header
            last = min(l, size - 1)
        }
        if first >= size { return .unsatisfiable }
        return .partial(first: first, last: last)
    }

    /// ASCII digits only; values beyond `Int.max` saturate (they can only be beyond any file size anyway).
    private static func parseDigits(_ bytes: Substring.UTF8View.SubSequence) -> Int? {
        guard !bytes.isEmpty else { return nil }
        var value = 0
        for b in bytes {
            guard b >= 48 && b <= 57 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(b - 48))
            value = (o1 || o2) ? Int.max : sum
        }
        return value
    }

    private static func trimOWS(_ bytes: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        var s = bytes
        while let f = s.first, f == 32 || f == 9 { s = s.dropFirst() }
        while let l = s.last, l == 32 || l == 9 { s = s.dropLast() }
        return s
    }
}
