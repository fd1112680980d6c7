import IdlegateBase
import IdlegateHTTP
import IdlegateSessions

/// The policies of a config, ready for the request path: the first named policy whose match holds,
/// else the default one.
public struct PolicySet: Sendable {
    /// What a policy does with the sessions it covers.
    public enum Mode: String, Sendable, Equatable {
        /// Expired sessions are logged out.
        case enforce
        /// Every decision is made and logged; no response changes, nothing is called in Odoo.
        case audit
        /// Sessions are not tracked.
        case off
    }

    /// One policy: its name, mode and limits, and which requests it covers (every non-empty criterion
    /// must match: client address blocks, Host names with `*.` for subdomains, path prefixes).
    /// (A class: every request picks one, and passing a reference copies nothing else.)
    public final class Policy: Sendable {
        public let name: String
        public let mode: Mode
        public let limits: SessionLimits
        /// The kiosk screen guard's warning time (ms) when it is on for this policy.
        public let screenGuard: Int64?
        let networks: [CIDR]
        let hosts: [String]
        let paths: PrefixSet

        public init(name: String, mode: Mode, limits: SessionLimits, screenGuard: Int64? = nil, networks: [CIDR] = [], hosts: [String] = [],
                    paths: [String] = []) {
            self.name = name
            self.mode = mode
            self.limits = limits
            self.screenGuard = screenGuard
            self.networks = networks
            self.hosts = hosts.map { $0.lowercased() }
            self.paths = PrefixSet(paths)
        }
    }

    public let policies: [Policy]
    public let fallback: Policy
    /// Whether any policy looks at the Host header (otherwise it is not even read).
    public let needsHost: Bool

    /// `policies` in order (first match wins), then `fallback` for every request none matches.
    public init(_ policies: [Policy], fallback: Policy) {
        self.policies = policies
        self.fallback = Policy(name: fallback.name, mode: fallback.mode, limits: fallback.limits, screenGuard: fallback.screenGuard)
        needsHost = policies.contains { !$0.hosts.isEmpty }
    }

    /// The policy for a request from `client` (4 or 16 address bytes) to `host` (the Host header, port
    /// allowed) and `path`.
    public func select(client: [UInt8], host: String?, path: Substring) -> Policy {
        for p in policies where Self.matches(p, client: client, host: host, path: path) { return p }
        return fallback
    }

    static func matches(_ m: Policy, client: [UInt8], host: String?, path: Substring) -> Bool {
        if !m.networks.isEmpty && !m.networks.contains(where: { $0.contains(client) }) { return false }
        if !m.hosts.isEmpty {
            guard let h = host.map(Self.hostName) else { return false }
            let hit = m.hosts.contains { pattern in
                pattern.hasPrefix("*.") ? h.hasSuffix(pattern.dropFirst(1)) : h == pattern
            }
            if !hit { return false }
        }
        if !m.paths.isEmpty && !m.paths.matches(path) { return false }
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
