import IdlegateBase
import IdlegateConfig
import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy
import IdlegateSessions
import IdlegateTLS

/// Settings every connection reads. A class, so that reading it from the hot path costs one reference,
/// not a copy of every field. Immutable: a reload builds new ones and swaps each worker's reference on
/// that worker's own thread.
final class ProxySettings: Sendable {
    let limits: HTTPLimits
    let timeouts: Timeouts
    let trustedProxies: [CIDR]
    let publicScheme: Config.Scheme
    /// `host:port` of Odoo's HTTP port: the Host of a forwarded HTTP/1.0 request that had none, since
    /// idlegate forwards as HTTP/1.1, which requires one (RFC 9112 §3.2), as nginx does.
    let upstreamAuthority: String
    let allowedUpgrades: Set<String>
    let router: Router
    let gate: SessionGate
    /// HTTPS on the listen addresses; nil: plain HTTP. A reload loads the certificates again; a
    /// connection keeps the context its handshake began with.
    let tls: TLSServer?
    /// Strict-Transport-Security for HTTPS responses that carry none; nil: none.
    let hsts: String?

    init(config: Config, gate: SessionGate, tls: TLSServer?) {
        self.gate = gate
        self.tls = tls
        hsts = config.tls.hsts.isEmpty ? nil : config.tls.hsts
        limits = config.limits
        timeouts = config.timeouts
        trustedProxies = config.trustedProxies
        publicScheme = config.publicScheme
        upstreamAuthority = config.upstream.authority
        allowedUpgrades = Set(config.allowedUpgrades)
        router = Router(websocketPaths: config.websocketPaths)
    }

    func isTrusted(_ peer: SocketAddress) -> Bool {
        trustedProxies.contains { $0.contains(peer.ip) }
    }
}

// The config, read into each layer's own settings: the one place that knows both sides.

extension TLSServer {
    /// The listener's certificates as the config names them; nil when TLS is off. Throws naming the
    /// file and the fault (a reload that fails keeps the running certificates).
    static func load(_ c: TLSConfig) throws -> TLSServer? {
        guard c.enabled else { return nil }
        let files = [TLSCertificateFiles(cert: c.cert, key: c.key)] + c.certificates.map { TLSCertificateFiles(cert: $0.cert, key: $0.key) }
        return try TLSServer(certificates: files, minimumVersion: TLSVersion(rawValue: c.minVersion) ?? .tls12,
                             sessionCacheSize: c.sessionCache, sessionTimeout: Int(c.sessionTimeout / 1000))
    }
}

extension UpstreamEndpoint {
    /// Each upstream URL resolved, with one TLS client (the same CA and client certificate) for those
    /// that are https://.
    static func make(_ config: Config) throws -> [UpstreamEndpoint] {
        let urls = [config.upstream, config.websocketUpstream]
        var client: TLSClient? = nil
        if urls.contains(where: \.tls) {
            let t = config.upstreamTLS
            client = try TLSClient(caFile: t.ca.isEmpty ? nil : t.ca, certificate: t.cert.isEmpty ? nil : TLSCertificateFiles(cert: t.cert, key: t.key))
        }
        return try urls.map { UpstreamEndpoint(addresses: try SocketAddress.resolve($0.authority), tls: $0.tls ? client : nil, host: $0.host) }
    }
}

extension SessionRules {
    init(config: Config, auditing: Bool) {
        let legacy: LegacySources
        switch config.legacySessionSources {
        case .strip: legacy = .strip
        case .check: legacy = .check
        }
        self.init(policies: PolicySet(config: config), routes: RouteClass.Table(passive: config.passivePaths + [ScreenGuard.statusPath]),
                  hardening: CookieHardening(CookieHardening.Settings(config.cookies)), unknown: UnknownSessions(config.unknownSessions),
                  legacy: legacy, destroyInOdoo: config.destroyInOdoo, activityFloor: auditing ? config.audit.activityFloor : .max)
    }
}

extension PolicySet {
    init(config: Config) {
        func policy(_ p: PolicyConfig) -> Policy {
            Policy(name: p.name, mode: Mode(p.mode), limits: SessionLimits(idle: p.idleTimeout, maxLifetime: p.maxLifetime),
                   screenGuard: p.screenGuard ? p.warnBefore : nil, networks: p.match.cidrs, hosts: p.match.hosts, paths: p.match.paths)
        }
        self.init(config.policies.map(policy), fallback: policy(config.defaultPolicy))
    }
}

extension PolicySet.Mode {
    init(_ m: EnforcementMode) {
        switch m {
        case .enforce: self = .enforce
        case .audit: self = .audit
        case .off: self = .off
        }
    }
}

extension UnknownSessions {
    init(_ u: Config.UnknownSessions) {
        switch u {
        case .adopt: self = .adopt
        case .reject: self = .reject
        }
    }
}

extension CookieHardening.Settings {
    init(_ c: CookieSettings) {
        self.init()
        harden = c.harden
        sessionOnly = c.sessionOnly
        switch c.sameSite {
        case .lax: sameSite = .lax
        case .strict: sameSite = .strict
        case .none: sameSite = .none
        }
        switch c.secure {
        case .auto: secure = .auto
        case .always: secure = .always
        case .never: secure = .never
        }
    }
}
