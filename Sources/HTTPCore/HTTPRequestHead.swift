/// How a request's body is framed (RFC 9112 §6).
public enum HTTPBodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

/// The request line and header block of one request.
public struct HTTPRequestHead: Sendable {
    public var method: String
    /// The request target as sent (origin form, e.g. `/api_3/build/1?x=y`).
    public var target: String
    public var versionMajor: Int
    public var versionMinor: Int
    public var headers: HTTPHeaders
    public var framing: HTTPBodyFraming

    public init(
        method: String,
        target: String,
        versionMajor: Int = 1,
        versionMinor: Int = 1,
        headers: HTTPHeaders = HTTPHeaders(),
        framing: HTTPBodyFraming = .none
    ) {
        self.method = method
        self.target = target
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.headers = headers
        self.framing = framing
    }

    /// The raw (still percent-encoded) path part of the target.
    public var rawPath: Substring {
        if let q = self.target.firstIndex(of: "?") { return self.target[..<q] }
        return Substring(self.target)
    }

    /// The raw query string after `?`, if any.
    public var rawQuery: Substring? {
        guard let q = self.target.firstIndex(of: "?") else { return nil }
        return self.target[self.target.index(after: q)...]
    }

    /// Whether the connection may be reused after this request (RFC 9112 §9.3).
    public var keepAlive: Bool {
        if self.headers.hasToken("close", in: "Connection") { return false }
        if self.versionMajor == 1 && self.versionMinor == 0 {
            return self.headers.hasToken("keep-alive", in: "Connection")
        }
        return true
    }

    /// True for `Expect: 100-continue` in an HTTP/1.1 request. RFC 9110 §10.1.1: a server MUST ignore that
    /// expectation in an HTTP/1.0 request.
    public var expectsContinue: Bool {
        guard self.versionMajor > 1 || (self.versionMajor == 1 && self.versionMinor >= 1) else { return false }
        guard let e = self.headers["Expect"] else { return false }
        return asciiCaseInsensitiveEquals(e.trimmingOWS(), "100-continue")
    }
}
