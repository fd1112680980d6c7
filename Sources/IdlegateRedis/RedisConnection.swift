import Glibc
import IdlegateBase
import IdlegateIO
import IdlegateTLS

/// One connection to Redis, living on the client's own event loop thread (never a proxy loop): commands
/// are pipelined, replies matched to them in order. The login (`AUTH`, `SELECT`) and whatever the owner
/// adds (`SCRIPT LOAD`, `SUBSCRIBE`) go first; the connection is ready when their replies are in. Any
/// failure — a refused connect, a reply error during login, a malformed stream, a command past its
/// deadline — closes it and fails every command still waiting (their replies get nil).
final class RedisConnection: EventHandler {
    enum State { case connecting, loggingIn, ready, closed }
    typealias Reply = (RESPValue?) -> Void

    private(set) var state = State.connecting
    private let loop: EventLoop
    private var fd: Int32
    /// Addresses of the host still to try when a connect fails (`localhost` is ::1 and 127.0.0.1).
    private var otherAddresses: [SocketAddress] = []
    private let makeTransport: (Int32) throws -> Transport
    private var transport: Transport?
    private var out: [UInt8] = []
    private var written = 0
    private var parser = RESPParser()
    /// Commands sent and not yet answered, oldest first, with when each was sent.
    private var waiting: [(sentAt: Int64, reply: Reply)] = []
    private var waitingHead = 0
    private var loginLeft: Int
    let openedAt: Int64
    /// Replies that came with no command waiting (a subscriber's messages) go here.
    var onPush: ((RESPValue) -> Void)?
    var onReady: (RedisConnection) -> Void = { _ in }
    var onClosed: (RedisConnection, String) -> Void = { _, _ in }
    private(set) var closeReason: String?
    /// It was logged in and ready at some point before it closed.
    private(set) var wasReady = false

    var pendingCount: Int { waiting.count - waitingHead }
    private var lastReplyAt: Int64 = 0
    /// Since when the connection owes a reply and has sent none: the oldest unanswered command's send
    /// time, or the last reply if that came later (a long pipelined batch that keeps answering is not
    /// stalled). Nil when nothing is owed.
    var stalledSince: Int64? { waitingHead < waiting.count ? max(waiting[waitingHead].sentAt, lastReplyAt) : nil }

    /// Starts a non-blocking connect; `login` are the commands sent first, each of which must not fail.
    init(loop: EventLoop, url: RedisURL, tls: TLSClient?, login: [[String]]) throws {
        self.loop = loop
        openedAt = loop.now
        switch url.place {
        case .tcp(let host, let port):
            let addresses = try SocketAddress.resolve(host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            guard let address = addresses.first else { throw IOError("resolve \(host)", errno: 0) }
            fd = try Socket.connect(to: address)
            otherAddresses = Array(addresses.dropFirst())
            if url.tls, let tls {
                makeTransport = { fd in try tls.transport(fd: fd, host: host) }
            } else {
                makeTransport = { PlainTransport(fd: $0) }
            }
        case .unix(let path):
            fd = try Self.connectUnix(path)
            makeTransport = { PlainTransport(fd: $0) }
        }
        var hello: [[String]] = []
        if let password = url.password {
            hello.append(url.user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if url.database != 0 { hello.append(["SELECT", String(url.database)]) }
        hello += login
        loginLeft = hello.count
        for c in hello {
            RESP.append(c, to: &out)
            waiting.append((openedAt, { [unowned self] r in self.loginReply(r, command: c[0]) }))
        }
        do {
            try loop.register(fd: fd, handler: self)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    private static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError("socket") }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            for (i, b) in bytes.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS && errno != EAGAIN {
            let e = IOError("connect \(path)")
            Glibc.close(fd)
            throw e
        }
        return fd
    }

    private func loginReply(_ r: RESPValue?, command: String) {
        guard let r else { return }
        if case .error(let message) = r {
            close("\(command) refused: \(message)")
            return
        }
        loginLeft -= 1
        if loginLeft == 0 && state == .loggingIn { becomeReady() }
    }

    private func becomeReady() {
        state = .ready
        wasReady = true
        onReady(self)
    }

    /// Queues commands and writes what the socket takes now.
    func send(_ commands: [[String]], replies: [Reply]) {
        guard state != .closed else {
            for r in replies { r(nil) }
            return
        }
        let now = loop.now
        for (c, r) in zip(commands, replies) {
            RESP.append(c, to: &out)
            waiting.append((now, r))
        }
        if state == .ready || state == .loggingIn { flush() }
    }

    func send(_ command: [String], reply: @escaping Reply) { send([command], replies: [reply]) }

    func handleEvents(_ events: UInt32) {
        if state == .connecting {
            guard events & (Events.writable | Events.error | Events.hangup) != 0 else { return }
            let err = Socket.pendingError(fd)
            guard err == 0 else {
                if let next = otherAddresses.first, let nextFD = try? Socket.connect(to: next) {
                    otherAddresses.removeFirst()
                    loop.deregister(fd: fd)
                    Glibc.close(fd)
                    fd = nextFD
                    do { try loop.register(fd: fd, handler: self) } catch { close("epoll: \(error)") }
                    return
                }
                close("connect: \(String(cString: strerror(err)))")
                return
            }
            do {
                transport = try makeTransport(fd)
            } catch {
                close("TLS: \(error)")
                return
            }
            state = .loggingIn
            if loginLeft == 0 { becomeReady() }
        }
        guard state != .closed else { return }
        flush()
        if state != .closed { readAll() }
    }

    private func flush() {
        guard let transport, written < out.count else { return }
        while written < out.count {
            let r = out.withUnsafeBytes { transport.write(UnsafeRawBufferPointer(rebasing: $0[written...])) }
            switch r {
            case .bytes(let n): written += n
            case .wouldBlock: return
            case .eof, .failed: close(transport.failureReason ?? "write failed"); return
            }
        }
        out.removeAll(keepingCapacity: out.count <= 65_536)
        written = 0
    }

    private func readAll() {
        guard let transport else { return }
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while state != .closed {
            let r = buffer.withUnsafeMutableBytes { transport.read(into: $0) }
            switch r {
            case .bytes(let n):
                buffer.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                deliver()
            case .wouldBlock:
                // A TLS handshake may have wanted to send first: what is queued goes now.
                if transport.readWaitsForWritable || written < out.count { flush() }
                if !transport.hasBufferedInput { return }
            case .eof: close("Redis closed the connection"); return
            case .failed: close(transport.failureReason ?? "read failed"); return
            }
        }
    }

    private func deliver() {
        do {
            lastReplyAt = loop.now
            while state != .closed, let v = try parser.next() {
                if let onPush, case .array(let parts) = v, parts.first?.text == "message" {
                    onPush(v)  // a subscriber's message, even with a PING waiting
                } else if waitingHead < waiting.count {
                    let w = waiting[waitingHead]
                    waitingHead += 1
                    if waitingHead == waiting.count {
                        waiting.removeAll(keepingCapacity: true)
                        waitingHead = 0
                    }
                    w.reply(v)
                } else if let onPush {
                    onPush(v)
                } else {
                    close("a reply nothing asked for")
                }
            }
        } catch {
            close("malformed reply: \(error)")
        }
    }

    /// Closes the connection and fails whatever waits. Idempotent.
    func close(_ reason: String) {
        guard state != .closed else { return }
        state = .closed
        closeReason = reason
        loop.deregister(fd: fd)
        if let transport { transport.close() } else { Glibc.close(fd) }
        let failed = waiting[waitingHead...]
        waiting = []
        waitingHead = 0
        for w in failed { w.reply(nil) }
        onClosed(self, reason)
    }
}
