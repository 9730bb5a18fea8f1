import Foundation
import GPG
import HTTPCore
import KoperJSON
import TestSupport
import Testing

@testable import Keygen

/// Runs `body` against the HTTP API of a service with `poolSize` spares.
private func withAPI<T>(
    poolSize: Int,
    _ body: (KeygenFixture, KeyService, APIServer) async throws -> T
) async throws
    -> T
{
    try await KeygenFixture.with(poolSize: poolSize) { fixture, service in
        let api = try APIServer(fixture: fixture, service: service)
        do {
            let result = try await body(fixture, service, api)
            await api.shutdown()
            return result
        } catch {
            await api.shutdown()
            throw error
        }
    }
}

private func json(_ response: TestHTTPResponse) throws -> JSON {
    try JSONParser.parse(response.body)
}

private func ensure(_ api: APIServer, _ owner: String, _ project: String) async throws -> JSON {
    let response = try await api.request(
        "POST",
        "/keys/ensure",
        body: Array(#"{"owner":"\#(owner)","project":"\#(project)"}"#.utf8)
    )
    #expect(response.status == 200, "\(response.bodyString)")
    #expect(response.header("Content-Type") == "application/json")
    return try json(response)
}

@Suite(.serialized) struct KeygenAPITests {
    @Test func ensurePublicKeyAndSignaturesVerifyWithGPG() async throws {
        try await withAPI(poolSize: 1) { fixture, service, api in
            let created = try await ensure(api, "alice", "hello")
            let fingerprint = try #require(created["fingerprint"]?.stringValue)
            #expect(created["created"]?.boolValue == true)
            #expect(created["key_id"]?.stringValue == String(fingerprint.suffix(16)))
            #expect(created["user_id"]?.stringValue == "alice_hello (Copr) <alice#hello@copr.example.org>")
            let again = try await ensure(api, "alice", "hello")
            #expect(again["fingerprint"]?.stringValue == fingerprint)
            #expect(again["created"]?.boolValue == false)

            // The armoured public key, as dnf would fetch it from pubkey.gpg.
            let pub = try await api.request("GET", "/keys/alice/hello/pubkey.gpg")
            #expect(pub.status == 200)
            #expect(pub.header("Content-Type")?.hasPrefix("text/plain") == true)
            #expect(pub.bodyString.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----"))

            let data = Array("koper-1.0-1.fc40 header bytes\n".utf8) + (0..<20_000).map { UInt8($0 % 253) }
            var signatures: [DigestAlgorithm: [UInt8]] = [:]
            for digest in DigestAlgorithm.allCases {
                let signed = try await api.request(
                    "POST",
                    "/keys/alice/hello/sign?digest=\(digest.rawValue)",
                    body: data
                )
                #expect(signed.status == 200, "\(signed.bodyString)")
                #expect(signed.header("Content-Type") == "application/pgp-signature")
                #expect(signed.body.first == 0x89 || signed.body.first == 0xc2, "not a signature packet")
                signatures[digest] = signed.body
            }
            // Without ?digest= the default is SHA-256 (or stronger).
            let defaulted = try await api.request("POST", "/keys/alice/hello/sign", body: data)
            #expect(defaulted.status == 200)

            try await withScratchHome { other in
                try writeFile(pub.body, "\(other)/pubkey.gpg")
                let imported = try await fixture.gpg(["--import", "\(other)/pubkey.gpg"], home: other)
                #expect(imported.status == 0, "\(imported)")
                // gpg reports the key by the project's user id, as dnf's import prompt does.
                #expect(
                    imported.output.contains("\"alice_hello (Copr) <alice#hello@copr.example.org>\""),
                    "\(imported)"
                )
                let listed = try await fixture.gpg(["--with-colons", "--list-keys", fingerprint], home: other)
                let uids = listed.output.split(separator: "\n").filter { $0.hasPrefix("uid:") }
                #expect(uids.count == 1, "\(listed)")
                #expect(uids.first?.contains("alice_hello (Copr) <alice#hello@copr.example.org>") == true, "\(listed)")
                #expect(!listed.output.contains("koper-spare"), "\(listed)")

                try writeFile(data, "\(other)/data")
                for (digest, signature) in signatures.sorted(by: { $0.key.rawValue < $1.key.rawValue }) + [
                    (.sha256, defaulted.body)
                ] {
                    try writeFile(signature, "\(other)/data.sig")
                    let good = try await fixture.gpg(
                        ["--status-fd", "1", "--verify", "\(other)/data.sig", "\(other)/data"],
                        home: other
                    )
                    #expect(good.status == 0, "\(good)")
                    #expect(good.output.contains("[GNUPG:] GOODSIG"), "\(good)")
                    let validsig = try #require(
                        good.output.split(separator: "\n").first { $0.hasPrefix("[GNUPG:] VALIDSIG \(fingerprint) ") }
                    )
                    // VALIDSIG fpr date ts expire version reserved pkalgo hashalgo class primary
                    let fields = validsig.split(separator: " ")
                    let hash = try #require(Int(fields[9]))
                    #expect(
                        DigestAlgorithm.strength(ofOpenPGPID: hash)
                            >= DigestAlgorithm.strength(ofOpenPGPID: digest.openPGPID),
                        "\(validsig)"
                    )
                    #expect(fields[10] == "00", "signature class \(fields[10])")

                    var tampered = data
                    tampered[7] ^= 0x01
                    try writeFile(tampered, "\(other)/tampered")
                    let bad = try await fixture.gpg(
                        ["--status-fd", "1", "--verify", "\(other)/data.sig", "\(other)/tampered"],
                        home: other
                    )
                    #expect(bad.status != 0, "\(bad)")
                    #expect(bad.output.contains("[GNUPG:] BADSIG"), "\(bad)")
                }
            }

            // Group owners work through the path too.
            let group = try await ensure(api, "@team", "site")
            #expect(group["user_id"]?.stringValue == "@team_site (Copr) <@team#site@copr.example.org>")
            let groupKey = try await api.request("GET", "/keys/@team/site/pubkey.gpg")
            #expect(groupKey.status == 200)
            let groupSig = try await api.request("POST", "/keys/@team/site/sign?digest=sha512", body: [1, 2, 3])
            #expect(groupSig.status == 200)

            let health = try await api.request("GET", "/health")
            #expect(health.status == 200)
            #expect(try json(health)["status"]?.stringValue == "ok")
            #expect(try json(health)["projects"]?.intValue == 2)
            _ = service
        }
    }

    @Test func errorsAreJSON() async throws {
        try await withAPI(poolSize: 0) { _, _, api in
            let missing = try await api.request("GET", "/keys/nobody/nothing/pubkey.gpg")
            #expect(missing.status == 404)
            #expect(missing.header("Content-Type") == "application/json")
            #expect(try json(missing)["error"]?.stringValue != nil)
            #expect(try await api.request("POST", "/keys/nobody/nothing/sign", body: [1]).status == 404)
            #expect(try await api.request("GET", "/no/such/path").status == 404)
            #expect(try await api.request("POST", "/keys/ensure", body: Array("not json".utf8)).status == 400)
            #expect(try await api.request("POST", "/keys/ensure", body: Array(#"{"owner":"a"}"#.utf8)).status == 400)
            #expect(
                try await api.request("POST", "/keys/ensure", body: Array(#"{"owner":"a b","project":"p"}"#.utf8))
                    .status == 400
            )
            #expect(
                try await api.request("POST", "/keys/ensure", body: Array(#"{"owner":"a","project":".."}"#.utf8)).status
                    == 400
            )
            _ = try await ensure(api, "frank", "p")
            let badDigest = try await api.request("POST", "/keys/frank/p/sign?digest=sha1", body: [1])
            #expect(badDigest.status == 400, "\(badDigest.bodyString)")
            #expect(try json(badDigest)["error"]?.stringValue?.contains("sha256") == true)
        }
    }

    @Test func everyRequestNeedsTheSecret() async throws {
        try await withAPI(poolSize: 0) { _, _, api in
            _ = try await ensure(api, "gina", "p")
            let requests: [(String, String, [UInt8]?)] = [
                ("GET", "/health", nil),
                ("POST", "/keys/ensure", Array(#"{"owner":"gina","project":"q"}"#.utf8)),
                ("GET", "/keys/gina/p/pubkey.gpg", nil),
                ("POST", "/keys/gina/p/sign?digest=sha256", [1, 2, 3]),
                ("GET", "/no/such/path", nil),
            ]
            let wrong: [String?] = [
                nil, "", "Bearer", "Bearer ", "Bearer wrong", "Bearer \(api.secret)x",
                "Bearer \(api.secret.dropLast())",
                "Basic \(Base64.encode(Array("admin:\(api.secret)".utf8)))", api.secret, "Token \(api.secret)",
            ]
            for (method, path, body) in requests {
                for authorization in wrong {
                    let response = try await api.request(method, path, body: body, authorization: .some(authorization))
                    #expect(response.status == 401, "\(method) \(path) with \(authorization ?? "no header")")
                    #expect(response.header("WWW-Authenticate") == "Bearer")
                    #expect(try json(response)["error"] != nil)
                }
            }
            // Refused requests changed nothing: gina/q got no key.
            #expect(try await api.request("GET", "/keys/gina/q/pubkey.gpg").status == 404)
            // An unauthenticated client cannot make Keygen buffer a large body.
            let big = [UInt8](repeating: 7, count: KeygenAPI.smallBodyLimit + 1)
            let refused = try await api.request(
                "POST",
                "/keys/gina/p/sign",
                body: big,
                authorization: .some("Bearer nope")
            )
            #expect(refused.status == 413 || refused.status == 401)
            let accepted = try await api.request("POST", "/keys/gina/p/sign", body: big)
            #expect(accepted.status == 200)
        }
    }

    /// No endpoint ever returns secret key material: try the plausible paths and check every body against the real
    /// secret key (exported here from the keyring, which only a test may do).
    @Test func noSecretKeyMaterialOverTheAPI() async throws {
        try await withAPI(poolSize: 0) { fixture, service, api in
            let key = try await ensure(api, "hank", "p")
            let fingerprint = try #require(key["fingerprint"]?.stringValue)
            let secret = try await service.keyring.exportSecretKey(fingerprint: fingerprint)
            let windows = try secretWindows(secret)
            #expect(windows.count == 4)

            var paths = [
                "/keys/hank/p/seckey.gpg", "/keys/hank/p/secret.gpg", "/keys/hank/p/private.gpg",
                "/keys/hank/p/privkey.gpg",
                "/keys/hank/p/key.gpg", "/keys/hank/p/secret", "/keys/hank/p/private", "/keys/hank/p/export",
                "/keys/hank/p/export?secret=1", "/keys/hank/p/pubkey.gpg?secret=1",
                "/keys/hank/p/pubkey.gpg?mode=secret",
                "/keys/hank/p/pubkey.gpg?export-secret-keys", "/keys/hank/p", "/keys/hank/p/", "/keys/hank", "/keys",
                "/keys/",
                "/keys/\(fingerprint)", "/keys/\(fingerprint)/secret", "/keys/\(fingerprint)/pubkey.gpg",
                "/keys/hank/p/../../../gnupg/private-keys-v1.d/", "/keys/hank/p/%2e%2e/%2e%2e/private-keys-v1.d",
                "/keys/hank/p/..%2f..%2fgnupg%2fpubring.kbx", "/private-keys-v1.d/", "/gnupg/private-keys-v1.d",
                "/gnupg/pubring.kbx", "/state/keys.json", "/keys.json", "/health?verbose=1", "/", "/export", "/secret",
            ]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: fixture.home + "/private-keys-v1.d"))
                ?? []
            {
                paths.append("/private-keys-v1.d/\(name)")
                paths.append("/keys/hank/p/\(name)")
            }
            var responses: [(String, TestHTTPResponse)] = []
            for path in paths {
                for method in ["GET", "POST", "HEAD", "PUT", "DELETE"] {
                    let body: [UInt8]? =
                        method == "POST" || method == "PUT"
                        ? Array(#"{"owner":"hank","project":"p","secret":true}"#.utf8) : nil
                    responses.append(("\(method) \(path)", try await api.request(method, path, body: body)))
                }
            }
            responses.append(
                (
                    "ensure",
                    try await api.request(
                        "POST",
                        "/keys/ensure",
                        body: Array(#"{"owner":"hank","project":"p","export_secret":true}"#.utf8)
                    )
                )
            )
            responses.append(
                ("sign", try await api.request("POST", "/keys/hank/p/sign?digest=sha512&secret=1", body: secret))
            )

            var publicKeys: [[UInt8]] = []
            for (what, response) in responses {
                let body = response.body
                let leaked = windows.contains { containsSequence(body, $0) }
                #expect(!leaked, "\(what) returned secret key bytes")
                #expect(!response.bodyString.contains("PRIVATE KEY"), "\(what)")
                // Secret-key (5) or secret-subkey (7) packet, old or new format.
                let secretPacketFirst =
                    body.first.map { [0x94, 0x95, 0x96, 0x97, 0x9c, 0x9d, 0x9e, 0x9f, 0xc5, 0xc7].contains($0) }
                    ?? false
                #expect(!secretPacketFirst, "\(what) starts with a secret-key packet")
                if response.bodyString.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                    publicKeys.append(body)
                    let decoded = dearmor(response.bodyString)
                    #expect(!decoded.isEmpty, "\(what): armour did not decode")
                    let leakedInArmour = windows.contains { containsSequence(decoded, $0) }
                    #expect(!leakedInArmour, "\(what) returned secret key bytes inside the armour")
                }
                if response.status == 200 {
                    #expect(
                        what.hasSuffix("/pubkey.gpg") || what.contains("/pubkey.gpg?") || what.hasPrefix("GET /health")
                            || what.hasPrefix("HEAD ") || what == "ensure" || what == "sign",
                        "\(what) answered 200"
                    )
                }
            }
            #expect(!publicKeys.isEmpty)
            // gpg itself finds only public packets in what the API serves.
            try await withScratchHome { other in
                for (i, armored) in publicKeys.enumerated() {
                    try writeFile(armored, "\(other)/k\(i).asc")
                    let packets = try await fixture.gpg(["--list-packets", "\(other)/k\(i).asc"], home: other)
                    #expect(packets.output.contains(":public key packet:"), "\(packets)")
                    #expect(!packets.output.contains("secret"), "\(packets)")
                }
            }
        }
    }
}

/// Four 24-byte pieces of the secret MPIs (d, p, q, u) of a binary secret-key export.
private func secretWindows(_ export: [UInt8]) throws -> [[UInt8]] {
    let ctb = try #require(export.first)
    var offset: Int
    switch ctb {
    case 0x94: offset = 2
    case 0x95: offset = 3
    case 0x96: offset = 5
    case 0xc5: offset = export[1] < 192 ? 2 : (export[1] < 224 ? 3 : 6)
    default: throw FixtureFailure("not a secret-key packet: \(ctb)")
    }
    #expect(export[offset] == 4 && export[offset + 5] == 1)  // v4, RSA
    offset += 6
    for _ in 0..<2 {  // n, e
        let bits = Int(export[offset]) << 8 | Int(export[offset + 1])
        offset += 2 + (bits + 7) / 8
    }
    #expect(export[offset] == 0)  // s2k usage 0: unprotected
    offset += 1
    var windows: [[UInt8]] = []
    for _ in 0..<4 {  // d, p, q, u
        let bits = Int(export[offset]) << 8 | Int(export[offset + 1])
        let length = (bits + 7) / 8
        windows.append(Array(export[(offset + 2)..<(offset + 2 + min(24, length))]))
        offset += 2 + length
    }
    return windows
}

/// The bytes inside an ASCII armour (headers and the CRC line skipped).
private func dearmor(_ text: String) -> [UInt8] {
    var inBody = false
    var base64 = ""
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let l = line.trimmingCharacters(in: .whitespaces)
        if l.hasPrefix("-----BEGIN") { continue }
        if l.hasPrefix("-----END") { break }
        if !inBody {
            if l.isEmpty { inBody = true }
            continue
        }
        if l.hasPrefix("=") { continue }
        base64 += l
    }
    return Base64.decode(base64) ?? []
}
