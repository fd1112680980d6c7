import IdlegateBase
import Foundation
import Testing
@testable import IdlegateConfig

@Suite("Config file")
struct ConfigTests {
    @Test func emptyFileGivesTheEmbeddedDefaults() throws {
        let c = try Config.load(yaml: "")
        #expect(c == Config())
        #expect(c.listen == ["127.0.0.1:8080"])
        #expect(c.upstream.description == "http://127.0.0.1:8069")
        #expect(c.websocketUpstream.description == "http://127.0.0.1:8072")
        #expect(c.limits.body == 128 << 20)
    }

    /// Found by the config fuzzer: Yams's `load` traps on a mapping key that is itself a list or a
    /// mapping, so such a file crashed `idlegate check` and `serve` instead of being refused.
    @Test(arguments: ["[]: x", "{a: 1}: x", "policies:\n  - name: a\n    match:\n      [1, 2]: x"])
    func aKeyThatIsNotANameIsAnErrorNotACrash(_ text: String) {
        #expect(throws: ConfigError.self) { try Config.load(yaml: text) }
        do { _ = try Config.load(yaml: text) } catch {
            #expect(error.problem.hasPrefix("a key that is a"), "\(error)")
        }
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: ConfigError.self) { try Config.load(yaml: "passive_paths: " + deep) }
    }

    @Test func mergeKeysStillWork() throws {
        let c = try Config.load(yaml: """
        policies:
          - &kiosk
            name: kiosk-a
            match: {cidr: [10.1.0.0/16]}
            idle_timeout: 3m
          - <<: *kiosk
            name: kiosk-b
            match: {cidr: [10.2.0.0/16]}
        """)
        #expect(c.policies.map(\.name) == ["kiosk-a", "kiosk-b"])
        #expect(c.policies[1].idleTimeout == 180_000)
        #expect(c.policies[1].match.cidrs.map(\.description) == ["10.2.0.0/16"])
    }

    @Test func readsEveryKind() throws {
        let c = try Config.load(yaml: """
        listen: ["0.0.0.0:8080", "[::]:8080"]
        threads: 2
        upstream: http://odoo:8069
        websocket_upstream: http://odoo:8069/
        trusted_proxies: [10.0.0.0/8]
        public_scheme: https
        limits:
          body: 64MiB
          header_bytes: 32KiB
        timeouts:
          client_header: 5s
          upstream_response: 2m
          tunnel_idle: 1h
        """)
        #expect(c.listen == ["0.0.0.0:8080", "[::]:8080"])
        #expect(c.threads == 2)
        #expect(c.upstream == UpstreamURL(host: "odoo", port: 8069))
        #expect(c.websocketUpstream == UpstreamURL(host: "odoo", port: 8069))
        #expect(c.trustedProxies.map(\.description) == ["10.0.0.0/8"])
        #expect(c.publicScheme == .https)
        #expect(c.limits.body == 64 << 20)
        #expect(c.limits.headerBytes == 32 << 10)
        #expect(c.timeouts.clientHeader == 5_000)
        #expect(c.timeouts.upstreamResponse == 120_000)
        #expect(c.timeouts.tunnelIdle == 3_600_000)
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        let yaml: String
        let message: String
        var testDescription: String { message }
    }

    @Test func httpsUpstreamsAndTLSKeys() throws {
        let c = try Config.load(yaml: "upstream: https://odoo.internal\nwebsocket_upstream: https://odoo.internal:8443/\n"
            + "tls:\n  cert: /c.pem\n  key: /k.pem\n  min_version: \"1.3\"\n  certificates: [{cert: /b.pem, key: /bk.pem}]\n"
            + "upstream_tls:\n  ca: /ca.pem\ntimeouts:\n  tls_handshake: 3s")
        #expect(c.upstream == UpstreamURL(host: "odoo.internal", port: 443, tls: true))
        #expect(c.websocketUpstream.description == "https://odoo.internal:8443")
        #expect(c.tls.enabled && c.tls.minVersion == "1.3" && c.tls.certificates == [CertificateFiles(cert: "/b.pem", key: "/bk.pem")])
        #expect(c.upstreamTLS.ca == "/ca.pem" && c.timeouts.tlsHandshake == 3000)
        #expect(try Config.load(yaml: c.yaml()) == c)  // what `check` prints reads back the same
    }

    @Test(arguments: [
        Bad(yaml: "trusted_proxies: [\"10.0.0.0/33\"]", message: "trusted_proxies[0]: \"10.0.0.0/33\" is not a CIDR"),
        Bad(yaml: "timeouts:\n  client_header: 10 parsecs", message: "timeouts.client_header: \"10 parsecs\" is not a duration (like 90s, 15m, 12h)"),
        Bad(yaml: "limits:\n  body: lots", message: "limits.body: \"lots\" is not a size (like 8KiB, 128MiB)"),
        Bad(yaml: "upstream: ftp://odoo", message: "upstream: \"ftp://odoo\" is not an http://HOST:PORT or https://HOST:PORT URL"),
        Bad(yaml: "tls:\n  cert: /etc/c.pem", message: "tls.key: is required with tls.cert"),
        Bad(yaml: "tls:\n  hsts: max-age=60", message: "tls.hsts: needs tls.cert and tls.key (HTTPS on the listen addresses)"),
        Bad(yaml: "tls:\n  cert: c\n  key: k\n  min_version: \"1.1\"", message: "tls.min_version: \"1.1\" is not 1.2 or 1.3"),
        Bad(yaml: "tls:\n  cert: c\n  key: k\n  certificates: [{cert: a}]", message: "tls.certificates[0].key: is required"),
        Bad(yaml: "tls:\n  cert: c\n  key: k\n  redirect_listen: 127.0.0.1:8080", message: "tls.redirect_listen: \"127.0.0.1:8080\" shares port 8080 with 127.0.0.1:8080"),
        Bad(yaml: "upstream_tls:\n  key: k", message: "upstream_tls.cert: is required with upstream_tls.key"),
        Bad(yaml: "screen_guard: true\nidle_timeout: 1m\nwarn_before: 2m", message: "warn_before: must be shorter than the idle window (1m)"),
        Bad(yaml: "policies:\n  - name: tills\n    idle_timeout: 2m\n    screen_guard: true\n    warn_before: 2s",
            message: "policies[0].warn_before: must be at least 5s (time to read the warning)"),
        Bad(yaml: "listen: localhost", message: "listen[0]: \"localhost\" is not HOST:PORT"),
        Bad(yaml: "threads: many", message: "threads: must be a whole number"),
        Bad(yaml: "upstreem: http://x:1", message: "upstreem: unknown key"),
        Bad(yaml: "listen: [\"127.0.0.1:8080\"]\nadmin_listen: 127.0.0.1:8080",
            message: "admin_listen: \"127.0.0.1:8080\" is also a listen address (127.0.0.1:8080)"),
        Bad(yaml: "listen: [\"0.0.0.0:9000\"]\nadmin_listen: 127.0.0.1:9000",
            message: "admin_listen: \"127.0.0.1:9000\" is also a listen address (0.0.0.0:9000)"),
        Bad(yaml: "timeouts:\n  client_headers: 5s", message: "timeouts.client_headers: unknown key"),
        Bad(yaml: "websocket_paths: [websocket]", message: "websocket_paths[0]: \"websocket\" does not start with /"),
        Bad(yaml: "- a\n- b", message: "the file must be a mapping of keys"),
    ])
    func errorsNameTheKey(_ bad: Bad) {
        #expect(throws: ConfigError.self) { try Config.load(yaml: bad.yaml) }
        do { _ = try Config.load(yaml: bad.yaml) } catch { #expect(error.description == bad.message) }
    }

    @Test func cidrMatching() throws {
        let v4 = try #require(CIDR(parsing: "10.2.0.0/16"))
        #expect(v4.contains([10, 2, 200, 1]))
        #expect(!v4.contains([10, 3, 0, 1]))
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 2, 0, 9]
        #expect(v4.contains(mapped))
        let v6 = try #require(CIDR(parsing: "::1"))
        #expect(v6.prefix == 128)
        #expect(v6.contains(Array(repeating: 0, count: 15) + [1]))
        #expect(CIDR(parsing: "10.0.0.0/-1") == nil)
        #expect(CIDR(parsing: "nonsense") == nil)
    }

    @Test func durationsAndSizes() {
        #expect(Config.parseDuration("90s") == 90_000)
        #expect(Config.parseDuration("500ms") == 500)
        #expect(Config.parseDuration("15m") == 900_000)
        #expect(Config.parseDuration("12h") == 43_200_000)
        #expect(Config.parseDuration("-5s") == nil)
        #expect(Config.parseSize("8KiB") == 8192)
        #expect(Config.parseSize("128MiB") == 128 << 20)
        #expect(Config.parseSize("12") == 12)
        #expect(Config.parseSize("x MiB") == nil)
    }
}

@Suite("Shipped config files")
struct ShippedConfigTests {
    static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/IdlegateConfigTests/ConfigTests.swift
        return parts.joined(separator: "/")
    }()

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: root + "/" + path, encoding: .utf8)
    }

    /// config/idlegate.yaml documents every key with its default: loading it must change nothing.
    @Test func referenceFileHoldsExactlyTheDefaults() throws {
        #expect(try Config.load(yaml: Self.read("config/idlegate.yaml")) == Config())
    }
}

@Suite("Example configs")
struct ExampleConfigTests {
    @Test func behindNginx() throws {
        let c = try Config.load(yaml: ShippedConfigTests.read("config/behind-nginx.yaml"))
        #expect(c.publicScheme == .https && c.maxLifetime == 12 * 3_600_000 && c.mode == .enforce)
        #expect(c.websocketUpstream.port == 8072)
    }

    @Test func kiosk() throws {
        let c = try Config.load(yaml: ShippedConfigTests.read("config/kiosk.yaml"))
        #expect(c.unknownSessions == .reject && c.cookies.sessionOnly)
        #expect(c.policies.map(\.name) == ["warehouse-terminals", "shop-tills"])
        #expect(c.policies[0].idleTimeout == 180_000 && c.policies[0].maxLifetime == 8 * 3_600_000)
        #expect(c.policies[1].match.paths == ["/odoo/point-of-sale", "/pos/"])
        #expect(c.policies.allSatisfy { $0.screenGuard && $0.warnBefore == 60_000 } && !c.screenGuard)
    }

    @Test func auditOnly() throws {
        let c = try Config.load(yaml: ShippedConfigTests.read("config/audit-only.yaml"))
        #expect(c.mode == .audit && !c.destroyInOdoo)
        #expect(c.audit.log == "/var/log/idlegate/audit.jsonl" && c.audit.rotateDaily && c.audit.keep == 90)
    }
}

@Suite("Effective config and environment")
struct EffectiveConfigTests {
    /// What `idlegate check` prints reads back to the same config, for the defaults and every example.
    @Test(arguments: ["config/idlegate.yaml", "config/behind-nginx.yaml", "config/kiosk.yaml", "config/audit-only.yaml", "config/replicas.yaml"])
    func printedConfigReadsBack(_ path: String) throws {
        let c = try Config.load(yaml: ShippedConfigTests.read(path))
        #expect(try Config.load(yaml: c.yaml()) == c)
    }

    @Test func secretsAreNotPrinted() throws {
        var c = Config()
        c.adminToken = "t0ken"
        c.sessionSecret = String(repeating: "ab", count: 32)
        c.store = .redis
        c.redis.url = "redis://idlegate:pw0rd@10.0.0.5:6379/1"
        #expect(!c.yaml().contains("t0ken") && !c.yaml().contains("abab") && !c.yaml().contains("pw0rd"))
        #expect(c.yaml().contains("redis://idlegate:***@10.0.0.5:6379/1"))
        #expect(try Config.load(yaml: c.yaml(secrets: true)) == c)
    }

    @Test func theSharedStoreFromTheFileAndTheEnvironment() throws {
        let c = try Config.load(yaml: "idle_timeout: 10m\nstore: redis\nredis:\n  key_prefix: \"shop:\"\n  timeout: 50ms\n",
                                environment: ["IDLEGATE_REDIS__URL": "unix://:pw@/run/redis/redis.sock?db=3", "IDLEGATE_REDIS__FAIL_MODE": "fail_closed"])
        #expect(c.store == .redis && c.redis.url == "unix://:pw@/run/redis/redis.sock?db=3" && c.redis.failMode == .failClosed)
        #expect(c.redis.keyPrefix == "shop:" && c.redis.timeout == 50 && c.effectiveSyncInterval == 30_000)
        #expect(try Config.load(yaml: "idle_timeout: 2m\n").effectiveSyncInterval == 12_000)
        for (yaml, key) in [("store: redis\nredis:\n  url: \"redis://h:0\"\n", "redis.url"), ("store: redis\nredis:\n  key_prefix: \"a b\"\n", "redis.key_prefix"),
                            ("store: redis\nredis:\n  timeout: 5ms\n", "redis.timeout"), ("store: redis\nredis:\n  pool_size: 0\n", "redis.pool_size"),
                            ("store: redis\nredis:\n  ca: /x.pem\n", "redis.ca"), ("store: disk\n", "store"), ("redis:\n  port: 1\n", "redis.port")] {
            #expect(throws: ConfigError.self) { try Config.load(yaml: yaml) }
            do { _ = try Config.load(yaml: yaml) } catch { #expect("\(error)".hasPrefix(key), "\(yaml): \(error)") }
        }
    }

    @Test func environmentOverridesTheFile() throws {
        let c = try Config.load(yaml: "idle_timeout: 15m\ntimeouts:\n  client_idle: 60s\n", environment: [
            "IDLEGATE_IDLE_TIMEOUT": "10m",
            "IDLEGATE_TIMEOUTS__CLIENT_IDLE": "2m",
            "IDLEGATE_TRUSTED_PROXIES": "[10.0.0.0/8, 192.168.0.0/16]",
            "IDLEGATE_COOKIES__HARDEN": "false",
            "IDLEGATE_ADMIN_TOKEN": "secret",
            "HOME": "/root",
        ])
        #expect(c.idleTimeout == 600_000)
        #expect(c.timeouts.clientIdle == 120_000)
        #expect(c.trustedProxies.map(\.description) == ["10.0.0.0/8", "192.168.0.0/16"])
        #expect(c.cookies.harden == false)
        #expect(c.adminToken == "secret")
    }

    @Test func environmentErrorsNameTheVariable() {
        func message(_ env: [String: String]) -> String {
            do { _ = try Config.load(yaml: "", environment: env); return "accepted" } catch { return error.description }
        }
        #expect(message(["IDLEGATE_IDLE_TIMEOUT": "soon"]) == "idle_timeout: \"soon\" is not a duration (like 90s, 15m, 12h) (from IDLEGATE_IDLE_TIMEOUT)")
        #expect(message(["IDLEGATE_TIMEOUTS__CLIENT_IDEL": "1m"]) == "timeouts.client_idel: unknown key (from IDLEGATE_TIMEOUTS__CLIENT_IDEL)")
        #expect(message(["IDLEGATE_TIMEOUTS____X": "1m"]) == "IDLEGATE_TIMEOUTS____X: is not a config key")
    }

    @Test func flagsGoThroughTheSameChecksAndSaySo() throws {
        let c = try Config.load(yaml: "idle_timeout: 15m\n", environment: ["IDLEGATE_IDLE_TIMEOUT": "10m", "IDLEGATE_AUDIT__LOG": "-"], flags: [
            Config.Override(flag: "--idle-timeout", path: ["idle_timeout"], value: "5m"),
            Config.Override(flag: "--max-lifetime", path: ["max_lifetime"], value: "0"),
            Config.Override(flag: "--threads", path: ["threads"], value: 3),
            Config.Override(flag: "--listen", path: ["listen"], value: ["127.0.0.1:1", "[::1]:2"]),
        ])
        #expect(c.idleTimeout == 300_000 && c.maxLifetime == 0 && c.threads == 3)
        #expect(c.listen == ["127.0.0.1:1", "[::1]:2"])
        #expect(c.audit.log == "-")  // a lone dash stays a string, not a YAML list
        do {
            _ = try Config.load(yaml: "", flags: [Config.Override(flag: "--mode", path: ["mode"], value: "enforcing")])
            Issue.record("accepted")
        } catch {
            #expect(error.description == "mode: \"enforcing\" is not enforce, audit or off (from --mode)")
            #expect(error.source == "--mode")
        }
    }

    @Test func bareNumbersAreSeconds() {
        #expect(Config.parseDuration("90") == 90_000)
        #expect(Config.parseDuration("0") == 0)
        #expect(Config.parseDuration("-5") == nil && Config.parseDuration("") == nil)
    }

    @Test func durationsPrintInTheLargestUnit() {
        #expect(Config.formatDuration(900_000) == "15m")
        #expect(Config.formatDuration(90_000) == "90s")
        #expect(Config.formatDuration(43_200_000) == "12h")
        #expect(Config.formatDuration(1500) == "1500ms")
        #expect(Config.formatSize(128 << 20) == "128MiB")
        #expect(Config.formatSize(1000) == "1000")
    }
}
