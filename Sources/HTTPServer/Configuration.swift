import HTTPCore

/// How a handler wants a request body delivered, decided from the head before any body byte is read.
public enum HTTPBodyPolicy: Sendable {
    /// Collect the body in memory, refusing (413) anything larger than `maxBytes`.
    case memory(maxBytes: Int)
    /// Stream the body into a new temporary file (never wholly in memory), refusing anything larger than `maxBytes`.
    case file(maxBytes: Int)

    var maxBytes: Int {
        switch self {
        case .memory(let m), .file(let m): return m
        }
    }
}

public enum HTTPRequestBody: Sendable {
    case empty
    case bytes([UInt8])
    /// A temporary file the server deletes after the handler returns. A handler that wants to keep it renames it away.
    case file(path: String, size: Int)

    public var bytes: [UInt8] {
        if case .bytes(let b) = self { return b }
        return []
    }
}

public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: HTTPRequestBody
    public var remoteAddress: String

    public init(head: HTTPRequestHead, body: HTTPRequestBody, remoteAddress: String = "") {
        self.head = head
        self.body = body
        self.remoteAddress = remoteAddress
    }
}

/// The application's verdict on a request head, given before any byte of its body is read (decision 0011).
public enum HTTPAdmission: Sendable {
    /// Go on: read the body (subject to the server's limits) and hand the request to the handler.
    case admit
    /// Send this response and close the connection (with the lingering half-close); the body is never read.
    case refuse(HTTPResponse)
    /// The verdict needs work off the connection's queue (a database lookup). The server stops reading the
    /// connection and calls the closure once; the closure must call `decide` exactly once, from any thread, with
    /// `.admit` or `.refuse` (a nested `.pending` is answered 500).
    case pending(@Sendable (_ decide: @escaping @Sendable (HTTPAdmission) -> Void) -> Void)
}

/// The application side of the server.
public protocol HTTPHandler: Sendable {
    /// Called on the connection's queue once the head is parsed; must be quick and must not block.
    func bodyPolicy(for head: HTTPRequestHead) -> HTTPBodyPolicy
    /// Called on the connection's queue right after `bodyPolicy`, before any body byte is read: authentication
    /// and authorization that the head alone decides. Must be quick and must not block (return `.pending` for
    /// work that does); the default admits everything.
    func admission(for head: HTTPRequestHead, remoteAddress: String) -> HTTPAdmission
    /// Produces the response. Runs as a Swift task; blocking work belongs on the handler's own queues.
    func handle(_ request: HTTPRequest) async -> HTTPResponse
    /// The response the server sends for a request it refuses itself (parse error, 413, timeout, overload).
    /// `head` is nil when the head itself could not be parsed.
    func errorResponse(status: Int, reason: String, head: HTTPRequestHead?) -> HTTPResponse
    /// An optional fast path without a Swift task: return true if the handler took the request and will call
    /// `respond` exactly once, from any thread. It is called on the connection's queue and must not block; it
    /// suits handlers whose work already runs on their own queues (a database connection's queue, say), saving
    /// the hops onto and off the cooperative pool. Requests with a spooled file body always take `handle`.
    func handleInline(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) -> Bool
}

extension HTTPHandler {
    public func admission(for head: HTTPRequestHead, remoteAddress: String) -> HTTPAdmission { .admit }

    public func handleInline(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) -> Bool {
        false
    }

    public func errorResponse(status: Int, reason: String, head: HTTPRequestHead?) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: reason + "\n")
    }
}

public struct HTTPServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port; read the real one from `HTTPServer.port`.
    public var port: Int
    public var backlog: Int32
    /// Connections beyond this get a 503 and are closed at once.
    public var maxConnections: Int
    public var limits: HTTPParserLimits
    /// A request head must arrive completely within this time of its first byte (slowloris bound).
    public var headTimeout: Duration
    /// An idle keep-alive connection is closed after this long.
    public var idleTimeout: Duration
    /// A body that makes no progress for this long is abandoned; a client that reads nothing for this long is dropped.
    public var ioTimeout: Duration
    /// Pipelined input buffered while a request is being handled; reading pauses beyond it.
    public var maxBufferedInput: Int
    /// Where `.file` bodies are spooled.
    public var temporaryDirectory: String
    /// Connections one client (remote IP address) may hold at once; more get a 503 and are closed at once.
    public var maxConnectionsPerClient: Int
    /// `.file` bodies one client may be sending (or have handlers working on) at once; more get a 429.
    public var maxUploadsPerClient: Int
    /// Bytes all `.file` bodies together may take in `temporaryDirectory`: a body that would go beyond it gets a
    /// 503 with `Retry-After` (a body beyond its route's own cap gets a 413).
    public var spoolQuotaBytes: Int
    /// Minimum body rate: every `bodyRateWindow` a body must bring at least this many bytes (or the rest of the
    /// body, if less), else the request is answered 408 and closed. One byte every few seconds cannot hold a
    /// connection, whatever the I/O progress timeout says.
    public var minBodyBytesPerWindow: Int
    public var bodyRateWindow: Duration

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        backlog: Int32 = 1024,
        maxConnections: Int = 4096,
        limits: HTTPParserLimits = HTTPParserLimits(),
        headTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(60),
        ioTimeout: Duration = .seconds(60),
        maxBufferedInput: Int = 1 << 20,
        temporaryDirectory: String = "/tmp",
        maxConnectionsPerClient: Int = 256,
        maxUploadsPerClient: Int = 4,
        spoolQuotaBytes: Int = 8 << 30,
        minBodyBytesPerWindow: Int = 64 << 10,
        bodyRateWindow: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.maxConnections = maxConnections
        self.limits = limits
        self.headTimeout = headTimeout
        self.idleTimeout = idleTimeout
        self.ioTimeout = ioTimeout
        self.maxBufferedInput = maxBufferedInput
        self.temporaryDirectory = temporaryDirectory
        self.maxConnectionsPerClient = maxConnectionsPerClient
        self.maxUploadsPerClient = maxUploadsPerClient
        self.spoolQuotaBytes = spoolQuotaBytes
        self.minBodyBytesPerWindow = minBodyBytesPerWindow
        self.bodyRateWindow = bodyRateWindow
    }
}

public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32

    public var description: String { "HTTP server: \(self.operation) failed (errno \(self.errno))" }
}
