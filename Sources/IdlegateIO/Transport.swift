import Glibc

/// What one read or write on a non-blocking byte stream did.
public enum IOResult: Equatable, Sendable {
    /// This many bytes moved (always > 0).
    case bytes(Int)
    /// Nothing can move now; the event loop reports when it can.
    case wouldBlock
    /// The peer closed its side (reads only).
    case eof
    /// The stream failed; the connection is done.
    case failed(errno: Int32)
}

/// A byte stream under a connection: plain TCP today, TLS (OpenSSL over the same fd) later. The proxy
/// only ever calls these four members, so a TLS transport slots in without touching the event loop or
/// the HTTP flow: its handshake and renegotiation hide behind `wouldBlock`, since the loop reports
/// both readability and writability (edge-triggered) for every registered fd.
public protocol Transport: AnyObject {
    var fd: Int32 { get }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    func write(_ bytes: UnsafeRawBufferPointer) -> IOResult
    /// Stops sending (a half-close, after the last response bytes are written).
    func shutdownWrite()
    func close()
}

/// Plain TCP.
public final class PlainTransport: Transport {
    public let fd: Int32
    private var closed = false

    public init(fd: Int32) { self.fd = fd }

    deinit { close() }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return buffer.count == 0 ? .wouldBlock : .eof }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(errno: errno)
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        while true {
            let n = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n == 0 ? .wouldBlock : .bytes(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(errno: errno)
            }
        }
    }

    public func shutdownWrite() {
        if !closed { _ = shutdown(fd, Int32(SHUT_WR)) }
    }

    public func close() {
        if !closed {
            closed = true
            _ = Glibc.close(fd)
        }
    }
}
