import Foundation
import GPG
import Logging
import TestSupport
import Testing

/// The `GPG` module's additions for Keygen: user-id changes and signatures that report their hash.
@Suite(.serialized) struct GPGAdditionsTests {
    @Test func addAndDeleteUserIDsAndReportTheHash() async throws {
        try await withScratchHome { home in
            let keyring = try GPGKeyring(
                homeDirectory: home,
                logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            )
            let first = "first <first@example.org>"
            let second = "o_p (Copr) <o#p@copr.example.org>"
            let fingerprint = try await keyring.generateKey(
                userID: first,
                algorithm: "rsa2048",
                expires: .seconds(86_400)
            )

            // The only user id cannot go; an unknown one is refused.
            await #expect(throws: GPGError.self) {
                try await keyring.deleteUserID(fingerprint: fingerprint, userID: first)
            }
            await #expect(throws: GPGError.self) {
                try await keyring.deleteUserID(fingerprint: fingerprint, userID: second)
            }
            await #expect(throws: GPGError.self) {
                try await keyring.addUserID(fingerprint: fingerprint, userID: "a\nb")
            }

            try await keyring.addUserID(fingerprint: fingerprint, userID: second)
            let both = try await keyring.key(fingerprint: fingerprint)?.userIDs ?? []
            #expect(Set(both) == [first, second] && both.count == 2, "\(both)")
            try await keyring.deleteUserID(fingerprint: fingerprint, userID: first)
            #expect(try await keyring.key(fingerprint: fingerprint)?.userIDs == [second])
            let exported = try await keyring.exportPublicKey(fingerprint: fingerprint, armored: false)
            #expect(!containsSequence(exported, Array(first.utf8)), "the deleted user id is still exported")
            #expect(containsSequence(exported, Array(second.utf8)))

            // gpg's default for these keys is SHA-512; the synchronous variant gives the same kind of result.
            let signature = try await keyring.signDetached([1, 2, 3], fingerprint: fingerprint)
            #expect([8, 10].contains(signature.hashAlgorithm), "hash \(signature.hashAlgorithm)")
            let blocking = try await TestHTTPClient.runBlocking {
                try keyring.signDetachedSynchronously([1, 2, 3], fingerprint: fingerprint)
            }
            #expect(blocking.hashAlgorithm == signature.hashAlgorithm)
            #expect(blocking.bytes.first == 0x89 || blocking.bytes.first == 0xc2)

            // With personal-digest-preferences, gpg follows it.
            try writeFile(Array("personal-digest-preferences SHA256\n".utf8), home + "/gpg.conf")
            #expect(try await keyring.signDetached([1, 2, 3], fingerprint: fingerprint).hashAlgorithm == 8)
        }
    }
}
