import HTTPClient
import KoperJSON
import Logging

/// The Backend's side of the Frontend's internal API (docs/internal-api.md). Every call is bounded in time and
/// response size; writes carry idempotency keys so a retry after a lost answer never double-applies.
struct FrontendClient: Sendable {
    let base: String
    let secret: String
    let http: HTTPClient
    let logger: Logger

    struct Failure: Error, Sendable, CustomStringConvertible {
        let status: Int
        let message: String
        var description: String { "frontend answered \(self.status): \(self.message)" }
    }

    func call(_ method: String, _ path: String, body: JSON? = nil, timeout: Duration = .seconds(30)) async throws -> JSON {
        var headers = [("Authorization", "Bearer \(self.secret)")]
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let response = try await self.http.request(
            method: method, url: self.base + path, headers: headers, body: body?.serialized(), timeout: timeout, maxResponseBytes: 64 << 20
        )
        let value = (try? JSONParser.parse(response.body)) ?? .null
        guard response.status == 200 else {
            throw Failure(status: response.status, message: value["error"]?.stringValue ?? "non-JSON answer")
        }
        return value
    }

    /// Retries transient failures (connection refused while the Frontend restarts, 5xx) with bounded backoff.
    func callRetrying(_ method: String, _ path: String, body: JSON? = nil, attempts: Int = 30) async throws -> JSON {
        var delay = Duration.milliseconds(200)
        var last: (any Error)? = nil
        for _ in 0..<attempts {
            do {
                return try await self.call(method, path, body: body)
            } catch let f as Failure where f.status < 500 {
                throw f
            } catch {
                last = error
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        throw last ?? Failure(status: 0, message: "no attempt made")
    }

    func pendingJobs(wait: Int) async throws -> [JSON] {
        let v = try await self.call("GET", "/backend/pending-jobs?wait=\(wait)", timeout: .seconds(wait + 30))
        return v["tasks"]?.arrayValue ?? []
    }

    enum ClaimResult: Sendable {
        case claimed(JSON)
        case canceled
        case taken
    }

    func claim(_ taskID: String, worker: String) async throws -> ClaimResult {
        let v = try await self.callRetrying("POST", "/backend/claim", body: ["task_id": .string(taskID), "worker_id": .string(worker)])
        if v["claimed"]?.boolValue == true, let t = v["task"] { return .claimed(t) }
        if v["canceled"]?.boolValue == true { return .canceled }
        return .taken
    }

    /// Returns false when the Frontend says the build was canceled.
    @discardableResult
    func update(_ body: JSONObject) async throws -> Bool {
        let v = try await self.callRetrying("POST", "/backend/update", body: .object(body))
        return v["canceled"]?.boolValue != true
    }

    func cancelRequests() async throws -> [String] {
        try await self.call("GET", "/backend/cancel-requests")["task_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    func cancelRequestDone(_ taskID: String) async throws {
        _ = try await self.call("POST", "/backend/cancel-request-done", body: ["task_id": .string(taskID)])
    }
}
