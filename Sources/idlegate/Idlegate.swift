import ArgumentParser
import CSystem
import Glibc
import IdlegateAdmin
import IdlegateAudit
import IdlegateConfig
import IdlegateIO
import IdlegateProxy
import IdlegateReaper
import IdlegateSessions
import Logging
import Metrics
import Prometheus

@main
struct Idlegate: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "idlegate",
        abstract: "Idle-timeout enforcement for Odoo sessions, as a reverse proxy in front of Odoo.",
        version: version,
        subcommands: [Serve.self, Check.self, Audit.self, Reap.self],
        defaultSubcommand: nil
    )
}

/// Flags shared by `serve` and `check`: each overrides the config file's key of the same name.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file (default: the embedded defaults).")
    var config: String?

    @Option(name: .long, help: "Address to listen on, HOST:PORT or [V6]:PORT; repeat for several. (listen)")
    var listen: [String] = []

    @Option(name: .long, help: "Odoo's HTTP port, http://HOST:PORT. (upstream)")
    var upstream: String?

    @Option(name: .customLong("websocket-upstream"), help: "Odoo's WebSocket/long-polling port, http://HOST:PORT. (websocket_upstream)")
    var websocketUpstream: String?

    @Option(name: .long, help: "Event-loop threads; 0 = one per core. (threads)")
    var threads: Int?

    @Option(name: .customLong("log-level"), help: "debug, info, warning or error. (log_level)")
    var logLevel: String?

    @Option(name: .customLong("idle-timeout"), help: "The default policy's idle window, like 90s or 15m. (idle_timeout)")
    var idleTimeout: String?

    @Option(name: .customLong("max-lifetime"), help: "The default policy's absolute lifetime, like 12h; 0 for none. (max_lifetime)")
    var maxLifetime: String?

    @Option(name: .long, help: "The default policy's mode: enforce, audit or off. (mode)")
    var mode: String?

    @Option(name: .customLong("state-dir"), help: "Where the session snapshot and key file live. (state_dir)")
    var stateDir: String?

    @Option(name: .customLong("admin-listen"), help: "The admin API's HOST:PORT; empty for none. (admin_listen)")
    var adminListen: String?

    @Option(name: .customLong("audit-log"), help: "The audit log: a file, - for stdout. (audit.log)")
    var auditLog: String?

    /// `load()`, or the reason on stderr and exit status 1 (no usage text: the message names the key).
    func loadOrExit() throws -> Config {
        do {
            return try load()
        } catch {
            throw fail("\(error)")
        }
    }

    /// The effective config: embedded defaults, then the file, then `IDLEGATE_…` variables, then flags.
    /// Called again on every reload.
    func load() throws -> Config {
        var text = ""
        if let path = config {
            guard let t = readFile(path) else { throw ValidationError("cannot read config file \(path): \(String(cString: strerror(errno)))") }
            text = t
        }
        // Flags are one more layer over the file and the environment, checked by the same loader.
        var flags: [Config.Override] = []
        func flag(_ name: String, _ path: String, _ value: Any?) {
            if let value { flags.append(Config.Override(flag: name, path: path.split(separator: ".").map(String.init), value: value)) }
        }
        flag("--listen", "listen", listen.isEmpty ? nil : listen)
        flag("--upstream", "upstream", upstream)
        flag("--websocket-upstream", "websocket_upstream", websocketUpstream)
        flag("--threads", "threads", threads)
        flag("--log-level", "log_level", logLevel)
        flag("--idle-timeout", "idle_timeout", idleTimeout)
        flag("--max-lifetime", "max_lifetime", maxLifetime)
        flag("--mode", "mode", mode)
        flag("--state-dir", "state_dir", stateDir)
        flag("--admin-listen", "admin_listen", adminListen)
        flag("--audit-log", "audit.log", auditLog)
        do {
            return try Config.load(yaml: text, environment: processEnvironment(), flags: flags)
        } catch {
            // A value from a variable or a flag says so; one from the file is named by the file.
            throw ValidationError(error.source == nil ? "\(config ?? "defaults"): \(error)" : "\(error)")
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config = try options.loadOrExit()
        LogLevel.level = Logger.Level(rawValue: config.logLevel) ?? .info
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
        do {
            server = try ProxyServer(config: config, logger: logger)
        } catch {
            throw fail("cannot start: \(error)")
        }
        let options = self.options
        let reload: @Sendable () -> (Bool, String) = {
            do {
                let new = try options.load()
                let line = server.reload(new)
                LogLevel.level = Logger.Level(rawValue: new.logLevel) ?? .info
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
                admin = try AdminServer(listen: config.adminListen, backend: adminBackend(server, registry: registry, reload: reload))
            } catch {
                throw fail("cannot start the admin API on \(config.adminListen): \(error)")
            }
            admin.start()
            logger.info("admin API on \(config.adminListen)\(config.adminToken.isEmpty ? " (no token)" : " (bearer token)")")
        }
        server.start()
        logger.info("idlegate \(Idlegate.version) listening on \(config.listen.joined(separator: ", ")) with \(server.threadCount) thread(s); upstream \(config.upstream), websocket upstream \(config.websocketUpstream)")
        while true {
            let sig = cs_wait_signal()
            switch sig {
            case SIGTERM, SIGINT:
                logger.info("signal \(sig): no new connections; finishing requests in flight (up to \(config.timeouts.shutdownGrace / 1000)s)")
                server.shutdown()
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

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit trail.", subcommands: [Report.self])

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per policy and per login: sessions, idle gaps, and how many sessions each candidate window would have expired.")

        @Argument(help: "Audit log files, plain or .gz, read in the order given.")
        var files: [String]

        @Option(help: "Candidate windows, comma-separated durations.")
        var windows = "5m,10m,15m,30m"

        @Flag(help: "One JSON object instead of tables.")
        var json = false

        func run() throws {
            var seconds: [Int64] = []
            for w in windows.split(separator: ",") {
                guard let ms = Config.parseDuration(String(w)), ms >= 1000 else { throw fail("--windows: \"\(w)\" is not a duration (like 5m, 90s)") }
                seconds.append(ms / 1000)
            }
            var report = AuditReport(windows: seconds)
            for f in files {
                do { try report.read(path: f) } catch { throw fail("\(error)") }
            }
            report.finishOpenSessions()
            print(json ? report.json() : report.table(), terminator: json ? "\n" : "")
        }
    }
}

struct Reap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete Odoo's stale session files: idle ones, anonymous ones sooner, and those of sessions idlegate ended.",
        discussion: """
        Reads the session key and the session snapshot from idlegate's state directory (--config / --state-dir, as         serve) to find the sessions idlegate ended; without them only the mtime rules apply. Safe while Odoo runs.         Exit status 1 only on real errors (a directory that cannot be read or is not Odoo's, a file that cannot be deleted).
        """)

    @OptionGroup var options: ConfigOptions

    @Option(name: .customLong("sessions"), help: "Odoo's <data_dir>/sessions. (reap.sessions_dir)")
    var sessions: String?

    @Option(help: "Session files untouched this long go. (reap.idle)")
    var idle: String?

    @Option(name: .customLong("anonymous-idle"), help: "Anonymous session files untouched this long go. (reap.anonymous_idle)")
    var anonymousIdle: String?

    @Flag(name: .customLong("dry-run"), help: "Only list what would go, by session key.")
    var dryRun = false

    @Flag(help: "A JSON summary instead of text.")
    var json = false

    func run() throws {
        let c = try options.loadOrExit()
        guard let dir = sessions ?? (c.reap.sessionsDir.isEmpty ? nil : c.reap.sessionsDir) else {
            throw fail("--sessions: give Odoo's <data_dir>/sessions")
        }
        var rules = Reaper.Rules(idle: c.reap.idle, anonymousIdle: c.reap.anonymousIdle, dryRun: dryRun,
                                 threads: min(4, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if let t = idle {
            guard let ms = Config.parseDuration(t), ms >= 1000 else { throw fail("--idle: \"\(t)\" is not a duration (like 7d, 12h)") }
            rules.idle = ms
        }
        if let t = anonymousIdle {
            guard let ms = Config.parseDuration(t), ms >= 1000 else { throw fail("--anonymous-idle: \"\(t)\" is not a duration (like 1h)") }
            rules.anonymousIdle = ms
        }
        // The sessions idlegate ended, from its snapshot, named by the same keys.
        var note: String? = nil
        var ended = Set<SessionKey>()
        let deriver: SessionKeyDeriver
        if let secret = SessionSecret.existing(config: c) {
            deriver = SessionKeyDeriver(secret: secret)
            let path = c.stateDir + "/sessions.snapshot"
            if let bytes = readBytes(path) {
                do {
                    let contents = try SessionSnapshot.read(bytes, check: SessionSnapshot.check(deriver))
                    for (k, r) in contents.records where r.isEnded { ended.insert(k) }
                } catch {
                    note = "session snapshot \(path) not used (\(error)): only the mtime rules apply"
                }
            } else {
                note = "no session snapshot at \(path): only the mtime rules apply"
            }
        } else {
            deriver = SessionKeyDeriver(secret: SessionKeyDeriver.randomSecret() ?? Array(repeating: 1, count: 32))
            note = "no session key in \(c.effectiveKeyFile): only the mtime rules apply, and keys shown are one-off"
        }
        if let note { _ = write(2, Array("idlegate: \(note)\n".utf8), note.utf8.count + 11) }
        let reaper = Reaper(sessions: dir, rules: rules, deriver: deriver, now: SystemSessionClock().now(),
                            ended: ended.isEmpty ? nil : { ended.contains($0) })
        let summary: Reaper.Summary
        do { summary = try reaper.run() } catch { throw fail("\(error)") }
        print(json ? summary.json : summary.text, terminator: "")
        if !summary.errors.isEmpty { throw ExitCode(1) }
    }
}

func readBytes(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }  // a directory, an I/O error
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

/// The admin API's view of the running server.
func adminBackend(_ server: ProxyServer, registry: PrometheusCollectorRegistry, reload: @escaping @Sendable () -> (Bool, String)) -> AdminBackend {
    AdminBackend(
        metrics: {
            server.metrics.sessionsTracked.record(server.table.count)
            return registry.emitToBuffer()
        },
        ready: {
            // Both of Odoo's ports: the HTTP one and the WebSocket/long-polling one (often the same).
            let c = server.config
            var down: [String] = []
            for u in Set([c.upstream.authority, c.websocketUpstream.authority]).sorted() where !upstreamReachable(u) { down.append("http://\(u)") }
            return down.isEmpty ? (true, "upstream \(c.upstream) and websocket upstream \(c.websocketUpstream) reachable")
                                : (false, "not reachable: \(down.joined(separator: ", "))")
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
            let kicked = server.kick(key)
            if kicked { Logger(label: "idlegate").notice("session \(key) kicked (admin API): its next request is logged out") }
            return kicked
        },
        reload: reload,
        token: { server.config.adminToken }
    )
}

/// Whether a TCP connection to `authority` opens within a second.
func upstreamReachable(_ authority: String) -> Bool {
    guard let addresses = try? SocketAddress.resolve(authority) else { return false }
    for a in addresses {
        guard let fd = try? Socket.connect(to: a) else { continue }
        defer { close(fd) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if poll(&p, 1, 1000) == 1 && Socket.pendingError(fd) == 0 { return true }
    }
    return false
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration and print the effective values as YAML, like nginx -t.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.loadOrExit()
        print("# effective configuration (defaults, then the file, then IDLEGATE_* variables, then flags)")
        print(c.yaml(), terminator: "")
        print("# configuration ok")
    }
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

/// Writes `idlegate: message` to stderr and gives the exit status 1 to throw (no usage text: the
/// message says what is wrong).
func fail(_ message: String) -> ExitCode {
    let line = Array("idlegate: \(message)\n".utf8)
    _ = write(2, line, line.count)
    return ExitCode(1)
}

/// The process environment, as `KEY=value` pairs.
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return out
}

func readFile(_ path: String) -> String? {
    readBytes(path).map { String(decoding: $0, as: UTF8.self) }
}
