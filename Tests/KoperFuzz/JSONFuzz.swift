import KoperJSON

/// The JSON parser (`JSONParser`) and serialiser.
///
/// Invariants: no trap; an error's offset lies inside the input; an accepted document serialises to text that parses
/// back to an equal value and serialises to the same bytes again (parse → serialise → parse round-trips); nesting
/// deeper than `maxDepth` is refused.
public struct JSONFuzzTarget: FuzzTarget {
    public init() {}

    public let name = "json"

    public var seeds: [[UInt8]] {
        [
            #"{"projectname":"hello","chroots":["fedora-rawhide-x86_64","epel-9-aarch64"],"unlisted_on_hp":false}"#,
            #"{"id":12,"state":"succeeded","ended_on":1733616000,"source_package":{"name":"hello","url":null}}"#,
            #"[1,-0,0.5,-12.25e-3,1E+2,9223372036854775807,-9223372036854775808,18446744073709551616,1e308]"#,
            #" { "a" : [ { } , [ ] , "" , "\"\\\/\b\f\n\r\t\u0000\u00e9\uD83D\uDE00" ] } "#,
            #""caf\u00e9 ☕ \ud834\udd1e""#,
            #"[[[[[[[[[[[[[[[[{"deep":true}]]]]]]]]]]]]]]]]"#,
            #"{"dup":1,"dup":2,"":null}"#,
            "true",
        ].map { Array($0.utf8) }
    }

    public var dictionary: [[UInt8]] {
        [
            "{", "}", "[", "]", "\"", ",", ":", "\\", "\\u", "\\uD800", "\\uDC00", "\\uDBFF\\uDFFF", "1e400", "-",
            ".", "e+", "E-", "0", "true", "false", "null", "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]", "\u{0}", "\u{7F}",
            "\u{C3}", "\u{ED}\u{A0}\u{80}", "\u{F4}\u{90}\u{80}\u{80}", " ", "\t", "\n",
        ].map { Array($0.utf8) }
    }

    public func check(_ input: [UInt8]) -> FuzzOutcome {
        let maxDepth = fuzzHash(input) & 1 == 0 ? 64 : 6
        let value: JSON
        do throws(JSONParseError) {
            value = try JSONParser.parse(input, maxDepth: maxDepth)
        } catch {
            guard error.offset >= 0, error.offset <= input.count else {
                return .violation("error offset \(error.offset) outside \(input.count) bytes")
            }
            return .rejected
        }
        if Self.depth(value) > maxDepth { return .violation("nesting \(Self.depth(value)) accepted (max \(maxDepth))") }
        let text = value.serialized()
        let again: JSON
        do throws(JSONParseError) {
            again = try JSONParser.parse(text, maxDepth: maxDepth)
        } catch {
            return .violation("serialised form does not parse: \(error); text: \(fuzzEscaped(text.prefix(200)))")
        }
        guard again == value else {
            return .violation("round trip changed the value; text: \(fuzzEscaped(text.prefix(200)))")
        }
        guard again.serialized() == text else { return .violation("serialising again gave other bytes") }
        return .accepted
    }

    static func depth(_ value: JSON) -> Int {
        switch value {
        case .array(let a): return 1 + (a.map(depth).max() ?? 0)
        case .object(let o): return 1 + (o.pairs.map { depth($0.1) }.max() ?? 0)
        default: return 1
        }
    }
}
