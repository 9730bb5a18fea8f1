internal import CZlib

/// gzip (RFC 1952) compression and decompression on zlib. This module is the only importer of `CZlib`.
///
/// `compress` writes one gzip member. `decompress` reads one or more concatenated members (as `gzip -c a b`
/// and our repodata writer produce) and returns the concatenation of their contents, refusing to produce more
/// than `limit` bytes, so a small hostile input cannot exhaust memory (zip bomb).
public enum Gzip {
    /// Output is produced in chunks of this size; peak extra memory while decompressing is `limit` plus one chunk.
    static let chunkSize = 64 * 1024

    /// Compresses `bytes` into a single gzip member. `level` is zlib's: 0 (store) … 9 (best), -1 for the default (6).
    /// The corresponding C functions are `deflateInit2` (window bits 15 + 16) and `deflate`.
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        let compressor = try GzipCompressor(level: level)
        return try bytes.withUnsafeBufferPointer { try compressor.run($0, flush: Z_FINISH) }
    }

    /// Decompresses gzip data: one member, or several concatenated members, whose contents are concatenated.
    ///
    /// Throws `.limitExceeded` as soon as the output would exceed `limit` bytes, `.truncated` when the input ends
    /// inside a member (including empty input), and `.corruptData` for anything that is not gzip, a bad CRC or
    /// length trailer, or trailing bytes after the last member that are not another member.
    /// The corresponding C functions are `inflateInit2` (window bits 15 + 16), `inflate` and `inflateReset`.
    public static func decompress(_ bytes: [UInt8], limit: Int) throws -> [UInt8] {
        guard limit >= 0 else {
            throw GzipError(code: .invalidArgument, message: "limit must not be negative")
        }
        guard !bytes.isEmpty else {
            throw GzipError(code: .truncated, message: "empty input is not a gzip member")
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        let rc = inflateInit2_(stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            throw GzipError(code: .internalError, message: "inflateInit2 failed (\(rc))")
        }
        defer { inflateEnd(stream) }

        let chunk = UnsafeMutablePointer<UInt8>.allocate(capacity: Self.chunkSize)
        defer { chunk.deallocate() }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, bytes.count.multipliedReportingOverflow(by: 4).partialValue, 1 << 24))

        return try bytes.withUnsafeBufferPointer { input -> [UInt8] in
            let base = UnsafeMutablePointer(mutating: input.baseAddress!)  // zlib never writes through next_in
            var fed = 0  // bytes of `input` handed to zlib so far
            while true {
                if stream.pointee.avail_in == 0 && fed < input.count {
                    let n = min(input.count - fed, Int(UInt32.max))
                    stream.pointee.next_in = base + fed
                    stream.pointee.avail_in = UInt32(n)
                    fed += n
                }
                stream.pointee.next_out = chunk
                stream.pointee.avail_out = UInt32(Self.chunkSize)
                let rc = inflate(stream, Z_NO_FLUSH)
                let produced = Self.chunkSize - Int(stream.pointee.avail_out)
                if produced > 0 {
                    guard produced <= limit - output.count else {
                        throw GzipError(
                            code: .limitExceeded,
                            message: "decompressed data exceeds the limit of \(limit) bytes"
                        )
                    }
                    output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: produced))
                }
                let inputLeft = stream.pointee.avail_in > 0 || fed < input.count
                switch rc {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    guard inputLeft else { return output }
                    // Another member follows: start over on the next header, keeping what we produced.
                    guard inflateReset(stream) == Z_OK else {
                        throw GzipError(code: .internalError, message: "inflateReset failed")
                    }
                case Z_BUF_ERROR where !inputLeft:
                    throw GzipError(code: .truncated, message: "input ends inside a gzip member")
                case Z_DATA_ERROR, Z_NEED_DICT:
                    throw GzipError(code: .corruptData, message: "not valid gzip data: \(Self.zlibMessage(stream))")
                case Z_MEM_ERROR:
                    throw GzipError(code: .internalError, message: "zlib is out of memory")
                default:
                    throw GzipError(code: .internalError, message: "inflate failed (\(rc))")
                }
            }
        }
    }

    static func zlibMessage(_ stream: UnsafeMutablePointer<z_stream>) -> String {
        guard let msg = stream.pointee.msg else { return "no detail" }
        return String(cString: msg)
    }
}
