#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Opens the TCP connection that a session runs over.
///
/// Koper opens the socket itself (rather than letting `ssh_connect` do it) so that it is close-on-exec from the
/// start, the connect is bounded by the caller's deadline, errno tells a refused connection from an unreachable
/// host, and the keepalive options are set before any SSH traffic.
enum TCPConnector {
    /// Returns a connected, blocking, close-on-exec TCP socket with keepalive options set. The caller owns it.
    static func connect(
        host: String,
        port: Int,
        deadline: ContinuousClock.Instant,
        keepaliveInterval: Duration
    ) throws(SSHError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let list else {
            let reason = String(cString: gai_strerror(resolved))
            throw SSHError(.connectionFailed, "cannot resolve \(host): \(reason)", underlyingStatus: resolved)
        }
        defer { freeaddrinfo(list) }

        var lastError = SSHError(.connectionFailed, "no usable address for \(host)")
        var sawRefusal = false
        var sawTimeout = false
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let address = entry {
            entry = address.pointee.ai_next
            do throws(SSHError) {
                let fd = try self.connect(address: address.pointee, deadline: deadline, host: host, port: port)
                do throws(SSHError) {
                    try self.configure(fd, keepaliveInterval: keepaliveInterval)
                } catch {
                    closeDescriptor(fd)
                    throw error
                }
                return fd
            } catch {
                if error.code == .connectionRefused { sawRefusal = true }
                if error.code == .timeout { sawTimeout = true }
                lastError = error
                if ContinuousClock.now >= deadline { break }
            }
        }
        if sawTimeout && lastError.code != .timeout {
            throw SSHError(.timeout, "connect to \(host) port \(port) timed out")
        }
        if sawRefusal && lastError.code != .connectionRefused && !sawTimeout {
            throw SSHError(.connectionRefused, "connection to \(host) port \(port) refused")
        }
        throw lastError
    }

    private static func connect(
        address: addrinfo,
        deadline: ContinuousClock.Instant,
        host: String,
        port: Int
    ) throws(SSHError) -> Int32 {
        let fd = socket(
            address.ai_family,
            address.ai_socktype | Int32(SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue),
            address.ai_protocol
        )
        guard fd >= 0 else {
            throw SSHError(.connectionFailed, "socket() failed", underlyingStatus: errno)
        }
        var keep = false
        defer { if !keep { closeDescriptor(fd) } }

        if connectSocket(fd, address.ai_addr, address.ai_addrlen) != 0 {
            let error = errno
            guard error == EINPROGRESS || error == EINTR else {
                throw self.connectError(error, host: host, port: port)
            }
            while true {
                let remaining = deadline - ContinuousClock.now
                if remaining <= .zero {
                    throw SSHError(.timeout, "connect to \(host) port \(port) timed out", underlyingStatus: ETIMEDOUT)
                }
                var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&descriptor, 1, remaining.clampedMilliseconds)
                if ready < 0 {
                    if errno == EINTR { continue }
                    throw SSHError(.connectionFailed, "poll() failed", underlyingStatus: errno)
                }
                if ready == 0 { continue }
                break
            }
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length) == 0 else {
                throw SSHError(.connectionFailed, "getsockopt(SO_ERROR) failed", underlyingStatus: errno)
            }
            if socketError != 0 {
                throw self.connectError(socketError, host: host, port: port)
            }
        }
        keep = true
        return fd
    }

    private static func connectError(_ error: Int32, host: String, port: Int) -> SSHError {
        let reason = String(cString: strerror(error))
        switch error {
        case ECONNREFUSED:
            return SSHError(.connectionRefused, "connect to \(host) port \(port): \(reason)", underlyingStatus: error)
        case ETIMEDOUT:
            return SSHError(.timeout, "connect to \(host) port \(port): \(reason)", underlyingStatus: error)
        default:
            return SSHError(.connectionFailed, "connect to \(host) port \(port): \(reason)", underlyingStatus: error)
        }
    }

    /// Back to blocking mode (libssh expects it), no Nagle, and the keepalive settings described on
    /// `SSHTarget.keepaliveInterval`.
    private static func configure(_ fd: Int32, keepaliveInterval: Duration) throws(SSHError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
            throw SSHError(.connectionFailed, "fcntl(O_NONBLOCK) failed", underlyingStatus: errno)
        }
        let interval = Int32(clamping: keepaliveInterval.wholeSecondsRoundedUp)
        let userTimeout = Int32(clamping: Int64(keepaliveInterval.clampedMilliseconds) * 3)
        let tcp = Int32(IPPROTO_TCP)
        let options: [(Int32, Int32, Int32)] = [
            (tcp, TCP_NODELAY, 1),
            (SOL_SOCKET, SO_KEEPALIVE, 1),
            (tcp, TCP_KEEPIDLE, interval),
            (tcp, TCP_KEEPINTVL, interval),
            (tcp, TCP_KEEPCNT, 3),
            (tcp, TCP_USER_TIMEOUT, max(1000, userTimeout)),
        ]
        for (level, name, value) in options {
            var value = value
            guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw SSHError(.connectionFailed, "setsockopt(\(level), \(name)) failed", underlyingStatus: errno)
            }
        }
    }
}
