import Foundation
import GPG
import HTTPServer
import InMemoryLogging
import Logging
import TestSupport
import Testing

@testable import Keygen

/// A Keygen state dir and GnuPG home under /tmp (short paths: gpg-agent's socket lives in the home), RSA-2048 keys
/// (the production default is RSA-4096; 2048 keeps the tests fast), and a service on them. Cleanup stops the
/// service, then the gpg-agent (`gpgconf --kill`), then removes the files.
final class KeygenFixture: Sendable {
    let root: String
    let config: KeygenConfig
    let logs: InMemoryLogHandler

    static let signDomain = "example.org"

    init(poolSize: Int, configure: (inout KeygenConfig) -> Void = { _ in }) throws {
        self.root = try makeTemporaryDirectory(prefix: "kg")
        var config = KeygenConfig(
            secret: "test-secret-\(UInt32.random(in: 0...UInt32.max))",
            gnupgHome: self.root + "/gnupg",
            stateDir: self.root + "/state"
        )
        config.keyType = "rsa2048"
        config.poolSize = poolSize
        config.signDomain = Self.signDomain
        config.gpgTimeoutSeconds = 300
        configure(&config)
        try config.validate()
        self.config = config
        self.logs = InMemoryLogHandler()
    }

    var home: String { self.config.gnupgHome }

    var logger: Logger {
        let handler = self.logs
        var logger = Logger(label: "koper.test.keygen", factory: { _ in handler })
        logger.logLevel = .debug
        return logger
    }

    /// A started service on this fixture's directories (a second call gives a second service on the same state,
    /// like a restart; stop the first one before).
    func makeService() async throws -> KeyService {
        let service = try KeyService(config: self.config, logger: self.logger)
        await service.start()
        return service
    }

    /// Runs `body` with a started service; afterwards stops it and removes everything.
    static func with<T>(
        poolSize: Int,
        waitForPool: Bool = true,
        configure: (inout KeygenConfig) -> Void = { _ in },
        _ body: (KeygenFixture, KeyService) async throws -> T
    ) async throws -> T {
        let fixture = try KeygenFixture(poolSize: poolSize, configure: configure)
        do {
            let service = try await fixture.makeService()
            do {
                if waitForPool { try await fixture.waitForSpares(service, count: poolSize) }
                let result = try await body(fixture, service)
                await service.stop()
                await fixture.cleanUp()
                return result
            } catch {
                await service.stop()
                throw error
            }
        } catch {
            await fixture.cleanUp()
            throw error
        }
    }

    func cleanUp() async {
        _ = try? await Command.run("/usr/bin/gpgconf", ["--homedir", self.home, "--kill", "gpg-agent"], timeout: 30)
        try? FileManager.default.removeItem(atPath: self.root)
    }

    /// Waits until the pool holds `count` spares (key generation takes a while on a loaded machine).
    func waitForSpares(_ service: KeyService, count: Int, timeout: Duration = .seconds(240)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while await service.health().spares < count {
            guard clock.now < deadline else {
                throw FixtureFailure("the pool did not reach \(count) spares within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// `gpg` in `home` (this fixture's by default).
    func gpg(_ arguments: [String], home: String? = nil) async throws -> Command.Result {
        try await Command.run(
            "/usr/bin/gpg",
            ["--homedir", home ?? self.home, "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""]
                + arguments,
            timeout: 120
        )
    }
}

struct FixtureFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A throw-away GnuPG home for verifying what Keygen hands out (its agent is stopped afterwards).
func withScratchHome<T>(_ body: (String) async throws -> T) async throws -> T {
    let home = try makeTemporaryDirectory(prefix: "kgv")
    chmod(home, 0o700)
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

func writeFile(_ bytes: [UInt8], _ path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// The Keygen HTTP API on a loopback port, in-process.
final class APIServer: Sendable {
    let server: Server
    let port: Int
    let secret: String

    init(fixture: KeygenFixture, service: KeyService) throws {
        self.secret = fixture.config.secret
        let api = KeygenAPI(
            service: service,
            secret: fixture.config.secret,
            maxSignBytes: fixture.config.maxSignBytes,
            logger: fixture.logger
        )
        self.server = Server(
            configuration: HTTPServerConfiguration(
                host: "127.0.0.1",
                port: 0,
                temporaryDirectory: fixture.config.stateDir
            ),
            handler: api,
            logger: fixture.logger
        )
        self.port = try self.server.start()
    }

    /// One request on a fresh connection, with `Authorization: Bearer SECRET` unless `authorization` says otherwise
    /// (nil: no header).
    func request(
        _ method: String,
        _ path: String,
        body: [UInt8]? = nil,
        authorization: String?? = .none
    ) async throws -> TestHTTPResponse {
        let header: String? =
            switch authorization {
            case .none: "Bearer \(self.secret)"
            case .some(let value): value
            }
        let port = self.port
        return try await TestHTTPClient.runBlocking {
            let client = try TestHTTPClient(port: port, timeout: .seconds(120))
            defer { client.close() }
            var headers: [(String, String)] = []
            if let header { headers.append(("Authorization", header)) }
            if body != nil { headers.append(("Content-Type", "application/octet-stream")) }
            return try client.request(
                method: method,
                path: path,
                headers: headers,
                body: body ?? (method == "POST" ? [] : nil)
            )
        }
    }

    func shutdown() async {
        await self.server.shutdown(gracePeriod: .seconds(2))
    }
}

/// `true` if `needle` occurs in `haystack`.
func containsSequence(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first, haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}
