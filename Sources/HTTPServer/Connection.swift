import AtomicFile
import Dispatch
import HTTPCore
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One accepted socket.
///
/// `@unchecked Sendable` invariant: every mutable property is touched only on `queue` (a serial queue). The read
/// source, write source and timer all deliver on that queue, and handler results hop back onto it.
final class Connection: @unchecked Sendable {
    enum Phase {
        /// Between requests; nothing of the next one has arrived.
        case idle
        /// Part of a head has arrived.
        case head
        /// The head is in; the handler's `.pending` admission is deciding on it. Nothing more is read meanwhile.
        case admitting
        /// Receiving the body of `currentHead`.
        case body
        /// The handler owns the request; pipelined input waits in `input`.
        case handling
        /// A final response is being flushed; input is read and discarded until the peer closes or a short deadline.
        case lingering
        case closed
    }

    let fd: Int32
    let queue: DispatchQueue
    let server: Server
    let remoteAddress: String
    /// The remote IP address, the key of the per-client limits.
    let client: String
    let readSource: any DispatchSourceRead
    var writeSource: (any DispatchSourceWrite)?
    let timer: any DispatchSourceTimer
    var readSuspended = false
    var writeSuspended = true
    var pendingCancels = 0

    var phase: Phase = .idle
    var input = ByteQueue()
    var parser: HTTPRequestParser
    var currentHead: HTTPRequestHead?
    var policy: HTTPBodyPolicy = .memory(maxBytes: 0)
    var bodyBytes: [UInt8] = []
    var bodySize = 0
    var bodyFileFD: Int32 = -1
    var bodyFilePath: String?
    /// Bytes of the server's spool quota this request holds (its declared length, or what a chunked body brought).
    var spoolReservation = 0
    /// True while this request counts as one of its client's uploads.
    var holdsUploadSlot = false
    /// The minimum-rate window of the body being received: when it started and the bytes it brought so far.
    var windowStart: DispatchTime = .now()
    var windowBytes = 0

    /// Names of spool files start with this (so that a restarted server can find its dead predecessor's).
    static let spoolFilePrefix = "koper-body-"

    var output: [UInt8] = []
    var outputOffset = 0
    /// A file body being sent after `output` drains (at most one: the next request waits until it is done).
    var fileStream: FileStream?
    var closeAfterWrite = false
    var peerClosed = false
    /// Set while `process()` runs, so that a flush from inside it (a 100 Continue) does not re-enter it.
    var processing = false

    /// When the current phase started making us wait (for deadlines).
    var phaseStart: DispatchTime = .now()
    var lastProgress: DispatchTime = .now()
    var timerFireAt: DispatchTime = .distantFuture

    init(fd: Int32, queue: DispatchQueue, server: Server, remoteAddress: String = "", client: String = "") {
        self.fd = fd
        self.queue = queue
        self.server = server
        self.remoteAddress = remoteAddress
        self.client = client
        self.parser = HTTPRequestParser(limits: server.configuration.limits)
        self.readSource = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        self.timer = DispatchSource.makeTimerSource(queue: queue)
    }

    var config: HTTPServerConfiguration { self.server.configuration }

    func start() {
        self.pendingCancels = 1
        self.readSource.setEventHandler { [self] in self.onReadable() }
        self.readSource.setCancelHandler { [self] in self.sourceCancelled() }
        self.timer.setEventHandler { [self] in self.onTimer() }
        self.queue.async {
            self.phaseStart = .now()
            self.schedule(at: self.phaseStart + self.config.idleTimeout.dispatchInterval)
            self.timer.resume()
            self.readSource.resume()
        }
    }

    // MARK: Reading

    func onReadable() {
        if self.phase == .closed { return }
        let chunkSize = 64 * 1024
        withUnsafeTemporaryAllocation(byteCount: chunkSize, alignment: 16) { buffer in
            var discarded = 0
            while true {
                let n = retryingOnInterrupt { read(self.fd, buffer.baseAddress, chunkSize) }
                if n > 0 {
                    if self.phase == .lingering {
                        // Drop input, but yield now and then: a peer that never stops sending must not pin this
                        // queue (the lingering deadline runs on it). The source fires again for the rest.
                        discarded += n
                        if discarded >= 16 * chunkSize { break }
                        continue
                    }
                    self.input.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    self.lastProgress = .now()
                    if self.phase == .idle {
                        self.phase = .head
                        self.phaseStart = self.lastProgress
                        self.scheduleEarlier(self.phaseStart + self.config.headTimeout.dispatchInterval)
                    }
                    if self.input.readableCount >= self.config.maxBufferedInput { break }
                    if n < chunkSize { break }
                } else if n == 0 {
                    self.peerClosed = true
                    self.suspendReading()
                    break
                } else {
                    let e = errno
                    if e == EAGAIN || e == EWOULDBLOCK { break }
                    self.close()
                    return
                }
            }
        }
        if self.phase == .lingering {
            if self.peerClosed { self.close() }
            return
        }
        self.process()
    }

    /// Parses and acts on buffered input until it needs more bytes or must wait for the handler / the writer.
    func process() {
        if self.processing { return }  // the outer call's loop picks up whatever changed
        self.processing = true
        defer { self.processing = false }
        while self.phase != .handling && self.phase != .admitting && self.phase != .closed && self.phase != .lingering
            && !self.hasPendingOutput
        {
            let event: HTTPParserEvent?
            do {
                event = try self.parser.next(&self.input)
            } catch {
                self.fail(status: error.status, reason: error.reason)
                return
            }
            guard let event else { break }
            switch event {
            case .head(let head):
                self.onHead(head)
            case .body(let chunk):
                self.onBody(chunk)
            case .end:
                self.dispatchRequest()
            }
        }
        if self.phase == .handling && self.input.readableCount >= self.config.maxBufferedInput {
            self.suspendReading()  // pipelined input beyond the bound waits in the kernel
        }
        if self.phase == .head && self.input.isEmpty && self.parser.isAtRequestBoundary {
            self.phase = .idle
        }
        if self.peerClosed && !self.hasPendingOutput {
            switch self.phase {
            case .idle, .head, .body:
                self.close()
            default:
                break
            }
        }
    }

    func onHead(_ head: HTTPRequestHead) {
        self.currentHead = head
        let handler = self.server.handler
        self.policy = handler.bodyPolicy(for: head)
        self.bodyBytes = []
        self.bodySize = 0
        // The application decides on the head before a single body byte is read (decision 0011).
        switch handler.admission(for: head, remoteAddress: self.remoteAddress) {
        case .admit:
            self.beginBody(head)
        case .refuse(let response):
            self.refuse(response)
        case .pending(let decide):
            self.phase = .admitting
            self.phaseStart = .now()
            self.suspendReading()
            decide { verdict in self.queue.async { self.admitted(verdict, head: head) } }
        }
    }

    /// The verdict of a `.pending` admission, on the connection's queue.
    func admitted(_ verdict: HTTPAdmission, head: HTTPRequestHead) {
        guard self.phase == .admitting else {
            // The connection closed while the application decided.
            if case .refuse(let response) = verdict { response.discardFile() }
            return
        }
        switch verdict {
        case .admit:
            self.resumeReading()
            self.beginBody(head)
            self.process()
        case .refuse(let response):
            self.refuse(response)
        case .pending:
            self.fail(status: 500, reason: "Internal error")
        }
    }

    /// After admission: the per-route cap, the client's upload slot and the spool quota, then the body phase.
    func beginBody(_ head: HTTPRequestHead) {
        if case .contentLength(let n) = head.framing, n > self.policy.maxBytes {
            self.fail(status: 413, reason: "Request body too large")
            return
        }
        if head.framing != .none, case .file = self.policy {
            guard self.server.beginUpload(client: self.client) else {
                self.fail(status: 429, reason: "Too many uploads from this client at once", retryAfter: 5)
                return
            }
            self.holdsUploadSlot = true
            var declared = 0
            if case .contentLength(let n) = head.framing { declared = n }
            guard self.server.reserveSpool(declared) else {
                self.fail(status: 503, reason: "Upload storage is full, try again later", retryAfter: 30)
                return
            }
            self.spoolReservation = declared
            guard self.openBodyFile() else {
                self.fail(status: 500, reason: "Cannot store request body")
                return
            }
        }
        // State first: the flush below may close the connection, and nothing may change it after that.
        self.phase = .body
        self.lastProgress = .now()
        if head.framing != .none {
            self.windowStart = self.lastProgress
            self.windowBytes = 0
            self.scheduleEarlier(self.windowStart + self.config.bodyRateWindow.dispatchInterval)
        }
        if head.framing != .none && head.expectsContinue {
            self.output.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
            self.flush()
        }
    }

    func onBody(_ chunk: ArraySlice<UInt8>) {
        self.bodySize += chunk.count
        self.windowBytes += chunk.count
        if self.bodySize > self.policy.maxBytes {
            self.fail(status: 413, reason: "Request body too large")
            return
        }
        switch self.policy {
        case .memory:
            self.bodyBytes.append(contentsOf: chunk)
        case .file:
            if self.bodySize > self.spoolReservation {
                // A chunked body takes its share of the quota as it grows (1 MiB at a time).
                let more = max(self.bodySize - self.spoolReservation, 1 << 20)
                guard self.server.reserveSpool(more) else {
                    self.fail(status: 503, reason: "Upload storage is full, try again later", retryAfter: 30)
                    return
                }
                self.spoolReservation += more
            }
            let ok = (try? FileDescriptor(rawValue: self.bodyFileFD).writeAll(chunk)) != nil
            if !ok { self.fail(status: 500, reason: "Cannot store request body") }
        }
    }

    func openBodyFile() -> Bool {
        let random = UInt64.random(in: .min ... .max)
        let path = "\(self.config.temporaryDirectory)/\(Self.spoolFilePrefix)\(String(random, radix: 16))"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        self.bodyFileFD = fd
        self.bodyFilePath = path
        return true
    }

    func discardBodyFile() {
        if self.bodyFileFD >= 0 {
            Glibc.close(self.bodyFileFD)
            self.bodyFileFD = -1
        }
        if let p = self.bodyFilePath {
            unlink(p)
            self.bodyFilePath = nil
        }
        self.releaseUpload()
    }

    /// Gives back the spool quota and the client's upload slot this request holds.
    func releaseUpload() {
        self.server.releaseSpool(self.spoolReservation)
        self.spoolReservation = 0
        if self.holdsUploadSlot {
            self.holdsUploadSlot = false
            self.server.endUpload(client: self.client)
        }
    }

    func dispatchRequest() {
        guard let head = self.currentHead else { return }
        self.phase = .handling
        let body: HTTPRequestBody
        // A spooled file now belongs to the handler's task, which deletes it once the handler has returned, even
        // if the connection is gone by then (`close()` must not pull the file from under a running handler).
        let spooledPath = self.bodyFilePath
        // So do its share of the spool quota and its upload slot: given back once the file is gone.
        let reservation = self.spoolReservation
        let uploadClient = self.holdsUploadSlot ? self.client : nil
        self.spoolReservation = 0
        self.holdsUploadSlot = false
        if let path = spooledPath {
            Glibc.close(self.bodyFileFD)
            self.bodyFileFD = -1
            self.bodyFilePath = nil
            body = .file(path: path, size: self.bodySize)
        } else if self.bodyBytes.isEmpty {
            body = .empty
        } else {
            body = .bytes(self.bodyBytes)
        }
        self.bodyBytes = []
        let request = HTTPRequest(head: head, body: body, remoteAddress: self.remoteAddress)
        let handler = self.server.handler
        let server = self.server
        if spooledPath == nil,
            handler.handleInline(
                request,
                respond: { response in self.queue.async { self.respond(response, to: head) } }
            )
        {
            return
        }
        Task {
            let response = await handler.handle(request)
            if let spooledPath { unlink(spooledPath) }
            server.releaseSpool(reservation)
            if let uploadClient { server.endUpload(client: uploadClient) }
            self.queue.async { self.respond(response, to: head) }
        }
    }

    func respond(_ response: HTTPResponse, to head: HTTPRequestHead) {
        guard self.phase == .handling else {
            // The connection went away while the handler ran: the file body it handed over is ours to close.
            if let file = response.file { closeDescriptor(file.descriptor) }
            return
        }
        // After the peer's end of stream, keep answering requests it already sent; the last one says close.
        let keepAlive = head.keepAlive && !self.server.isDraining && !(self.peerClosed && self.input.isEmpty)
        var bytes = response.serializeHead(keepAlive: keepAlive)
        if keepAlive && head.versionMajor == 1 && head.versionMinor == 0 {
            // An HTTP/1.0 client keeps the connection only if told so (RFC 9112 §C.2.2).
            bytes.removeLast(2)
            bytes.append(contentsOf: "Connection: keep-alive\r\n\r\n".utf8)
        }
        // HEAD and the statuses that never have a body (1xx, 204, 304) send the head alone.
        let sendsBody = head.method != "HEAD" && response.hasBody
        self.currentHead = nil
        self.phase = self.input.isEmpty ? .idle : .head
        self.phaseStart = .now()
        self.lastProgress = self.phaseStart
        if self.phase == .head {
            // Part of a pipelined head is already here: its head deadline runs from now.
            self.scheduleEarlier(self.phaseStart + self.config.headTimeout.dispatchInterval)
        }
        if !keepAlive { self.closeAfterWrite = true }
        if let file = response.file {
            // The head goes out first; the file follows in bounded chunks as the socket drains (see `flush`).
            self.output.append(contentsOf: bytes)
            if sendsBody && file.length > 0 {
                self.fileStream = FileStream(file)
            } else {
                closeDescriptor(file.descriptor)
            }
        } else if self.output.isEmpty && sendsBody {
            self.output = bytes
            self.output.append(contentsOf: response.body)
        } else {
            self.output.append(contentsOf: bytes)
            if sendsBody { self.output.append(contentsOf: response.body) }
        }
        self.resumeReading()
        self.flush()
    }

    /// A refusal the server makes itself: send the error and close (the stream cannot be resynchronised).
    func fail(status: Int, reason: String, retryAfter: Int? = nil) {
        var response = self.server.handler.errorResponse(status: status, reason: reason, head: self.currentHead)
        if let retryAfter { response.headers.replaceOrAdd(name: "Retry-After", value: "\(retryAfter)") }
        self.server.logger.debug(
            "refusing request",
            metadata: ["http.status": "\(status)", "http.reason": "\(reason)"]
        )
        self.refuse(response)
    }

    /// Sends `response` (from memory) and closes with the lingering half-close; whatever body the client sends
    /// meanwhile is read and dropped, never stored.
    func refuse(_ refusal: HTTPResponse) {
        self.discardBodyFile()
        if self.fileStream != nil {
            // Not reachable today (refusals happen only between responses); a half-sent body cannot be followed.
            refusal.discardFile()
            self.close()
            return
        }
        var response = refusal
        if let file = response.file {
            // Refusals are sent from memory; a file body here is closed unsent.
            closeDescriptor(file.descriptor)
            response.file = nil
        }
        self.output.append(contentsOf: response.serializeHead(keepAlive: false))
        if self.currentHead?.method != "HEAD" { self.output.append(contentsOf: response.body) }
        self.closeAfterWrite = true
        self.phase = .lingering
        self.phaseStart = .now()
        self.scheduleEarlier(self.phaseStart + .seconds(2))
        self.flush()
    }

    // MARK: Writing

    func flush() {
        if self.phase == .closed { return }
        while self.outputOffset < self.output.count {
            // MSG_MORE: a file body follows, so the head need not leave in a segment of its own.
            let flags = Int32(MSG_NOSIGNAL) | (self.fileStream != nil ? Int32(MSG_MORE) : 0)
            let n = retryingOnInterrupt {
                self.output.withUnsafeBytes { raw in
                    send(self.fd, raw.baseAddress! + self.outputOffset, raw.count - self.outputOffset, flags)
                }
            }
            if n > 0 {
                self.outputOffset += n
                self.lastProgress = .now()
                continue
            }
            let e = errno
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                self.armWriteSource()
                return
            }
            self.close()
            return
        }
        self.output.removeAll(keepingCapacity: self.output.capacity <= 256 * 1024)
        self.outputOffset = 0
        if self.fileStream != nil {
            switch self.sendFile() {
            case .done:
                self.fileStream = nil
            case .blocked:
                self.armWriteSource()
                return
            case .yielded:
                // Give the queue's other work (timer, other connections on the target queue) a turn.
                self.suspendReading()
                self.queue.async { [self] in self.flush() }
                return
            case .failed:
                self.close()
                return
            }
        }
        if let w = self.writeSource, !self.writeSuspended {
            w.suspend()
            self.writeSuspended = true
        }
        if !self.closeAfterWrite && (self.phase == .idle || self.phase == .head) {
            // While output was pending only the write deadline ran (and reading was paused): the idle or head
            // clock starts now that the response has left.
            if self.phase == .idle && self.server.isDraining {
                self.close()
                return
            }
            self.phaseStart = .now()
            self.scheduleEarlier(self.phaseDeadline(now: self.phaseStart))
        }
        if self.closeAfterWrite {
            if self.phase == .lingering && !self.peerClosed {
                // Half-close and keep draining briefly so the peer reads the response instead of a reset.
                shutdown(self.fd, Int32(SHUT_WR))
                self.resumeReading()
            } else {
                self.close()
            }
            return
        }
        if self.phase != .handling && self.phase != .admitting { self.resumeReading() }
        self.process()
    }

    func armWriteSource() {
        // Backpressure: stop reading new requests until the peer drains what we owe it.
        self.suspendReading()
        if self.writeSource == nil {
            let w = DispatchSource.makeWriteSource(fileDescriptor: self.fd, queue: self.queue)
            w.setEventHandler { [self] in self.flush() }
            w.setCancelHandler { [self] in self.sourceCancelled() }
            self.pendingCancels += 1
            self.writeSource = w
        }
        if self.writeSuspended {
            self.writeSuspended = false
            self.writeSource?.resume()
        }
    }

    func suspendReading() {
        if !self.readSuspended {
            self.readSuspended = true
            self.readSource.suspend()
        }
    }

    func resumeReading() {
        if self.readSuspended && !self.peerClosed {
            self.readSuspended = false
            self.readSource.resume()
        }
    }

    // MARK: Deadlines

    func schedule(at deadline: DispatchTime) {
        self.timerFireAt = deadline
        self.timer.schedule(deadline: deadline, leeway: .milliseconds(250))
    }

    func scheduleEarlier(_ deadline: DispatchTime) {
        if deadline < self.timerFireAt { self.schedule(at: deadline) }
    }

    /// When the current phase runs out of time (with no output pending).
    func phaseDeadline(now: DispatchTime) -> DispatchTime {
        switch self.phase {
        case .closed:
            return .distantFuture
        case .idle:
            return self.phaseStart + self.config.idleTimeout.dispatchInterval
        case .head:
            return min(
                self.phaseStart + self.config.headTimeout.dispatchInterval,
                self.lastProgress + self.config.idleTimeout.dispatchInterval
            )
        case .body:
            return min(
                self.lastProgress + self.config.ioTimeout.dispatchInterval,
                self.windowStart + self.config.bodyRateWindow.dispatchInterval
            )
        case .handling, .admitting:
            // The handler is bounded by its own timeouts; just look again later.
            return now + self.config.idleTimeout.dispatchInterval
        case .lingering:
            return self.phaseStart + .seconds(2)
        }
    }

    func onTimer() {
        // The one-shot timer has fired: nothing is scheduled until this handler (or `scheduleEarlier`) says so.
        self.timerFireAt = .distantFuture
        let now = DispatchTime.now()
        if self.phase == .closed { return }
        if self.hasPendingOutput && self.phase != .lingering {
            // Output is pending (a slow reader): only the write deadline applies; the idle and head clocks of
            // this phase must not cut a response the peer is still reading.
            let writeDeadline = self.lastProgress + self.config.ioTimeout.dispatchInterval
            if now >= writeDeadline {
                self.close()
            } else {
                self.schedule(at: writeDeadline)
            }
            return
        }
        if self.phase == .body && now >= self.windowStart + self.config.bodyRateWindow.dispatchInterval {
            // The minimum body rate: progress alone (one byte every few seconds) does not keep a body alive.
            var required = self.config.minBodyBytesPerWindow
            if case .contentLength(let n)? = self.currentHead?.framing {
                required = min(required, n - (self.bodySize - self.windowBytes))
            }
            if self.windowBytes < required {
                self.fail(status: 408, reason: "Request body arrives too slowly")
                return
            }
            self.windowStart = now
            self.windowBytes = 0
        }
        let deadline = self.phaseDeadline(now: now)
        if now >= deadline {
            switch self.phase {
            case .head:
                self.fail(status: 408, reason: "Request head not received in time")
            default:
                self.close()
            }
            return
        }
        self.schedule(at: deadline)
    }

    // MARK: Closing

    /// Used while draining: closes the connection if no request is in progress.
    func closeIfIdle() {
        if self.phase == .idle && !self.hasPendingOutput { self.close() }
    }

    func close() {
        if self.phase == .closed { return }
        self.phase = .closed
        self.discardBodyFile()
        if let stream = self.fileStream {
            stream.release()
            self.fileStream = nil
        }
        self.timer.cancel()
        if self.readSuspended {
            self.readSuspended = false
            self.readSource.resume()
        }
        self.readSource.cancel()
        if let w = self.writeSource {
            if self.writeSuspended {
                self.writeSuspended = false
                w.resume()
            }
            w.cancel()
        }
        self.server.connectionClosed(self)
    }

    func sourceCancelled() {
        self.pendingCancels -= 1
        if self.pendingCancels == 0 {
            Glibc.close(self.fd)
        }
    }
}

extension Duration {
    var dispatchInterval: DispatchTimeInterval {
        let (s, atto) = self.components
        return .nanoseconds(Int(s) * 1_000_000_000 + Int(atto / 1_000_000_000))
    }
}
