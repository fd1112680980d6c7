import IdlegateConfig
import IdlegateSessions

/// The policies of a config, ready for the request path: the first named policy whose match holds,
/// else the default one.
public struct PolicySet: Sendable {
    public struct Policy: Sendable {
        public let index: Int
        public let name: String
        public let mode: EnforcementMode
        public let limits: SessionLimits
        let match: PolicyMatch
    }

    public let policies: [Policy]
    public let fallback: Policy
    /// Whether any policy looks at the Host header (otherwise it is not even read).
    public let needsHost: Bool

    public init(config: Config) {
        policies = config.policies.enumerated().map { i, p in
            Policy(index: i, name: p.name, mode: p.mode, limits: SessionLimits(idle: p.idleTimeout, maxLifetime: p.maxLifetime), match: p.match)
        }
        needsHost = config.policies.contains { !$0.match.hosts.isEmpty }
        let d = config.defaultPolicy
        fallback = Policy(index: policies.count, name: d.name, mode: d.mode, limits: SessionLimits(idle: d.idleTimeout, maxLifetime: d.maxLifetime), match: PolicyMatch())
    }

    /// The policy for a request from `client` (4 or 16 address bytes) to `host` (the Host header, port
    /// allowed) and `path`.
    public func select(client: [UInt8], host: String?, path: Substring) -> Policy {
        for p in policies where Self.matches(p.match, client: client, host: host, path: path) { return p }
        return fallback
    }

    static func matches(_ m: PolicyMatch, client: [UInt8], host: String?, path: Substring) -> Bool {
        if !m.cidrs.isEmpty && !m.cidrs.contains(where: { $0.contains(client) }) { return false }
        if !m.hosts.isEmpty {
            guard let h = host.map(Self.hostName) else { return false }
            let hit = m.hosts.contains { pattern in
                pattern.hasPrefix("*.") ? h.hasSuffix(pattern.dropFirst(1)) : h == pattern
            }
            if !hit { return false }
        }
        if !m.paths.isEmpty && !m.paths.contains(where: { RouteClass.hasPathPrefix(path, $0) }) { return false }
        return true
    }

    /// The host name of a Host header: lower-cased, without the port (brackets kept for IPv6).
    static func hostName(_ host: String) -> String {
        var h = Substring(host.lowercased())
        if h.hasPrefix("[") {
            if let close = h.firstIndex(of: "]") { h = h[...close] }
        } else if let colon = h.lastIndex(of: ":") {
            h = h[..<colon]
        }
        return String(h)
    }
}
