import AtomicFile
import Dispatch
import HTTPCore

#if canImport(Glibc)
import Glibc
#endif

/// The file body a `Connection` is sending: the descriptor handed over in `HTTPResponse.file` plus one bounded
/// buffer. The file is read with `pread`, one chunk at a time, and only once the previous chunk has been accepted by
/// the socket, so a slow reader holds at most one chunk of it in memory.
///
/// `@unchecked Sendable` is not claimed: an instance lives in one `Connection` and is touched only on its queue.
final class FileStream {
    /// Bytes read from the file per `pread` (and the most buffered at once).
    static let chunkSize = 256 * 1024
    /// Bytes sent in one go before `flush` yields the connection's queue (a fast reader must not pin it).
    static let sliceBeforeYield = 4 << 20

    let descriptor: Int32
    /// The file offset of the next `pread`.
    var nextOffset: Int
    /// Bytes of the region not yet read from the file.
    var unread: Int
    let buffer: UnsafeMutableRawBufferPointer
    /// `buffer[start..<end]` has been read but not yet sent.
    var start = 0
    var end = 0
    private var released = false

    init(_ file: HTTPFileBody) {
        self.descriptor = file.descriptor
        self.nextOffset = file.offset
        self.unread = file.length
        self.buffer = .allocate(byteCount: max(1, min(file.length, Self.chunkSize)), alignment: 16)
    }

    /// Closes the descriptor and frees the buffer. Called exactly once, when the body is done or the connection
    /// closes.
    func release() {
        guard !self.released else { return }
        self.released = true
        closeDescriptor(self.descriptor)
        self.buffer.deallocate()
    }

    deinit {
        assert(self.released, "FileStream dropped without release(): descriptor \(self.descriptor) leaked")
    }
}

/// Closes a descriptor handed over in a response. EINTR is not retried: on Linux the descriptor is gone either way.
/// The corresponding C function is `close`.
func closeDescriptor(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}

extension Connection {
    enum FileSendResult {
        /// The whole region has been sent and the stream released.
        case done
        /// The socket is full; wait for the write source.
        case blocked
        /// Sent a large slice; continue on a later turn of the queue.
        case yielded
        /// The file could not be read (or shrank) or the socket failed: the response cannot be completed.
        case failed
    }

    /// True while a response (head or file body) is still owed to the peer.
    var hasPendingOutput: Bool { !self.output.isEmpty || self.fileStream != nil }

    /// Sends as much of the file body as the socket takes, reading the next chunk only when the previous one has
    /// gone. Runs on `queue`, after `output` (the head) has drained.
    func sendFile() -> FileSendResult {
        guard let stream = self.fileStream else { return .done }
        var sent = 0
        while true {
            if stream.start == stream.end {
                if stream.unread == 0 {
                    stream.release()
                    return .done
                }
                if sent >= FileStream.sliceBeforeYield { return .yielded }
                let want = min(stream.unread, stream.buffer.count)
                let n = retryingOnInterrupt {
                    pread(stream.descriptor, stream.buffer.baseAddress, want, off_t(stream.nextOffset))
                }
                if n <= 0 {
                    // A read error, or the file shrank below the length promised in Content-Length: the only
                    // honest ending is to close the connection mid-body.
                    let readErrno = n < 0 ? errno : 0
                    self.server.logger.warning(
                        "file body ended early",
                        metadata: [
                            "http.file.offset": "\(stream.nextOffset)",
                            "http.file.unread": "\(stream.unread)",
                            "errno": "\(readErrno)",
                        ]
                    )
                    return .failed
                }
                stream.start = 0
                stream.end = n
                stream.nextOffset += n
                stream.unread -= n
            }
            let flags = Int32(MSG_NOSIGNAL) | (stream.unread > 0 ? Int32(MSG_MORE) : 0)
            let n = retryingOnInterrupt {
                send(self.fd, stream.buffer.baseAddress! + stream.start, stream.end - stream.start, flags)
            }
            if n > 0 {
                stream.start += n
                sent += n
                self.lastProgress = .now()
                continue
            }
            let e = errno
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { return .blocked }
            return .failed
        }
    }
}

extension HTTPResponse {
    /// Closes the descriptor of a file body that will never reach the server (a composed handler that builds a
    /// response and then throws it away). Does nothing for an in-memory body.
    public func discardFile() {
        if let file = self.file { closeDescriptor(file.descriptor) }
    }
}
