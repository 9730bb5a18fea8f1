internal import CZlib

/// Streaming gzip compression into one gzip member: feed input with `append`, end with `finish`.
///
/// Each call returns the compressed bytes that became ready; the concatenation of all returned arrays is the
/// member. zlib buffers internally, so `append` often returns nothing for small inputs.
///
/// Not thread-safe and not `Sendable`: one owner uses it from one place. It owns a `z_stream` (freed in `deinit`).
public final class GzipCompressor {
    private enum State {
        case open
        case finished
        case failed
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private let chunk: UnsafeMutablePointer<UInt8>
    private var state = State.open

    /// `level` is zlib's: 0 (store) … 9 (best), -1 for the default (6).
    /// The corresponding C function is `deflateInit2` (window bits 15 + 16: a gzip header and trailer).
    public init(level: Int32 = 6) throws {
        guard (-1...9).contains(level) else {
            throw GzipError(code: .invalidArgument, message: "compression level \(level) is not in -1...9")
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = deflateInit2_(
            stream,
            level,
            Z_DEFLATED,
            15 + 16,
            8,
            Z_DEFAULT_STRATEGY,
            ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size)
        )
        guard rc == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw GzipError(code: .internalError, message: "deflateInit2 failed (\(rc))")
        }
        self.stream = stream
        self.chunk = .allocate(capacity: Gzip.chunkSize)
    }

    deinit {
        deflateEnd(self.stream)
        self.stream.deinitialize(count: 1)
        self.stream.deallocate()
        self.chunk.deallocate()
    }

    /// Compresses more input; returns whatever compressed output is ready (possibly nothing).
    public func append(_ bytes: some Collection<UInt8>) throws -> [UInt8] {
        if let out = try bytes.withContiguousStorageIfAvailable({ try self.run($0, flush: Z_NO_FLUSH) }) {
            return out
        }
        return try Array(bytes).withUnsafeBufferPointer { try self.run($0, flush: Z_NO_FLUSH) }
    }

    /// Ends the member: returns the remaining compressed bytes and the gzip trailer (CRC-32 and length).
    /// The compressor cannot be used afterwards.
    public func finish() throws -> [UInt8] {
        try self.run(UnsafeBufferPointer(start: nil, count: 0), flush: Z_FINISH)
    }

    /// Runs `deflate` over all of `input` with `flush` on the last piece (`Z_NO_FLUSH` or `Z_FINISH`).
    func run(_ input: UnsafeBufferPointer<UInt8>, flush: Int32) throws -> [UInt8] {
        switch self.state {
        case .open: break
        case .finished: throw GzipError(code: .invalidArgument, message: "compressor already finished")
        case .failed: throw GzipError(code: .invalidArgument, message: "compressor failed earlier")
        }
        var output: [UInt8] = []
        var offset = 0
        repeat {
            let n = min(input.count - offset, Int(UInt32.max))
            // zlib never writes through next_in.
            self.stream.pointee.next_in = n > 0 ? UnsafeMutablePointer(mutating: input.baseAddress! + offset) : nil
            self.stream.pointee.avail_in = UInt32(n)
            offset += n
            let mode = offset == input.count ? flush : Z_NO_FLUSH
            while true {
                self.stream.pointee.next_out = self.chunk
                self.stream.pointee.avail_out = UInt32(Gzip.chunkSize)
                let rc = deflate(self.stream, mode)
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                    self.state = .failed
                    throw GzipError(code: .internalError, message: "deflate failed (\(rc))")
                }
                let produced = Gzip.chunkSize - Int(self.stream.pointee.avail_out)
                output.append(contentsOf: UnsafeBufferPointer(start: self.chunk, count: produced))
                if mode == Z_FINISH {
                    if rc == Z_STREAM_END {
                        self.state = .finished
                        break
                    }
                    if rc == Z_BUF_ERROR && produced == 0 {
                        self.state = .failed
                        throw GzipError(code: .internalError, message: "deflate made no progress while finishing")
                    }
                } else if self.stream.pointee.avail_out != 0 {
                    break  // all input consumed and no output pending (zlib's documented loop condition)
                }
            }
        } while offset < input.count
        return output
    }
}

@available(*, unavailable)
extension GzipCompressor: Sendable {}
