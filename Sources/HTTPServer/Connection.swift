import Dispatch
import HTTPCore
import Logging

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

    var output: [UInt8] = []
    var outputOffset = 0
    var closeAfterWrite = false
    var peerClosed = false

    /// When the current phase started making us wait (for deadlines).
    var phaseStart: DispatchTime = .now()
    var lastProgress: DispatchTime = .now()
    var timerFireAt: DispatchTime = .distantFuture

    init(fd: Int32, queue: DispatchQueue, server: Server) {
        self.fd = fd
        self.queue = queue
        self.server = server
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

    /// Over the connection cap: a best-effort 503, then close.
    func refuseAndClose() {
        let response = self.server.handler.errorResponse(status: 503, reason: "Too many connections", head: nil)
        let bytes = response.serializeHead(keepAlive: false) + response.body
        _ = bytes.withUnsafeBytes { send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Glibc.close(self.fd)
    }

    // MARK: Reading

    func onReadable() {
        if self.phase == .closed { return }
        let chunkSize = 64 * 1024
        withUnsafeTemporaryAllocation(byteCount: chunkSize, alignment: 16) { buffer in
            while true {
                let n = read(self.fd, buffer.baseAddress, chunkSize)
                if n > 0 {
                    if self.phase == .lingering { continue }
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
                    if e == EINTR { continue }
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
        while self.phase != .handling && self.phase != .closed && self.phase != .lingering && self.output.isEmpty {
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
        if self.peerClosed && self.output.isEmpty {
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
        self.policy = self.server.handler.bodyPolicy(for: head)
        self.bodyBytes = []
        self.bodySize = 0
        if case .contentLength(let n) = head.framing, n > self.policy.maxBytes {
            self.fail(status: 413, reason: "Request body too large")
            return
        }
        if head.framing != .none {
            if case .file = self.policy {
                guard self.openBodyFile() else {
                    self.fail(status: 500, reason: "Cannot store request body")
                    return
                }
            }
            if head.expectsContinue {
                self.output.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
                self.flush()
            }
        }
        self.phase = .body
        self.lastProgress = .now()
    }

    func onBody(_ chunk: ArraySlice<UInt8>) {
        self.bodySize += chunk.count
        if self.bodySize > self.policy.maxBytes {
            self.fail(status: 413, reason: "Request body too large")
            return
        }
        switch self.policy {
        case .memory:
            self.bodyBytes.append(contentsOf: chunk)
        case .file:
            var ok = true
            chunk.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(self.bodyFileFD, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        ok = false
                        return
                    }
                    offset += n
                }
            }
            if !ok { self.fail(status: 500, reason: "Cannot store request body") }
        }
    }

    func openBodyFile() -> Bool {
        let random = UInt64.random(in: .min ... .max)
        let path = "\(self.config.temporaryDirectory)/koper-body-\(String(random, radix: 16))"
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
    }

    func dispatchRequest() {
        guard let head = self.currentHead else { return }
        self.phase = .handling
        let body: HTTPRequestBody
        if let path = self.bodyFilePath {
            Glibc.close(self.bodyFileFD)
            self.bodyFileFD = -1
            body = .file(path: path, size: self.bodySize)
        } else if self.bodyBytes.isEmpty {
            body = .empty
        } else {
            body = .bytes(self.bodyBytes)
        }
        self.bodyBytes = []
        let request = HTTPRequest(head: head, body: body)
        let handler = self.server.handler
        Task {
            let response = await handler.handle(request)
            self.queue.async { self.respond(response, to: head) }
        }
    }

    func respond(_ response: HTTPResponse, to head: HTTPRequestHead) {
        if let path = self.bodyFilePath {
            unlink(path)
            self.bodyFilePath = nil
        }
        guard self.phase == .handling else { return }
        let keepAlive = head.keepAlive && !self.server.isDraining && !self.peerClosed
        var bytes = response.serializeHead(keepAlive: keepAlive)
        if head.method != "HEAD" { bytes.append(contentsOf: response.body) }
        self.currentHead = nil
        self.phase = self.input.isEmpty ? .idle : .head
        self.phaseStart = .now()
        self.lastProgress = self.phaseStart
        if !keepAlive { self.closeAfterWrite = true }
        self.output.append(contentsOf: bytes)
        self.resumeReading()
        self.flush()
    }

    /// A refusal the server makes itself: send the error and close (the stream cannot be resynchronised).
    func fail(status: Int, reason: String) {
        self.discardBodyFile()
        let response = self.server.handler.errorResponse(status: status, reason: reason, head: self.currentHead)
        self.server.logger.debug("refusing request", metadata: ["http.status": "\(status)", "http.reason": "\(reason)"])
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
            let n = self.output.withUnsafeBytes { raw in
                send(self.fd, raw.baseAddress! + self.outputOffset, raw.count - self.outputOffset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                self.outputOffset += n
                self.lastProgress = .now()
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                self.armWriteSource()
                return
            }
            self.close()
            return
        }
        self.output.removeAll(keepingCapacity: self.output.capacity <= 256 * 1024)
        self.outputOffset = 0
        if let w = self.writeSource, !self.writeSuspended {
            w.suspend()
            self.writeSuspended = true
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
        if self.phase != .handling { self.resumeReading() }
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

    func onTimer() {
        let now = DispatchTime.now()
        let deadline: DispatchTime
        switch self.phase {
        case .closed:
            return
        case .idle:
            deadline = self.phaseStart + self.config.idleTimeout.dispatchInterval
        case .head:
            deadline = min(self.phaseStart + self.config.headTimeout.dispatchInterval, self.lastProgress + self.config.idleTimeout.dispatchInterval)
        case .body:
            deadline = self.lastProgress + self.config.ioTimeout.dispatchInterval
        case .handling:
            // The handler is bounded by its own timeouts; an unflushed write is bounded by ioTimeout.
            deadline = self.output.isEmpty ? now + self.config.idleTimeout.dispatchInterval : self.lastProgress + self.config.ioTimeout.dispatchInterval
        case .lingering:
            deadline = self.phaseStart + .seconds(2)
        }
        if !self.output.isEmpty && self.phase != .lingering {
            let writeDeadline = self.lastProgress + self.config.ioTimeout.dispatchInterval
            if now >= writeDeadline {
                self.close()
                return
            }
        }
        if now >= deadline {
            switch self.phase {
            case .head where self.output.isEmpty:
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
        if self.phase == .idle && self.output.isEmpty { self.close() }
    }

    func close() {
        if self.phase == .closed { return }
        self.phase = .closed
        self.discardBodyFile()
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
