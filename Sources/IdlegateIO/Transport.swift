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

/// A byte stream under a connection: plain TCP, or TLS (IdlegateTLS: OpenSSL over the same fd). The
/// proxy only calls these members, so TLS needs nothing from the event loop or the HTTP flow: its
/// handshake hides behind `wouldBlock`, since the loop reports both readability and writability
/// (edge-triggered) for every registered fd.
public protocol Transport: AnyObject {
    var fd: Int32 { get }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    func write(_ bytes: UnsafeRawBufferPointer) -> IOResult
    /// Stops sending (a half-close, after the last response bytes are written).
    func shutdownWrite()
    func close()
    /// A read said `wouldBlock` because the stream must send first (a TLS handshake message): the next
    /// writable event, not a readable one, is when to read again.
    var readWaitsForWritable: Bool { get }
    /// A write said `wouldBlock` because the stream must receive first: retry on the next readable event.
    var writeWaitsForReadable: Bool { get }
    /// Bytes (or the end of the stream) are held above the socket, so a short read does not mean the
    /// socket is drained and the next read must not wait for an event.
    var hasBufferedInput: Bool { get }
    /// Why the stream failed, when it knows better than an errno (a TLS alert, a refused certificate).
    var failureReason: String? { get }
    /// The handshake is still going (always false for plain TCP).
    var isHandshaking: Bool { get }
}

extension Transport {
    public var readWaitsForWritable: Bool { false }
    public var writeWaitsForReadable: Bool { false }
    public var hasBufferedInput: Bool { false }
    public var failureReason: String? { nil }
    public var isHandshaking: Bool { false }
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
