#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#endif

/// Makes one system call, again and again for as long as it fails with `EINTR`, and returns its first other result.
///
/// `body` makes the call in the C convention: a negative result (-1) is a failure with the reason in `errno`.
/// Every other result, and every other failure, is returned as it is, with `errno` left as the call set it, so
/// the caller still handles `EAGAIN`, end of file, short reads and writes and real errors itself:
///
/// ```swift
/// let n = retryingOnInterrupt { read(fd, buffer.baseAddress, buffer.count) }
/// if n < 0 { throw MyError(call: "read", errno: errno) }
/// ```
///
/// For the calls swift-system's `FileDescriptor` does not cover, or where the caller needs the raw result and
/// errno (`send` with flags, `accept`, `poll`, `waitid`, `fsync`, `fstatat`, `pread` with an errno switch, …).
/// Never for `close`: on Linux the descriptor is released even when `close` reports `EINTR`, so a retry could
/// close a descriptor another thread has just been given.
///
/// It lives in AtomicFile because that is the lowest module of the package (no dependencies) that every module
/// doing system calls may depend on.
@inlinable
public func retryingOnInterrupt<Value: SignedInteger>(_ body: () -> Value) -> Value {
    while true {
        let result = body()
        if result < 0 && lastCallWasInterrupted() {
            continue
        }
        return result
    }
}

/// Whether `errno` is `EINTR`. Not inlinable, so that the C library stays an internal import.
@usableFromInline
func lastCallWasInterrupted() -> Bool {
    errno == EINTR
}
