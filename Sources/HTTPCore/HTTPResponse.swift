/// A region of an already open file to send as a response body: a pure description, no I/O happens here.
///
/// Ownership: whoever builds an `HTTPResponse` with a file body hands `descriptor` over with it. The HTTP server
/// closes it exactly once: after the last byte is sent, when the response has no body on the wire (HEAD, 204,
/// 304), or when the connection goes away first. Code that builds such a response and then drops it unsent must
/// close the descriptor itself.
public struct HTTPFileBody: Sendable, Hashable {
    /// An open, readable descriptor of a regular file (read with `pread`, so its file offset is never used).
    public var descriptor: Int32
    /// Where in the file the body starts.
    public var offset: Int
    /// How many bytes to send. Fixed when the response is built: a file that grows meanwhile (a live log) is sent
    /// at this length; one that shrinks below it makes the server close the connection mid-body.
    public var length: Int

    public init(descriptor: Int32, offset: Int = 0, length: Int) {
        precondition(offset >= 0 && length >= 0, "file body region must be non-negative")
        self.descriptor = descriptor
        self.offset = offset
        self.length = length
    }
}

/// A response to serialise. The server adds `Content-Length` and `Connection` itself.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// When set, the body is this file region (streamed from disk by the server) and `body` is ignored.
    public var file: HTTPFileBody?

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
        self.file = nil
    }

    /// A response whose body is streamed from `file`; the descriptor now belongs to the response (see
    /// `HTTPFileBody`).
    public static func file(
        status: Int = 200,
        headers: HTTPHeaders = HTTPHeaders(),
        _ file: HTTPFileBody
    ) -> HTTPResponse {
        var response = HTTPResponse(status: status, headers: headers)
        response.file = file
        return response
    }

    /// The number of body bytes: the file region's length for a file body, else `body.count`.
    public var bodyLength: Int { self.file?.length ?? self.body.count }

    public init(status: Int, contentType: String, body: String) {
        self.init(status: status, headers: ["Content-Type": contentType], body: Array(body.utf8))
    }

    /// False for statuses that never carry a body (1xx, 204, 304: RFC 9110 §6.4.1); the server then sends no body
    /// bytes and no `Content-Length`, whatever `body` holds.
    public var hasBody: Bool { self.status >= 200 && self.status != 204 && self.status != 304 }

    /// Serialises the status line and header block. `keepAlive: false` adds `Connection: close`.
    /// A HEAD response keeps the Content-Length of the body it omits.
    public func serializeHead(keepAlive: Bool, contentLength: Int? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + self.headers.count * 32)
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        appendDecimal(self.status, to: &out)
        out.append(32)
        out.append(contentsOf: HTTPStatus.reason(self.status).utf8)
        out.append(contentsOf: "\r\n".utf8)
        for field in self.headers {
            if asciiCaseInsensitiveEquals(field.name, "Content-Length")
                || asciiCaseInsensitiveEquals(field.name, "Connection")
            {
                continue
            }
            // A name that is not a token is dropped and CR, LF and NUL in a value become spaces, so a value taken
            // from a request can never start a new header line or end the head early (response splitting).
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenByte) else { continue }
            out.append(contentsOf: field.name.utf8)
            out.append(contentsOf: ": ".utf8)
            for b in field.value.utf8 {
                out.append(b == 13 || b == 10 || b == 0 ? 32 : b)
            }
            out.append(contentsOf: "\r\n".utf8)
        }
        if self.hasBody {
            out.append(contentsOf: "Content-Length: ".utf8)
            appendDecimal(contentLength ?? self.bodyLength, to: &out)
            out.append(contentsOf: "\r\n".utf8)
        }
        if !keepAlive {
            out.append(contentsOf: "Connection: close\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        return out
    }
}

@inline(__always)
func appendDecimal(_ value: Int, to out: inout [UInt8]) {
    if value == 0 {
        out.append(48)
        return
    }
    var v = value
    var digits: [UInt8] = []
    if v < 0 {
        out.append(45)
        v = -v
    }
    while v > 0 {
        digits.append(UInt8(48 + v % 10))
        v /= 10
    }
    out.append(contentsOf: digits.reversed())
}

public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 416: return "Range Not Satisfiable"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}
