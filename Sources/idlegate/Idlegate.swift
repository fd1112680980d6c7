import ArgumentParser
import CSystem
import Glibc
import IdlegateConfig
import IdlegateProxy
import Logging

@main
struct Idlegate: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "idlegate",
        abstract: "Idle-timeout enforcement for Odoo sessions, as a reverse proxy in front of Odoo.",
        version: version,
        subcommands: [Serve.self, Check.self],
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

    /// The effective config: embedded defaults, then the file, then flags.
    func load() throws -> Config {
        var c = Config()
        if let path = config {
            guard let text = readFile(path) else { throw ValidationError("cannot read config file \(path): \(String(cString: strerror(errno)))") }
            do { c = try Config.load(yaml: text) } catch { throw ValidationError("\(path): \(error)") }
        }
        if !listen.isEmpty { c.listen = listen }
        if let u = upstream {
            guard let url = UpstreamURL(parsing: u) else { throw ValidationError("--upstream: \"\(u)\" is not an http://HOST:PORT URL") }
            c.upstream = url
        }
        if let u = websocketUpstream {
            guard let url = UpstreamURL(parsing: u) else { throw ValidationError("--websocket-upstream: \"\(u)\" is not an http://HOST:PORT URL") }
            c.websocketUpstream = url
        }
        if let t = threads {
            guard (0...256).contains(t) else { throw ValidationError("--threads: \(t) is outside 0…256") }
            c.threads = t
        }
        if let l = logLevel {
            guard ["debug", "info", "warning", "error"].contains(l) else { throw ValidationError("--log-level: \"\(l)\" is not debug, info, warning or error") }
            c.logLevel = l
        }
        if let t = idleTimeout {
            guard let ms = Config.parseDuration(t), ms >= 1000 else { throw ValidationError("--idle-timeout: \"\(t)\" is not a duration of at least 1s (like 90s, 15m)") }
            c.idleTimeout = ms
        }
        if let t = maxLifetime {
            guard let ms = t == "0" ? 0 : Config.parseDuration(t) else { throw ValidationError("--max-lifetime: \"\(t)\" is not a duration (like 8h, 12h)") }
            c.maxLifetime = ms
        }
        if let m = mode {
            guard let v = EnforcementMode(rawValue: m) else { throw ValidationError("--mode: \"\(m)\" is not enforce, audit or off") }
            c.mode = v
        }
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        return c
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let config = try options.load()
        let level = Logger.Level(rawValue: config.logLevel == "warning" ? "warning" : config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "idlegate")
        // Signals are taken by this thread alone (sigwait below); the loop threads inherit the mask.
        cs_block_signals()
        raiseOpenFileLimit(logger)
        let server: ProxyServer
        do {
            server = try ProxyServer(config: config, logger: logger)
        } catch {
            throw ValidationError("cannot start: \(error)")
        }
        server.start()
        logger.info("idlegate \(Idlegate.version) listening on \(config.listen.joined(separator: ", ")) with \(server.threadCount) thread(s); upstream \(config.upstream), websocket upstream \(config.websocketUpstream)")
        while true {
            let sig = cs_wait_signal()
            if sig == SIGTERM || sig == SIGINT {
                logger.info("signal \(sig): no new connections; finishing requests in flight (up to \(config.timeouts.shutdownGrace / 1000)s)")
                server.shutdown()
                logger.info("stopped")
                return
            }
            logger.info("signal \(sig) ignored (reload and log reopening arrive with later features)")
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration and print the effective values, like nginx -t.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.load()
        print("""
        listen: [\(c.listen.map { "\"\($0)\"" }.joined(separator: ", "))]
        threads: \(c.threads)
        upstream: \(c.upstream)
        websocket_upstream: \(c.websocketUpstream)
        websocket_paths: [\(c.websocketPaths.joined(separator: ", "))]
        trusted_proxies: [\(c.trustedProxies.map(\.description).joined(separator: ", "))]
        public_scheme: \(c.publicScheme)
        allowed_upgrades: [\(c.allowedUpgrades.joined(separator: ", "))]
        upstream_pool_size: \(c.upstreamPoolSize)
        log_level: \(c.logLevel)
        mode: \(c.mode.rawValue)
        idle_timeout: \(c.idleTimeout)ms
        max_lifetime: \(c.maxLifetime)ms
        unknown_sessions: \(c.unknownSessions)
        legacy_session_sources: \(c.legacySessionSources.rawValue)
        passive_paths: [\(c.passivePaths.joined(separator: ", "))]
        policies:\(c.policies.isEmpty ? " []" : "")
        \(c.policies.map { "  - \($0.name): mode \($0.mode.rawValue), idle \($0.idleTimeout)ms, max \($0.maxLifetime)ms, cidr [\($0.match.cidrs.map(\.description).joined(separator: ", "))], host [\($0.match.hosts.joined(separator: ", "))], path [\($0.match.paths.joined(separator: ", "))]" }.joined(separator: "\n"))
        cookies: harden \(c.cookies.harden), rebuild \(c.cookies.rebuild), same_site \(c.cookies.sameSite), secure \(c.cookies.secure), session_only \(c.cookies.sessionOnly)
        key_file: \(c.sessionSecret.isEmpty ? c.keyFile : "(session_secret given)")
        max_sessions: \(c.maxSessions)
        destroy_in_odoo: \(c.destroyInOdoo)
        limits:
          request_line: \(c.limits.requestLine)
          header_bytes: \(c.limits.headerBytes)
          header_count: \(c.limits.headerCount)
          body: \(c.limits.body)
          chunk_line: \(c.limits.chunkLine)
        timeouts:
          client_header: \(c.timeouts.clientHeader)ms
          client_idle: \(c.timeouts.clientIdle)ms
          client_body: \(c.timeouts.clientBody)ms
          upstream_connect: \(c.timeouts.upstreamConnect)ms
          upstream_response: \(c.timeouts.upstreamResponse)ms
          upstream_idle: \(c.timeouts.upstreamIdle)ms
          tunnel_idle: \(c.timeouts.tunnelIdle)ms
          shutdown_grace: \(c.timeouts.shutdownGrace)ms
        configuration ok
        """)
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

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
