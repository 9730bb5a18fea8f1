import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A 200 MiB file goes out in bounded chunks as a slow reader takes it; the server never holds it in memory.
///
/// Serialized and alone in its suite because it samples this process's resident set size. Other suites running in
/// parallel in the same process could still add to it; the bound leaves room for that while a server that read the
/// file into memory would exceed it six times over.
@Suite("StaticFiles: large files", .serialized, .timeLimit(.minutes(3)))
struct LargeFileTests {
    static let size = 200 << 20
    static let block = 1 << 20
    static let tailMarker: UInt64 = 0xA5A5_5A5A_C0FF_EE00

    /// A sparse file: zeros, except each 1 MiB block starts with its own offset (little-endian UInt64) and the
    /// last 8 bytes hold `tailMarker`.
    func makeSparseFile(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0)
        defer { close(fd) }
        precondition(ftruncate(fd, off_t(Self.size)) == 0)
        for k in 0..<(Self.size / Self.block) {
            var marker = UInt64(k * Self.block).littleEndian
            precondition(pwrite(fd, &marker, 8, off_t(k * Self.block)) == 8)
        }
        var tail = Self.tailMarker.littleEndian
        precondition(pwrite(fd, &tail, 8, off_t(Self.size - 8)) == 8)
    }

    @Test func twoHundredMegabytesToASlowReaderInBoundedMemory() async throws {
        let tree = ResultsTree()
        defer { tree.remove() }
        tree.mkdirs(buildDir)
        self.makeSparseFile(tree.root + "/" + buildDir + "/huge.rpm")
        try await withStaticServer(tree) { server, port in
            let baseline = residentBytes()
            let outcome = try await blocking { () -> (head: String, received: Int, badBlocks: [Int], peakRSS: Int) in
                let client = try TestHTTPClient(port: port, timeout: .seconds(20))
                client.setReceiveBufferSize(64 * 1024)
                try client.send(TestHTTPClient.requestBytes(path: buildURL + "huge.rpm"))
                var early: [UInt8] = []
                var end: Int? = nil
                while end == nil {
                    early += try client.receiveSome(maxBytes: 4096)
                    end = headEnd(early)
                }
                let head = String(decoding: early[..<end!], as: UTF8.self)

                // Verify block by block in one reused 1 MiB staging buffer; nothing is kept.
                let staging = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.block, alignment: 16)
                let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.block, alignment: 16)
                let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
                defer {
                    staging.deallocate()
                    zeros.deallocate()
                    chunk.deallocate()
                }
                zeros.initializeMemory(as: UInt8.self, repeating: 0)
                var filled = 0
                var received = 0
                var badBlocks: [Int] = []
                var peak = residentBytes()
                let stallsAt: Set<Int> = [16, 100, 180]  // MiB: the reader stops for a while there

                func take(_ bytes: UnsafeRawBufferPointer) {
                    var offset = 0
                    while offset < bytes.count {
                        let n = min(bytes.count - offset, Self.block - filled)
                        (staging.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
                        filled += n
                        offset += n
                        received += n
                        if filled == Self.block {
                            let k = received / Self.block - 1
                            if !Self.blockIsCorrect(k, staging, zeros) { badBlocks.append(k) }
                            filled = 0
                            if k % 8 == 0 { peak = max(peak, residentBytes()) }
                            if stallsAt.contains(k) {
                                usleep(400_000)  // the server must now sit on a full socket, not read ahead
                                peak = max(peak, residentBytes())
                            }
                        }
                    }
                }
                early[end!...].withUnsafeBytes { take($0) }
                while received < Self.size {
                    let n = recv(client.fd, chunk.baseAddress, chunk.count, 0)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    take(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
                }
                return (head, received, badBlocks, peak)
            }
            #expect(outcome.head.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(outcome.head.contains("Content-Length: \(Self.size)\r\n"))
            #expect(outcome.head.contains("Content-Type: application/x-rpm\r\n"))
            #expect(outcome.received == Self.size)
            #expect(outcome.badBlocks.isEmpty, "corrupt blocks: \(outcome.badBlocks.prefix(10))")
            let growth = outcome.peakRSS - baseline
            #expect(baseline > 0 && outcome.peakRSS > 0)
            // RSS is process-wide and other suites run in parallel in the same process, so the bound leaves room
            // for them; a server that read the file whole grows by more than 200 MiB (seen: 207 MiB).
            #expect(growth < 100 << 20, "resident set grew by \(growth >> 20) MiB while streaming 200 MiB")

            // The tail, by range, on a fresh connection.
            let tail = try await fetch(port, buildURL + "huge.rpm", headers: [("Range", "bytes=-8")])
            #expect(tail.status == 206)
            #expect(tail.header("Content-Range") == "bytes \(Self.size - 8)-\(Self.size - 1)/\(Self.size)")
            #expect(tail.body == withUnsafeBytes(of: Self.tailMarker.littleEndian) { Array($0) })
            #expect(await eventuallyTrue { server.connectionCount <= 1 })
        }
    }

    static func blockIsCorrect(
        _ k: Int,
        _ block: UnsafeMutableRawBufferPointer,
        _ zeros: UnsafeMutableRawBufferPointer
    ) -> Bool {
        let first = block.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        guard UInt64(littleEndian: first) == UInt64(k * Self.block) else { return false }
        let isLast = (k + 1) * Self.block == Self.size
        let middle = Self.block - 8 - (isLast ? 8 : 0)
        guard memcmp(block.baseAddress! + 8, zeros.baseAddress!, middle) == 0 else { return false }
        if isLast {
            let tail = block.loadUnaligned(fromByteOffset: Self.block - 8, as: UInt64.self)
            return UInt64(littleEndian: tail) == Self.tailMarker
        }
        return true
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
func eventuallyTrue(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
