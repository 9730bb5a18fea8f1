import HTTPCore
import Testing

@Suite("URL encoding, Base64 and Basic credentials")
struct URLEncodingTests {
    @Test func percentDecode() {
        #expect(URLEncoding.percentDecode("plain") == "plain")
        #expect(URLEncoding.percentDecode("a%20b%2fc%2F") == "a b/c/")
        #expect(URLEncoding.percentDecode("%C3%A9t%C3%A9") == "été")
        #expect(URLEncoding.percentDecode("a+b") == "a+b")
        #expect(URLEncoding.percentDecode("a+b", plusAsSpace: true) == "a b")
        #expect(URLEncoding.percentDecode("%2B", plusAsSpace: true) == "+")
        #expect(URLEncoding.percentDecode("") == "")
        #expect(URLEncoding.percentDecode("%00") == "\u{0}")
    }

    @Test(arguments: ["%", "%4", "a%zz", "%G0", "100%", "%%41"])
    func malformedEscapesAreRejected(_ input: String) {
        #expect(URLEncoding.percentDecode(input) == nil)
    }

    @Test func invalidUTF8IsRejected() {
        #expect(URLEncoding.percentDecode("%FF") == nil)
        #expect(URLEncoding.percentDecode("%C3") == nil)  // truncated sequence
        #expect(URLEncoding.percentDecode("%C0%AF") == nil)  // overlong encoding
    }

    @Test func parseQuery() {
        let pairs = URLEncoding.parseQuery("a=1&b=&c&&d=x%20y+z&a=2&e=%3D%26&=v")
        #expect(pairs.map(\.name) == ["a", "b", "c", "d", "a", "e", ""])
        #expect(pairs.map(\.value) == ["1", "", "", "x y z", "2", "=&", "v"])
        #expect(URLEncoding.parseQuery("").isEmpty)
        #expect(URLEncoding.parseQuery("k=a=b").map(\.value) == ["a=b"])
    }

    @Test func parseQueryDropsUndecodablePairs() {
        let pairs = URLEncoding.parseQuery("good=1&bad=%zz&%FF=x&also=2")
        #expect(pairs.map(\.name) == ["good", "also"])
    }

    @Test func percentEncode() {
        #expect(URLEncoding.percentEncode("a b/c?d=é~._-") == "a%20b%2Fc%3Fd%3D%C3%A9~._-")
        #expect(URLEncoding.percentEncode("a/b c", allowed: "/") == "a/b%20c")
        for s in ["", "x y+z", "ünïcødé/路径", "%41", "\u{0}\u{7F}"] {
            #expect(URLEncoding.percentDecode(URLEncoding.percentEncode(s)) == s)
        }
    }

    // MARK: Base64

    @Test func base64Vectors() {
        // RFC 4648 §10.
        let vectors = [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
        let all = (0...255).map { UInt8($0) }
        #expect(Base64.decode(Base64.encode(all)) == all)
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
    }

    @Test(arguments: ["Zg=", "Zm9", "Zg==Zg==", "Z===", "=Zm9", "Zm=v", "Zm9v\n", "Zm 9v", "Zm9v-_==", "Zg=x"])
    func malformedBase64IsRejected(_ input: String) {
        #expect(Base64.decode(input) == nil)
    }

    // MARK: Basic credentials

    @Test func basicCredentials() {
        #expect(
            BasicCredentials(authorizationHeader: "Basic dXNlcjpwYXNz")
                == BasicCredentials(login: "user", password: "pass")
        )
        #expect(BasicCredentials(authorizationHeader: "basic dXNlcjpwYXNz")?.login == "user")
        #expect(BasicCredentials(authorizationHeader: "  BASIC   dXNlcjpwYXNz  ")?.password == "pass")
        // The password may contain colons; only the first one separates.
        let colon = BasicCredentials(authorizationHeader: "Basic " + Base64.encode(Array("alice:s3:cr:et".utf8)))
        #expect(colon == BasicCredentials(login: "alice", password: "s3:cr:et"))
        #expect(
            BasicCredentials(authorizationHeader: "Basic " + Base64.encode(Array("bob:".utf8)))
                == BasicCredentials(login: "bob", password: "")
        )
        let unicode = BasicCredentials(authorizationHeader: "Basic " + Base64.encode(Array("jürgen:pässwörd".utf8)))
        #expect(unicode == BasicCredentials(login: "jürgen", password: "pässwörd"))
    }

    @Test(arguments: [
        "",
        "Basic",
        "Basic ",
        "Bearer dXNlcjpwYXNz",
        "Basicx dXNlcjpwYXNz",
        "Basic dXNlcnBhc3M=",  // "userpass": no colon
        "Basic dXNlcjpwYXNz!",
        "Basic ////",  // not UTF-8
    ])
    func malformedBasicCredentialsAreRejected(_ header: String) {
        #expect(BasicCredentials(authorizationHeader: header) == nil)
    }
}
