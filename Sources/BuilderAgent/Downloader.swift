import Glibc
import KoperProtocol
import Synchronization

/// Downloads one URL to a file, bounded in size and time.
///
/// The shape matches `HTTPClient.download(url:toFile:timeout:maxBytes:)` (Sources/HTTPClient, libcurl), so the
/// libcurl client can replace ``CurlProcessDownloader`` with a one-line conformance once it is in the
/// package. Implementations throw ``BuilderError``: status 5 (``BuilderError/transient(_:)``) when the server could
/// not be reached or answered 408, 429 or 5xx (worth trying again later), status 2 for any other non-2xx answer, an
/// oversized body or an unusable URL.
protocol SourceDownloading: Sendable {
    func download(
        url: String,
        toFile path: String,
        timeout: Duration,
        maxBytes: Int
    ) async throws -> (status: Int, bytes: Int)
}

/// ``SourceDownloading`` through the `curl` command line tool, run like every other step (own process group,
/// output in the live log, killed on cancel).
///
/// Bounds: `--max-time` and the runner's deadline for time; `--max-filesize` (honoured when the server
/// sends a length) and `prlimit --fsize` (a hard cap on the written file, whatever the server does) for
/// size. `-q` keeps curl from reading any `.curlrc`; only http and https are allowed, also for redirects;
/// URL globbing is off.
struct CurlProcessDownloader: SourceDownloading {
    let runner: ProcessRunner
    let curl: String
    let prlimit: String
    let environment: [String: String]

    func download(
        url: String,
        toFile path: String,
        timeout: Duration,
        maxBytes: Int
    ) async throws -> (status: Int, bytes: Int) {
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), FieldRules.isURL(url) else {
            throw BuilderError.infrastructure("refusing to download a URL that is not plain http(s)")
        }
        let seconds = max(1, Int(timeout.components.seconds))
        let spec = ProcessSpec(
            executable: self.prlimit,
            arguments: [
                "--fsize=\(maxBytes + 1)", "--core=0", "--", self.curl,
                "-q", "--silent", "--show-error", "--fail", "--globoff", "--location", "--max-redirs", "5",
                "--proto", "=http,https", "--proto-redir", "=http,https",
                "--connect-timeout", "30", "--max-time", "\(seconds)", "--max-filesize", "\(maxBytes)",
                "--write-out", "%{stderr}koper: HTTP status %{http_code}, %{size_download} bytes\\n",
                "--output", path, "--", url,
            ],
            environment: self.environment,
            workingDirectory: nil
        )
        let status = Atomic<Int>(0)
        let outcome = try await self.runner.run(
            spec,
            deadline: .now + timeout + .seconds(30),
            observer: { line in
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("koper: HTTP status "), let code = Int(text.dropFirst(19).prefix(3)) {
                    status.store(code, ordering: .relaxed)
                }
            }
        )
        let httpStatus = status.load(ordering: .relaxed)
        if outcome.canceled {
            throw BuilderError(.canceled, "download canceled")
        }
        if outcome.timedOut || outcome.exitCode == 28 {
            throw BuilderError.transient("download timed out after \(seconds) s")
        }
        if outcome.exitCode == 63 || outcome.signal == 25 {  // 25: SIGXFSZ
            throw BuilderError.infrastructure("download is larger than \(maxBytes) bytes")
        }
        guard outcome.exitCode == 0 else {
            if httpStatus >= 400 {
                if Self.isTransient(httpStatus: httpStatus) {
                    throw BuilderError.transient("download failed: HTTP status \(httpStatus)")
                }
                throw BuilderError.infrastructure("download failed: HTTP status \(httpStatus)")
            }
            let how = outcome.exitCode.map { "curl exit code \($0)" } ?? "curl killed by signal \(outcome.signal ?? 0)"
            if let code = outcome.exitCode, Self.transientCurlExitCodes.contains(code) {
                throw BuilderError.transient("download failed (\(how): \(Self.curlMeaning(code)))")
            }
            throw BuilderError.infrastructure("download failed (\(how))")
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw BuilderError.infrastructure("download produced no file")
        }
        let bytes = Int(st.st_size)
        guard bytes <= maxBytes else {
            throw BuilderError.infrastructure("download is larger than \(maxBytes) bytes")
        }
        return (httpStatus, bytes)
    }

    /// curl exit codes of a server that could not be reached or dropped the connection: 5/6 name resolution, 7
    /// connection refused or unreachable, 18 partial transfer, 35 TLS handshake, 52 empty reply, 55/56 send/receive.
    static let transientCurlExitCodes: Set<Int32> = [5, 6, 7, 18, 35, 52, 55, 56]

    static func isTransient(httpStatus: Int) -> Bool {
        httpStatus == 408 || httpStatus == 429 || (500...599).contains(httpStatus)
    }

    static func curlMeaning(_ code: Int32) -> String {
        switch code {
        case 5, 6: return "cannot resolve the host"
        case 7: return "cannot connect to the server"
        case 18: return "the transfer ended early"
        case 35: return "TLS handshake failed"
        case 52: return "the server answered nothing"
        case 55, 56: return "the connection broke"
        default: return "transport error"
        }
    }
}
