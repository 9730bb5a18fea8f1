import KoperJSON
import Testing

@Suite struct JSONTests {
    @Test func roundTripsNestedValues() throws {
        let text = #"{"a":1,"b":[true,false,null],"c":"x\"y\n\u00e9\ud83d\ude00","d":-2.5,"e":{}}"#
        let v = try JSONParser.parse(Array(text.utf8))
        #expect(v["a"]?.intValue == 1)
        #expect(v["b"]?.arrayValue?.count == 3)
        #expect(v["c"]?.stringValue == "x\"y\né😀")
        #expect(v["d"] == .double(-2.5))
        let again = try JSONParser.parse(v.serialized())
        #expect(again == v)
    }

    @Test func keepsKeyOrderOnOutput() {
        let v: JSON = ["z": 1, "a": "b", "m": nil]
        #expect(v.text == #"{"z":1,"a":"b","m":null}"#)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"\u{1}\"", "tru", "[1] 2", "\"\\ud800\""])
    func rejectsMalformed(_ input: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(input.utf8)) }
    }

    @Test func boundsNesting() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(deep.utf8), maxDepth: 64) }
        #expect((try? JSONParser.parse(Array(deep.utf8), maxDepth: 128)) != nil)
    }

    @Test func escapesControlCharacters() throws {
        #expect(JSON.string("a\u{1}b").text == #""a\u0001b""#)
        // Escapes at the start, in the middle and at the end; unescaped runs (ASCII and UTF-8) copied around them.
        #expect(JSON.string("\"q\\é\t\r\n\u{1f}").text == #""\"q\\é\t\r\n\u001f""#)
        #expect(JSON.string("").text == #""""#)
        #expect(JSON.string("plain ascii 😀").text == #""plain ascii 😀""#)
        let tricky = "x\u{0}y\"\\z\u{7f}ü"
        #expect(try JSONParser.parse(Array(JSON.string(tricky).text.utf8)).stringValue == tricky)
    }
}
