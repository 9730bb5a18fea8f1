import Dispatch
import Foundation
import HTTPCore
import HTTPServer
import KoperProtocol
import LibCrypto
import RPM
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Blocking file work runs here, never on the Swift concurrency pool.
let blockingQueue = DispatchQueue(label: "koper.frontend.blocking", attributes: .concurrent)

func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        blockingQueue.async { c.resume(with: Result { try body() }) }
    }
}

/// A validated source RPM taken out of a multipart upload, spooled but not yet committed.
struct ReceivedUpload: Sendable {
    let storedPath: String
    let filename: String
    let size: Int
    let sha256: String
    let package: RPMPackage
    let json: [UInt8]
}

enum Uploads {
    static let maxJSONPart = 1 << 20
    /// The headers of a source RPM must fit in this prefix.
    static let maxHeaderPrefix = 64 << 20

    /// Streams the multipart body from `bodyPath` (the server's spool file): the `pkgs` part goes to a new spool file
    /// while being hashed, the `json` part stays in memory (bounded). Then checks the file is a real source RPM.
    /// On any error nothing is left behind.
    static func receive(bodyPath: String, boundary: String, config: FrontendConfig) async throws -> ReceivedUpload {
        try await runBlocking {
            try FileManager.default.createDirectory(atPath: config.spoolDir, withIntermediateDirectories: true)
            let spool = "\(config.spoolDir)/\(spoolPrefix)\(try Crypto.randomString(length: 16))"
            do {
                return try receiveBlocking(bodyPath: bodyPath, boundary: boundary, spool: spool)
            } catch {
                unlink(spool)
                throw error
            }
        }
    }

    static func receiveBlocking(bodyPath: String, boundary: String, spool: String) throws -> ReceivedUpload {
        let input = open(bodyPath, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw APIError(500, "Cannot read the uploaded body") }
        defer { close(input) }
        var parser = MultipartParser(boundary: boundary, maxParts: 8)
        var output: Int32 = -1
        defer { if output >= 0 { close(output) } }
        let hasher = DigestHasher(.sha256)
        var current: String? = nil
        var filename: String? = nil
        var pkgsSeen = 0
        var size = 0
        var json: [UInt8] = []
        var jsonSeen = false
        var prefix: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)

        func handle(_ events: [MultipartEvent]) throws {
            for event in events {
                switch event {
                case .partBegin(let head):
                    current = head.name
                    if head.name == "pkgs" {
                        pkgsSeen += 1
                        guard pkgsSeen == 1 else {
                            throw APIError.badRequest("Exactly one 'pkgs' file is accepted per upload request")
                        }
                        filename = head.filename
                        output = open(spool, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                        guard output >= 0 else { throw APIError(500, "Not enough space left or storage not writable") }
                    } else if head.name == "json" {
                        jsonSeen = true
                    }
                case .partData(let data):
                    if current == "pkgs" {
                        hasher.update(data)
                        size += data.count
                        if prefix.count < maxHeaderPrefix {
                            prefix.append(contentsOf: data.prefix(maxHeaderPrefix - prefix.count))
                        }
                        do {
                            _ = try FileDescriptor(rawValue: output).writeAll(data)
                        } catch {
                            throw APIError(500, "Not enough space left")
                        }
                    } else if current == "json" {
                        json.append(contentsOf: data)
                        guard json.count <= maxJSONPart else { throw APIError(413, "The 'json' part is too large") }
                    }
                case .partEnd:
                    current = nil
                }
            }
        }

        while true {
            let n: Int
            do {
                n = try buffer.withUnsafeMutableBytes { try FileDescriptor(rawValue: input).read(into: $0) }
            } catch {
                throw APIError(500, "Cannot read the uploaded body")
            }
            if n == 0 { break }
            do {
                try handle(try parser.feed(buffer[0..<n]))
            } catch let e as MultipartError {
                throw APIError.badRequest("Malformed multipart body: \(e.message)")
            }
        }
        do {
            try parser.finish()
        } catch {
            throw APIError.badRequest("Malformed multipart body: \(error.message)")
        }
        guard pkgsSeen == 1, let name = filename, !name.isEmpty else {
            throw APIError.badRequest("Missing the 'pkgs' file part")
        }
        guard jsonSeen else { throw APIError.badRequest("Missing the 'json' part") }
        let package: RPMPackage
        do {
            package = try RPMReader.parse(prefix)
        } catch {
            throw APIError.badRequest("'\(displayName(name))' is not a valid source RPM: \(error.detail)")
        }
        guard package.isSourcePackage else {
            throw APIError.badRequest("'\(displayName(name))' is not a source RPM (it is a binary package)")
        }
        return ReceivedUpload(
            storedPath: spool,
            filename: name,
            size: size,
            sha256: Crypto.hex(hasher.finalize()),
            package: package,
            json: json
        )
    }

    static func displayName(_ s: String) -> String {
        String(s.split(separator: "/").last ?? "").prefix(200).filter { !$0.isNewline }
    }

    /// Moves the spooled SRPM to `srpms/<random>/<N-V-R>.src.rpm` and returns that relative path.
    /// Called inside the build's transaction; the caller removes the file if the transaction then fails.
    static func commit(_ u: ReceivedUpload, config: FrontendConfig) throws -> String {
        let dir = try Crypto.randomString(length: 24)
        let p = u.package
        let file = "\(p.name)-\(p.version)-\(p.release).src.rpm"
        guard FieldRules.isPathComponent(file) else {
            throw APIError.badRequest("Package name or version contains characters that cannot be stored")
        }
        let full = "\(config.uploadDir)/\(dir)"
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        guard rename(u.storedPath, "\(full)/\(file)") == 0 else {
            throw APIError(500, "Cannot store the uploaded SRPM")
        }
        return "\(dir)/\(file)"
    }

    /// Start-up cleanup: spool files a dead predecessor left behind (the server's request bodies and the `upload-*`
    /// copies `receive` makes). Only this frontend uses `storage_dir/spool`, and `serve` calls this before it
    /// listens, so nothing in there is live. Returns how many files it removed.
    static func removeOrphanedSpoolFiles(config: FrontendConfig) -> Int {
        var removed = Server.removeOrphanedBodies(in: config.spoolDir)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: config.spoolDir)) ?? []
        for name in names where name.hasPrefix(spoolPrefix) && unlink("\(config.spoolDir)/\(name)") == 0 {
            removed += 1
        }
        return removed
    }

    static let spoolPrefix = "upload-"

    static func remove(paths: [String], config: FrontendConfig) {
        for p in paths where p.split(separator: "/").allSatisfy({ FieldRules.isPathComponent(String($0)) }) {
            let full = "\(config.uploadDir)/\(p)"
            unlink(full)
            rmdir((full as NSString).deletingLastPathComponent)
        }
    }

}
