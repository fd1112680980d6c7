import IdlegateIO

/// One side of a proxied exchange: a transport, the bytes queued for it, and what edge-triggered
/// epoll last told us. Writes go straight to the socket while nothing is queued; what the socket does
/// not take is queued, and the caller stops reading the other side until `flush` drains it
/// (backpressure: at most about one read's worth of bytes is ever held per direction).
final class Channel {
    let transport: Transport
    var outbound = ByteBuffer()
    /// Whether a read may find bytes (cleared on `wouldBlock`, set by the next readable event).
    var mayRead = true
    /// Whether a write may go through (cleared on `wouldBlock`, set by the next writable event).
    var mayWrite = true
    /// The peer sent EOF.
    var sawEOF = false
    var failed = false
    /// Bytes written so far: how a slow reader that still reads shows it is alive.
    private(set) var bytesWritten = 0
    /// epoll reported a hang-up: the next reads will reach EOF, so a short read must not end reading.
    private var hangupSeen = false

    init(transport: Transport) { self.transport = transport }

    var fd: Int32 { transport.fd }
    var hasQueuedOutput: Bool { !outbound.isEmpty }

    /// Records what epoll reported.
    func note(_ events: UInt32) {
        if events & (Events.readable | Events.readHangup | Events.hangup | Events.error) != 0 { mayRead = true }
        if events & (Events.readHangup | Events.hangup | Events.error) != 0 { hangupSeen = true }
        if events & (Events.writable | Events.hangup | Events.error) != 0 { mayWrite = true }
        // TLS: a read that waited to send, or a write that waited to receive.
        if events & Events.writable != 0 && transport.readWaitsForWritable { mayRead = true }
        if events & Events.readable != 0 && transport.writeWaitsForReadable { mayWrite = true }
    }

    /// Sends `bytes`, queueing what the socket does not take. False when the stream failed.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if failed { return false }
        if bytes.isEmpty { return true }
        guard outbound.isEmpty, mayWrite else {
            outbound.append(bytes)
            return true
        }
        var offset = 0
        while offset < bytes.count {
            switch transport.write(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .bytes(let n):
                offset += n
                bytesWritten += n
            case .wouldBlock:
                mayWrite = false
                outbound.append(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                return true
            case .eof, .failed:
                failed = true
                return false
            }
        }
        return true
    }

    /// Queues `bytes` without trying the socket (while a connect is still in progress).
    func queue(_ bytes: UnsafeRawBufferPointer) {
        outbound.append(bytes)
    }

    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write($0) }
    }

    enum FlushResult { case drained, pending, failed }

    /// Writes queued bytes while the socket takes them.
    func flush() -> FlushResult {
        if failed { return .failed }
        while !outbound.isEmpty {
            guard mayWrite else { return .pending }
            let r = outbound.withBytes { transport.write($0) }
            switch r {
            case .bytes(let n): outbound.consume(n); bytesWritten += n
            case .wouldBlock: mayWrite = false; return .pending
            case .eof, .failed: failed = true; return .failed
            }
        }
        return .drained
    }

    /// Reads into `buffer`; clears `mayRead` and records EOF as they happen.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        guard mayRead else { return .wouldBlock }
        let r = transport.read(into: buffer)
        switch r {
        case .wouldBlock: mayRead = false
        case .eof: sawEOF = true; mayRead = false
        case .failed: failed = true; mayRead = false
        case .bytes(let n):
            // A short read drained the socket (unless TLS holds more above it).
            if n < buffer.count && !hangupSeen && !transport.hasBufferedInput { mayRead = false }
        }
        return r
    }
}
