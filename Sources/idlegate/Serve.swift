import ArgumentParser
import CSystem
import Glibc
import IdlegateAdmin
import IdlegateAudit
import IdlegateBase
import IdlegateConfig
import IdlegateIO
import IdlegateProxy
import IdlegateReaper
import IdlegateRedis
import IdlegateSessions
import Logging
import Metrics
import Prometheus

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config = try options.loadOrExit()
        LogLevel.level = Logger.Level(config.logLevel)
        LoggingSystem.bootstrap { label in ReloadableLevelHandler(inner: StreamLogHandler.standardError(label: label)) }
        let logger = Logger(label: "idlegate")
        // Metrics go to Prometheus when there is an admin API to read them; otherwise nowhere, free.
        let registry = PrometheusCollectorRegistry()
        if !config.adminListen.isEmpty {
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.durationHistogramBuckets["idlegate_upstream_response_seconds"] = [
                .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
            ]
            MetricsSystem.bootstrap(factory)
        }
        // Signals are taken by this thread alone (sigwait below); the loop threads inherit the mask.
        cs_block_signals()
        raiseOpenFileLimit(logger)
        let server: ProxyServer
        var shared: RedisStore? = nil
        do {
            server = try ProxyServer(config: config, logger: logger) { table, check in
                guard config.store == .redis else { return table }
                shared = try SharedStore.make(config, table: table, secretCheck: check)
                return shared!
            }
        } catch {
            throw fail("cannot start: \(error)")
        }
        if let shared { SharedStore.start(shared, server: server, logger: logger) }
        let options = self.options
        let reload: @Sendable () -> (Bool, String) = {
            do {
                let new = try options.load()
                let line = try server.reload(new)
                LogLevel.level = Logger.Level(new.logLevel)
                logger.notice("\(line)")
                server.audit.record(.configReloaded, reason: line)
                return (true, line)
            } catch {
                server.metrics.reloadFailures.increment()
                server.audit.record(.configReloadFailed, reason: "\(error)")
                logger.error("reload refused, the running configuration stays: \(error)")
                return (false, "\(error)")
            }
        }
        if !config.adminListen.isEmpty {
            let admin: AdminServer
            do {
                admin = try AdminServer(listen: config.adminListen, backend: adminBackend(server, shared: shared, registry: registry, reload: reload))
            } catch {
                throw fail("cannot start the admin API on \(config.adminListen): \(error)")
            }
            admin.start()
            logger.info("admin API on \(config.adminListen)\(config.adminToken.isEmpty ? " (no token)" : " (bearer token)")")
        }
        server.start { reap in reapSessionFiles(server, reap, logger: logger) }
        logger.info("idlegate \(Idlegate.version) listening on \(config.listen.joined(separator: ", ")) with \(server.threadCount) thread(s); upstream \(config.upstream), websocket upstream \(config.websocketUpstream)")
        while true {
            let sig = cs_wait_signal()
            switch sig {
            case SIGTERM, SIGINT:
                logger.info("signal \(sig): no new connections; finishing requests in flight (up to \(config.timeouts.shutdownGrace / 1000)s)")
                server.shutdown()
                shared?.stop()
                if let why = server.failed {
                    logger.critical("stopped after a failure: \(why)")
                    throw ExitCode(1)
                }
                logger.info("stopped")
                return
            case SIGHUP:
                _ = reload()
            case SIGUSR1:
                if let log = server.audit.log {
                    log.reopen()
                    logger.info("SIGUSR1: reopening the audit log \(log.settings.path)")
                }
            default:
                logger.info("signal \(sig) ignored")
            }
        }
    }
}

/// The admin API's view of the running server.
func adminBackend(_ server: ProxyServer, shared: RedisStore?, registry: PrometheusCollectorRegistry,
                  reload: @escaping @Sendable () -> (Bool, String)) -> AdminBackend {
    AdminBackend(
        metrics: {
            server.metrics.sessionsTracked.record(server.table.count)
            return registry.emitToBuffer() + Array(server.metrics.upstreamLatency.prometheusText().utf8) + Array((shared?.prometheusText() ?? "").utf8)
        },
        ready: {
            // Both of Odoo's ports: the HTTP one and the WebSocket/long-polling one (often the same).
            let c = server.config
            var down: [String] = []
            for u in Set([c.upstream.authority, c.websocketUpstream.authority]).sorted() where !upstreamReachable(u) { down.append("http://\(u)") }
            var (ok, detail) = down.isEmpty ? (true, "upstream \(c.upstream) and websocket upstream \(c.websocketUpstream) reachable")
                                            : (false, "not reachable: \(down.joined(separator: ", "))")
            if let shared {
                let s = SharedStore.readiness(shared)
                ok = ok && s.ok
                detail += "; " + s.detail
            }
            return (ok, detail)
        },
        table: server.table,
        now: { server.now },
        policyName: { record in
            let c = server.config
            let p = (c.policies + [c.defaultPolicy]).first {
                Int32Millis($0.idleTimeout).millis == record.idle.millis && Int32Millis($0.maxLifetime).millis == record.maxLifetime.millis
            }
            return p?.name
        },
        login: { key in server.audit.logins[key] },
        kick: { key in
            // A session this replica never saw may be live on another: the shared store is asked.
            let kicked = server.kick(key) { k in shared.flatMap { $0.sharedRecord(k) }.map { $0.found && !$0.ended } ?? false }
            if kicked { Logger(label: "idlegate").notice("session \(key) kicked (admin API): its next request is logged out") }
            return kicked
        },
        reload: reload,
        token: { server.config.adminToken },
        shared: shared.map { store in { @Sendable body in store.forEachShared(body) } }
    )
}

/// Every connection is a file descriptor (two while proxying): lift the soft limit to the hard one,
/// as nginx's worker_rlimit_nofile does, instead of failing at 1024 connections.
func raiseOpenFileLimit(_ logger: Logger) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    let before = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
        logger.warning("open file limit stays at \(before): \(String(cString: strerror(errno)))")
    }
}

/// One pass of the reaper over Odoo's session files, cross-checked with the live table (the scheduled
/// `reap.interval` passes of `serve`).
func reapSessionFiles(_ server: ProxyServer, _ reap: ReapConfig, logger: Logger) {
    let table = server.table
    let reaper = Reaper(sessions: reap.sessionsDir, rules: Reaper.Rules(idle: reap.idle, anonymousIdle: reap.anonymousIdle),
                        deriver: server.deriver, clock: server.clock) { table.record($0)?.isEnded ?? false }
    do {
        let s = try reaper.run()
        for (reason, n) in s.deleted where n > 0 { server.metrics.reaped[reason.rawValue]?.increment(by: Int64(n)) }
        let by = Reaper.Reason.allCases.map { "\(s.deleted[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
        logger.info("reaped \(s.deletedTotal) of \(s.scanned) Odoo session files in \(reap.sessionsDir) (\(by)); \(s.touchedDuringScan) in use kept")
        for e in s.errors { logger.error("reap: \(e)") }
        if s.deletedTotal > 0 || !s.errors.isEmpty {
            server.audit.record(.sessionsReaped, count: s.deletedTotal, reason: by + (s.errors.isEmpty ? "" : "; \(s.errors.count) errors"))
        }
    } catch {
        logger.error("reap refused: \(error)")
    }
}
