import Foundation
import KoperJSON
import TestSupport
import Testing

/// The built `koper-keygen` binary (next to the test bundle, or `KOPER_KEYGEN_BINARY`).
private let binary: String = {
    if let path = ProcessInfo.processInfo.environment["KOPER_KEYGEN_BINARY"] { return path }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/koper-keygen"
}()

@Suite(.serialized) struct KeygenBinaryTests {
    @Test func serveWithAConfigFileAndStopOnSIGTERM() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: binary), "koper-keygen not built at \(binary)")
        let root = try makeTemporaryDirectory(prefix: "kgb")
        let home = root + "/gnupg"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let secret = "binary-test-secret"
        let config: JSON = [
            "listen_host": "127.0.0.1", "listen_port": 0, "secret": .string(secret), "gnupg_home": .string(home),
            "key_type": "rsa2048", "pool_size": 1, "sign_domain": "example.net", "state_dir": .string(root + "/state"),
            "log_level": "debug", "port_file": .string(root + "/port"),
        ]
        try writeFile(config.serialized(), root + "/keygen.json")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--config", root + "/keygen.json"]
        _ = FileManager.default.createFile(atPath: root + "/log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: root + "/log"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        do {
            try await exercise(process, root: root, home: home, secret: secret)
        } catch {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            _ = try? await Command.run("/usr/bin/gpgconf", ["--homedir", home, "--kill", "gpg-agent"], timeout: 30)
            throw error
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        _ = try? await Command.run("/usr/bin/gpgconf", ["--homedir", home, "--kill", "gpg-agent"], timeout: 30)
    }

    private func exercise(_ process: Process, root: String, home: String, secret: String) async throws {
        func readLog() -> String { (try? String(contentsOfFile: root + "/log", encoding: .utf8)) ?? "" }

        // The port file appears once the server listens.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        var port: Int?
        while port == nil, clock.now < deadline, process.isRunning {
            port = (try? String(contentsOfFile: root + "/port", encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            if port == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let listening = try #require(port, "no port file; log:\n\(readLog())")
        #expect((try FileManager.default.attributesOfItem(atPath: home)[.posixPermissions] as? Int) == 0o700)

        func call(
            _ method: String,
            _ path: String,
            _ body: [UInt8]? = nil,
            auth: Bool = true
        ) async throws
            -> TestHTTPResponse
        {
            try await TestHTTPClient.runBlocking {
                let client = try TestHTTPClient(port: listening, timeout: .seconds(120))
                defer { client.close() }
                return try client.request(
                    method: method,
                    path: path,
                    headers: auth ? [("Authorization", "Bearer \(secret)")] : [],
                    body: body
                )
            }
        }
        #expect(try await call("GET", "/health", auth: false).status == 401)
        let health = try await call("GET", "/health")
        #expect(health.status == 200, "\(health.bodyString)")
        let ensured = try await call("POST", "/keys/ensure", Array(#"{"owner":"ivy","project":"bin"}"#.utf8))
        #expect(ensured.status == 200, "\(ensured.bodyString)")
        #expect(
            try JSONParser.parse(ensured.body)["user_id"]?.stringValue == "ivy_bin (Copr) <ivy#bin@copr.example.net>"
        )
        let signed = try await call("POST", "/keys/ivy/bin/sign?digest=sha256", [1, 2, 3])
        #expect(signed.status == 200)

        process.terminate()  // SIGTERM
        let stopDeadline = clock.now + .seconds(120)
        while process.isRunning, clock.now < stopDeadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning, "still running after SIGTERM")
        if !process.isRunning {
            #expect(process.terminationStatus == 0, "exit \(process.terminationStatus); log:\n\(readLog())")
        }
        let text = readLog()
        #expect(text.contains("keygen listening"))
        #expect(!text.contains(secret), "the log shows the secret")
    }
}
