import Foundation
import GPG
import Logging
import TestSupport
import Testing

private let copruid = "owner_project (Copr) <owner#project@copr.example>"

private func quietLogger() -> Logger {
    Logger(label: "koper.test.gpg", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// A GnuPG home directory (mode 0700) that is removed, and whose gpg-agent is stopped, afterwards.
private func withHome<T>(_ body: (String) async throws -> T) async throws -> T {
    let home = try makeTemporaryDirectory(prefix: "koper-gpg")
    try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: home)
    func cleanUp() async {
        _ = try? await Command.run("/usr/bin/gpgconf", ["--homedir", home, "--kill", "gpg-agent"], timeout: 30)
        try? FileManager.default.removeItem(atPath: home)
    }
    do {
        let result = try await body(home)
        await cleanUp()
        return result
    } catch {
        await cleanUp()
        throw error
    }
}

/// A keyring with one fresh rsa2048 key (rsa4096 is the production default; 2048 keeps the tests fast).
private func withKey<T>(
    expires: Duration? = .seconds(365 * 86_400),
    _ body: (GPGKeyring, String, String) async throws -> T
) async throws -> T {
    try await withHome { home in
        let keyring = try GPGKeyring(homeDirectory: home, logger: quietLogger())
        let fingerprint = try await keyring.generateKey(userID: copruid, algorithm: "rsa2048", expires: expires)
        return try await body(keyring, fingerprint, home)
    }
}

private func gpg(_ home: String, _ arguments: [String]) async throws -> Command.Result {
    try await Command.run("/usr/bin/gpg", ["--homedir", home, "--batch", "--no-tty"] + arguments, timeout: 60)
}

private func write(_ bytes: [UInt8], _ path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

private func expectGPGError(_ code: GPGError.Code, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected GPGError.\(code), got success")
    } catch let error as GPGError {
        #expect(error.code == code, "\(error)")
    } catch {
        Issue.record("expected GPGError.\(code), got \(error)")
    }
}

@Suite(.serialized) struct GPGKeyringTests {
    @Test func exportedPublicKeyImportsElsewhere() async throws {
        try await withKey { keyring, fingerprint, home in
            #expect(fingerprint.count == 40)
            #expect(fingerprint.allSatisfy { $0.isHexDigit && !$0.isLowercase })

            let armored = try await keyring.exportPublicKey(fingerprint: fingerprint, armored: true)
            #expect(String(decoding: armored, as: UTF8.self).hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----"))
            let binary = try await keyring.exportPublicKey(fingerprint: fingerprint, armored: false)
            #expect(binary.first == 0x99 || binary.first == 0xc6)  // public-key packet (tag 6), old or new format

            try await withHome { other in
                try write(armored, "\(other)/key.asc")
                let imported = try await gpg(other, ["--import", "\(other)/key.asc"])
                #expect(imported.status == 0, "\(imported)")
                let listed = try await gpg(other, ["--with-colons", "--list-keys", fingerprint])
                #expect(listed.status == 0, "\(listed)")
                #expect(listed.output.contains("fpr:::::::::\(fingerprint):"), "\(listed)")
                #expect(listed.output.contains("owner_project (Copr) <owner#project@copr.example>"), "\(listed)")
            }
            _ = home
        }
    }

    @Test func exportedSecretKeyStartsWithASecretKeyPacket() async throws {
        try await withKey { keyring, fingerprint, _ in
            let secret = try await keyring.exportSecretKey(fingerprint: fingerprint)
            let first = try #require(secret.first)
            // Tag 5, old or new packet format.
            #expect(first == 0x95 || first == 0xc5, "first byte \(String(first, radix: 16))")

            // Packet body: version 4, creation time, algorithm 1 (RSA), MPIs n and e, then s2k usage 0 (unprotected).
            let bodyStart: Int
            if first == 0x95 {
                bodyStart = 3  // old format, 2-byte length
            } else {
                bodyStart = secret[1] < 192 ? 2 : (secret[1] < 224 ? 3 : 6)
            }
            #expect(secret[bodyStart] == 4)
            #expect(secret[bodyStart + 5] == 1)
            var offset = bodyStart + 6
            for _ in 0..<2 {
                let bits = Int(secret[offset]) << 8 | Int(secret[offset + 1])
                offset += 2 + (bits + 7) / 8
            }
            #expect(secret[offset] == 0, "s2k usage \(secret[offset])")

            // gpg itself takes it: importing it elsewhere yields the secret key.
            try await withHome { other in
                try write(secret, "\(other)/secret.bin")
                let imported = try await gpg(other, ["--import", "\(other)/secret.bin"])
                #expect(imported.status == 0, "\(imported)")
                let listed = try await gpg(other, ["--with-colons", "--list-secret-keys", fingerprint])
                #expect(listed.status == 0 && listed.output.contains("sec:"), "\(listed)")
            }
        }
    }

    @Test func signatureVerifiesAndTamperingFails() async throws {
        try await withKey { keyring, fingerprint, _ in
            let data = Array("koper-1.0-1.fc40.src.rpm header bytes\n".utf8) + (0..<5000).map { UInt8($0 % 251) }
            let signature = try await keyring.sign(data, fingerprint: fingerprint)
            #expect(signature.first == 0x89 || signature.first == 0xc2)  // signature packet (tag 2)

            let publicKey = try await keyring.exportPublicKey(fingerprint: fingerprint, armored: true)
            try await withHome { other in
                try write(publicKey, "\(other)/key.asc")
                #expect(try await gpg(other, ["--import", "\(other)/key.asc"]).status == 0)
                try write(data, "\(other)/data")
                try write(signature, "\(other)/data.sig")
                let good = try await gpg(other, ["--status-fd", "1", "--verify", "\(other)/data.sig", "\(other)/data"])
                #expect(good.status == 0, "\(good)")
                #expect(good.output.contains("[GNUPG:] GOODSIG"), "\(good)")
                #expect(good.output.contains("VALIDSIG \(fingerprint)"), "\(good)")

                var tampered = data
                tampered[10] ^= 0x01
                try write(tampered, "\(other)/data")
                let bad = try await gpg(other, ["--status-fd", "1", "--verify", "\(other)/data.sig", "\(other)/data"])
                #expect(bad.status != 0, "\(bad)")
                #expect(bad.output.contains("[GNUPG:] BADSIG"), "\(bad)")
            }

            // Empty data can be signed too.
            #expect(try await !keyring.sign([], fingerprint: fingerprint).isEmpty)
        }
    }

    @Test func listKeysAndExtendExpiry() async throws {
        try await withKey(expires: .seconds(30 * 86_400)) { keyring, fingerprint, _ in
            let keys = try await keyring.listKeys()
            let key = try #require(keys.first { $0.fingerprint == fingerprint })
            #expect(keys.count == 1)
            #expect(key.userIDs == [copruid])
            #expect(key.keyID == String(fingerprint.suffix(16)))
            #expect(key.canSign)
            #expect(key.hasSecretKey)
            #expect(!key.isExpired && !key.isRevoked)
            let now = Int64(Date().timeIntervalSince1970)
            let expires = try #require(key.expires)
            #expect(abs(expires - (now + 30 * 86_400)) < 120, "expires \(expires), now \(now)")

            try await keyring.extendExpiry(fingerprint: fingerprint, by: .seconds(365 * 86_400))
            let extended = try #require(try await keyring.key(fingerprint: fingerprint))
            let newExpires = try #require(extended.expires)
            #expect(abs(newExpires - (expires + 365 * 86_400)) < 120, "was \(expires), now \(newExpires)")
            #expect(extended.userIDs == [copruid])
            // The extended key still signs.
            #expect(try await !keyring.sign([1, 2, 3], fingerprint: fingerprint.lowercased()).isEmpty)
        }
    }

    @Test func keyWithoutExpiry() async throws {
        try await withKey(expires: nil) { keyring, fingerprint, _ in
            let key = try #require(try await keyring.key(fingerprint: fingerprint))
            #expect(key.expires == nil)
            try await keyring.extendExpiry(fingerprint: fingerprint, by: .seconds(86_400))  // left alone
            #expect(try await keyring.key(fingerprint: fingerprint)?.expires == nil)
        }
    }

    @Test func slowOperationsHitTheTimeoutAndTheKeyringRecovers() async throws {
        try await withHome { home in
            // A gpg that hangs (a wedged agent, a stuck disk) — made deterministic with a wrapper that sleeps before
            // every real operation while a flag file exists; `--version` (gpgme's engine check) answers at once.
            let wrapper = home + "/slow-gpg"
            let flag = home + "/slow"
            try """
            #!/bin/sh
            case "$*" in *--version*) exec /usr/bin/gpg "$@" ;; esac
            [ -e '\(flag)' ] && exec /usr/bin/perl -e 'sleep 30' -- "$@"
            exec /usr/bin/gpg "$@"

            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
            chmod(wrapper, 0o755)
            _ = FileManager.default.createFile(atPath: flag, contents: nil)
            let keyring = try GPGKeyring(
                homeDirectory: home,
                operationTimeout: .milliseconds(300),
                engineExecutable: wrapper,
                logger: quietLogger()
            )
            let clock = ContinuousClock()
            for operation in ["list", "generate"] {
                let started = clock.now
                await expectGPGError(.timeout) {
                    if operation == "list" {
                        _ = try await keyring.listKeys()
                    } else {
                        _ = try await keyring.generateKey(userID: copruid, algorithm: "rsa2048", expires: nil)
                    }
                }
                let took = started.duration(to: clock.now)
                #expect(took >= .milliseconds(300) && took < .seconds(10), "\(operation) took \(took)")
            }
            // Once gpg answers again, a fresh context serves the next call.
            try FileManager.default.removeItem(atPath: flag)
            #expect(try await keyring.listKeys().isEmpty)
            await expectGPGError(.invalidArgument) {
                _ = try GPGKeyring(homeDirectory: home, engineExecutable: "gpg", logger: quietLogger())
            }
        }
    }

    /// A frozen gpg-agent (SIGSTOP) blocks gpg without any I/O: the operation still ends at the timeout, and works
    /// again once the agent runs.
    @Test func aFrozenAgentCostsATimeoutNotAHang() async throws {
        try await withKey { patient, fingerprint, home in
            let impatient = try GPGKeyring(
                homeDirectory: home,
                operationTimeout: .milliseconds(500),
                logger: quietLogger()
            )
            let found = try await Command.run(
                "/usr/bin/pgrep",
                ["-u", String(geteuid()), "-f", "gpg-agent.*--homedir \(home)"]
            )
            let agents = found.output.split(separator: "\n").compactMap {
                Int32($0.trimmingCharacters(in: .whitespaces))
            }
            try #require(!agents.isEmpty, "no gpg-agent for \(home): \(found)")
            for pid in agents { kill(pid, SIGSTOP) }
            let clock = ContinuousClock()
            let started = clock.now
            await expectGPGError(.timeout) { _ = try await impatient.exportSecretKey(fingerprint: fingerprint) }
            let took = started.duration(to: clock.now)
            for pid in agents { kill(pid, SIGCONT) }
            #expect(took < .seconds(10), "took \(took)")
            #expect(try await impatient.exportSecretKey(fingerprint: fingerprint).count > 500)
            #expect(try await patient.listKeys().count == 1)
        }
    }

    @Test func badArgumentsAndUnknownKeys() async throws {
        await expectGPGError(.invalidArgument) {
            _ = try GPGKeyring(homeDirectory: "relative/path", logger: quietLogger())
        }
        try await withHome { home in
            let keyring = try GPGKeyring(homeDirectory: home, logger: quietLogger())
            #expect(try await keyring.listKeys().isEmpty)
            let unknown = String(repeating: "AB", count: 20)
            #expect(try await keyring.key(fingerprint: unknown) == nil)
            await expectGPGError(.keyNotFound) {
                _ = try await keyring.exportPublicKey(fingerprint: unknown, armored: true)
            }
            await expectGPGError(.keyNotFound) { _ = try await keyring.exportSecretKey(fingerprint: unknown) }
            await expectGPGError(.keyNotFound) { _ = try await keyring.sign([1], fingerprint: unknown) }
            await expectGPGError(.keyNotFound) {
                try await keyring.extendExpiry(fingerprint: unknown, by: .seconds(60))
            }
            // An empty or partial pattern would select other keys: refused.
            await expectGPGError(.invalidArgument) { _ = try await keyring.exportSecretKey(fingerprint: "") }
            await expectGPGError(.invalidArgument) { _ = try await keyring.exportSecretKey(fingerprint: "ABCD1234") }
            await expectGPGError(.invalidArgument) {
                _ = try await keyring.exportPublicKey(fingerprint: "owner_project", armored: true)
            }
            await expectGPGError(.invalidArgument) {
                _ = try await keyring.generateKey(userID: "a\nb", algorithm: "rsa2048", expires: nil)
            }
            await expectGPGError(.invalidArgument) {
                _ = try await keyring.generateKey(userID: copruid, algorithm: "rsa2048 --x", expires: nil)
            }
            await expectGPGError(.invalidArgument) {
                _ = try await keyring.generateKey(userID: copruid, algorithm: "rsa2048", expires: .zero)
            }
            // gpg itself rejects an unknown algorithm (gpgme reports only "General error").
            await expectGPGError(.operationFailed) {
                _ = try await keyring.generateKey(userID: copruid, algorithm: "nosuchalgo", expires: nil)
            }
            #expect(try await keyring.listKeys().isEmpty)
        }
    }
}
