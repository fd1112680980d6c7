import IdlegateBase
import Yams

extension Config {
    /// Reads a YAML config over the embedded defaults, then the `IDLEGATE_…` environment overrides,
    /// then command-line `flags`, all through one validation. Unknown keys are errors (a typo must not
    /// silently leave a default in force); every error names its key, and the variable or flag when the
    /// value came from one.
    public static func load(yaml text: String, environment: [String: String] = [:], flags: [Override] = []) throws(ConfigError) -> Config {
        let node = try Self.yaml(text, "")
        var root: [String: Any] = [:]
        if let node {
            guard let m = node as? [String: Any] else { throw ConfigError("", "the file must be a mapping of keys") }
            root = m
        }
        let overrides = try environmentOverrides(environment) + flags
        for o in overrides { root = merging(root, path: o.path[...], value: o.value) }
        var config = Config()
        do {
            try config.apply(root)
            try config.validate()
        } catch {
            // Name the variable or flag a bad value came from.
            if let o = overrides.last(where: { error.key == $0.key || error.key.hasPrefix($0.key + ".") || error.key.hasPrefix($0.key + "[") }) {
                throw ConfigError(error.key, error.problem, source: o.source)
            }
            throw error
        }
        return config
    }

    /// YAML text as plain values: mappings with string keys, lists, scalars (Yams's typing of scalars).
    /// Built from Yams's node tree rather than `Yams.load`, which traps on a mapping whose key is itself
    /// a list or mapping (`[]: x`, found by the config fuzzer): a config file must never crash idlegate.
    /// Nil for an empty document.
    static func yaml(_ text: String, _ path: String) throws(ConfigError) -> Any? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(path, "not valid YAML: \(error)")
        }
        guard let root else { return nil }
        return try plain(root, path, depth: 0)
    }

    /// Deepest nesting a config file may use: idlegate's own goes four levels down.
    static let maxDepth = 32

    private static func plain(_ node: Node, _ path: String, depth: Int) throws(ConfigError) -> Any {
        guard depth <= maxDepth else { throw ConfigError(path, "nested more than \(maxDepth) levels deep") }
        switch node {
        case .scalar:
            return Constructor.default.any(from: node)
        case .sequence(let items):
            var out: [Any] = []
            for (i, item) in items.enumerated() { out.append(try plain(item, "\(path)[\(i)]", depth: depth + 1)) }
            return out
        case .mapping(let pairs):
            var out: [String: Any] = [:]
            var merged: [String: Any] = [:]  // YAML merge keys (`<<: *base`): explicit keys win
            for (key, value) in pairs {
                guard case .scalar(let k) = key else {
                    throw ConfigError(path, "a key that is a \(key.mapping != nil ? "mapping" : "list"), not a name")
                }
                if key.tag == Tag(.merge) {
                    let bases: [Node] = value.sequence.map(Array.init) ?? [value]
                    for base in bases.reversed() {
                        guard let m = try plain(base, path, depth: depth + 1) as? [String: Any] else {
                            throw ConfigError(path, "<< must merge a mapping")
                        }
                        merged.merge(m) { _, later in later }
                    }
                    continue
                }
                let name = k.string
                out[name] = try plain(value, path.isEmpty ? name : "\(path).\(name)", depth: depth + 1)
            }
            return merged.merging(out) { _, own in own }
        }
    }

    /// One value from outside the file. An `IDLEGATE_…` variable: `IDLEGATE_IDLE_TIMEOUT=10m` sets
    /// `idle_timeout`; a double underscore goes one level down (`IDLEGATE_TIMEOUTS__CLIENT_IDLE=2m`).
    /// Or a flag (`--idle-timeout 10m`). Text values are read as YAML, so lists (`[a, b]`), numbers and
    /// booleans work as in the file.
    public struct Override: @unchecked Sendable {
        let source: String
        let path: [String]
        let value: Any
        var key: String { path.joined(separator: ".") }

        /// A flag's value (a String, an Int, a list of Strings) for the key at `path` (`["audit", "log"]`),
        /// taken as given: the loader checks it as it checks the file's.
        public init(flag: String, path: [String], value: Any) {
            self.init(source: flag, path: path, value: value)
        }

        init(source: String, path: [String], value: Any) {
            self.source = source
            self.path = path
            self.value = value
        }

        /// A variable's text as YAML: `15m`, `true`, `8`, `[a, b]`. Only text that opens with `[` or `{`
        /// becomes a list or mapping (`-` stays the string "-", not a one-item list).
        static func read(_ text: String) -> Any {
            guard !text.isEmpty, let value = try? Config.yaml(text, "") else { return text }
            if value is [Any] || value is [String: Any] {
                return text.hasPrefix("[") || text.hasPrefix("{") ? value : text
            }
            return value
        }
    }

    static func environmentOverrides(_ environment: [String: String]) throws(ConfigError) -> [Override] {
        var out: [Override] = []
        for (name, text) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("IDLEGATE_") {
            let path = name.dropFirst(9).lowercased().split(separator: "__", omittingEmptySubsequences: false).map(String.init)
            guard !path.contains(where: \.isEmpty) else { throw ConfigError(name, "is not a config key") }
            out.append(Override(source: name, path: path, value: Override.read(text)))
        }
        return out
    }

    static func merging(_ m: [String: Any], path: ArraySlice<String>, value: Any) -> [String: Any] {
        var m = m
        guard let first = path.first else { return m }
        if path.count == 1 {
            m[first] = value
        } else {
            m[first] = merging(m[first] as? [String: Any] ?? [:], path: path.dropFirst(), value: value)
        }
        return m
    }

    private mutating func apply(_ root: [String: Any]) throws(ConfigError) {
        for (key, value) in root.sorted(by: { $0.key < $1.key }) {
            switch key {
            case "listen": listen = try Self.stringList(value, key)
            case "threads": threads = try Self.int(value, key, min: 0, max: 256)
            case "upstream": upstream = try Self.url(value, key)
            case "websocket_upstream": websocketUpstream = try Self.url(value, key)
            case "websocket_paths": websocketPaths = try Self.stringList(value, key)
            case "trusted_proxies":
                var blocks: [CIDR] = []
                for (i, s) in try Self.stringList(value, key).enumerated() {
                    guard let c = CIDR(parsing: s) else { throw ConfigError("\(key)[\(i)]", "\"\(s)\" is not a CIDR") }
                    blocks.append(c)
                }
                trustedProxies = blocks
            case "public_scheme":
                publicScheme = try Self.choice(value, key, "http or https")
            case "allowed_upgrades": allowedUpgrades = try Self.stringList(value, key).map { $0.lowercased() }
            case "upstream_pool_size": upstreamPoolSize = try Self.int(value, key, min: 0, max: 100_000)
            case "log_level":
                logLevel = try Self.choice(value, key, "debug, info, warning or error")
            case "mode": mode = try Self.mode(value, key)
            case "idle_timeout": idleTimeout = try Self.positiveDuration(value, key)
            case "max_lifetime": maxLifetime = try Self.duration(value, key)
            case "screen_guard": screenGuard = try Self.bool(value, key)
            case "warn_before": warnBefore = try Self.positiveDuration(value, key)
            case "policies":
                guard let list = value as? [Any] else { throw ConfigError(key, "must be a list of policies") }
                policies = []
                for (i, item) in list.enumerated() {
                    policies.append(try Self.policy(item, "\(key)[\(i)]", defaults: self))
                }
            case "unknown_sessions":
                unknownSessions = try Self.choice(value, key, "adopt or reject")
            case "passive_paths": passivePaths = try Self.paths(value, key)
            case "legacy_session_sources":
                legacySessionSources = try Self.choice(value, key, "strip or check")
            case "cookies": try applyCookies(try Self.mapping(value, key))
            case "session_secret":
                let s = try Self.string(value, key)
                guard s.isEmpty || (s.count >= 32 && s.count % 2 == 0 && s.allSatisfy(\.isHexDigit)) else {
                    throw ConfigError(key, "must be at least 32 hex digits (64 recommended)")
                }
                sessionSecret = s
            case "key_file": keyFile = try Self.string(value, key)
            case "max_sessions": maxSessions = try Self.int(value, key, min: 1000, max: 100_000_000)
            case "destroy_in_odoo": destroyInOdoo = try Self.bool(value, key)
            case "state_dir": stateDir = try Self.string(value, key)
            case "snapshot_interval": snapshotInterval = try Self.duration(value, key)
            case "admin_listen": adminListen = try Self.string(value, key)
            case "admin_token": adminToken = try Self.string(value, key)
            case "audit": try applyAudit(try Self.mapping(value, key))
            case "reap": try applyReap(try Self.mapping(value, key))
            case "limits": try applyLimits(try Self.mapping(value, key))
            case "timeouts": try applyTimeouts(try Self.mapping(value, key))
            case "tls": try applyTLS(try Self.mapping(value, key))
            case "upstream_tls": try applyUpstreamTLS(try Self.mapping(value, key))
            case "store": store = try Self.choice(value, key, "memory or redis")
            case "redis": try applyRedis(try Self.mapping(value, key))
            default: throw ConfigError(key, "unknown key")
            }
        }
    }

    private mutating func applyLimits(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "limits.\(key)"
            switch key {
            case "request_line": limits.requestLine = Int(try Self.size(value, path, min: 256))
            case "header_bytes": limits.headerBytes = Int(try Self.size(value, path, min: 1024))
            case "header_count": limits.headerCount = try Self.int(value, path, min: 8, max: 10_000)
            case "body": limits.body = try Self.size(value, path, min: 0)
            case "chunk_line": limits.chunkLine = Int(try Self.size(value, path, min: 64))
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private mutating func applyTimeouts(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "timeouts.\(key)"
            let ms = try Self.duration(value, path)
            switch key {
            case "client_header": timeouts.clientHeader = ms
            case "client_idle": timeouts.clientIdle = ms
            case "client_body": timeouts.clientBody = ms
            case "upstream_connect": timeouts.upstreamConnect = ms
            case "upstream_response": timeouts.upstreamResponse = ms
            case "upstream_idle": timeouts.upstreamIdle = ms
            case "tunnel_idle": timeouts.tunnelIdle = ms
            case "shutdown_grace": timeouts.shutdownGrace = ms
            case "tls_handshake": timeouts.tlsHandshake = ms
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private mutating func applyReap(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "reap.\(key)"
            switch key {
            case "sessions_dir": reap.sessionsDir = try Self.string(value, path)
            case "interval":
                reap.interval = try Self.duration(value, path)
                if reap.interval < 60_000 { throw ConfigError(path, "must be at least 1m") }
            case "idle": reap.idle = try Self.positiveDuration(value, path)
            case "anonymous_idle": reap.anonymousIdle = try Self.positiveDuration(value, path)
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private mutating func applyTLS(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "tls.\(key)"
            switch key {
            case "cert": tls.cert = try Self.string(value, path)
            case "key": tls.key = try Self.string(value, path)
            case "certificates":
                guard let list = value as? [Any] else { throw ConfigError(path, "must be a list of {cert, key}") }
                tls.certificates = []
                for (i, item) in list.enumerated() {
                    let ip = "\(path)[\(i)]"
                    let pair = try Self.mapping(item, ip)
                    var files = CertificateFiles(cert: "", key: "")
                    for (k, v) in pair.sorted(by: { $0.key < $1.key }) {
                        switch k {
                        case "cert": files.cert = try Self.string(v, "\(ip).cert")
                        case "key": files.key = try Self.string(v, "\(ip).key")
                        default: throw ConfigError("\(ip).\(k)", "unknown key")
                        }
                    }
                    if files.cert.isEmpty { throw ConfigError("\(ip).cert", "is required") }
                    if files.key.isEmpty { throw ConfigError("\(ip).key", "is required") }
                    tls.certificates.append(files)
                }
            case "min_version":
                let v = try Self.string(value, path)
                guard v == "1.2" || v == "1.3" else { throw ConfigError(path, "\"\(v)\" is not 1.2 or 1.3") }
                tls.minVersion = v
            case "hsts": tls.hsts = try Self.string(value, path)
            case "redirect_listen": tls.redirectListen = try Self.string(value, path)
            case "session_cache": tls.sessionCache = try Self.int(value, path, min: 0, max: 10_000_000)
            case "session_timeout": tls.sessionTimeout = try Self.positiveDuration(value, path)
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private mutating func applyRedis(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "redis.\(key)"
            switch key {
            case "url": redis.url = try Self.string(value, path)
            case "key_prefix": redis.keyPrefix = try Self.string(value, path)
            case "pool_size": redis.poolSize = try Self.int(value, path, min: 1, max: 64)
            case "timeout", "connect_timeout":
                let ms = try Self.duration(value, path)
                guard ms >= 10 else { throw ConfigError(path, "must be at least 10ms") }
                if key == "timeout" { redis.timeout = ms } else { redis.connectTimeout = ms }
            case "sync_interval": redis.syncInterval = try Self.duration(value, path)
            case "fail_mode": redis.failMode = try Self.choice(value, path, "fail_open or fail_closed")
            case "ca": redis.ca = try Self.string(value, path)
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private func validateRedis() throws(ConfigError) {
        guard store == .redis else { return }
        do {
            _ = try RedisURL.parse(redis.url)
        } catch {
            throw ConfigError("redis.url", "\(error)")
        }
        guard !redis.keyPrefix.isEmpty, redis.keyPrefix.utf8.count <= 64, redis.keyPrefix.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ConfigError("redis.key_prefix", "must be 1 to 64 printable characters, no spaces")
        }
        if redis.timeout > 10_000 { throw ConfigError("redis.timeout", "must be at most 10s (a request waits that long at worst)") }
        if redis.connectTimeout > 60_000 { throw ConfigError("redis.connect_timeout", "must be at most 60s") }
        if redis.syncInterval != 0 && redis.syncInterval < 100 { throw ConfigError("redis.sync_interval", "must be 0 (automatic) or at least 100ms") }
        if redis.syncInterval >= shortestWindow {
            throw ConfigError("redis.sync_interval", "must be shorter than the shortest idle window (\(Config.formatDuration(shortestWindow)))")
        }
        if !redis.ca.isEmpty && !redis.url.lowercased().hasPrefix("rediss://") { throw ConfigError("redis.ca", "applies to rediss:// URLs only") }
    }

    private mutating func applyUpstreamTLS(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "upstream_tls.\(key)"
            switch key {
            case "ca": upstreamTLS.ca = try Self.string(value, path)
            case "cert": upstreamTLS.cert = try Self.string(value, path)
            case "key": upstreamTLS.key = try Self.string(value, path)
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private mutating func applyAudit(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "audit.\(key)"
            switch key {
            case "log": audit.log = try Self.string(value, path)
            case "activity_floor": audit.activityFloor = try Self.positiveDuration(value, path)
            case "rotate_size":
                audit.rotateSize = try Self.size(value, path, min: 0)
                if audit.rotateSize != 0 && audit.rotateSize < 4096 { throw ConfigError(path, "must be 0 (off) or at least 4KiB") }
            case "rotate_daily": audit.rotateDaily = try Self.bool(value, path)
            case "keep": audit.keep = try Self.int(value, path, min: 0, max: 100_000)
            case "queue": audit.queue = try Self.int(value, path, min: 1, max: 10_000_000)
            case "fsync_interval": audit.fsyncInterval = try Self.positiveDuration(value, path)
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    private mutating func applyCookies(_ m: [String: Any]) throws(ConfigError) {
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let path = "cookies.\(key)"
            switch key {
            case "harden": cookies.harden = try Self.bool(value, path)
            case "rebuild":
                // Kept so that configs written for earlier releases still load. Turning it off let Odoo
                // read ids idlegate never checked (quote games across Cookie lines); that is gone.
                guard try Self.bool(value, path) else {
                    throw ConfigError(path, "false is no longer possible: idlegate always forwards a Cookie header it has read itself (remove the key)")
                }
            case "session_only": cookies.sessionOnly = try Self.bool(value, path)
            case "same_site":
                cookies.sameSite = try Self.choice(value, path, "Lax, Strict or None")
            case "secure":
                cookies.secure = try Self.choice(value, path, "auto, always or never")
            default: throw ConfigError(path, "unknown key")
            }
        }
    }

    static func policy(_ v: Any, _ path: String, defaults: Config) throws(ConfigError) -> PolicyConfig {
        let m = try mapping(v, path)
        var p = PolicyConfig(name: "", idleTimeout: defaults.idleTimeout, maxLifetime: defaults.maxLifetime, mode: defaults.mode,
                             screenGuard: defaults.screenGuard, warnBefore: defaults.warnBefore)
        for (key, value) in m.sorted(by: { $0.key < $1.key }) {
            let k = "\(path).\(key)"
            switch key {
            case "name": p.name = try string(value, k)
            case "idle_timeout": p.idleTimeout = try positiveDuration(value, k)
            case "max_lifetime": p.maxLifetime = try duration(value, k)
            case "mode": p.mode = try mode(value, k)
            case "screen_guard": p.screenGuard = try bool(value, k)
            case "warn_before": p.warnBefore = try positiveDuration(value, k)
            case "match":
                for (mk, mv) in try mapping(value, k).sorted(by: { $0.key < $1.key }) {
                    let mp = "\(k).\(mk)"
                    switch mk {
                    case "cidr":
                        for (i, c) in try stringList(mv, mp).enumerated() {
                            guard let block = CIDR(parsing: c) else { throw ConfigError("\(mp)[\(i)]", "\"\(c)\" is not a CIDR") }
                            p.match.cidrs.append(block)
                        }
                    case "host": p.match.hosts = try stringList(mv, mp).map { $0.lowercased() }
                    case "path": p.match.paths = try paths(mv, mp)
                    default: throw ConfigError(mp, "unknown key")
                    }
                }
            default: throw ConfigError(k, "unknown key")
            }
        }
        if p.name.isEmpty { throw ConfigError("\(path).name", "is required") }
        return p
    }

    static func mode(_ v: Any, _ key: String) throws(ConfigError) -> EnforcementMode {
        if let b = v as? Bool, b == false { return .off }  // YAML 1.1 reads a bare `off` as false
        let m: EnforcementMode = try choice(v, key, "enforce, audit or off")
        return m
    }

    static func positiveDuration(_ v: Any, _ key: String) throws(ConfigError) -> Int64 {
        let d = try duration(v, key)
        guard d >= 1000 else { throw ConfigError(key, "must be at least 1s") }
        return d
    }

    static func bool(_ v: Any, _ key: String) throws(ConfigError) -> Bool {
        guard let b = v as? Bool else { throw ConfigError(key, "must be true or false") }
        return b
    }

    static func paths(_ v: Any, _ key: String) throws(ConfigError) -> [String] {
        let list = try stringList(v, key)
        for (i, p) in list.enumerated() where !p.hasPrefix("/") {
            throw ConfigError("\(key)[\(i)]", "\"\(p)\" does not start with /")
        }
        return list
    }

    /// Checks that hold across keys. Called after the file and again after flags.
    public func validate() throws(ConfigError) {
        if listen.isEmpty { throw ConfigError("listen", "needs at least one address") }
        for (i, l) in listen.enumerated() where HostPort.split(l) == nil {
            throw ConfigError("listen[\(i)]", "\"\(l)\" is not HOST:PORT")
        }
        for (i, p) in websocketPaths.enumerated() where !p.hasPrefix("/") {
            throw ConfigError("websocket_paths[\(i)]", "\"\(p)\" does not start with /")
        }
        if !adminListen.isEmpty {
            guard let admin = HostPort.split(adminListen) else {
                throw ConfigError("admin_listen", "\"\(adminListen)\" is not HOST:PORT (or empty for no admin API)")
            }
            // Listeners share ports (SO_REUSEPORT, one per worker): an admin API on a proxy address would
            // silently take half of its connections.
            let anyHost: Set<String> = ["0.0.0.0", "::", ""]
            for l in listen {
                guard let p = HostPort.split(l), p.port == admin.port,
                      p.host == admin.host || anyHost.contains(p.host) || anyHost.contains(admin.host) else { continue }
                throw ConfigError("admin_listen", "\"\(adminListen)\" is also a listen address (\(l))")
            }
        }
        if snapshotInterval != 0 && snapshotInterval < 1000 {
            throw ConfigError("snapshot_interval", "must be 0 (off) or at least 1s")
        }
        if snapshotInterval != 0 && stateDir.isEmpty {
            throw ConfigError("state_dir", "is required while snapshot_interval is not 0")
        }
        if limits.requestLine > limits.headerBytes {
            throw ConfigError("limits.request_line", "is larger than limits.header_bytes")
        }
        try validateTLS()
        try validateRedis()
        for (i, p) in ([defaultPolicy] + policies).enumerated() where p.screenGuard {
            let key = i == 0 ? "warn_before" : "policies[\(i - 1)].warn_before"
            if p.warnBefore < 5_000 { throw ConfigError(key, "must be at least 5s (time to read the warning)") }
            if p.warnBefore >= p.idleTimeout {
                throw ConfigError(key, "must be shorter than the idle window (\(Config.formatDuration(p.idleTimeout)))")
            }
        }
    }

    private func validateTLS() throws(ConfigError) {
        if tls.cert.isEmpty != tls.key.isEmpty {
            throw ConfigError(tls.cert.isEmpty ? "tls.cert" : "tls.key", "is required with tls.\(tls.cert.isEmpty ? "key" : "cert")")
        }
        if !tls.enabled {
            for (key, set) in [("tls.certificates", !tls.certificates.isEmpty), ("tls.hsts", !tls.hsts.isEmpty),
                               ("tls.redirect_listen", !tls.redirectListen.isEmpty)] where set {
                throw ConfigError(key, "needs tls.cert and tls.key (HTTPS on the listen addresses)")
            }
        }
        if !tls.redirectListen.isEmpty {
            guard let r = HostPort.split(tls.redirectListen) else {
                throw ConfigError("tls.redirect_listen", "\"\(tls.redirectListen)\" is not HOST:PORT")
            }
            for l in listen + (adminListen.isEmpty ? [] : [adminListen]) {
                guard let p = HostPort.split(l), p.port == r.port else { continue }
                throw ConfigError("tls.redirect_listen", "\"\(tls.redirectListen)\" shares port \(r.port) with \(l)")
            }
        }
        if upstreamTLS.cert.isEmpty != upstreamTLS.key.isEmpty {
            throw ConfigError(upstreamTLS.cert.isEmpty ? "upstream_tls.cert" : "upstream_tls.key",
                              "is required with upstream_tls.\(upstreamTLS.cert.isEmpty ? "key" : "cert")")
        }
    }


    // MARK: value readers, each naming its key on error

    static func mapping(_ v: Any, _ key: String) throws(ConfigError) -> [String: Any] {
        guard let m = v as? [String: Any] else { throw ConfigError(key, "must be a mapping") }
        return m
    }

    static func string(_ v: Any, _ key: String) throws(ConfigError) -> String {
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        throw ConfigError(key, "must be a string")
    }

    /// One of an enum's spellings; `allowed` names them for the message.
    static func choice<T: RawRepresentable>(_ v: Any, _ key: String, _ allowed: String) throws(ConfigError) -> T where T.RawValue == String {
        let s = try string(v, key)
        guard let value = T(rawValue: s) else { throw ConfigError(key, "\"\(s)\" is not \(allowed)") }
        return value
    }

    static func stringList(_ v: Any, _ key: String) throws(ConfigError) -> [String] {
        if let s = v as? String { return [s] }
        guard let list = v as? [Any] else { throw ConfigError(key, "must be a list of strings") }
        var out: [String] = []
        for (i, item) in list.enumerated() {
            guard let s = item as? String else { throw ConfigError("\(key)[\(i)]", "must be a string") }
            out.append(s)
        }
        return out
    }

    static func int(_ v: Any, _ key: String, min: Int, max: Int) throws(ConfigError) -> Int {
        guard let i = v as? Int, !(v is Bool) else { throw ConfigError(key, "must be a whole number") }
        guard i >= min && i <= max else { throw ConfigError(key, "\(i) is outside \(min)…\(max)") }
        return i
    }

    static func url(_ v: Any, _ key: String) throws(ConfigError) -> UpstreamURL {
        let s = try string(v, key)
        guard let u = UpstreamURL(parsing: s) else { throw ConfigError(key, "\"\(s)\" is not an http://HOST:PORT or https://HOST:PORT URL") }
        return u
    }

    /// `90s`, `15m`, `12h`, `500ms`, `1d`, or a bare number of seconds.
    public static func duration(_ v: Any, _ key: String) throws(ConfigError) -> Int64 {
        if let i = v as? Int, !(v is Bool), i >= 0 { return Int64(i) * 1000 }
        guard let s = v as? String, let ms = parseDuration(s) else {
            throw ConfigError(key, "\"\(v)\" is not a duration (like 90s, 15m, 12h)")
        }
        return ms
    }

    public static func parseDuration(_ s: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let t = s.trimmingCharacters(in: " ")
        if !t.isEmpty, t.allSatisfy(\.isASCII), t.allSatisfy(\.isNumber), let n = Int64(t), n <= Int64.max / 1000 { return n * 1000 }  // bare seconds
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count)
            if let n = Int64(number), n >= 0, n <= Int64.max / factor, !number.hasPrefix("+") { return n * factor }
        }
        return nil
    }

    /// `64KiB`, `128MiB`, `1GiB`, `512` (bytes); KB/MB/GB are taken as the binary units too.
    static func size(_ v: Any, _ key: String, min: Int64) throws(ConfigError) -> Int64 {
        var n: Int64? = nil
        if let i = v as? Int, !(v is Bool) { n = Int64(i) }
        if let s = v as? String { n = parseSize(s) }
        guard let n else { throw ConfigError(key, "\"\(v)\" is not a size (like 8KiB, 128MiB)") }
        guard n >= min else { throw ConfigError(key, "\(n) is below the minimum \(min)") }
        return n
    }

    public static func parseSize(_ s: String) -> Int64? {
        let units: [(String, Int64)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)]
        let t = s.trimmingCharacters(in: " ")
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count).trimmingCharacters(in: " ")
            if let n = Int64(number), n >= 0, n <= Int64.max / factor { return n * factor }
            return nil
        }
        if let n = Int64(t), n >= 0 { return n }
        return nil
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
