import Foundation
import Testing

@testable import ServiceKit

@Suite struct BearerSecretTests {
    let value = "k9-Very-Secret-Token"

    @Test func acceptsTheRightSecret() {
        let secret = BearerSecret(self.value)
        #expect(secret.accepts(authorization: "Bearer \(self.value)"))
        // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
        #expect(secret.accepts(authorization: "bearer \(self.value)"))
        #expect(secret.accepts(authorization: "BEARER \(self.value)"))
    }

    @Test func refusesEverythingElse() {
        let secret = BearerSecret(self.value)
        let refused: [String?] = [
            nil, "", "Bearer", "Bearer ", "Bearer  \(self.value)", "Bearer wrong", "Bearer \(self.value)x",
            "Bearer \(self.value.dropLast())", "Bearer \(self.value.uppercased())", "Basic \(self.value)",
            "Token \(self.value)", self.value, "Bearer\(self.value)", " Bearer \(self.value)",
            "Bearer \(self.value) ",
        ]
        for header in refused {
            #expect(!secret.accepts(authorization: header), "accepted \(String(describing: header))")
        }
    }

    @Test func anEmptySecretAcceptsNothing() {
        let secret = BearerSecret("")
        #expect(secret.isEmpty)
        for header in ["Bearer ", "Bearer", "", "Bearer x"] {
            #expect(!secret.accepts(authorization: header))
        }
    }

    @Test func neverPrintsTheSecret() throws {
        let secret = BearerSecret(self.value)
        var dumped = ""
        dump(secret, to: &dumped)
        let renderings = [
            "\(secret)", String(describing: secret), String(reflecting: secret), dumped,
            "\(Mirror(reflecting: secret).children.map { "\($0.label ?? "") \($0.value)" })",
            "\([secret])", "\(Optional(secret) as Any)",
        ]
        for text in renderings {
            #expect(!text.contains(self.value), "leaked in \(text)")
        }
        #expect(secret.description == "<redacted>")
    }

    @Test func decodesFromAJSONString() throws {
        struct Holder: Decodable { let secret: BearerSecret }
        let holder = try JSONDecoder().decode(Holder.self, from: Data(#"{"secret": "\#(self.value)"}"#.utf8))
        #expect(holder.secret.accepts(authorization: "Bearer \(self.value)"))
        #expect(holder.secret.authorizationField.name == "Authorization")
        #expect(holder.secret.authorizationField.value == "Bearer \(self.value)")
        #expect(!"\(holder)".contains(self.value))
    }
}
