import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Whether anything accepts TCP connections at an address, answered without HTTP: a refused
/// connection is known at once, where an HTTP client retries its connection attempts until its
/// deadline (so a command line with no agent running would wait out the whole probe).
enum TCPProbe {
    /// `true` when a connection to `host`:`port` is accepted within `timeout`; `false` when it is
    /// refused, the host does not resolve, or nothing answers in time.
    ///
    /// Blocks the calling thread for at most `timeout` per address of the host (on loopback, a
    /// refusal or an acceptance is immediate).
    static func accepts(host: String, port: Int, timeout: Duration = .seconds(2)) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return false }
        defer { freeaddrinfo(first) }
        let milliseconds = Int32(clamping: timeout.components.seconds * 1_000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            defer { entry = current.pointee.ai_next }
            let fd = socket(current.pointee.ai_family, current.pointee.ai_socktype, current.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 { return true }
            guard errno == EINPROGRESS else { continue }
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&descriptor, 1, milliseconds) == 1 else { continue }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 && failure == 0 { return true }
        }
        return false
    }
}
