import IdlegateIO
import IdlegateTLS

/// Where one upstream is and how to talk to it: its addresses, and for an `https://` upstream the TLS
/// client that verifies its certificate against `host` (the URL's host, also sent as SNI).
struct UpstreamEndpoint {
    let addresses: [SocketAddress]
    let tls: TLSClient?
    let host: String

    /// The transport for a socket connecting to one of `addresses` (it owns the fd from here on).
    func transport(fd: Int32) throws -> Transport {
        guard let tls else { return PlainTransport(fd: fd) }
        return try tls.transport(fd: fd, host: host)
    }
}

/// A connection to Odoo. While it serves a request its events go to the client connection that owns
/// it; while it waits in the pool, any event means the upstream closed it (or sent junk), so it goes.
final class UpstreamConnection: EventHandler {
    let channel: Channel
    let upstream: Int
    // Lifetimes, why no reference counting is needed here: `owner` is set by `UpstreamPool.acquire` and
    // cleared by `release` and `close`, and a client connection releases or closes its upstream before
    // it leaves the worker's registry (`ClientConnection.closeNow`), its last strong reference. The pool
    // belongs to the worker, which lives as long as the process and closes every pooled connection
    // (`closeAll`) when it stops.
    unowned(unsafe) var owner: ClientConnection?
    unowned(unsafe) let pool: UpstreamPool
    /// The non-blocking connect has not finished yet.
    var connecting: Bool
    /// It has served a request before (so a failure before any response byte may be a stale close).
    var reused = false
    var idleSince: Int64 = 0
    private(set) var closed = false

    init(transport: Transport, upstream: Int, pool: UpstreamPool) {
        channel = Channel(transport: transport)
        self.upstream = upstream
        self.pool = pool
        connecting = true
    }

    func handleEvents(_ events: UInt32) {
        if let owner {
            owner.upstreamEvents(events)
        } else {
            pool.idleConnectionEvent(self, events)
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        owner = nil
        pool.loop.deregister(fd: channel.fd)
        channel.transport.close()
    }
}

/// Keep-alive connections to each upstream, per event loop (so no locks). Odoo's prefork port answers
/// HTTP/1.0 with `Connection: close`, so in that set-up the pool simply stays empty.
final class UpstreamPool {
    let loop: EventLoop
    let endpoints: [UpstreamEndpoint]
    let maxIdle: Int
    let idleTimeout: Int64
    private var idle: [[UpstreamConnection]]

    init(loop: EventLoop, endpoints: [UpstreamEndpoint], maxIdle: Int, idleTimeout: Int64) {
        self.loop = loop
        self.endpoints = endpoints
        self.maxIdle = maxIdle
        self.idleTimeout = idleTimeout
        idle = Array(repeating: [], count: endpoints.count)
    }

    /// An idle pooled connection, or a new one being opened.
    func acquire(_ upstream: Int, owner: ClientConnection) throws -> UpstreamConnection {
        while let c = idle[upstream].popLast() {
            if c.closed { continue }
            c.owner = owner
            c.reused = true
            return c
        }
        var lastError: Error = IOError("connect", errno: 0)
        let endpoint = endpoints[upstream]
        for address in endpoint.addresses {
            do {
                let fd = try Socket.connect(to: address)
                let c = UpstreamConnection(transport: try endpoint.transport(fd: fd), upstream: upstream, pool: self)
                c.owner = owner
                do {
                    try loop.register(fd: fd, handler: c)
                } catch {
                    c.close()
                    throw error
                }
                return c
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Takes a connection back after a complete exchange; closes it when the pool is full.
    func release(_ c: UpstreamConnection) {
        c.owner = nil
        guard !c.closed, !c.channel.hasQueuedOutput, idle[c.upstream].count < maxIdle else {
            c.close()
            return
        }
        c.idleSince = loop.now
        idle[c.upstream].append(c)
    }

    /// A pooled connection reported an event. A late writable edge is harmless; a hang-up, or any byte
    /// (Odoo sends nothing unasked), means the connection is done.
    func idleConnectionEvent(_ c: UpstreamConnection, _ events: UInt32) {
        if events & (Events.hangup | Events.error | Events.readHangup) == 0 {
            var byte: UInt8 = 0
            let r = withUnsafeMutableBytes(of: &byte) { c.channel.transport.read(into: $0) }
            if r == .wouldBlock { return }
        }
        c.close()
        for u in idle.indices { idle[u].removeAll { $0 === c } }
    }

    /// Closes connections idle past the timeout.
    func prune(now: Int64) {
        for u in idle.indices {
            idle[u].removeAll { c in
                if c.closed { return true }
                if now - c.idleSince >= idleTimeout { c.close(); return true }
                return false
            }
        }
    }

    func idle(_ upstream: Int) -> [UpstreamConnection] { idle[upstream] }
    func clearIdle(_ upstream: Int) { idle[upstream].removeAll() }

    func closeAll() {
        for u in idle.indices {
            for c in idle[u] { c.close() }
            idle[u].removeAll()
        }
    }
}

extension UpstreamPool {
    /// After a pooled connection turned out stale, the others of the same age probably are too.
    func dropIdle(_ upstream: Int) {
        for c in idle(upstream) { c.close() }
        clearIdle(upstream)
    }
}
