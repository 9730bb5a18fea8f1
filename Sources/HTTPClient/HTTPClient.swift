internal import CCurl
public import Logging

/// A response with its body collected in memory (bounded by the caller's `maxResponseBytes`).
public struct HTTPClientResponse: Sendable {
    public var status: Int
    /// Header fields of the final response in the order received; names as the server spelled them.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first value of the header named `name` (ASCII case-insensitive).
    public func header(_ name: String) -> String? {
        let wanted = asciiLowercase(name)
        return self.headers.first { asciiLowercase($0.0) == wanted }?.1
    }
}

/// A small HTTP/1.1 client on libcurl easy handles, for calls between Koper's services (Backend → Frontend, Keygen).
/// This module is the only importer of `CCurl`.
///
/// - Blocking `curl_easy_perform` runs on the client's own lanes: `maxConcurrent` serial DispatchQueues, each
///   owning one reusable easy handle (so keep-alive connections are reused). The Swift cooperative pool never
///   blocks; callers beyond `maxConcurrent` wait (asynchronously, first come first served) for a free lane.
/// - Every request is bounded: `timeout` covers waiting for a lane, connecting and the whole transfer; connecting
///   alone is also bounded by `connectTimeout`; the response body by `maxResponseBytes` (the transfer is aborted
///   with `.responseTooLarge` as soon as it would exceed it).
/// - Only `http` and `https`; redirects are not followed unless `maxRedirects` > 0; proxies from the environment
///   are ignored; `CURLOPT_NOSIGNAL` is set.
/// - Task cancellation is noticed while waiting for a lane and whenever body data arrives; a silent server is
///   bounded by `timeout`.
public final class HTTPClient: Sendable {
    private let lanes: [CurlLane]
    private let pool: LanePool
    private let connectTimeout: Duration
    private let userAgent: String
    private let logger: Logger

    /// `curl_global_init`, exactly once per process, before the first easy handle.
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    public init(
        maxConcurrent: Int = 8,
        connectTimeout: Duration = .seconds(10),
        userAgent: String = "koper-httpclient",
        logger: Logger
    ) {
        let count = max(1, maxConcurrent)
        self.lanes = (0..<count).map { CurlLane(label: "koper.httpclient.lane.\($0)") }
        self.pool = LanePool(count: count)
        self.connectTimeout = connectTimeout
        self.userAgent = userAgent
        self.logger = logger
        _ = Self.globalInit
    }

    /// Sends one request and collects the response in memory.
    ///
    /// `method` is sent as given (a token such as `GET`, `POST`, `PUT`, `DELETE`); `body`, when non-nil, is sent
    /// with `Content-Length` (no `Expect: 100-continue`). Any status is a response, not an error.
    /// Throws `HTTPClientError` (`.connectFailed`, `.timeout`, `.responseTooLarge`, `.transferFailed`,
    /// `.invalidArgument`, `.cancelled`).
    public func request(
        method: String,
        url: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration,
        maxResponseBytes: Int,
        maxRedirects: Int = 0
    ) async throws -> HTTPClientResponse {
        let outcome = try await self.run(
            method: method,
            url: url,
            headers: headers,
            body: body,
            timeout: timeout,
            maxBytes: maxResponseBytes,
            maxRedirects: maxRedirects,
            sink: .memory
        )
        return HTTPClientResponse(status: outcome.status, headers: outcome.headers, body: outcome.body)
    }

    /// GETs `url` into the file `toFile`.
    ///
    /// The body is streamed to a temporary sibling file that replaces `toFile` only after a complete 2xx response,
    /// so `toFile` is never left half-written. A non-2xx response is returned as its status with `bytes` 0 (its
    /// body is read, bounded by `maxBytes`, and discarded) and leaves `toFile` untouched; so does any error.
    /// Returns the status and the number of bytes written.
    public func download(
        url: String,
        toFile path: String,
        headers: [(String, String)] = [],
        timeout: Duration,
        maxBytes: Int,
        maxRedirects: Int = 0
    ) async throws -> (status: Int, bytes: Int) {
        let outcome = try await self.run(
            method: "GET",
            url: url,
            headers: headers,
            body: nil,
            timeout: timeout,
            maxBytes: maxBytes,
            maxRedirects: maxRedirects,
            sink: .file(path: path)
        )
        return (outcome.status, outcome.bytes)
    }

    private func run(
        method: String,
        url: String,
        headers: [(String, String)],
        body: [UInt8]?,
        timeout: Duration,
        maxBytes: Int,
        maxRedirects: Int,
        sink: CurlJob.Sink
    ) async throws -> CurlOutcome {
        let redacted = RedactedURL(url)
        try Self.validate(method: method, url: url, headers: headers, maxBytes: maxBytes, maxRedirects: maxRedirects)
        guard Self.globalInit == CURLE_OK else {
            throw HTTPClientError(
                code: .transferFailed,
                message: "curl_global_init failed (\(Self.globalInit.rawValue))"
            )
        }
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started.advanced(by: timeout)

        let lane = try await self.pool.acquire(deadline: deadline)
        defer { self.pool.release(lane) }
        let remaining = clock.now.duration(to: deadline)
        guard remaining > .zero else {
            throw HTTPClientError(code: .timeout, message: "timed out waiting for a free connection slot")
        }
        let cancel = CancelFlag()
        let job = CurlJob(
            method: method,
            url: url,
            headers: headers,
            body: body,
            connectTimeoutMilliseconds: min(self.connectTimeout, remaining).clampedMilliseconds,
            timeoutMilliseconds: remaining.clampedMilliseconds,
            maxBytes: maxBytes,
            maxRedirects: maxRedirects,
            userAgent: self.userAgent,
            sink: sink,
            cancel: cancel
        )
        let worker = self.lanes[lane]
        do {
            let outcome = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation {
                    (continuation: CheckedContinuation<CurlOutcome, any Error>) in
                    worker.queue.async {
                        continuation.resume(with: Result { () throws(HTTPClientError) in try worker.perform(job) })
                    }
                }
            } onCancel: {
                cancel.set()
            }
            self.logger.debug(
                "HTTP request finished",
                metadata: [
                    "http.method": "\(method)", "http.url": "\(redacted)", "http.status": "\(outcome.status)",
                    "http.duration_ms": "\(started.duration(to: clock.now).clampedMilliseconds)",
                ]
            )
            return outcome
        } catch let error as HTTPClientError {
            self.logger.debug(
                "HTTP request failed",
                metadata: ["http.method": "\(method)", "http.url": "\(redacted)", "error.code": "\(error.code)"]
            )
            throw error
        }
    }

    private static func validate(
        method: String,
        url: String,
        headers: [(String, String)],
        maxBytes: Int,
        maxRedirects: Int
    ) throws(HTTPClientError) {
        guard !method.isEmpty, method.utf8.allSatisfy(isTokenByte) else {
            throw HTTPClientError(code: .invalidArgument, message: "method is not an HTTP token")
        }
        guard !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) else {
            throw HTTPClientError(code: .invalidArgument, message: "URL contains a control character or space")
        }
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
                throw HTTPClientError(code: .invalidArgument, message: "header name is not an HTTP token")
            }
            guard !value.utf8.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 }) else {
                throw HTTPClientError(code: .invalidArgument, message: "value of header \(name) contains CR, LF or NUL")
            }
        }
        guard maxBytes >= 0 else {
            throw HTTPClientError(code: .invalidArgument, message: "response limit must not be negative")
        }
        guard (0...20).contains(maxRedirects) else {
            throw HTTPClientError(code: .invalidArgument, message: "maxRedirects must be in 0...20")
        }
    }
}

/// RFC 9110 §5.6.2 tchar.
func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }
}
