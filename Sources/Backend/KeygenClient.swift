import HTTPClient
import HTTPCore
import KoperJSON
import Logging

/// The Backend's side of Keygen's API. Signing never gives up on a Keygen that is down: it waits and retries
/// with bounded backoff (a build waits; it neither fails nor publishes unsigned RPMs).
struct KeygenClient: Sendable {
    let base: String
    let secret: String
    let http: HTTPClient
    let logger: Logger

    struct Failure: Error, CustomStringConvertible {
        let status: Int
        let message: String
        var description: String { "keygen answered \(self.status): \(self.message)" }
    }

    func path(_ owner: String, _ project: String, _ tail: String) -> String {
        "\(self.base)/keys/\(URLEncoding.percentEncode(owner, allowed: "@"))/\(URLEncoding.percentEncode(project))/\(tail)"
    }

    func call(_ method: String, _ url: String, body: [UInt8]?, contentType: String? = nil, maxResponse: Int = 1 << 20) async throws -> [UInt8] {
        var headers = [("Authorization", "Bearer \(self.secret)")]
        if let contentType { headers.append(("Content-Type", contentType)) }
        let r = try await self.http.request(method: method, url: url, headers: headers, body: body, timeout: .seconds(120), maxResponseBytes: maxResponse)
        guard r.status == 200 else {
            let message = (try? JSONParser.parse(r.body))?["error"]?.stringValue ?? "HTTP \(r.status)"
            throw Failure(status: r.status, message: message)
        }
        return r.body
    }

    /// Retries until it succeeds or the task is cancelled; a 4xx other than 404/409 is a real error.
    func retrying<T: Sendable>(_ what: String, _ body: @Sendable () async throws -> T) async throws -> T {
        var delay = Duration.milliseconds(250)
        while true {
            do {
                return try await body()
            } catch let f as Failure where f.status >= 400 && f.status < 500 && f.status != 404 && f.status != 409 {
                throw f
            } catch {
                try Task.checkCancellation()
                self.logger.warning("keygen unavailable; retrying", metadata: ["what": "\(what)", "error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }

    func ensure(owner: String, project: String) async throws {
        let body: JSON = ["owner": .string(owner), "project": .string(project)]
        _ = try await self.retrying("ensure") {
            try await self.call("POST", self.base + "/keys/ensure", body: body.serialized(), contentType: "application/json")
        }
    }

    func publicKey(owner: String, project: String) async throws -> [UInt8] {
        try await self.ensure(owner: owner, project: project)
        return try await self.retrying("pubkey") { try await self.call("GET", self.path(owner, project, "pubkey.gpg"), body: nil) }
    }

    /// A binary detached v4 signature over `bytes` (an RPM's main header) by the project's key. A project without
    /// a key (made while Keygen was unreachable, or by a Frontend without Keygen) gets one here: ensure, then sign.
    func sign(owner: String, project: String, bytes: [UInt8]) async throws -> [UInt8] {
        let url = self.path(owner, project, "sign?digest=sha256")
        return try await self.retrying("sign") {
            do {
                return try await self.call("POST", url, body: bytes, contentType: "application/octet-stream")
            } catch let f as Failure where f.status == 404 {
                try await self.ensure(owner: owner, project: project)
                return try await self.call("POST", url, body: bytes, contentType: "application/octet-stream")
            }
        }
    }
}
