import HTTPClient
import KoperJSON
import KoperProtocol
import Logging

/// The Backend's side of the Frontend's internal API (docs/internal-api.md): the wire contract of KoperProtocol.
/// Every call is bounded in time and response size; writes carry idempotency keys so a retry after a lost answer
/// never double-applies.
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

    /// One call: the body encoded from its wire type, the answer decoded into one.
    func call<Answer: Decodable>(
        _ method: String, _ path: String, body: [UInt8]? = nil, as type: Answer.Type, timeout: Duration = .seconds(30)
    ) async throws -> Answer {
        var headers = [("Authorization", "Bearer \(self.secret)")]
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let response = try await self.http.request(
            method: method, url: self.base + path, headers: headers, body: body, timeout: timeout, maxResponseBytes: 64 << 20
        )
        guard response.status == 200 else {
            let value = (try? JSONParser.parse(response.body)) ?? .null
            throw Failure(status: response.status, message: value["error"]?.stringValue ?? "non-JSON answer")
        }
        return try Wire.decode(type, from: response.body)
    }

    /// Retries transient failures (connection refused while the Frontend restarts, 5xx) with bounded backoff.
    func callRetrying<Answer: Decodable>(
        _ method: String, _ path: String, body: [UInt8]? = nil, as type: Answer.Type, attempts: Int = 30
    ) async throws -> Answer {
        var delay = Duration.milliseconds(200)
        var last: (any Error)? = nil
        for _ in 0..<attempts {
            do {
                return try await self.call(method, path, body: body, as: type)
            } catch let f as Failure where f.status < 500 {
                throw f
            } catch let e as WireError {
                throw e
            } catch {
                last = error
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        throw last ?? Failure(status: 0, message: "no attempt made")
    }

    /// The one channel: pending tasks, cancel requests and actions; held while nothing changed since `after`.
    func poll(after: String?, wait: Int) async throws -> BackendPoll {
        var path = "/backend/poll?wait=\(wait)"
        if let after { path += "&after=\(after)" }
        return try await self.call("GET", path, as: BackendPoll.self, timeout: .seconds(wait + 30))
    }

    func claim(_ taskID: TaskID, worker: String) async throws -> ClaimAnswer {
        try await self.callRetrying(
            "POST", "/backend/claim", body: try Wire.encode(ClaimRequest(taskID: taskID, workerID: worker)), as: ClaimAnswer.self
        )
    }

    /// Returns false when the Frontend says the build was canceled.
    @discardableResult
    func update(_ update: BackendUpdate) async throws -> Bool {
        let answer = try await self.callRetrying("POST", "/backend/update", body: try Wire.encode(update), as: UpdateAnswer.self)
        return answer.canceled != true
    }

    struct Removed: Decodable {
        let removed: Bool
    }

    func cancelRequestDone(_ taskID: TaskID) async throws {
        _ = try await self.callRetrying(
            "POST", "/backend/cancel-request-done", body: try Wire.encode(CancelDone(taskID: taskID)), as: Removed.self
        )
    }

    struct Updated: Decodable {
        let updated: Bool
    }

    func actionDone(_ id: Int, result: ActionDone.Result) async throws {
        _ = try await self.callRetrying(
            "POST", "/backend/action-done", body: try Wire.encode(ActionDone(id: id, result: result)), as: Updated.self
        )
    }
}
