/// How one build ended: the exit code of `koper-builder build` and the content of `DIR/status`.
///
/// The Backend maps these to build states; a Backend that reattaches after a crash reads `DIR/status`.
enum BuildStatus: Int32, Sendable, CustomStringConvertible {
    /// Every package was built and collected; `results.json` lists them.
    case succeeded = 0
    /// The package's own build failed (`%build` exited non-zero, a bad spec, …).
    case failed = 1
    /// Koper or the source failed: bad task, download error, not an SRPM, checksum mismatch, sandbox
    /// could not start, clone failed, …
    case infrastructureError = 2
    /// The task's `timeout` elapsed; the build was killed.
    case timedOut = 3
    /// SIGTERM or SIGINT was received; the build's processes were killed.
    case canceled = 4
    /// A transient infrastructure failure outside the build and its source (the SRPM server refused the connection,
    /// answered 5xx or timed out, after the builder's own retries): nothing is known to be wrong with the build. The
    /// Backend runs it again later instead of failing it.
    case retry = 5

    var description: String {
        switch self {
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .infrastructureError: return "infrastructure or source error"
        case .timedOut: return "timed out"
        case .canceled: return "canceled"
        case .retry: return "transient infrastructure failure (to be retried)"
        }
    }
}

/// An error that ends the build with `status`. `message` is written to the live log, so it never carries
/// credentials (the builder has none) and never more than a few bytes of untrusted input.
struct BuilderError: Error, Sendable, CustomStringConvertible {
    let status: BuildStatus
    let message: String

    init(_ status: BuildStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    /// Koper, the host or the source is at fault (exit 2).
    static func infrastructure(_ message: String) -> BuilderError {
        BuilderError(.infrastructureError, message)
    }

    /// A transient failure outside the build (exit 5): the Backend retries the build.
    static func transient(_ message: String) -> BuilderError {
        BuilderError(.retry, message)
    }

    /// The package's build failed (exit 1).
    static func buildFailed(_ message: String) -> BuilderError {
        BuilderError(.failed, message)
    }

    var description: String { self.message }
}
