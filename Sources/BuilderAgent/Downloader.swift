import Glibc
import KoperProtocol
import Synchronization

/// Downloads one URL to a file, bounded in size and time.
///
/// The shape matches `HTTPClient.download(url:toFile:timeout:maxBytes:)` (Sources/HTTPClient, libcurl), so the
/// libcurl client can replace ``CurlProcessDownloader`` with a one-line conformance once it is in the
/// package. Implementations throw ``BuilderError`` (status 2) for transport errors, non-2xx answers and
/// oversized bodies.
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
                "--retry", "2", "--retry-delay", "2",
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
            throw BuilderError.infrastructure("download timed out after \(seconds) s")
        }
        if outcome.exitCode == 63 || outcome.signal == 25 {  // 25: SIGXFSZ
            throw BuilderError.infrastructure("download is larger than \(maxBytes) bytes")
        }
        guard outcome.exitCode == 0 else {
            if httpStatus >= 400 {
                throw BuilderError.infrastructure("download failed: HTTP status \(httpStatus)")
            }
            let how = outcome.exitCode.map { "curl exit code \($0)" } ?? "curl killed by signal \(outcome.signal ?? 0)"
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
}
