import COpenSSL
import Glibc
import IdlegateIO

/// TLS over a non-blocking socket: OpenSSL reads and writes the fd itself, and every "not now" it
/// answers (WANT_READ, WANT_WRITE, during the handshake or after) becomes `wouldBlock`, with a note of
/// which event to wait for. The handshake runs inside the first reads or writes, on the loop thread;
/// nothing here blocks. Used for the listener (server side) and for upstreams over https (client side).
public final class TLSTransport: Transport {
    public let fd: Int32
    private let ssl: OpaquePointer
    private var closed = false
    /// A protocol error or a broken socket: no close_notify, and the session is not resumed later.
    private var broken = false
    /// A read that ended the stream after returning bytes keeps its ending for the next read.
    private var heldEnding: IOResult?
    public private(set) var readWaitsForWritable = false
    public private(set) var writeWaitsForReadable = false
    public private(set) var failureReason: String?
    /// The peer spoke plain HTTP to this TLS port (the handshake failed on its first bytes).
    public private(set) var plainHTTPSeen = false

    /// What made it (a reload may drop every other reference while this handshake still calls back into it).
    private let owner: AnyObject

    /// Takes ownership of `fd` and of `ssl` (made from a context, not yet bound to any fd).
    /// The socket under OpenSSL (idlegate's own BIO: see `socketMethod`); owned by `ssl`.
    private let bio: OpaquePointer?

    init(fd: Int32, ssl: OpaquePointer, owner: AnyObject) {
        self.fd = fd
        self.ssl = ssl
        self.owner = owner
        bio = idg_socket_bio(socketMethod, fd)
        if let bio {
            SSL_set_bio(ssl, bio, bio)  // one reference, for both directions
        } else {
            SSL_set_fd(ssl, fd)  // out of memory for the small BIO: OpenSSL's own socket BIO
        }
        SSL_set_read_ahead(ssl, 1)
    }

    deinit {
        close()
        SSL_free(ssl)
    }

    public var isHandshaking: Bool { SSL_is_init_finished(ssl) == 0 }
    public var hasBufferedInput: Bool { heldEnding != nil || SSL_has_pending(ssl) == 1 }
    /// The protocol version agreed on ("TLSv1.3"), once the handshake is done.
    public var version: String { String(cString: SSL_get_version(ssl)) }

    /// Reads until the buffer is full or the socket is drained: OpenSSL hands out one record (16 KiB at
    /// most) per call, and an edge-triggered loop must not stop while the socket still holds bytes. The
    /// socket is known drained when OpenSSL's last read of it came back short and nothing is left in
    /// its buffer: then no further read (one more syscall, to hear EAGAIN) is made.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if let ending = heldEnding {
            heldEnding = nil
            return ending
        }
        guard buffer.count > 0 else { return .wouldBlock }
        var total = 0
        while total < buffer.count {
            let n = SSL_read(ssl, buffer.baseAddress! + total, Int32(clamping: buffer.count - total))
            if n > 0 {
                total += Int(n)
                if let bio, idg_socket_drained(bio) == 1 && SSL_has_pending(ssl) == 0 { break }
                continue
            }
            readWaitsForWritable = false
            let ending: IOResult
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ:
                return total > 0 ? .bytes(total) : .wouldBlock
            case SSL_ERROR_WANT_WRITE:
                readWaitsForWritable = true
                return total > 0 ? .bytes(total) : .wouldBlock
            case SSL_ERROR_ZERO_RETURN:
                ending = .eof  // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a plain FIN: HTTP framing says whether anything was cut
            default:
                ending = failure(n)
            }
            if total > 0 {
                heldEnding = ending
                return .bytes(total)
            }
            return ending
        }
        return .bytes(total)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        guard bytes.count > 0 else { return .wouldBlock }
        let n = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        writeWaitsForReadable = false
        if n > 0 { return .bytes(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_WRITE:
            return .wouldBlock
        case SSL_ERROR_WANT_READ:
            writeWaitsForReadable = true
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            failureReason = "the peer closed the TLS stream"
            return .failed(errno: EPIPE)
        default:
            return failure(n)
        }
    }

    /// SSL_ERROR_SYSCALL or SSL_ERROR_SSL: the stream is done; the reason is kept for the log line.
    private func failure(_ n: Int32) -> IOResult {
        broken = true
        let code = SSL_get_error(ssl, n)
        let saved = errno
        let peek = ERR_peek_error()
        if code == SSL_ERROR_SSL && ERR_GET_REASON(peek) == IDG_R_HTTP_REQUEST { plainHTTPSeen = true }
        let reason = OpenSSLErrors.drain()
        if code == SSL_ERROR_SSL {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK, let text = X509_verify_cert_error_string(Int(verify)) {
                failureReason = "TLS: \(reason.isEmpty ? "handshake failed" : reason) (\(String(cString: text)))"
            } else {
                failureReason = "TLS: \(reason.isEmpty ? "protocol error" : reason)"
            }
            return .failed(errno: EPROTO)
        }
        if saved == 0 || saved == EAGAIN {  // SSL_ERROR_SYSCALL without an errno: the peer went away
            failureReason = isHandshaking ? "TLS: the peer closed the connection during the handshake" : nil
            return isHandshaking ? .failed(errno: ECONNRESET) : .eof
        }
        return .failed(errno: saved)
    }

    /// Sends close_notify (if the socket takes it now; no waiting), then half-closes.
    public func shutdownWrite() {
        guard !closed else { return }
        if !broken && !isHandshaking { _ = SSL_shutdown(ssl) }
        OpenSSLErrors.clear()
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    /// Sends close_notify when the stream ended well (OpenSSL drops a session from the resumption cache
    /// when its connection ends without one), then closes the socket.
    public func close() {
        guard !closed else { return }
        closed = true
        if !broken && !isHandshaking { _ = SSL_shutdown(ssl) }
        OpenSSLErrors.clear()
        _ = Glibc.close(fd)
    }

    /// Answers on the socket itself, outside TLS: the short 400 to a client that spoke plain HTTP to
    /// this port (as nginx answers). The rest of its request already received is read and dropped, so
    /// that closing does not reset the connection before the answer is read.
    public func answerPlain(_ bytes: [UInt8]) {
        guard !closed else { return }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        _ = shutdown(fd, Int32(SHUT_WR))
        var sink = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<4 where recv(fd, &sink, sink.count, Int32(MSG_DONTWAIT)) > 0 {}
    }
}

extension OpenSSLErrors {
    static func clear() { ERR_clear_error() }
}

/// The method of idlegate's socket BIO, made once and shared by every connection.
nonisolated(unsafe) let socketMethod = idg_socket_method()
