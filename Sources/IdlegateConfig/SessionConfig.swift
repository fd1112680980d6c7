import IdlegateBase

/// What a policy does with the sessions it covers.
public enum EnforcementMode: String, Sendable, Equatable, CaseIterable {
    /// Expired sessions are logged out.
    case enforce
    /// Every decision is made and logged, but no response changes and nothing is called in Odoo.
    case audit
    /// Sessions are not tracked at all (cookie hardening and the forwarded Cookie's canonical form still apply).
    case off
}

/// Which requests a named policy covers; every given criterion must match (an empty one matches all).
public struct PolicyMatch: Sendable, Equatable {
    /// Client address blocks (after a trusted proxy's X-Forwarded-For).
    public var cidrs: [CIDR] = []
    /// Host names (the Host header without its port), case-insensitive; `*.example.com` for subdomains.
    public var hosts: [String] = []
    /// Path prefixes.
    public var paths: [String] = []

    public init(cidrs: [CIDR] = [], hosts: [String] = [], paths: [String] = []) {
        self.cidrs = cidrs
        self.hosts = hosts
        self.paths = paths
    }
}

/// A named policy: the first one whose match holds decides a request's window.
public struct PolicyConfig: Sendable, Equatable {
    public var name: String
    public var match = PolicyMatch()
    /// Idle window in ms.
    public var idleTimeout: Int64
    /// Absolute lifetime in ms; 0 = none.
    public var maxLifetime: Int64
    public var mode: EnforcementMode
    /// The kiosk screen guard on this policy's HTML pages (enforce mode only).
    public var screenGuard: Bool
    /// How long before the logout the guard warns, in ms.
    public var warnBefore: Int64

    public init(name: String, match: PolicyMatch = PolicyMatch(), idleTimeout: Int64, maxLifetime: Int64 = 0, mode: EnforcementMode = .enforce,
                screenGuard: Bool = false, warnBefore: Int64 = 60_000) {
        self.name = name
        self.match = match
        self.idleTimeout = idleTimeout
        self.maxLifetime = maxLifetime
        self.mode = mode
        self.screenGuard = screenGuard
        self.warnBefore = warnBefore
    }
}

/// Where older Odoo also reads the session id: `?session_id=` and `X-Openerp-Session-Id` (12–15, and
/// 16/17 before June 2024). Either way they are no way around idlegate.
public enum LegacySessionSources: String, Sendable, Equatable, CaseIterable {
    /// Removed from every forwarded request (Odoo 18+ ignores them anyway).
    case strip
    /// Checked like the cookie, in Odoo ≤ 15's order: query, header, cookie.
    case check
}

/// What idlegate does to the cookies Odoo sets.
public struct CookieSettings: Sendable, Equatable {
    /// Add Secure, SameSite and (on session_id) HttpOnly to every Set-Cookie. Default on.
    public var harden = true
    /// SameSite value added where absent: Lax (default), Strict (breaks payment-provider returns) or
    /// None (only with Secure).
    public var sameSite: SameSite = .lax
    /// Secure: `auto` (when the browser-facing scheme is https), `always` or `never`.
    public var secure: Secure = .auto

    public enum SameSite: String, Sendable, Equatable { case lax = "Lax", strict = "Strict", none = "None" }
    public enum Secure: String, Sendable, Equatable { case auto, always, never }
    /// Kiosks: make session_id a browser-session cookie (no Max-Age/Expires), so closing the browser
    /// ends it. Default off.
    public var sessionOnly = false

    public init() {}
}

extension Config {
    /// The default policy, for requests no named policy matches.
    public var defaultPolicy: PolicyConfig {
        PolicyConfig(name: "default", idleTimeout: idleTimeout, maxLifetime: maxLifetime, mode: mode, screenGuard: screenGuard, warnBefore: warnBefore)
    }

    /// The longest window any policy allows (ms): records idle past it can be swept.
    public var longestWindow: Int64 {
        ([defaultPolicy] + policies).map { max($0.idleTimeout, $0.maxLifetime) }.max() ?? idleTimeout
    }

    /// Odoo's background traffic: checked, never counted as activity (FACTS: "Background traffic").
    public static let defaultPassivePaths = [
        "/websocket",                    // the WebSocket and its HTTP fallbacks (16+)
        "/longpolling",                  // long-polling and im_status (12–15)
        "/bus/",                         // bus routes, the websocket worker bundle
        "/calendar/notify",              // timer-driven reminders
        "/web/webclient/version_info",   // periodic version checks
        "/web/static/", "/web/assets/",  // static files and asset bundles
        "/web/image", "/web/content",    // images and files pulled in by pages already counted
        // Odoo 18's service worker fetches these on its own (seen in a real Chromium on a real Odoo 18):
        // the browser's doing, not a person's.
        "/web/service-worker.js", "/odoo/offline",
    ]

}
