import IdlegateBase

/// Everything `idlegate serve` runs with. Each field's default is the embedded default, documented
/// key by key in `config/idlegate.yaml`; the file, then command-line flags, override it.
public struct Config: Sendable, Equatable {
    /// Addresses to listen on, `HOST:PORT` or `[V6]:PORT`. Default `127.0.0.1:8080`.
    public var listen: [String] = ["127.0.0.1:8080"]
    /// Event-loop threads; 0 means one per core. Default 0.
    public var threads: Int = 0
    /// Where Odoo's HTTP port is. Default `http://127.0.0.1:8069`.
    public var upstream: UpstreamURL = UpstreamURL(host: "127.0.0.1", port: 8069)
    /// Where Odoo's WebSocket/long-polling (gevent) port is. Default `http://127.0.0.1:8072`, as in a
    /// prefork (`workers > 0`) deployment; point it at the same port as `upstream` for a threaded Odoo.
    public var websocketUpstream: UpstreamURL = UpstreamURL(host: "127.0.0.1", port: 8072)
    /// Path prefixes routed to `websocketUpstream`. Default `/websocket`, `/longpolling`.
    public var websocketPaths: [String] = ["/websocket", "/longpolling"]
    /// Peers whose X-Forwarded-* headers are believed (the nginx in front). Default loopback.
    public var trustedProxies: [CIDR] = [CIDR(parsing: "127.0.0.0/8")!, CIDR(parsing: "::1/128")!]
    /// The scheme clients use to reach idlegate, sent as X-Forwarded-Proto when the peer is not a
    /// trusted proxy. Default `http`.
    public var publicScheme: Scheme = .http
    /// Upgrade protocols that may open a tunnel. Default `websocket` only: an `h2c` upgrade would let
    /// every later request on that connection pass unchecked.
    public var allowedUpgrades: [String] = ["websocket"]
    public var limits = HTTPLimits()
    public var timeouts = Timeouts()
    /// Idle keep-alive connections kept per upstream per thread. Default 128.
    public var upstreamPoolSize: Int = 128
    /// HTTPS on the listen addresses (kiosks and shops without nginx). Default off.
    public var tls = TLSConfig()
    /// How `https://` upstreams are verified. Default: the system's CA bundle, no client certificate.
    public var upstreamTLS = UpstreamTLSConfig()
    /// `debug`, `info`, `warning`, `error`. Default `info`.
    public var logLevel: LogLevel = .info

    // MARK: sessions

    /// The default policy's mode. Default `enforce`.
    public var mode: EnforcementMode = .enforce
    /// The default policy's idle window. Default 15 min (PCI DSS v4.0 8.2.8).
    public var idleTimeout: Int64 = 15 * 60_000
    /// The default policy's absolute lifetime; 0 = none. Default none.
    public var maxLifetime: Int64 = 0
    /// The default policy's kiosk screen guard: a warning before the idle logout and a page that clears
    /// itself when it comes (enforce mode only). Default off.
    public var screenGuard: Bool = false
    /// How long before the logout the screen guard warns. Default 60 s.
    public var warnBefore: Int64 = 60_000
    /// Named policies, first match wins. Default none.
    public var policies: [PolicyConfig] = []
    /// Ids never seen before: adopted with a fresh clock, or refused (strict kiosks). Default adopt.
    public var unknownSessions: UnknownSessions = .adopt
    /// Path prefixes that are checked but never refresh a session's clock.
    public var passivePaths: [String] = Config.defaultPassivePaths
    /// `?session_id=` and `X-Openerp-Session-Id`: stripped (default) or checked.
    public var legacySessionSources: LegacySessionSources = .strip
    public var cookies = CookieSettings()
    /// The HMAC secret for session keys, 64 hex digits; empty = read or create `key_file`. Default empty.
    public var sessionSecret: String = ""
    /// Where the HMAC secret lives; created with mode 0600 on first start. Default empty: `idlegate.key`
    /// in `state_dir`.
    public var keyFile: String = ""
    /// Most sessions tracked; past it, the longest-idle ones are evicted first. Default 1 000 000.
    public var maxSessions: Int = 1_000_000
    /// Post Odoo's /web/session/destroy for every session idlegate expires. Default on.
    public var destroyInOdoo: Bool = true
    /// Where session state lives: `memory` (this process's table) or `redis` (shared by replicas,
    /// the table staying the fast path). Default `memory`.
    public var store: StoreKind = .memory
    public var redis = RedisConfig()

    // MARK: operations

    /// Where the session snapshot (and, by default, the key file) lives; created if missing. Default
    /// `idlegate-state` in the working directory (the systemd unit uses /var/lib/idlegate).
    public var stateDir: String = "idlegate-state"
    /// How often the session table is written to `state_dir` (also at shutdown); 0 turns persistence
    /// off: no snapshot is written or restored. Default 30 s.
    public var snapshotInterval: Int64 = 30_000
    /// The admin API's address (health, metrics, sessions, reload); empty = off. Default loopback 9180.
    public var adminListen: String = "127.0.0.1:9180"
    /// The bearer token the admin API asks for; empty = none. Default empty.
    public var adminToken: String = ""
    public var audit = AuditConfig()
    public var reap = ReapConfig()

    public init() {}

    /// The key file in force: `key_file`, or `idlegate.key` in `state_dir`.
    public var effectiveKeyFile: String {
        keyFile.isEmpty ? (stateDir.isEmpty ? "idlegate.key" : stateDir + "/idlegate.key") : keyFile
    }

    /// A key that a reload leaves as it runs: it takes effect only after a restart.
    struct RestartOnly: Sendable {
        let name: String
        let differs: @Sendable (Config, Config) -> Bool
        let keep: @Sendable (inout Config, Config) -> Void

        init<T: Equatable>(_ name: String, _ path: WritableKeyPath<Config, T> & Sendable) {
            self.name = name
            differs = { $0[keyPath: path] != $1[keyPath: path] }
            keep = { $0[keyPath: path] = $1[keyPath: path] }
        }
    }

    static let restartOnly: [RestartOnly] = [
        RestartOnly("listen", \.listen), RestartOnly("threads", \.threads), RestartOnly("upstream", \.upstream),
        RestartOnly("websocket_upstream", \.websocketUpstream), RestartOnly("upstream_pool_size", \.upstreamPoolSize),
        RestartOnly("session_secret", \.sessionSecret), RestartOnly("key_file", \.keyFile), RestartOnly("max_sessions", \.maxSessions),
        RestartOnly("state_dir", \.stateDir), RestartOnly("snapshot_interval", \.snapshotInterval),
        RestartOnly("admin_listen", \.adminListen), RestartOnly("audit", \.audit), RestartOnly("upstream_tls", \.upstreamTLS),
        RestartOnly("tls.redirect_listen", \.tls.redirectListen), RestartOnly("store", \.store), RestartOnly("redis", \.redis),
    ]

    /// The keys that differ from `old` and take effect only after a restart (a reload keeps them).
    public func restartOnlyChanges(from old: Config) -> [String] {
        Self.restartOnly.filter { $0.differs(self, old) }.map(\.name)
    }

    /// This config with every restart-only key as `running` has it: what a reload applies.
    public func keepingRestartOnly(from running: Config) -> Config {
        var c = self
        for k in Self.restartOnly { k.keep(&c, running) }
        return c
    }
}

extension Config {
    /// A browser-facing scheme.
    public enum Scheme: String, Sendable, Equatable { case http, https }

    public enum LogLevel: String, Sendable, Equatable { case debug, info, warning, error }

    /// Ids never seen before: adopted with a fresh clock, or refused (strict kiosks).
    public enum UnknownSessions: String, Sendable, Equatable { case adopt, reject }

    public enum StoreKind: String, Sendable, Equatable { case memory, redis }

    /// The shortest idle window any policy has (ms).
    public var shortestWindow: Int64 { ([idleTimeout] + policies.map(\.idleTimeout)).min() ?? idleTimeout }

    /// `redis.sync_interval`, or when 0 a tenth of the shortest idle window, between 1 s and 30 s.
    public var effectiveSyncInterval: Int64 {
        redis.syncInterval > 0 ? redis.syncInterval : min(30_000, max(1_000, shortestWindow / 10))
    }

}

/// The shared session store (`store: redis`): where Redis is, and how idlegate uses it.
public struct RedisConfig: Sendable, Equatable {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS) or
    /// `unix://[:password@]/path/redis.sock[?db=N]`. Default `redis://127.0.0.1:6379`.
    public var url = "redis://127.0.0.1:6379"
    /// Put before every key and the channel, so several Odoo instances can share one Redis. Default
    /// `idlegate:`.
    public var keyPrefix = "idlegate:"
    /// Connections for commands (the subscriber's comes on top). Default 2.
    public var poolSize = 2
    /// A command's deadline; past it the connection is dropped and the request decided by the fail
    /// mode. Default 200 ms.
    public var timeout: Int64 = 200
    /// Connecting and logging in. Default 1 s.
    public var connectTimeout: Int64 = 1_000
    /// How often each replica writes the activity it saw; 0 = a tenth of the shortest idle window,
    /// between 1 s and 30 s. Default 0.
    public var syncInterval: Int64 = 0
    /// Redis down or slow: `fail_open` (enforce on local state, resync when it is back) or
    /// `fail_closed` (sessions' requests get a 503 until it is back). Default `fail_open`.
    public var failMode: FailMode = .failOpen
    /// The CA bundle a `rediss://` server is verified against; empty = the system's. Default empty.
    public var ca = ""

    public enum FailMode: String, Sendable, Equatable {
        case failOpen = "fail_open"
        case failClosed = "fail_closed"
    }

    public init() {}
}

/// Cleaning Odoo's file session store from inside `serve` (`idlegate reap` does it once).
public struct ReapConfig: Sendable, Equatable {
    /// Odoo's `<data_dir>/sessions`; empty = no scheduled reaping. Default empty.
    public var sessionsDir = ""
    /// How often. Default 1 h.
    public var interval: Int64 = 3_600_000
    /// Session files untouched this long go. Default 7 days (Odoo 16+'s own session lifetime).
    public var idle: Int64 = 7 * 86_400_000
    /// Anonymous (not logged in, JSON) session files untouched this long go. Default 1 h.
    public var anonymousIdle: Int64 = 3_600_000

    public init() {}
}

/// The audit trail (JSON Lines).
public struct AuditConfig: Sendable, Equatable {
    /// A file path, `-` for stdout, empty for none. Default none.
    public var log = ""
    /// A person's request after at least this long idle is logged as `activity_resumed`. Default 60 s.
    public var activityFloor: Int64 = 60_000
    /// Rotate when the file would pass this size; 0 = never by size. Default 0.
    public var rotateSize: Int64 = 0
    /// Rotate once a day (UTC). Default off.
    public var rotateDaily = false
    /// Rotated, gzip-compressed files kept. Default 14.
    public var keep = 14
    /// Most events waiting to be written; past it they are dropped and counted. Default 65 536.
    public var queue = 65_536
    /// How often written events are fsync'ed. Default 1 s.
    public var fsyncInterval: Int64 = 1000

    public init() {}
}

/// Every timeout, in milliseconds.
public struct Timeouts: Sendable, Equatable {
    /// From a request's first byte to its last header byte (slowloris). Default 10 s.
    public var clientHeader: Int64 = 10_000
    /// A keep-alive client connection with no request in progress. Default 60 s.
    public var clientIdle: Int64 = 60_000
    /// A client that stops sending a request body, or stops reading a response. Default 60 s.
    public var clientBody: Int64 = 60_000
    /// Opening a connection to Odoo. Default 5 s.
    public var upstreamConnect: Int64 = 5_000
    /// Odoo's silence while a response is awaited or streamed. Default 120 s: above Odoo's 50 s
    /// long-polling and long enough for slow reports.
    public var upstreamResponse: Int64 = 120_000
    /// An idle pooled upstream connection. Default 15 s.
    public var upstreamIdle: Int64 = 15_000
    /// A WebSocket tunnel with no byte either way. Default 5 min (Odoo pings every 45 s).
    public var tunnelIdle: Int64 = 300_000
    /// A TLS handshake, from the connection's accept to its end (a client stalling mid-handshake is cut
    /// here, not after `client_idle`). Default 10 s.
    public var tlsHandshake: Int64 = 10_000
    /// How long SIGTERM waits for in-flight requests. Default 30 s.
    public var shutdownGrace: Int64 = 30_000

    public init() {}
}

/// An `http://HOST:PORT` or `https://HOST:PORT` upstream.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    /// `https://`: TLS to Odoo, verified (see `upstream_tls`).
    public var tls: Bool

    public init(host: String, port: UInt16, tls: Bool = false) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// Parses `http://host[:port][/]` (port 80 by default) or `https://host[:port][/]` (443).
    public init?(parsing text: String) {
        let lower = text.lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") {
            tls = false
            schemeLength = 7
        } else if lower.hasPrefix("https://") {
            tls = true
            schemeLength = 8
        } else {
            return nil
        }
        var rest = text.dropFirst(schemeLength)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("@"), let (h, p) = HostPort.split(rest, defaultPort: tls ? 443 : 80) else { return nil }
        host = h
        port = p
    }

    /// `host:port`, brackets around an IPv6 literal.
    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    public var description: String { "\(tls ? "https" : "http")://\(authority)" }
}

/// HTTPS on idlegate's own listen addresses.
public struct TLSConfig: Sendable, Equatable {
    /// The certificate chain, PEM, the server's certificate first; with `key`, every `listen` address
    /// speaks HTTPS. Reloaded on SIGHUP. Default empty: plain HTTP.
    public var cert = ""
    /// The private key of `cert`, PEM. Default empty.
    public var key = ""
    /// More certificates, each chosen when the browser asks for one of its names (SNI); `cert` answers
    /// every other name. Default none.
    public var certificates: [CertificateFiles] = []
    /// The oldest TLS version accepted: `1.2` or `1.3` (strict kiosks). 1.0 and 1.1 never. Default 1.2.
    public var minVersion = "1.2"
    /// A `Strict-Transport-Security` value added to HTTPS responses that carry none, e.g.
    /// `max-age=31536000`; empty = none. Default empty.
    public var hsts = ""
    /// A plain-HTTP address whose only answer is a redirect to the same URL over https; empty = none.
    /// Default empty.
    public var redirectListen = ""
    /// TLS sessions remembered for resumption (a terminal reconnecting skips the full handshake).
    /// Default 20 000.
    public var sessionCache = 20_000
    /// How long a TLS session can be resumed. Default 1 h.
    public var sessionTimeout: Int64 = 3_600_000

    public init() {}

    public var enabled: Bool { !cert.isEmpty }
}

/// A certificate chain and its key, as PEM file paths.
public struct CertificateFiles: Sendable, Equatable {
    public var cert: String
    public var key: String

    public init(cert: String, key: String) {
        self.cert = cert
        self.key = key
    }
}

/// Verifying `https://` upstreams.
public struct UpstreamTLSConfig: Sendable, Equatable {
    /// A PEM bundle of CAs to trust instead of the system's (`/etc/ssl/certs`). Default empty.
    public var ca = ""
    /// A client certificate chain, PEM, for an upstream that asks for one. Default empty.
    public var cert = ""
    /// Its private key. Default empty.
    public var key = ""

    public init() {}
}
