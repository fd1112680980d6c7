import CSystem
import Glibc

/// Non-blocking TCP socket calls. Every socket idlegate makes is non-blocking and close-on-exec;
/// errors carry the name of the call that failed.
public enum Socket {
    /// A listening socket on `address`. With `reusePort`, each event loop opens its own socket on the
    /// same address and the kernel spreads new connections across them (no shared accept lock).
    public static func listen(on address: SocketAddress, reusePort: Bool, backlog: Int32 = 4096) throws -> Int32 {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if address.isIPv6 {
            // `[::]:8080` means IPv6 only; list `0.0.0.0:8080` as well to take IPv4.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let rc = address.withSockaddr { bind(fd, $0, $1) }
        guard rc == 0 else { let e = IOError("bind \(address)"); close(fd); throw e }
        guard Glibc.listen(fd, backlog) == 0 else { let e = IOError("listen"); close(fd); throw e }
        return fd
    }

    /// Accepts one connection; nil when none is pending (EAGAIN) or the peer already went away.
    public static func accept(_ listener: Int32) throws -> (fd: Int32, peer: SocketAddress)? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                cs_accept(listener, $0, &len)
            }
        }
        if fd < 0 {
            switch errno {
            case EAGAIN, EWOULDBLOCK, ECONNABORTED, EINTR, EPROTO: return nil
            default: throw IOError("accept4")
            }
        }
        let peer = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0) }
        }
        setNoDelay(fd)
        return (fd, peer ?? SocketAddress(ip: [0, 0, 0, 0], port: 0))
    }

    /// Starts a non-blocking connect. The result is known when the socket turns writable:
    /// then `pendingError` says whether it worked.
    public static func connect(to address: SocketAddress) throws -> Int32 {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError("socket") }
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            let e = IOError("connect \(address)")
            close(fd)
            throw e
        }
        setNoDelay(fd)
        return fd
    }

    /// The error a non-blocking connect ended with (0 when it succeeded).
    public static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    /// Small request/response exchanges must not wait for Nagle's algorithm.
    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The port a socket is bound to (for listeners on port 0 in tests).
    public static func localPort(_ fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0)?.port }
        }
    }
}
