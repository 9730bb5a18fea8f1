import HTTPCore
import HTTPServer
import KoperJSON
import Logging
import ServiceKit

/// Keygen's HTTP API, for a private network. Every request needs `Authorization: Bearer SECRET`.
///
/// | method & path | body | response |
/// |---|---|---|
/// | `POST /keys/ensure` | `{"owner","project"}` | `{"fingerprint","key_id","user_id","created"}` (idempotent) |
/// | `GET /keys/OWNER/PROJECT/pubkey.gpg` | – | armoured public key, `text/plain` |
/// | `POST /keys/OWNER/PROJECT/sign?digest=sha256\|sha512` | the bytes to sign | binary detached signature, `application/pgp-signature` |
/// | `GET /health` | – | `{"status","projects","spares","pool_size","signer"}` |
///
/// Errors are JSON `{"error": …}`. No endpoint returns secret key material.
final class KeygenAPI: HTTPHandler {
    enum Route: Sendable {
        case ensure
        case publicKey
        case sign
        case health
    }

    let service: KeyService
    let maxSignBytes: Int
    let logger: Logger
    private let secret: BearerSecret
    private let router: Router<Route>

    /// Bodies of requests without the right secret, and of every route but sign, are capped at this.
    static let smallBodyLimit = 64 * 1024

    init(service: KeyService, secret: String, maxSignBytes: Int, logger: Logger) {
        self.service = service
        self.maxSignBytes = maxSignBytes
        self.logger = logger
        self.secret = BearerSecret(secret)
        var router = Router<Route>()
        router.add(["POST"], "/keys/ensure", .ensure)
        router.add(["GET", "HEAD"], "/keys/:owner/:project/pubkey.gpg", .publicKey)
        router.add(["POST"], "/keys/:owner/:project/sign", .sign)
        router.add(["GET", "HEAD"], "/health", .health)
        self.router = router
    }

    /// `Authorization: Bearer SECRET`, compared in constant time (`BearerSecret`).
    func isAuthorized(_ head: HTTPRequestHead) -> Bool {
        self.secret.accepts(authorization: head.headers["Authorization"])
    }

    func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy {
        // Only an authenticated sign request may send a large body.
        if head.method == "POST", head.rawPath.hasSuffix("/sign"), self.isAuthorized(head) {
            return .memory(maxBytes: self.maxSignBytes)
        }
        return .memory(maxBytes: Self.smallBodyLimit)
    }

    func errorResponse(status: Int, reason: String, head: HTTPRequestHead?) -> HTTPResponse {
        Self.json(status, ["error": .string(reason)])
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let head = request.head
        guard self.isAuthorized(head) else {
            var response = Self.json(401, ["error": "missing or wrong Authorization: Bearer secret"])
            response.headers.add(name: "WWW-Authenticate", value: "Bearer")
            return response
        }
        guard let segments = Router<Route>.decodeSegments(head.rawPath),
            let match = self.router.match(method: head.method, pathSegments: segments)
        else {
            return Self.json(404, ["error": "no such endpoint"])
        }
        do {
            switch match.value {
            case .health:
                let health = await self.service.health()
                return Self.json(
                    200,
                    [
                        "status": "ok", "projects": .int(health.projects), "spares": .int(health.spares),
                        "pool_size": .int(health.poolSize), "signer": .string(SignerFactory.kind),
                    ]
                )
            case .ensure:
                let body = try Self.jsonObject(request.body.bytes)
                guard let owner = body["owner"]?.stringValue, let project = body["project"]?.stringValue else {
                    throw KeygenError(.badRequest, "owner and project (strings) are required")
                }
                let key = try await self.service.ensure(ProjectRef(owner: owner, project: project))
                return Self.json(
                    200,
                    [
                        "fingerprint": .string(key.fingerprint), "key_id": .string(key.keyID),
                        "user_id": .string(key.userID),
                        "created": .bool(key.created),
                    ]
                )
            case .publicKey:
                let project = try ProjectRef(
                    owner: match.parameters["owner"] ?? "",
                    project: match.parameters["project"] ?? ""
                )
                let armored = try await self.service.publicKey(project)
                return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; charset=utf-8"], body: armored)
            case .sign:
                let project = try ProjectRef(
                    owner: match.parameters["owner"] ?? "",
                    project: match.parameters["project"] ?? ""
                )
                let query = head.rawQuery.map { URLEncoding.parseQuery($0) } ?? []
                let name = query.last(where: { $0.name == "digest" })?.value ?? DigestAlgorithm.sha256.rawValue
                guard let digest = DigestAlgorithm(rawValue: name.lowercased()) else {
                    throw KeygenError(.badRequest, "digest must be sha256 or sha512")
                }
                let signature = try await self.service.sign(request.body.bytes, project: project, digest: digest)
                return HTTPResponse(
                    status: 200,
                    headers: ["Content-Type": "application/pgp-signature"],
                    body: signature
                )
            }
        } catch let error as KeygenError {
            if error.kind == .unavailable {
                self.logger.error("request failed", metadata: ["http.path": "\(head.rawPath)", "error": "\(error)"])
            }
            return Self.json(error.status, ["error": .string(error.message)])
        } catch {
            // gpg errors carry gpg's text, never key material; still, the client gets a generic message.
            self.logger.error("request failed", metadata: ["http.path": "\(head.rawPath)", "error": "\(error)"])
            return Self.json(503, ["error": "key operation failed; see the keygen log"])
        }
    }

    static func json(_ status: Int, _ value: JSON) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: value.serialized())
    }

    static func jsonObject(_ bytes: [UInt8]) throws(KeygenError) -> JSONObject {
        let value: JSON
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw KeygenError(.badRequest, "request body is not valid JSON")
        }
        guard case .object(let object) = value else {
            throw KeygenError(.badRequest, "request body must be a JSON object")
        }
        return object
    }
}
