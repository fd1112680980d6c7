import IdlegateBase

extension Config {
    /// The config as YAML that `load(yaml:)` reads back to the same value: what `idlegate check` prints.
    /// Secrets (`session_secret`, `admin_token`) are shown as `"(set)"` unless `secrets` is true.
    public func yaml(secrets: Bool = false) -> String {
        func q(_ s: String) -> String {
            var out = "\""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default:
                    if c.value < 0x20 || c.value == 0x7F { out += "\\x" + String(c.value, radix: 16).leftPadded(2) } else { out.unicodeScalars.append(c) }
                }
            }
            return out + "\""
        }
        func list(_ items: [String]) -> String { "[" + items.map(q).joined(separator: ", ") + "]" }
        func secret(_ s: String) -> String { s.isEmpty || secrets ? q(s) : q("(set)") }
        let d = Self.formatDuration, z = Self.formatSize

        var lines = [
            "listen: \(list(listen))",
            "threads: \(threads)",
            "upstream: \(q(upstream.description))",
            "websocket_upstream: \(q(websocketUpstream.description))",
            "websocket_paths: \(list(websocketPaths))",
            "trusted_proxies: \(list(trustedProxies.map(\.description)))",
            "public_scheme: \(q(publicScheme.rawValue))",
            "allowed_upgrades: \(list(allowedUpgrades))",
            "upstream_pool_size: \(upstreamPoolSize)",
            "tls:",
            "  cert: \(q(tls.cert))",
            "  key: \(q(tls.key))",
            "  certificates: [" + tls.certificates.map { "{cert: \(q($0.cert)), key: \(q($0.key))}" }.joined(separator: ", ") + "]",
            "  min_version: \(q(tls.minVersion))",
            "  hsts: \(q(tls.hsts))",
            "  redirect_listen: \(q(tls.redirectListen))",
            "  session_cache: \(tls.sessionCache)",
            "  session_timeout: \(d(tls.sessionTimeout))",
            "upstream_tls:",
            "  ca: \(q(upstreamTLS.ca))",
            "  cert: \(q(upstreamTLS.cert))",
            "  key: \(q(upstreamTLS.key))",
            "store: \(q(store.rawValue))",
            "redis:",
            // A password in the URL is a secret: shown as *** unless asked for.
            "  url: \(q(secrets ? redis.url : (try? RedisURL.parse(redis.url)).flatMap { $0.password == nil ? nil : $0.description } ?? redis.url))",
            "  key_prefix: \(q(redis.keyPrefix))",
            "  pool_size: \(redis.poolSize)",
            "  timeout: \(d(redis.timeout))",
            "  connect_timeout: \(d(redis.connectTimeout))",
            "  sync_interval: \(d(redis.syncInterval))",
            "  fail_mode: \(q(redis.failMode.rawValue))",
            "  ca: \(q(redis.ca))",
            "log_level: \(q(logLevel.rawValue))",
            "mode: \(q(mode.rawValue))",
            "idle_timeout: \(d(idleTimeout))",
            "max_lifetime: \(d(maxLifetime))",
            "screen_guard: \(screenGuard)",
            "warn_before: \(d(warnBefore))",
        ]
        if policies.isEmpty {
            lines.append("policies: []")
        } else {
            lines.append("policies:")
            for p in policies {
                lines.append("  - name: \(q(p.name))")
                lines.append("    match:")
                lines.append("      cidr: \(list(p.match.cidrs.map(\.description)))")
                lines.append("      host: \(list(p.match.hosts))")
                lines.append("      path: \(list(p.match.paths))")
                lines.append("    idle_timeout: \(d(p.idleTimeout))")
                lines.append("    max_lifetime: \(d(p.maxLifetime))")
                lines.append("    mode: \(q(p.mode.rawValue))")
                lines.append("    screen_guard: \(p.screenGuard)")
                lines.append("    warn_before: \(d(p.warnBefore))")
            }
        }
        lines += [
            "unknown_sessions: \(q(unknownSessions.rawValue))",
            "passive_paths: \(list(passivePaths))",
            "legacy_session_sources: \(q(legacySessionSources.rawValue))",
            "cookies:",
            "  harden: \(cookies.harden)",
            "  same_site: \(q(cookies.sameSite.rawValue))",
            "  secure: \(q(cookies.secure.rawValue))",
            "  session_only: \(cookies.sessionOnly)",
            "session_secret: \(secret(sessionSecret))",
            "key_file: \(q(keyFile))",
            "max_sessions: \(maxSessions)",
            "destroy_in_odoo: \(destroyInOdoo)",
            "state_dir: \(q(stateDir))",
            "snapshot_interval: \(d(snapshotInterval))",
            "admin_listen: \(q(adminListen))",
            "admin_token: \(secret(adminToken))",
            "reap:",
            "  sessions_dir: \(q(reap.sessionsDir))",
            "  interval: \(d(reap.interval))",
            "  idle: \(d(reap.idle))",
            "  anonymous_idle: \(d(reap.anonymousIdle))",
            "audit:",
            "  log: \(q(audit.log))",
            "  activity_floor: \(d(audit.activityFloor))",
            "  rotate_size: \(z(audit.rotateSize))",
            "  rotate_daily: \(audit.rotateDaily)",
            "  keep: \(audit.keep)",
            "  queue: \(audit.queue)",
            "  fsync_interval: \(d(audit.fsyncInterval))",
            "limits:",
            "  request_line: \(z(Int64(limits.requestLine)))",
            "  header_bytes: \(z(Int64(limits.headerBytes)))",
            "  header_count: \(limits.headerCount)",
            "  body: \(z(limits.body))",
            "  chunk_line: \(z(Int64(limits.chunkLine)))",
            "timeouts:",
            "  client_header: \(d(timeouts.clientHeader))",
            "  client_idle: \(d(timeouts.clientIdle))",
            "  client_body: \(d(timeouts.clientBody))",
            "  upstream_connect: \(d(timeouts.upstreamConnect))",
            "  upstream_response: \(d(timeouts.upstreamResponse))",
            "  upstream_idle: \(d(timeouts.upstreamIdle))",
            "  tunnel_idle: \(d(timeouts.tunnelIdle))",
            "  tls_handshake: \(d(timeouts.tlsHandshake))",
            "  shutdown_grace: \(d(timeouts.shutdownGrace))",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// `15m`, `90s`, `1500ms`, `0`: the largest unit that divides the value.
    public static func formatDuration(_ ms: Int64) -> String {
        if ms == 0 { return "0" }
        for (suffix, factor) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms % factor == 0 {
            return "\(ms / factor)\(suffix)"
        }
        return "\(ms)ms"
    }

    /// `128MiB`, `8KiB`, `1000`: the largest binary unit that divides the value.
    public static func formatSize(_ n: Int64) -> String {
        if n == 0 { return "0" }
        for (suffix, factor) in [("GiB", Int64(1 << 30)), ("MiB", 1 << 20), ("KiB", 1 << 10)] where n % factor == 0 {
            return "\(n / factor)\(suffix)"
        }
        return "\(n)"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
