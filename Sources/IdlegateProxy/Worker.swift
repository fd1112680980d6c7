import Glibc
import IdlegateBase
import IdlegateHTTP
import IdlegateIO
import IdlegateSessions
import Logging

/// One event-loop thread and everything it owns: its connections, its upstream pool, a read buffer
/// shared by all its connections (only the loop thread touches any of it).
final class Worker: @unchecked Sendable {
    let loop: EventLoop
    /// The settings every connection of this worker reads; a reload swaps `settingsBox.current`.
    let settingsBox: SettingsBox
    var settings: ProxySettings {
        get { settingsBox.current }
        set {
            settingsBox.current = newValue
            lastPeer = nil  // who is trusted may have changed
            if keys.deriver !== newValue.gate.deriver { keys = SessionKeyCache(deriver: newValue.gate.deriver) }
        }
    }
    /// The session keys this worker derived last (the session gate's deriver, remembered).
    private(set) var keys: SessionKeyCache
    /// What connection machines want done; emptied by the connection after each event. It also holds
    /// the request counts since the last tick.
    let outbox: Outbox
    let metrics: ProxyMetrics
    let pool: UpstreamPool
    let logger: Logger
    private(set) var destroyer: OdooDestroyer!
    /// Where every read lands first; bytes are copied out only when they must wait.
    let scratch: UnsafeMutableRawBufferPointer
    private var listeners: [Listener] = []
    private var connections: [ClientConnection] = []
    private(set) var draining = false
    private var drainDeadline: Int64 = .max
    var onStopped: @Sendable () -> Void = {}
    private var finished = false

    init(settings: ProxySettings, metrics: ProxyMetrics, upstreams: [UpstreamEndpoint], poolSize: Int, clock: Clock, logger: Logger) throws {
        loop = try EventLoop(clock: clock)
        settingsBox = SettingsBox(settings)
        keys = SessionKeyCache(deriver: settings.gate.deriver)
        outbox = Outbox()
        self.metrics = metrics
        self.logger = logger
        pool = UpstreamPool(loop: loop, endpoints: upstreams, maxIdle: poolSize, idleTimeout: settings.timeouts.upstreamIdle)
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        destroyer = OdooDestroyer(worker: self, endpoint: upstreams[Router.main])
        loop.onTick = { [unowned self] now in self.tick(now) }
    }

    deinit { scratch.deallocate() }

    /// The last peer seen, shared by the next connections from the same address: behind nginx every
    /// connection comes from one address, and an idle connection then holds no copy of it.
    private var lastPeer: ConnectionMachine.Peer?

    private func interned(_ address: SocketAddress) -> ConnectionMachine.Peer {
        if let p = lastPeer, p.ip == address.ip { return p }
        // Over TLS the peer is the browser itself (a proxy in front could not have added headers inside
        // the encrypted stream): its X-Forwarded-* are never believed.
        let p = ConnectionMachine.Peer(ip: address.ip, host: address.host, trusted: settings.tls == nil && settings.isTrusted(address))
        lastPeer = p
        return p
    }

    /// `redirectPort`: the redirect listener, sending every request to https on that port.
    func listen(fd: Int32, redirectPort: UInt16? = nil) throws {
        let l = Listener(fd: fd, worker: self, redirectPort: redirectPort)
        try loop.registerListener(fd: fd, handler: l)
        listeners.append(l)
    }

    func accepted(fd: Int32, peer: SocketAddress, redirectPort: UInt16? = nil) {
        let transport: Transport
        if let tls = settings.tls, redirectPort == nil {
            do {
                transport = try tls.transport(fd: fd)
            } catch {
                logger.error("cannot start TLS for a new connection: \(error)")
                return
            }
        } else {
            transport = PlainTransport(fd: fd)
        }
        let c = ClientConnection(transport: transport, peer: interned(peer), worker: self, redirectPort: redirectPort)
        do {
            try loop.register(fd: fd, handler: c)
        } catch {
            logger.error("cannot watch a new connection: \(error)")
            c.discard()
            return
        }
        c.registryIndex = connections.count
        connections.append(c)
        c.handleEvents(Events.readable | Events.writable)
    }

    func remove(_ c: ClientConnection) {
        let i = c.registryIndex
        guard i >= 0, i < connections.count, connections[i] === c else { return }
        let last = connections.removeLast()
        if i < connections.count {
            connections[i] = last
            last.registryIndex = i
        }
        c.registryIndex = -1
        if draining && connections.isEmpty && destroyer.pending == 0 { finish() }
    }

    /// Checks deadlines. A scan of every connection, a few times a second: cheap next to the reads
    /// and writes of the same connections, and nothing to keep in order on the hot path.
    private func tick(_ now: Int64) {
        var i = 0
        while i < connections.count {
            let c = connections[i]
            c.tick()
            if i < connections.count && connections[i] === c { i += 1 }
        }
        pool.prune(now: now)
        destroyer.tick(now: now)
        outbox.counts.flush(into: metrics)
        for l in listeners where l.paused { l.resume() }
        if draining && ((connections.isEmpty && destroyer.pending == 0) || now >= drainDeadline) { finish() }
    }

    /// Stops accepting; idle connections close now, busy ones after their current response.
    func beginDrain(grace: Int64) {
        guard !draining else { return }
        draining = true
        drainDeadline = loop.now + grace
        for l in listeners where !l.paused { loop.deregister(fd: l.fd) }
        listeners.removeAll()
        for c in connections { c.drain() }
        if connections.isEmpty { finish() }
    }

    /// Closes everything and reports the worker stopped (once).
    func finish() {
        guard !finished else { return }
        finished = true
        for c in connections { c.closeNow() }
        outbox.counts.flush(into: metrics)
        pool.closeAll()
        loop.stop()
        onStopped()
    }
}

/// Accepts new connections on a listening socket shared by all workers.
final class Listener: EventHandler {
    let fd: Int32
    unowned let worker: Worker
    /// Out of file descriptors: the listener is off until the next tick, so that a level-triggered
    /// listener does not spin (and log) until some connection closes.
    var paused = false

    let redirectPort: UInt16?

    init(fd: Int32, worker: Worker, redirectPort: UInt16?) {
        self.fd = fd
        self.worker = worker
        self.redirectPort = redirectPort
    }

    func handleEvents(_ events: UInt32) {
        // Level-triggered: take a batch, come back on the next wake-up for the rest.
        for _ in 0..<64 {
            do {
                guard let (cfd, peer) = try Socket.accept(fd) else { return }
                worker.accepted(fd: cfd, peer: peer, redirectPort: redirectPort)
            } catch {
                // EMFILE and friends: pause until the next tick.
                worker.logger.error("\(error); not accepting for a moment")
                worker.loop.deregister(fd: fd)
                paused = true
                return
            }
        }
    }
}

extension Listener {
    func resume() {
        do {
            try worker.loop.registerListener(fd: fd, handler: self)
            paused = false
        } catch {
            worker.logger.error("cannot watch the listener again: \(error)")
        }
    }
}

