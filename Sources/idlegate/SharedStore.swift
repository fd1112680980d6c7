import Glibc
import IdlegateAudit
import IdlegateBase
import IdlegateConfig
import IdlegateProxy
import IdlegateRedis
import IdlegateSessions
import Logging

/// `store: redis`: the Redis layer over the server's table, from the config.
enum SharedStore {
    static func make(_ config: Config, table: SessionTable, secretCheck: SessionKey) throws -> RedisStore {
        var cs = RedisClient.Settings(url: try RedisURL.parse(config.redis.url))
        cs.caFile = config.redis.ca.isEmpty ? nil : config.redis.ca
        cs.poolSize = config.redis.poolSize
        cs.timeout = config.redis.timeout
        cs.connectTimeout = config.redis.connectTimeout
        var s = RedisStore.Settings()
        s.prefix = config.redis.keyPrefix
        s.syncInterval = config.effectiveSyncInterval
        s.failMode = config.redis.failMode == .failClosed ? .closed : .open
        s.secretCheck = secretCheck.description
        return try RedisStore(local: table, client: cs, settings: s, clock: SystemClock())
    }

    /// Connects, reporting each change of state as a log line and an audit event; waits up to the
    /// connect timeout for the first connection (the fail mode decides while there is none).
    static func start(_ store: RedisStore, server: ProxyServer, logger: Logger) {
        let url = store.client.settings.url, mode = store.settings.failMode
        store.onStateChange = { up, why in
            if up {
                logger.notice("shared session store: \(why)")
                server.audit.record(.storeUp, reason: "\(url)")
            } else {
                logger.error("shared session store \(url) down: \(why); \(mode == .closed ? "refusing sessions' requests (503) until it is back (fail_closed)" : "enforcing on this replica's state until it is back (fail_open)")")
                server.audit.record(.storeDown, reason: why)
            }
        }
        store.onMisconfiguration = { message in logger.critical("\(message)") }
        store.start()
        let deadline = SystemClock().now() + store.client.settings.connectTimeout
        while !store.isUp && SystemClock().now() < deadline { usleep(10_000) }
    }

    /// The `/readyz` line for the store, and whether it keeps the replica from being ready (down in
    /// fail_closed mode: its sessions' requests are refused).
    static func readiness(_ store: RedisStore) -> (ok: Bool, detail: String) {
        let url = store.client.settings.url
        if store.isUp { return (true, "store redis \(url) up") }
        return (store.settings.failMode == .open, "store redis \(url) DOWN (\(store.settings.failMode.rawValue))")
    }
}
