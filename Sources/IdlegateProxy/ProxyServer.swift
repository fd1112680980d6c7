import Dispatch
import Glibc
import IdlegateAudit
import IdlegateBase
import IdlegateConfig
import IdlegateIO
import IdlegatePolicy
import IdlegateSessions
import IdlegateTLS
import Logging

/// The running proxy: listening sockets shared by `threads` event loops, each with its own
/// connections and upstream pool; the session table they share; its snapshots; reloads.
public final class ProxyServer: @unchecked Sendable {
    private let logger: Logger
    private var workers: [Worker] = []
    private var listenFDs: [Int32] = []
    /// The plain-HTTP listener that only redirects to https (`tls.redirect_listen`), if any.
    private var redirectFDs: [Int32] = []
    private let stopped = DispatchSemaphore(value: 0)
    public let table: SessionTable
    /// What requests are decided against: the table itself, or a shared layer over it (`makeStore`).
    public let store: SessionStore
    public let metrics: ProxyMetrics
    public let audit: Auditor
    public let deriver: SessionKeyDeriver
    public let clock: Clock
    private let state: StateDirectory?
    private let snapshotCheck: SessionKey
    /// The config in force, and the lock that serialises reloads and snapshots.
    private var current: Config
    private let lock = Mutex()
    public var config: Config { lock.withLock { current } }
    /// Why an event loop stopped on its own, if one did: `serve` then exits with status 1.
    private var failure: String?
    public var failed: String? { lock.withLock { failure } }

    /// Resolves the upstreams, loads the secret and the snapshot, binds every listen address; throws
    /// with a readable message.
    /// `makeStore` puts a shared layer (Redis) over the local table; by default the table is the store.
    /// It is handed the table and a key of the secret (replicas compare theirs).
    public init(config: Config, metrics: ProxyMetrics = ProxyMetrics(), clock: Clock = SystemClock(), logger: Logger,
                makeStore: (SessionTable, SessionKey) throws -> SessionStore = { table, _ in table }) throws {
        current = config
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
        let upstreams = try UpstreamEndpoint.make(config)
        if !config.stateDir.isEmpty { try StateDirectory.ensure(config.stateDir) }
        let (secret, created) = try SessionSecret.load(secretHex: config.sessionSecret, keyFile: config.effectiveKeyFile)
        if created { logger.notice("created session key file \(config.effectiveKeyFile) (mode 0600)") }
        deriver = SessionKeyDeriver(secret: secret)
        snapshotCheck = SessionSnapshot.check(deriver)
        table = SessionTable(maxEntries: config.maxSessions, longestWindow: config.longestWindow)
        store = try makeStore(table, snapshotCheck)
        var log: AuditLog? = nil
        if !config.audit.log.isEmpty {
            var s = AuditSettings(path: config.audit.log)
            s.rotateSize = config.audit.rotateSize
            s.rotateDaily = config.audit.rotateDaily
            s.keep = config.audit.keep
            s.queueCapacity = config.audit.queue
            s.fsyncInterval = config.audit.fsyncInterval
            log = try AuditLog(settings: s, clock: clock, onDrop: { [metrics] n in metrics.auditDropped.increment(by: Int64(n)) },
                               onError: { [logger] message in logger.error("\(message)") })
            log?.start()
        }
        audit = Auditor(log: log, activityFloor: config.audit.activityFloor, clock: clock)
        state = config.snapshotInterval > 0 ? StateDirectory(path: config.stateDir) : nil
        if let state {
            switch state.restore(into: table, check: snapshotCheck, now: clock.now()) {
            case .none:
                logger.info("no session snapshot in \(state.path) (first start): starting with an empty session table")
            case .restored(let kept, let total, let age, let logins):
                for (k, name) in logins { audit.logins.set(k, name) }
                logger.notice("restored \(kept) of \(total) session records from \(state.snapshotPath) (written \(age)s ago; idle time while down counts)")
            case .refused(let why):
                logger.error("\(why); starting with an EMPTY session table")
            }
        } else {
            logger.notice("session persistence off (snapshot_interval 0): a restart forgets every session")
        }
        let settings = try makeSettings(config)
        if let tls = settings.tls { logger.info("HTTPS on the listen addresses: \(Self.describe(tls))") }
        for text in config.listen {
            for address in try SocketAddress.resolve(text) {
                listenFDs.append(try Socket.listen(on: address, reusePort: false))
            }
        }
        if !config.tls.redirectListen.isEmpty {
            for address in try SocketAddress.resolve(config.tls.redirectListen) {
                redirectFDs.append(try Socket.listen(on: address, reusePort: false))
            }
        }
        let httpsPort = listenFDs.first.flatMap { Socket.localPort($0) } ?? 443
        let threads = config.threads > 0 ? config.threads : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        for _ in 0..<threads {
            let w = try Worker(settings: settings, metrics: metrics, upstreams: upstreams, poolSize: config.upstreamPoolSize, clock: clock, logger: logger)
            for fd in listenFDs { try w.listen(fd: fd) }
            for fd in redirectFDs { try w.listen(fd: fd, redirectPort: httpsPort) }
            workers.append(w)
        }
    }

    private func makeSettings(_ config: Config) throws -> ProxySettings {
        let gate = SessionGate(rules: SessionRules(config: config, auditing: audit.enabled), store: store, deriver: deriver, clock: clock,
                               metrics: metrics, audit: audit, logger: logger)
        return ProxySettings(config: config, gate: gate, tls: try TLSServer.load(config.tls))
    }

    static func describe(_ tls: TLSServer) -> String {
        "certificates for " + tls.names.map { $0.joined(separator: ", ") }.joined(separator: "; ") + " (TLS \(tls.minimumVersion.rawValue) and up)"
    }

    /// The ports bound, in `listen` order (tests listen on port 0).
    public var boundPorts: [UInt16] { listenFDs.compactMap { Socket.localPort($0) } }
    public var threadCount: Int { workers.count }

    /// Starts one thread per event loop, and the housekeeping thread (sweeps, snapshots, and the
    /// `reap` passes `reapPass` makes over Odoo's session files, every `reap.interval`).
    public func start(reapPass: @escaping @Sendable (ReapConfig) -> Void) {
        OSThread.start(name: "idlegate-housekeeping") { [self] in
            var lastSweep = clock.now(), lastSnapshot = clock.now()
            // The first scheduled reap a few seconds after start, then every interval.
            var lastReap = clock.now() - config.reap.interval + 5_000
            while true {
                sleep(1)
                let now = clock.now()
                if now - lastSweep >= 60_000 {
                    // Drops records no window can still need, a stripe at a time.
                    lastSweep = now
                    let dropped = table.sweep(now: now)
                    audit.logins.prune { table.record($0) != nil }
                    if dropped > 0 { logger.debug("sweeper dropped \(dropped) session records; \(table.count) tracked") }
                }
                let reap = config.reap
                if !reap.sessionsDir.isEmpty && now - lastReap >= reap.interval {
                    lastReap = now
                    reapPass(reap)
                }
                let interval = config.snapshotInterval
                if interval > 0 && now - lastSnapshot >= interval {
                    lastSnapshot = now
                    snapshot()
                }
            }
        }
        for (i, w) in workers.enumerated() {
            let done = stopped
            w.onStopped = { done.signal() }
            OSThread.start(name: "idlegate-loop-\(i)") { [self] in
                guard let e = w.loop.run() else { return }
                // Nothing on this loop can make progress: close its connections and stop the process
                // through the normal shutdown (the signal thread drains the other loops), exit status 1.
                logger.critical("event loop \(i) failed: epoll_wait: \(String(cString: strerror(e))) (errno \(e)); shutting down")
                lock.withLock { failure = "epoll_wait: \(String(cString: strerror(e)))" }
                w.finish()
                kill(getpid(), SIGTERM)
            }
        }
    }

    /// Writes the session table to the state directory now (a no-op with persistence off).
    @discardableResult
    public func snapshot() -> Bool {
        guard let state else { return true }
        return lock.withLock {
            do {
                let n = try state.save(table, logins: audit.logins.all, check: snapshotCheck, now: clock.now())
                logger.debug("session snapshot: \(n) records written to \(state.snapshotPath)")
                return true
            } catch {
                logger.error("session snapshot failed: \(error) (the previous snapshot stays in place)")
                return false
            }
        }
    }

    /// Applies a new config's policies, timeouts, limits and cookie settings to every worker without
    /// dropping a connection or a session. Keys that need a restart are reported and left as they
    /// were. Returns a line for the log and the admin API.
    public func reload(_ new: Config) throws -> String {
        try lock.withLock {
            let restartOnly = new.restartOnlyChanges(from: current)
            let applied = new.keepingRestartOnly(from: current)
            let settings = try makeSettings(applied)  // certificates that do not load leave everything as it runs
            current = applied
            table.longestWindow = applied.longestWindow
            for w in workers { w.loop.execute { w.settings = settings } }
            metrics.reloads.increment()
            let policies = applied.policies.map(\.name) + ["default"]
            var line = "configuration reloaded: policies \(policies.joined(separator: ", ")); default \(applied.mode.rawValue), idle \(Config.formatDuration(applied.idleTimeout))"
            if let tls = settings.tls { line += "; HTTPS: \(Self.describe(tls))" }
            if !restartOnly.isEmpty { line += "; unchanged until restart: \(restartOnly.joined(separator: ", "))" }
            return line
        }
    }

    /// Ends a session by key (admin kick): its next request gets the expiry response, and that
    /// request's cookie is used to destroy it in Odoo; through a shared store, on every replica. False
    /// when the key is not tracked here and `elsewhere` (a shared store's lookup) does not know it live.
    public func kick(_ key: SessionKey, elsewhere: (SessionKey) -> Bool = { _ in false }) -> Bool {
        if let r = table.record(key) {
            guard !r.isEnded else { return false }
        } else if !elsewhere(key) {
            return false
        }
        store.end(key, now: clock.now())
        metrics.kicks.increment()
        audit.emit(.kicked, key: key) { $0.reason = "admin" }
        return true
    }

    public var now: Int64 { clock.now() }

    /// Stops accepting, lets in-flight requests finish for up to `timeouts.shutdown_grace`, returns once
    /// every loop has stopped, and writes a last snapshot.
    public func shutdown() {
        let grace = config.timeouts.shutdownGrace
        for w in workers {
            w.loop.execute { w.beginDrain(grace: grace) }
        }
        for _ in workers { stopped.wait() }
        for fd in listenFDs + redirectFDs { close(fd) }
        if state != nil && snapshot() { logger.info("session table saved (\(table.count) records)") }
        audit.log?.close()
    }
}
