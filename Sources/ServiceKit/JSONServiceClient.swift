internal import Foundation
public import HTTPClient
public import Logging

/// How `callRetrying` waits between attempts: the first delay, doubled after each failure up to `maxDelay`.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all (at least 1). `Int.max` retries until success, a final error or cancellation.
    public var attempts: Int
    public var initialDelay: Duration
    public var maxDelay: Duration

    public init(attempts: Int = 30, initialDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5)) {
        self.attempts = max(1, attempts)
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
    }

    /// 30 attempts, 200 ms doubling to 5 s (about two minutes in all): rides out a restart of the other service.
    public static let `default` = RetryPolicy()
}

/// A client for another Koper service's JSON API, over `HTTPClient` (the one libcurl wrapper).
///
/// Every call is bounded in time (`timeout`, per call or the client's) and in response size (`maxResponseBytes`),
/// carries `Authorization: Bearer SECRET` when the client has a secret, encodes the request body and decodes a 2xx
/// answer with Foundation's `JSONEncoder`/`JSONDecoder`. Any other status is a `ServiceCallError` with the status
/// and the answer's `{"error": …}` text.
public struct JSONServiceClient: Sendable {
    /// Names the service in errors and logs (`frontend`, `keygen`).
    public let name: String
    /// `http://host:port` (a trailing `/` is dropped); each call appends its path (`/backend/claim`).
    public let baseURL: String
    public let secret: BearerSecret?
    public let http: HTTPClient
    /// Per call, unless the call says otherwise: waiting for a lane, connecting and the whole transfer.
    public let timeout: Duration
    /// Per call, unless the call says otherwise.
    public let maxResponseBytes: Int
    public let logger: Logger

    public init(
        name: String,
        baseURL: String,
        secret: BearerSecret?,
        http: HTTPClient,
        timeout: Duration = .seconds(30),
        maxResponseBytes: Int = 64 << 20,
        logger: Logger
    ) {
        self.name = name
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.secret = secret
        self.http = http
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
        self.logger = logger
    }

    // MARK: One call

    /// One call without a body; the 2xx answer decoded as `Answer`.
    public func call<Answer: Decodable>(
        _ method: String,
        _ path: String,
        as type: Answer.Type,
        timeout: Duration? = nil
    ) async throws(ServiceCallError) -> Answer {
        let response = try await self.send(
            method,
            path,
            body: nil,
            contentType: nil,
            timeout: timeout,
            maxResponseBytes: nil
        )
        return try self.decode(type, response)
    }

    /// One call with `body` encoded as JSON; the 2xx answer decoded as `Answer`.
    public func call<Answer: Decodable>(
        _ method: String,
        _ path: String,
        body: some Encodable,
        as type: Answer.Type,
        timeout: Duration? = nil
    ) async throws(ServiceCallError) -> Answer {
        let bytes = try self.encode(body)
        let response = try await self.send(
            method,
            path,
            body: bytes,
            contentType: "application/json",
            timeout: timeout,
            maxResponseBytes: nil
        )
        return try self.decode(type, response)
    }

    /// One call with raw bytes (a file to sign, say); returns the 2xx answer's raw body (a signature, a key).
    /// Non-2xx answers fail as in `call`.
    public func callRaw(
        _ method: String,
        _ path: String,
        body: [UInt8]? = nil,
        contentType: String? = nil,
        timeout: Duration? = nil,
        maxResponseBytes: Int? = nil
    ) async throws(ServiceCallError) -> [UInt8] {
        try await self.send(
            method,
            path,
            body: body,
            contentType: contentType,
            timeout: timeout,
            maxResponseBytes: maxResponseBytes
        ).body
    }

    // MARK: Retrying

    /// `call` retried with bounded exponential backoff while the failure `isTransient` (no answer, or 5xx): a 4xx
    /// answer, a malformed answer and cancellation end it at once. After `policy.attempts` the last error is thrown.
    public func callRetrying<Answer: Decodable>(
        _ method: String,
        _ path: String,
        as type: Answer.Type,
        timeout: Duration? = nil,
        policy: RetryPolicy = .default
    ) async throws(ServiceCallError) -> Answer {
        try await self.retrying(path, policy: policy) { () async throws(ServiceCallError) -> Answer in
            try await self.call(method, path, as: type, timeout: timeout)
        }
    }

    /// `call` with a JSON body, retried as `callRetrying(_:_:as:timeout:policy:)`. The body is encoded once.
    public func callRetrying<Answer: Decodable>(
        _ method: String,
        _ path: String,
        body: some Encodable,
        as type: Answer.Type,
        timeout: Duration? = nil,
        policy: RetryPolicy = .default
    ) async throws(ServiceCallError) -> Answer {
        let bytes = try self.encode(body)
        return try await self.retrying(path, policy: policy) { () async throws(ServiceCallError) -> Answer in
            let response = try await self.send(
                method,
                path,
                body: bytes,
                contentType: "application/json",
                timeout: timeout,
                maxResponseBytes: nil
            )
            return try self.decode(type, response)
        }
    }

    /// Runs `operation` until it succeeds, fails with an error `isTransient` rejects (by default
    /// `ServiceCallError.isTransient`), or `policy.attempts` are used up. Waits `initialDelay`, doubling up to
    /// `maxDelay`, between attempts, and logs each retry at warning level. `what` names the call in the log.
    public func retrying<T>(
        _ what: String,
        policy: RetryPolicy = .default,
        isTransient: (ServiceCallError) -> Bool = { $0.isTransient },
        _ operation: () async throws(ServiceCallError) -> T
    ) async throws(ServiceCallError) -> T {
        var delay = policy.initialDelay
        var attempt = 1
        while true {
            do {
                return try await operation()
            } catch {
                guard isTransient(error), attempt < policy.attempts else { throw error }
                self.logger.warning(
                    "service call failed; retrying",
                    metadata: [
                        "service": "\(self.name)", "what": "\(what)", "attempt": "\(attempt)", "error": "\(error)",
                    ]
                )
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw ServiceCallError(code: .cancelled, service: self.name)
                }
                delay = min(delay * 2, policy.maxDelay)
                attempt += 1
            }
        }
    }

    // MARK: Plumbing

    private func send(
        _ method: String,
        _ path: String,
        body: [UInt8]?,
        contentType: String?,
        timeout: Duration?,
        maxResponseBytes: Int?
    ) async throws(ServiceCallError) -> HTTPClientResponse {
        var headers: [(String, String)] = []
        if let secret = self.secret {
            let field = secret.authorizationField
            headers.append((field.name, field.value))
        }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let response: HTTPClientResponse
        do {
            response = try await self.http.request(
                method: method,
                url: self.baseURL + path,
                headers: headers,
                body: body,
                timeout: timeout ?? self.timeout,
                maxResponseBytes: maxResponseBytes ?? self.maxResponseBytes
            )
        } catch let error as HTTPClientError {
            if error.code == .cancelled { throw ServiceCallError(code: .cancelled, service: self.name) }
            throw ServiceCallError(code: .transport, service: self.name, underlyingError: error)
        } catch {
            throw ServiceCallError(code: .cancelled, service: self.name)
        }
        guard (200..<300).contains(response.status) else {
            throw ServiceCallError(
                code: .status,
                service: self.name,
                status: response.status,
                serverMessage: Self.errorText(response.body)
            )
        }
        return response
    }

    private func encode(_ body: some Encodable) throws(ServiceCallError) -> [UInt8] {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            return Array(try encoder.encode(body))
        } catch {
            throw ServiceCallError(code: .malformedRequest, service: self.name, serverMessage: "\(type(of: body))")
        }
    }

    private func decode<Answer: Decodable>(
        _ type: Answer.Type,
        _ response: HTTPClientResponse
    ) throws(ServiceCallError) -> Answer {
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            let what = (error as? DecodingError).map(DecodingErrorText.message) ?? "not decodable"
            throw ServiceCallError(
                code: .malformedAnswer,
                service: self.name,
                status: response.status,
                serverMessage: "\(Answer.self): \(what)"
            )
        }
    }

    private struct ErrorAnswer: Decodable {
        let error: String
    }

    /// The `error` string of a JSON error answer, cut to 500 characters; nil for any other body.
    static func errorText(_ body: [UInt8]) -> String? {
        guard !body.isEmpty, let answer = try? JSONDecoder().decode(ErrorAnswer.self, from: Data(body)) else {
            return nil
        }
        return answer.error.count > 500 ? String(answer.error.prefix(500)) + "…" : answer.error
    }
}
