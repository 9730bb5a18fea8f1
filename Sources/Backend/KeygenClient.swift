import HTTPClient
import HTTPCore
import Logging
import ServiceKit

/// The Backend's side of Keygen's API, over ServiceKit's JSON client. Signing never gives up on a Keygen that is
/// down: it waits and retries with bounded backoff (a build waits; it neither fails nor publishes unsigned RPMs).
struct KeygenClient: Sendable {
    let client: JSONServiceClient
    /// Until it succeeds or the task is cancelled, 250 ms doubling to 10 s.
    static let patience = RetryPolicy(attempts: .max, initialDelay: .milliseconds(250), maxDelay: .seconds(10))

    init(base: String, secret: String, http: HTTPClient, logger: Logger) {
        self.client = JSONServiceClient(
            name: "keygen",
            baseURL: base,
            secret: BearerSecret(secret),
            http: http,
            timeout: .seconds(120),
            maxResponseBytes: 1 << 20,
            logger: logger
        )
    }

    func path(_ owner: String, _ project: String, _ tail: String) -> String {
        "/keys/\(URLEncoding.percentEncode(owner, allowed: "@"))/\(URLEncoding.percentEncode(project))/\(tail)"
    }

    /// Retried: no answer, 5xx, 409 (a key being made) and, unless the caller handles it, 404; any other 4xx is a
    /// real error.
    func retrying<T: Sendable>(
        _ what: String,
        retryNotFound: Bool = true,
        _ body: () async throws(ServiceCallError) -> T
    ) async throws -> T {
        try await cancellable { () async throws(ServiceCallError) in
            try await self.client.retrying(
                what,
                policy: Self.patience,
                isTransient: { $0.isTransient || $0.status == 409 || (retryNotFound && $0.status == 404) },
                body
            )
        }
    }

    struct Ensure: Encodable {
        let owner: String
        let project: String
    }

    struct Ensured: Decodable {}

    func ensure(owner: String, project: String) async throws {
        _ = try await self.retrying("ensure") { () async throws(ServiceCallError) in
            try await self.client.call(
                "POST",
                "/keys/ensure",
                body: Ensure(owner: owner, project: project),
                as: Ensured.self
            )
        }
    }

    func publicKey(owner: String, project: String) async throws -> [UInt8] {
        try await self.ensure(owner: owner, project: project)
        return try await self.retrying("pubkey") { () async throws(ServiceCallError) in
            try await self.client.callRaw("GET", self.path(owner, project, "pubkey.gpg"))
        }
    }

    /// A binary detached v4 signature over `bytes` (an RPM's main header) by the project's key. A project without
    /// a key (made while Keygen was unreachable, or by a Frontend without Keygen) gets one here: ensure, then sign.
    func sign(owner: String, project: String, bytes: [UInt8]) async throws -> [UInt8] {
        let path = self.path(owner, project, "sign?digest=sha256")
        while true {
            do {
                return try await self.retrying("sign", retryNotFound: false) { () async throws(ServiceCallError) in
                    try await self.client.callRaw("POST", path, body: bytes, contentType: "application/octet-stream")
                }
            } catch let error as ServiceCallError where error.status == 404 {
                try await self.ensure(owner: owner, project: project)
            }
        }
    }
}
