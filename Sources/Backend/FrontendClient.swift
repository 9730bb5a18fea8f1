import HTTPClient
import KoperProtocol
import Logging
import ServiceKit

/// The Backend's side of the Frontend's internal API (docs/internal-api.md): the wire contract of KoperProtocol
/// over ServiceKit's JSON client. Every call is bounded in time and response size; writes carry idempotency keys,
/// so a retry after a lost answer never double-applies.
struct FrontendClient: Sendable {
    let client: JSONServiceClient

    init(base: String, secret: String, http: HTTPClient, logger: Logger) {
        self.client = JSONServiceClient(
            name: "frontend",
            baseURL: base,
            secret: BearerSecret(secret),
            http: http,
            timeout: .seconds(30),
            maxResponseBytes: 64 << 20,
            logger: logger
        )
    }

    /// The one channel: pending tasks, cancel requests and actions; held while nothing changed since `after`.
    func poll(after: String?, wait: Int) async throws -> BackendPoll {
        var path = "/backend/poll?wait=\(wait)"
        if let after { path += "&after=\(after)" }
        return try await cancellable { () async throws(ServiceCallError) in
            try await self.client.call("GET", path, as: BackendPoll.self, timeout: .seconds(wait + 30))
        }
    }

    func claim(_ taskID: TaskID, worker: String) async throws -> ClaimAnswer {
        try await cancellable { () async throws(ServiceCallError) in
            try await self.client.callRetrying(
                "POST",
                "/backend/claim",
                body: ClaimRequest(taskID: taskID, workerID: worker),
                as: ClaimAnswer.self
            )
        }
    }

    /// Hands back every task this worker id claimed that no job file names (see `ReleaseClaims`).
    func releaseClaims(worker: String, keep: [TaskID]) async throws -> [TaskID] {
        try await cancellable { () async throws(ServiceCallError) in
            try await self.client.callRetrying(
                "POST",
                "/backend/release-claims",
                body: ReleaseClaims(workerID: worker, keep: keep),
                as: ReleasedClaims.self
            ).released
        }
    }

    /// Returns false when the Frontend says the build was canceled. `policy`: the retries of this one call (the
    /// final report has its own, unbounded loop: `Worker.deliverReport`).
    @discardableResult
    func update(_ update: BackendUpdate, policy: RetryPolicy = .default) async throws -> Bool {
        let answer = try await cancellable { () async throws(ServiceCallError) in
            try await self.client.callRetrying(
                "POST",
                "/backend/update",
                body: update,
                as: UpdateAnswer.self,
                policy: policy
            )
        }
        return answer.canceled != true
    }

    struct Removed: Decodable {
        let removed: Bool
    }

    func cancelRequestDone(_ taskID: TaskID) async throws {
        _ = try await cancellable { () async throws(ServiceCallError) in
            try await self.client.callRetrying(
                "POST",
                "/backend/cancel-request-done",
                body: CancelDone(taskID: taskID),
                as: Removed.self
            )
        }
    }

    struct Updated: Decodable {
        let updated: Bool
    }

    func actionDone(_ id: Int, result: ActionDone.Result) async throws {
        _ = try await cancellable { () async throws(ServiceCallError) in
            try await self.client.callRetrying(
                "POST",
                "/backend/action-done",
                body: ActionDone(id: id, result: result),
                as: Updated.self
            )
        }
    }
}

/// Runs a service call; a cancelled call ends in `CancellationError`, as every other cancelled wait in the
/// Backend does (workers and the poll loop treat it as "stop", not as a failure).
func cancellable<T>(_ body: () async throws(ServiceCallError) -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        if error.code == .cancelled || Task.isCancelled { throw CancellationError() }
        throw error
    }
}
