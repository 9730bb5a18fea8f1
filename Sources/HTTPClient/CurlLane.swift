internal import AtomicFile
internal import CCurl
internal import Dispatch
internal import Synchronization

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Set from a task's cancellation handler, read by the transfer's write callback on the lane's queue.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { self.flag.store(true, ordering: .relaxed) }
    var isSet: Bool { self.flag.load(ordering: .relaxed) }
}

/// One transfer to run on a lane. Everything in it is a value, so it may cross to the lane's queue.
struct CurlJob: Sendable {
    enum Sink: Sendable {
        case memory
        /// Written to a temporary sibling of `path`, renamed over `path` only after a complete 2xx response.
        case file(path: String)
    }

    var method: String
    var url: String
    var headers: [(String, String)]
    var body: [UInt8]?
    var connectTimeoutMilliseconds: Int
    var timeoutMilliseconds: Int
    var maxBytes: Int
    var maxRedirects: Int
    var userAgent: String
    var sink: Sink
    var cancel: CancelFlag
}

struct CurlOutcome: Sendable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var bytes: Int
}

/// One lane of the client: a serial DispatchQueue that owns one reusable libcurl easy handle.
///
/// `@unchecked Sendable` invariant: `handle` and `errorBuffer` are touched only inside `perform`, which runs only on
/// `queue` (checked with `dispatchPrecondition`), and in `deinit`, when no other reference exists. Blocking
/// `curl_easy_perform` therefore runs on this queue, never on the Swift cooperative pool. The handle is kept between
/// transfers (after `curl_easy_reset`) so connections to the same host are reused.
final class CurlLane: @unchecked Sendable {
    let queue: DispatchQueue
    private var handle: UnsafeMutableRawPointer?
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init(label: String) {
        self.queue = DispatchQueue(label: label)
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if let handle {
            curl_easy_cleanup(handle)
        }
        self.errorBuffer.deallocate()
    }

    func perform(_ job: CurlJob) throws(HTTPClientError) -> CurlOutcome {
        dispatchPrecondition(condition: .onQueue(self.queue))
        let redacted = RedactedURL(job.url)
        guard !job.cancel.isSet else {
            throw HTTPClientError(code: .cancelled, message: "request cancelled")
        }
        let handle: UnsafeMutableRawPointer
        if let existing = self.handle {
            curl_easy_reset(existing)
            handle = existing
        } else {
            guard let created = curl_easy_init() else {
                throw HTTPClientError(code: .transferFailed, message: "curl_easy_init failed")
            }
            self.handle = created
            handle = created
        }
        // Drop the options that point at this transfer's memory (body, header list, context) once it is over.
        defer { curl_easy_reset(handle) }
        self.errorBuffer[0] = 0

        // Destination file: a temporary sibling, created exclusively.
        var partialPath: String?
        var fd: Int32 = -1
        if case .file(let path) = job.sink {
            let candidate = "\(path).partial-\(UInt64.random(in: 0...UInt64.max))"
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let code = errno
                throw HTTPClientError(
                    code: .fileError,
                    message: "cannot create \(candidate): \(String(cString: strerror(code)))"
                )
            }
            partialPath = candidate
        }
        var keepFile = false
        defer {
            if fd >= 0 { close(fd) }
            if let partialPath, !keepFile { unlink(partialPath) }
        }

        let context = TransferContext(handle: handle, maxBytes: job.maxBytes, fd: fd, cancel: job.cancel)
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in job.headers {
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name);" : "\(name): \(value)")
        }
        if job.body != nil && !job.headers.contains(where: { asciiLowercase($0.0) == "expect" }) {
            headerList = curl_slist_append(headerList, "Expect:")  // no 100-continue round trip
        }

        let setup: CURLcode = self.configure(handle, job: job, headers: headerList, context: context)
        guard setup == CURLE_OK else {
            throw HTTPClientError(
                code: .invalidArgument,
                message: "cannot set up request to \(redacted): \(String(cString: curl_easy_strerror(setup)))"
            )
        }

        let started = ContinuousClock.now
        let rc: CURLcode = withExtendedLifetime(context) {
            // The body must stay valid during the transfer: CURLOPT_POSTFIELDS does not copy it.
            let body = job.body ?? []
            return (body.isEmpty ? [0] : body).withUnsafeBufferPointer { buffer in
                if job.body != nil || job.method == "POST" {
                    _ = ccurl_setopt_ptr(
                        handle,
                        CURLOPT_POSTFIELDS,
                        UnsafeMutableRawPointer(mutating: buffer.baseAddress!)
                    )
                    _ = ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
                }
                return curl_easy_perform(handle)
            }
        }
        var status = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)

        if rc != CURLE_OK {
            throw self.error(for: rc, context: context, redacted: redacted, elapsed: started.duration(to: .now))
        }
        if let partialPath, case .file(let path) = job.sink, (200..<300).contains(status) {
            guard rename(partialPath, path) == 0 else {
                let code = errno
                throw HTTPClientError(
                    code: .fileError,
                    message: "cannot rename download to \(path): \(String(cString: strerror(code)))"
                )
            }
            keepFile = true
        }
        return CurlOutcome(
            status: status,
            headers: Self.responseHeaders(handle),
            body: context.body,
            bytes: context.written
        )
    }

    private func configure(
        _ handle: UnsafeMutableRawPointer,
        job: CurlJob,
        headers: UnsafeMutablePointer<curl_slist>?,
        context: TransferContext
    ) -> CURLcode {
        let steps: [() -> CURLcode] = [
            { ccurl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, self.errorBuffer) },
            { ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1) },
            { ccurl_setopt_str(handle, CURLOPT_URL, job.url) },
            { ccurl_setopt_str(handle, CURLOPT_PROTOCOLS_STR, "http,https") },
            { ccurl_setopt_str(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") },
            // Internal service calls never go through a proxy taken from the environment (http_proxy, …).
            { ccurl_setopt_str(handle, CURLOPT_PROXY, "") },
            { ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, job.connectTimeoutMilliseconds)) },
            { ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, job.timeoutMilliseconds)) },
            { ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, job.maxRedirects > 0 ? 1 : 0) },
            { ccurl_setopt_long(handle, CURLOPT_MAXREDIRS, job.maxRedirects) },
            // A declared Content-Length over the limit fails before any body byte; the write callback catches the rest.
            { ccurl_setopt_long(handle, CURLOPT_MAXFILESIZE, job.maxBytes) },
            { ccurl_setopt_str(handle, CURLOPT_USERAGENT, job.userAgent) },
            { ccurl_setopt_ptr(handle, CURLOPT_HTTPHEADER, headers) },
            { ccurl_setopt_writefunction(handle, transferWriteCallback) },
            { ccurl_setopt_ptr(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(context).toOpaque()) },
            {
                switch job.method {
                case "GET" where job.body == nil: ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1)
                case "HEAD" where job.body == nil: ccurl_setopt_long(handle, CURLOPT_NOBODY, 1)
                case "POST": ccurl_setopt_long(handle, CURLOPT_POST, 1)
                default: ccurl_setopt_str(handle, CURLOPT_CUSTOMREQUEST, job.method)
                }
            },
        ]
        for step in steps {
            let rc = step()
            if rc != CURLE_OK { return rc }
        }
        return CURLE_OK
    }

    private func error(
        for rc: CURLcode,
        context: TransferContext,
        redacted: RedactedURL,
        elapsed: Duration
    )
        -> HTTPClientError
    {
        if context.cancelled || (rc == CURLE_WRITE_ERROR && context.cancel.isSet) {
            return HTTPClientError(code: .cancelled, message: "request to \(redacted) cancelled")
        }
        if context.exceeded || rc == CURLE_FILESIZE_EXCEEDED {
            return HTTPClientError(
                code: .responseTooLarge,
                message: "response from \(redacted) exceeds the limit of \(context.maxBytes) bytes"
            )
        }
        if let fileErrno = context.fileErrno {
            return HTTPClientError(
                code: .fileError,
                message: "writing the download failed: \(String(cString: strerror(fileErrno)))"
            )
        }
        let detail = redacted.scrub(
            self.errorBuffer[0] != 0 ? String(cString: self.errorBuffer) : String(cString: curl_easy_strerror(rc))
        )
        let code: HTTPClientError.Code
        switch rc {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            code = .connectFailed
        case CURLE_OPERATION_TIMEDOUT:
            code = .timeout
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            code = .invalidArgument
        default:
            code = .transferFailed
        }
        return HTTPClientError(
            code: code,
            message: "\(redacted): \(detail) (curl error \(rc.rawValue), after \(elapsed.clampedMilliseconds) ms)"
        )
    }

    /// The header fields of the last response (after redirects), in order, names as the server sent them.
    private static func responseHeaders(_ handle: UnsafeMutableRawPointer) -> [(String, String)] {
        var result: [(String, String)] = []
        var previous: UnsafeMutablePointer<curl_header>?
        while let header = curl_easy_nextheader(handle, UInt32(CURLH_HEADER), -1, previous) {
            result.append((String(cString: header.pointee.name), String(cString: header.pointee.value)))
            previous = header
        }
        return result
    }
}

/// Per-transfer state for the write callback. Created, used and dropped on the lane's queue.
final class TransferContext {
    let handle: UnsafeMutableRawPointer
    let maxBytes: Int
    let fd: Int32
    let cancel: CancelFlag
    var body: [UInt8] = []
    var received = 0
    var written = 0
    var exceeded = false
    var cancelled = false
    var fileErrno: Int32?
    /// For downloads: nil until the first body byte, then whether the status is 2xx (else the body is discarded).
    var keepBody: Bool?

    init(handle: UnsafeMutableRawPointer, maxBytes: Int, fd: Int32, cancel: CancelFlag) {
        self.handle = handle
        self.maxBytes = maxBytes
        self.fd = fd
        self.cancel = cancel
    }

    /// Returns `count` to go on, anything else to make libcurl abort with CURLE_WRITE_ERROR.
    func consume(_ data: UnsafeRawBufferPointer) -> Int {
        if self.cancel.isSet {
            self.cancelled = true
            return 0
        }
        guard data.count <= self.maxBytes - self.received else {
            self.exceeded = true
            return 0
        }
        self.received += data.count
        if self.fd < 0 {
            self.body.append(contentsOf: data)
            return data.count
        }
        if self.keepBody == nil {
            var status = 0
            _ = ccurl_getinfo_long(self.handle, CURLINFO_RESPONSE_CODE, &status)
            self.keepBody = (200..<300).contains(status)
        }
        guard self.keepBody == true else { return data.count }
        var offset = 0
        while offset < data.count {
            let n = retryingOnInterrupt { write(self.fd, data.baseAddress! + offset, data.count - offset) }
            if n < 0 {
                self.fileErrno = errno
                return 0
            }
            offset += n
        }
        self.written += data.count
        return data.count
    }
}

/// libcurl's write callback: a plain C function; the context arrives through CURLOPT_WRITEDATA.
private let transferWriteCallback: curl_write_callback = { pointer, size, count, userdata in
    guard let userdata else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
    let total = size * count
    guard total > 0, let pointer else { return total }
    return context.consume(UnsafeRawBufferPointer(start: pointer, count: total))
}

func asciiLowercase(_ text: String) -> String {
    String(decoding: text.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
}
