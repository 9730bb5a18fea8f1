import CoprModel
import Foundation
import HTTPClient
import HTTPCore
import HTTPServer
import KoperJSON
import KoperStore
import Logging
import Postgres
import ServiceKit
import Synchronization

/// An error a route turns into a response: JSON `{"error": …}` under /api_3 and /backend, text elsewhere.
struct APIError: Error, Sendable {
    let status: Int
    let message: String
    var headers: HTTPHeaders = HTTPHeaders()

    init(_ status: Int, _ message: String, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    static func badRequest(_ m: String) -> APIError { APIError(400, m) }
    static func notFound(_ m: String) -> APIError { APIError(404, m) }
    static func forbidden(_ m: String) -> APIError { APIError(403, m) }
}

/// One request as routes see it: decoded path parameters, query, body and the base URLs for links.
struct RequestContext: Sendable {
    let request: HTTPRequest
    let parameters: [String: String]
    let query: [(name: String, value: String)]
    let publicBase: String
    let hostWithoutPort: String

    var head: HTTPRequestHead { self.request.head }

    /// The last value of a query parameter (copr-cli sends each once).
    func q(_ name: String) -> String? {
        self.query.last(where: { $0.name == name })?.value
    }

    func qs(_ name: String) -> [String] {
        self.query.filter { $0.name == name }.map(\.value)
    }

    func param(_ name: String) -> String { self.parameters[name] ?? "" }

    /// The body as a JSON object; an empty body is `{}`.
    func jsonBody() throws -> JSONObject {
        let bytes = self.request.body.bytes
        if bytes.isEmpty { return JSONObject() }
        let value: JSON
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw APIError.badRequest("Request body is not valid JSON: \(error.message)")
        }
        guard case .object(let o) = value else { throw APIError.badRequest("Request body must be a JSON object") }
        return o
    }

    var credentials: BasicCredentials? {
        self.head.headers["Authorization"].flatMap { BasicCredentials(authorizationHeader: $0) }
    }
}

typealias RouteHandler = @Sendable (FrontendApp, RequestContext) async throws -> HTTPResponse
/// A read that is one database closure: served by the server's inline path on the connection's queue, with no
/// Swift task (decision 0001, "inline reads").
typealias InlineRouteHandler = @Sendable (FrontendApp, RequestContext, PGConnection) throws -> HTTPResponse

/// How an inline read is served: one closure on a pooled connection, or through a batcher that shares one
/// statement among concurrent callers (decision 0007); `done` is called once, on a connection's queue.
enum InlineRoute: Sendable {
    case connection(InlineRouteHandler)
    case batched(
        @Sendable (FrontendApp, RequestContext, _ done: @escaping @Sendable (Result<HTTPResponse, any Error>) -> Void)
            -> Void
    )
}

/// The Frontend's HTTP handler: API v3, .repo files, the internal /backend/ API, minimal web pages.
final class FrontendApp: HTTPHandler {
    let config: FrontendConfig
    let db: PGPool
    let logger: Logger
    let router: Router<RouteHandler>
    let inlineRouter: Router<InlineRoute>
    /// `GET /api_3/build/ID`, the hottest read, batched: one statement for the builds asked for at once.
    let buildReader: PGLookupBatcher<Int, BuildRecord>
    /// `GET /api_3/project`, batched the same way (copr-cli and dnf read projects as often as builds).
    let projectReader: PGLookupBatcher<ProjectKey, ProjectRecord>
    let tasks: TaskSignal
    let http: HTTPClient
    /// The internal API's shared secret (Backend, DistGitProxy).
    let backendSecret: BearerSecret
    /// Keygen, asked for a project's key at create and fork (optional).
    let keygen: JSONServiceClient?
    /// When a database outage was last logged: one warning per `outageLogInterval`, not one per request.
    let lastOutageLog = Mutex<ContinuousClock.Instant?>(nil)
    static let outageLogInterval: Duration = .seconds(10)
    /// Seconds a client is told to wait (`Retry-After`) when the database is away.
    static let outageRetryAfter = 10

    init(config: FrontendConfig, db: PGPool, logger: Logger) {
        self.config = config
        self.db = db
        self.logger = logger
        self.tasks = TaskSignal()
        let http = HTTPClient(maxConcurrent: 4, logger: logger)
        self.http = http
        self.backendSecret = BearerSecret(config.backendSecret)
        self.keygen = config.keygenURL.map { url in
            JSONServiceClient(
                name: "keygen",
                baseURL: url,
                secret: config.keygenSecret.map(BearerSecret.init),
                http: http,
                timeout: .seconds(30),
                maxResponseBytes: 64 << 10,
                logger: logger
            )
        }
        var r = Router<RouteHandler>()
        Routes.register(&r)
        self.router = r
        self.buildReader = PGLookupBatcher(pool: db, maxBatch: 16) { c, ids in try BuildStore.find(c, ids: ids) }
        self.projectReader = PGLookupBatcher(pool: db, maxBatch: 16) { c, keys in try ProjectStore.find(c, keys: keys) }
        var inline = Router<InlineRoute>()
        Routes.registerInline(&inline)
        self.inlineRouter = inline
    }

    func handleInline(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) -> Bool {
        let head = request.head
        guard head.method == "GET" || head.method == "HEAD",
            let segments = Router<RouteHandler>.decodeSegments(head.rawPath),
            !segments.contains(where: { $0 == ".." || $0 == "." || $0.contains("\0") }),
            let match = self.inlineRouter.match(method: "GET", pathSegments: segments),
            // A literal route of the main table wins over an inline parameter route (`/build/list` vs `/build/:id`).
            self.router.match(method: "GET", pathSegments: segments) == nil
        else { return false }
        let context = self.context(request, parameters: match.parameters)
        let isAPI = head.rawPath.hasPrefix("/api_3") || head.rawPath.hasPrefix("/backend")
        let done: @Sendable (Result<HTTPResponse, any Error>) -> Void = { result in
            switch result {
            case .success(let response): respond(response)
            case .failure(let error): respond(self.response(for: error, path: head.rawPath, isAPI: isAPI))
            }
        }
        switch match.value {
        case .connection(let handler):
            self.db.withConnection({ c in try handler(self, context, c) }, completion: done)
        case .batched(let handler):
            handler(self, context, done)
        }
        return true
    }

    func context(_ request: HTTPRequest, parameters: [String: String]) -> RequestContext {
        let head = request.head
        let host = head.headers["Host"] ?? "\(self.config.listenHost):\(self.config.listenPort)"
        return RequestContext(
            request: request,
            parameters: parameters,
            query: head.rawQuery.map { URLEncoding.parseQuery($0) } ?? [],
            publicBase: self.config.publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
                ?? "http://\(host)",
            hostWithoutPort: hostWithoutPort(host)
        )
    }

    /// The response for an error a route threw.
    func response(for error: any Error, path: Substring, isAPI: Bool) -> HTTPResponse {
        switch error {
        case let e as APIError:
            return self.render(e, isAPI: isAPI)
        case let e as ValidationError:
            // A store's check of user input (a package name from an uploaded SRPM): the client's mistake.
            return self.render(APIError.badRequest(e.description), isAPI: isAPI)
        case let e as PostgresError:
            if e.code == .poolExhausted || e.code == .timeout {
                self.logOutage(e, path: path)
                return self.render(
                    APIError(503, "The service is overloaded, try again later", headers: Self.retryAfter),
                    isAPI: isAPI
                )
            }
            if Self.isDatabaseOutage(e) {
                self.logOutage(e, path: path)
                return self.render(
                    APIError(503, "The database is unavailable, try again later", headers: Self.retryAfter),
                    isAPI: isAPI
                )
            }
            self.logger.error("database error", metadata: ["error": "\(e)", "http.path": "\(path)"])
            return self.render(
                APIError(500, "Request wasn't successful, there is probably a bug in the Koper code."),
                isAPI: isAPI
            )
        default:
            self.logger.error("unexpected error", metadata: ["error": "\(error)", "http.path": "\(path)"])
            return self.render(
                APIError(500, "Request wasn't successful, there is probably a bug in the Koper code."),
                isAPI: isAPI
            )
        }
    }

    static let retryAfter: HTTPHeaders = ["Retry-After": "\(outageRetryAfter)"]

    /// The database is away (not a bug): the connection could not be made or was lost, or the server is shutting
    /// down, starting up or full (SQLSTATE class 08, 57P01–57P03, 53300).
    static func isDatabaseOutage(_ e: PostgresError) -> Bool {
        if e.code == .connectionFailed || e.code == .poolClosed { return true }
        guard let state = e.sqlState else { return false }
        return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300"].contains(state)
    }

    /// Logs an outage or overload at most once per `outageLogInterval` (a down database fails every request).
    func logOutage(_ e: PostgresError, path: Substring) {
        let now = ContinuousClock.now
        let due = self.lastOutageLog.withLock { last -> Bool in
            if let last, now - last < Self.outageLogInterval { return false }
            last = now
            return true
        }
        if due {
            self.logger.warning(
                "database unavailable; answering 503",
                metadata: ["error": "\(e)", "http.path": "\(path)"]
            )
        }
    }

    /// Decision 0011: every write is authenticated on its head, before a byte of its body is read, so that an
    /// anonymous client can neither fill the spool nor learn anything from input validation. Reads are admitted
    /// at once (the hot reads pay one comparison). `/backend/` writes check the shared secret here; API v3 writes
    /// look up the token on a pooled connection; the spooled chroot edit is authorized here too (its project is
    /// in the URL). An upload's project is inside its multipart body, so its 403/404 come after the body — within
    /// the per-client upload limit and the spool quota.
    func admission(for head: HTTPRequestHead, remoteAddress: String) -> HTTPAdmission {
        if head.method == "GET" || head.method == "HEAD" { return .admit }
        let path = head.rawPath
        if path.hasPrefix("/backend/") {
            guard self.backendSecret.accepts(authorization: head.headers["Authorization"]) else {
                return .refuse(self.render(APIError(401, "Backend authentication failed"), isAPI: true))
            }
            return .admit
        }
        guard path.hasPrefix("/api_3/"), let segments = Router<RouteHandler>.decodeSegments(path),
            let match = self.router.match(method: head.method, pathSegments: segments)
        else { return .admit }  // no such write: the handler answers 404 (its body is capped in memory)
        let context = self.context(
            HTTPRequest(head: head, body: .empty, remoteAddress: remoteAddress),
            parameters: match.parameters
        )
        let authorizesProject = path.hasPrefix("/api_3/project-chroot/edit/")
        return .pending { decide in
            self.db.withConnection(
                { c in
                    let user = try Auth.requireUser(c, context)
                    if authorizesProject {
                        let project = try Projects.require(
                            c,
                            owner: context.param("owner"),
                            name: context.param("project")
                        )
                        try Permissions.requireEdit(c, user: user, project: project)
                    }
                },
                completion: { result in
                    switch result {
                    case .success: decide(.admit)
                    case .failure(let error): decide(.refuse(self.response(for: error, path: path, isAPI: true)))
                    }
                }
            )
        }
    }

    func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy {
        let path = head.rawPath
        if head.method == "POST" && (path == "/api_3/build/create/upload" || path == "/api_3/build/create/upload/") {
            return .file(maxBytes: self.config.maxUploadBytes)
        }
        if path.hasPrefix("/api_3/project-chroot/edit/") {
            return .file(maxBytes: self.config.maxJSONBytes * 4)  // multipart with an optional comps file
        }
        return .memory(maxBytes: self.config.maxJSONBytes)
    }

    func errorResponse(status: Int, reason: String, head: HTTPRequestHead?) -> HTTPResponse {
        if let head, !head.rawPath.hasPrefix("/api_3") && !head.rawPath.hasPrefix("/backend") {
            return HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: reason + "\n")
        }
        let message = status == 413 ? "Request body too large" : reason
        return jsonResponse(status, ["error": .string(message)])
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let head = request.head
        let isAPI = head.rawPath.hasPrefix("/api_3") || head.rawPath.hasPrefix("/backend")
        guard let segments = Router<RouteHandler>.decodeSegments(head.rawPath) else {
            return self.render(APIError.badRequest("Malformed URL"), isAPI: isAPI)
        }
        if segments.contains(where: { $0 == ".." || $0 == "." || $0.contains("\0") }) {
            return self.render(APIError.badRequest("Path must not contain '.' or '..' segments"), isAPI: isAPI)
        }
        let method = head.method == "HEAD" ? "GET" : head.method
        guard let match = self.router.match(method: method, pathSegments: segments) else {
            if isAPI {
                return jsonResponse(404, ["error": "Such API endpoint doesn't exist"])
            }
            return htmlResponse(
                404,
                Web.page(title: "Error 404: Page Not Found", body: "<h1>Error 404: Page Not Found</h1>")
            )
        }
        let context = self.context(request, parameters: match.parameters)
        do {
            return try await match.value(self, context)
        } catch {
            return self.response(for: error, path: head.rawPath, isAPI: isAPI)
        }
    }

    func render(_ e: APIError, isAPI: Bool) -> HTTPResponse {
        var response: HTTPResponse
        if isAPI {
            var body: JSONObject = ["error": .string(e.message)]
            if e.status == 401 { body["output"] = "notok" }
            response = jsonResponse(e.status, .object(body))
        } else {
            response = htmlResponse(
                e.status,
                Web.page(title: "Error \(e.status)", body: "<h1>Error \(e.status)</h1><p>\(Web.escape(e.message))</p>")
            )
        }
        for f in e.headers { response.headers.replaceOrAdd(name: f.name, value: f.value) }
        return response
    }
}

func jsonResponse(_ status: Int, _ value: JSON) -> HTTPResponse {
    HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: value.serialized())
}

func jsonOK(_ value: JSON) -> HTTPResponse { jsonResponse(200, value) }

func htmlResponse(_ status: Int, _ html: String) -> HTTPResponse {
    HTTPResponse(status: status, contentType: "text/html; charset=utf-8", body: html)
}

/// `127.0.0.1:8080` → `127.0.0.1`, `[::1]:8080` → `::1`, `example.org` → `example.org`.
func hostWithoutPort(_ host: String) -> String {
    if host.hasPrefix("[") {
        if let close = host.firstIndex(of: "]") { return String(host[host.index(after: host.startIndex)..<close]) }
        return host
    }
    if let colon = host.lastIndex(of: ":") { return String(host[..<colon]) }
    return host
}

extension FrontendApp {
    /// Asks Keygen to make (or find) the project's signing key, so it is ready when the first build ends
    /// (Copr #3050). Best effort: the Backend ensures the key again before it signs anything.
    func ensureKey(owner: String, project: String) async {
        guard let keygen = self.keygen else { return }
        struct Ensure: Encodable {
            let owner: String
            let project: String
        }
        struct Ensured: Decodable {}
        do {
            _ = try await keygen.call(
                "POST",
                "/keys/ensure",
                body: Ensure(owner: owner, project: project),
                as: Ensured.self
            )
        } catch {
            if error.code == .status {
                self.logger.warning(
                    "keygen refused to make a key",
                    metadata: ["project": "\(owner)/\(project)", "http.status": "\(error.status ?? 0)"]
                )
            } else {
                self.logger.warning(
                    "keygen unreachable; the backend will make the key",
                    metadata: ["project": "\(owner)/\(project)", "error": "\(error)"]
                )
            }
        }
    }
}
