import Dispatch
import Glibc
import IdlegateConfig
import IdlegateIO
import IdlegateSessions
import Logging

/// The running proxy: listening sockets shared by `threads` event loops, each with its own
/// connections and upstream pool.
public final class ProxyServer: @unchecked Sendable {
    private let config: Config
    private let logger: Logger
    private var workers: [Worker] = []
    private var listenFDs: [Int32] = []
    private let stopped = DispatchSemaphore(value: 0)
    private let table: SessionTable

    /// Resolves the upstreams and binds every listen address; throws with a readable message.
    public init(config: Config, logger: Logger) throws {
        self.config = config
        self.logger = logger
        let upstreams = try [config.upstream, config.websocketUpstream].map { try SocketAddress.resolve($0.authority) }
        let secret = try SessionSecret.load(config: config, logger: logger)
        let table = SessionTable(maxEntries: config.maxSessions, longestWindow: config.longestWindow)
        let enforcer = SessionEnforcer(config: config, store: table, deriver: SessionKeyDeriver(secret: secret),
                                       clock: SystemSessionClock(), logger: logger)
        self.table = table
        let settings = ProxySettings(config: config, enforcer: enforcer)
        for text in config.listen {
            for address in try SocketAddress.resolve(text) {
                listenFDs.append(try Socket.listen(on: address, reusePort: false))
            }
        }
        let threads = config.threads > 0 ? config.threads : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        for _ in 0..<threads {
            let w = try Worker(settings: settings, upstreams: upstreams, poolSize: config.upstreamPoolSize, logger: logger)
            for fd in listenFDs { try w.listen(fd: fd) }
            workers.append(w)
        }
    }

    /// The ports bound, in `listen` order (tests listen on port 0).
    public var boundPorts: [UInt16] { listenFDs.compactMap { Socket.localPort($0) } }
    public var threadCount: Int { workers.count }

    /// Starts one thread per event loop, and the sweeper.
    public func start() {
        let table = self.table
        let logger = self.logger
        Thread.start(name: "idlegate-sweeper") {
            // Drops records no window can still need, a stripe at a time, once a minute.
            let clock = SystemSessionClock()
            while true {
                sleep(60)
                let dropped = table.sweep(now: clock.now())
                if dropped > 0 { logger.debug("sweeper dropped \(dropped) session records; \(table.count) tracked") }
            }
        }
        for (i, w) in workers.enumerated() {
            let done = stopped
            w.onStopped = { done.signal() }
            Thread.start(name: "idlegate-loop-\(i)") { w.loop.run() }
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `timeouts.shutdown_grace`, then
    /// returns once every loop has stopped.
    public func shutdown() {
        let grace = config.timeouts.shutdownGrace
        for w in workers {
            w.loop.execute { w.beginDrain(grace: grace) }
        }
        for _ in workers { stopped.wait() }
        for fd in listenFDs { close(fd) }
    }
}

/// A plain pthread running one closure: the event loops need real threads of their own, not a
/// dispatch queue's borrowed ones.
enum Thread {
    private final class Box {
        let body: () -> Void
        let name: String
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(tid)
    }
}
