import Foundation
import HTTPClient
import HTTPCore
import HTTPServer
import Logging
import Synchronization
import Testing

@testable import ServiceKit

private let testSecret = "svc-secret-123"

/// A tiny JSON service on our own HTTPServer:
///
/// - every request needs `Authorization: Bearer svc-secret-123` (else 401 `{"error": "bad secret"}`);
/// - `GET /value` → `{"value": 42, "name": "answer"}`;
/// - `POST /echo` → the request body, as `application/json`;
/// - `GET /missing` → 404 `{"error": "no such thing"}`;
/// - `GET /flaky` → 503 for the first two requests, then `{"value": 7, "name": "flaky"}`;
/// - `GET /down` → always 503 `{"error": "maintenance"}`;
/// - `GET /plain500` → 500 with a text body;
/// - `GET /garbage` → 200 `not json`;
/// - `GET /slow` → `{"value": 1, "name": "slow"}` after 3 s.
private final class TestService: HTTPHandler {
    let secret = BearerSecret(testSecret)
    let hits = Mutex<[String: Int]>([:])

    func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy { .memory(maxBytes: 1 << 20) }

    func count(_ path: String) -> Int { self.hits.withLock { $0[path, default: 0] } }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let path = String(request.head.rawPath)
        let hit = self.hits.withLock { hits -> Int in
            hits[path, default: 0] += 1
            return hits[path]!
        }
        guard self.secret.accepts(authorization: request.head.headers["Authorization"]) else {
            return Self.json(401, #"{"error": "bad secret"}"#)
        }
        switch path {
        case "/value":
            return Self.json(200, #"{"value": 42, "name": "answer"}"#)
        case "/echo":
            var response = HTTPResponse(status: 200, body: request.body.bytes)
            response.headers.add(name: "Content-Type", value: request.head.headers["Content-Type"] ?? "none")
            return response
        case "/missing":
            return Self.json(404, #"{"error": "no such thing"}"#)
        case "/flaky":
            return hit <= 2
                ? Self.json(503, #"{"error": "starting"}"#) : Self.json(200, #"{"value": 7, "name": "flaky"}"#)
        case "/down":
            return Self.json(503, #"{"error": "maintenance"}"#)
        case "/plain500":
            return HTTPResponse(status: 500, contentType: "text/plain", body: "oops")
        case "/garbage":
            return HTTPResponse(status: 200, contentType: "application/json", body: "not json")
        case "/slow":
            try? await Task.sleep(for: .seconds(3))
            return Self.json(200, #"{"value": 1, "name": "slow"}"#)
        default:
            return Self.json(404, #"{"error": "no route"}"#)
        }
    }

    static func json(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: text)
    }
}

private struct Answer: Codable, Equatable {
    var value: Int
    var name: String
}

private struct Request: Codable, Equatable {
    var taskID: String
    var path: String

    enum CodingKeys: String, CodingKey {
        case taskID = "task_id"
        case path
    }
}

/// Runs `body` with a client for a fresh `TestService`.
private func withService(
    secret: String? = testSecret,
    timeout: Duration = .seconds(10),
    _ body: (JSONServiceClient, TestService) async throws -> Void
) async throws {
    let logger = Logger(label: "servicekit.test") { _ in SwiftLogNoOpLogHandler() }
    let service = TestService()
    let server = Server(
        configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0),
        handler: service,
        logger: logger
    )
    let port = try server.start()
    let client = JSONServiceClient(
        name: "testsvc",
        baseURL: "http://127.0.0.1:\(port)/",
        secret: secret.map(BearerSecret.init),
        http: HTTPClient(maxConcurrent: 2, logger: logger),
        timeout: timeout,
        logger: logger
    )
    do {
        try await body(client, service)
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
    await server.shutdown(gracePeriod: .seconds(1))
}

private let fast = RetryPolicy(attempts: 4, initialDelay: .milliseconds(20), maxDelay: .milliseconds(50))

@Suite struct JSONServiceClientTests {
    @Test func decodesAnswers() async throws {
        try await withService { client, _ in
            #expect(try await client.call("GET", "/value", as: Answer.self) == Answer(value: 42, name: "answer"))
            let sent = Request(taskID: "12-fedora-41-x86_64", path: "/a/b")
            #expect(try await client.call("POST", "/echo", body: sent, as: Request.self) == sent)
            let raw = try await client.callRaw(
                "POST",
                "/echo",
                body: Array(#"{"x":1}"#.utf8),
                contentType: "application/json"
            )
            #expect(raw == Array(#"{"x":1}"#.utf8))
            let typed = try await client.call("POST", "/echo", body: ["path": "/a/b"], as: [String: String].self)
            #expect(typed == ["path": "/a/b"])
        }
    }

    @Test func sendsTheSecret() async throws {
        try await withService(secret: nil) { client, _ in
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.call("GET", "/value", as: Answer.self)
            }
            #expect(error.code == .status && error.status == 401 && error.serverMessage == "bad secret")
        }
        try await withService(secret: "wrong") { client, _ in
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.call("GET", "/value", as: Answer.self)
            }
            #expect(error.status == 401)
            #expect(!error.description.contains("wrong") && !"\(client)".contains("wrong"))
        }
    }

    @Test func clientErrorsSurfaceAtOnceWithTheServersText() async throws {
        try await withService { client, service in
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.callRetrying("GET", "/missing", as: Answer.self, policy: fast)
            }
            #expect(error.code == .status && error.status == 404)
            #expect(error.serverMessage == "no such thing")
            #expect(error.description == "testsvc answered 404: no such thing")
            #expect(!error.isTransient)
            #expect(service.count("/missing") == 1)
            #expect(!error.description.contains(testSecret))
        }
    }

    @Test func retriesA503UntilItSucceeds() async throws {
        try await withService { client, service in
            let answer = try await client.callRetrying("GET", "/flaky", as: Answer.self, policy: fast)
            #expect(answer == Answer(value: 7, name: "flaky"))
            #expect(service.count("/flaky") == 3)
        }
    }

    @Test func givesUpAfterTheLastAttempt() async throws {
        try await withService { client, service in
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.callRetrying("GET", "/down", as: Answer.self, policy: fast)
            }
            #expect(error.code == .status && error.status == 503 && error.serverMessage == "maintenance")
            #expect(error.isTransient)
            #expect(service.count("/down") == 4)
            // 20 + 40 + 50 ms of backoff; no sleep after the last attempt.
            #expect(start.duration(to: clock.now) >= .milliseconds(110))

            let plain = try await #require(throws: ServiceCallError.self) {
                try await client.callRetrying(
                    "GET",
                    "/plain500",
                    as: Answer.self,
                    policy: RetryPolicy(attempts: 2, initialDelay: .milliseconds(1))
                )
            }
            #expect(plain.status == 500 && plain.serverMessage == nil)
            #expect(plain.description == "testsvc answered 500")
            #expect(service.count("/plain500") == 2)
        }
    }

    @Test func malformedAnswersAreNotRetried() async throws {
        try await withService { client, service in
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.callRetrying("GET", "/garbage", as: Answer.self, policy: fast)
            }
            #expect(error.code == .malformedAnswer && error.status == 200)
            #expect(error.description == "testsvc sent a malformed answer: Answer: not valid JSON")
            #expect(service.count("/garbage") == 1)

            let missingField = try await #require(throws: ServiceCallError.self) {
                try await client.call("POST", "/echo", body: ["value": 1], as: Answer.self)
            }
            #expect(missingField.description == "testsvc sent a malformed answer: Answer: name is required")
        }
    }

    @Test func respectsTheTimeout() async throws {
        try await withService(timeout: .milliseconds(400)) { client, service in
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.call("GET", "/slow", as: Answer.self)
            }
            #expect(error.code == .transport && error.underlyingError?.code == .timeout)
            #expect(error.isTransient)
            #expect(start.duration(to: clock.now) < .seconds(2))

            // A per-call timeout overrides the client's.
            let answer = try await client.call("GET", "/slow", as: Answer.self, timeout: .seconds(10))
            #expect(answer.name == "slow")
        }
    }

    @Test func transportErrorsAreRetriedThenThrown() async throws {
        // A port nobody listens on: bind one, note it, close it.
        let logger = Logger(label: "servicekit.test") { _ in SwiftLogNoOpLogHandler() }
        let server = Server(configuration: HTTPServerConfiguration(port: 0), handler: TestService(), logger: logger)
        let port = try server.start()
        await server.shutdown(gracePeriod: .zero)
        let client = JSONServiceClient(
            name: "gone",
            baseURL: "http://127.0.0.1:\(port)",
            secret: BearerSecret(testSecret),
            http: HTTPClient(maxConcurrent: 1, logger: logger),
            logger: logger
        )
        let error = try await #require(throws: ServiceCallError.self) {
            try await client.callRetrying(
                "GET",
                "/value",
                as: Answer.self,
                policy: RetryPolicy(attempts: 3, initialDelay: .milliseconds(5))
            )
        }
        #expect(error.code == .transport && error.underlyingError?.code == .connectFailed)
        #expect(error.description.hasPrefix("gone call failed: "))
    }

    @Test func cancellationEndsRetrying() async throws {
        try await withService { client, _ in
            let task = Task {
                try await client.callRetrying(
                    "GET",
                    "/down",
                    as: Answer.self,
                    policy: RetryPolicy(attempts: .max, initialDelay: .seconds(30))
                )
            }
            try await Task.sleep(for: .milliseconds(200))
            task.cancel()
            let result = await task.result
            guard case .failure(let error as ServiceCallError) = result else {
                Issue.record("expected a ServiceCallError, got \(result)")
                return
            }
            #expect(error.code == .cancelled)
        }
    }

    @Test func customRetryClassification() async throws {
        try await withService { client, service in
            // Keygen-style: a 404 is worth another try (the key may be being made).
            let error = try await #require(throws: ServiceCallError.self) {
                try await client.retrying("missing", policy: fast, isTransient: { $0.isTransient || $0.status == 404 })
                {
                    () async throws(ServiceCallError) -> Answer in
                    try await client.call("GET", "/missing", as: Answer.self)
                }
            }
            #expect(error.status == 404)
            #expect(service.count("/missing") == 4)
        }
    }
}
