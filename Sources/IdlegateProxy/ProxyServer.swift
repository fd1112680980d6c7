import Dispatch
import Glibc
import IdlegateAudit
import IdlegateConfig
import IdlegateIO
import IdlegateReaper
import IdlegateSessions
import Logging

/// The running proxy: listening sockets shared by `threads` event loops, each with its own
/// connections and upstream pool; the session table they share; its snapshots; reloads.
public final class ProxyServer: @unchecked Sendable {
    private let logger: Logger
    private var workers: [Worker] = []
    private var listenFDs: [Int32] = []
    private let stopped = DispatchSemaphore(value: 0)
    public let table: SessionTable
    public let metrics: ProxyMetrics
    public let audit: Auditor
    private let deriver: SessionKeyDeriver
    private let clock = SystemSessionClock()
    private let state: StateDirectory?
    private let snapshotCheck: SessionKey
    /// The config in force, and the lock that serialises reloads and snapshots.
    private var current: Config
    private let lock = Mutex()
    public var config: Config { lock.withLock { current } }

    /// Resolves the upstreams, loads the secret and the snapshot, binds every listen address; throws
    /// with a readable message.
    public init(config: Config, metrics: ProxyMetrics = ProxyMetrics(), logger: Logger) throws {
        current = config
        self.logger = logger
        self.metrics = metrics
        let upstreams = try [config.upstream, config.websocketUpstream].map { try SocketAddress.resolve($0.authority) }
        if !config.stateDir.isEmpty { try StateDirectory.ensure(config.stateDir) }
        let secret = try SessionSecret.load(config: config, logger: logger)
        deriver = SessionKeyDeriver(secret: secret)
        snapshotCheck = SessionSnapshot.check(deriver)
        table = SessionTable(maxEntries: config.maxSessions, longestWindow: config.longestWindow)
        var log: AuditLog? = nil
        if !config.audit.log.isEmpty {
            var s = AuditSettings(path: config.audit.log)
            s.rotateSize = config.audit.rotateSize
            s.rotateDaily = config.audit.rotateDaily
            s.keep = config.audit.keep
            s.queueCapacity = config.audit.queue
            s.fsyncInterval = config.audit.fsyncInterval
            log = try AuditLog(settings: s, onDrop: { [metrics] n in metrics.auditDropped.increment(by: Int64(n)) },
                               onError: { [logger] message in logger.error("\(message)") })
            log?.start()
        }
        audit = Auditor(log: log, activityFloor: config.audit.activityFloor)
        state = config.snapshotInterval > 0 ? StateDirectory(path: config.stateDir) : nil
        if let state {
            state.restore(into: table, logins: audit.logins, check: snapshotCheck, now: clock.now(), logger: logger)
        } else {
            logger.notice("session persistence off (snapshot_interval 0): a restart forgets every session")
        }
        let settings = makeSettings(config)
        for text in config.listen {
            for address in try SocketAddress.resolve(text) {
                listenFDs.append(try Socket.listen(on: address, reusePort: false))
            }
        }
        let threads = config.threads > 0 ? config.threads : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        for _ in 0..<threads {
            let w = try Worker(settings: settings, metrics: metrics, upstreams: upstreams, poolSize: config.upstreamPoolSize, logger: logger)
            for fd in listenFDs { try w.listen(fd: fd) }
            workers.append(w)
        }
    }

    private func makeSettings(_ config: Config) -> ProxySettings {
        let enforcer = SessionEnforcer(config: config, store: table, deriver: deriver, clock: clock, metrics: metrics, audit: audit, logger: logger)
        return ProxySettings(config: config, enforcer: enforcer)
    }

    /// The ports bound, in `listen` order (tests listen on port 0).
    public var boundPorts: [UInt16] { listenFDs.compactMap { Socket.localPort($0) } }
    public var threadCount: Int { workers.count }

    /// Starts one thread per event loop, and the housekeeping thread (sweeps, snapshots).
    public func start() {
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
                    reapSessionFiles(reap)
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
            OSThread.start(name: "idlegate-loop-\(i)") { w.loop.run() }
        }
    }

    /// One pass of the reaper over Odoo's session files, cross-checked with the live table.
    func reapSessionFiles(_ reap: ReapConfig) {
        let table = self.table
        let reaper = Reaper(sessions: reap.sessionsDir, rules: Reaper.Rules(idle: reap.idle, anonymousIdle: reap.anonymousIdle),
                            deriver: deriver, now: clock.now()) { table.record($0)?.isEnded ?? false }
        do {
            let s = try reaper.run()
            for (reason, n) in s.deleted where n > 0 { metrics.reaped[reason.rawValue]?.increment(by: Int64(n)) }
            let by = Reaper.Reason.allCases.map { "\(s.deleted[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
            logger.info("reaped \(s.deletedTotal) of \(s.scanned) Odoo session files in \(reap.sessionsDir) (\(by)); \(s.touchedDuringScan) in use kept")
            for e in s.errors { logger.error("reap: \(e)") }
            if s.deletedTotal > 0 || !s.errors.isEmpty {
                audit.emit(.sessionsReaped) { e in
                    e.count = s.deletedTotal
                    e.reason = by + (s.errors.isEmpty ? "" : "; \(s.errors.count) errors")
                }
            }
        } catch {
            logger.error("reap refused: \(error)")
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
    public func reload(_ new: Config) -> String {
        lock.withLock {
            let restartOnly = new.restartOnlyChanges(from: current)
            let applied = new.keepingRestartOnly(from: current)
            current = applied
            table.longestWindow = applied.longestWindow
            let settings = makeSettings(applied)
            for w in workers { w.loop.execute { w.settings = settings } }
            metrics.reloads.increment()
            let policies = applied.policies.map(\.name) + ["default"]
            var line = "configuration reloaded: policies \(policies.joined(separator: ", ")); default \(applied.mode.rawValue), idle \(Config.formatDuration(applied.idleTimeout))"
            if !restartOnly.isEmpty { line += "; unchanged until restart: \(restartOnly.joined(separator: ", "))" }
            return line
        }
    }

    /// Ends a session by key (admin kick): its next request gets the expiry response, and that
    /// request's cookie is used to destroy it in Odoo. False when the key is not tracked.
    public func kick(_ key: SessionKey) -> Bool {
        guard let r = table.record(key), !r.isEnded else { return false }
        table.end(key, now: clock.now())
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
        for fd in listenFDs { close(fd) }
        if state != nil && snapshot() { logger.info("session table saved (\(table.count) records)") }
        audit.log?.close()
    }
}
