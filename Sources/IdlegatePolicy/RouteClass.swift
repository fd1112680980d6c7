import IdlegateHTTP

/// What a request path means for its session.
public enum RouteClass: Sendable, Equatable {
    /// A person's request: checked, and it refreshes the session's clock.
    case activity
    /// Background traffic (bus, presence, version checks, static files): checked, never refreshes.
    case passive
    /// Login and sign-up: never refused; an expired or refused id is left out of the forwarded Cookie.
    case login
    /// Static files: never refused either, and passive.
    case staticFile
    /// Logout: the session ends.
    case logout

    public struct Table: Sendable {
        /// Login routes, then logout routes: one set, told apart by index.
        let own: PrefixSet
        let passive: PrefixSet

        /// Login and logout routes are Odoo's own (`RouteClass.loginPaths`, `logoutPaths`); the passive
        /// prefixes are configured.
        public init(passive: [String]) {
            own = PrefixSet(RouteClass.loginPaths + RouteClass.logoutPaths)
            self.passive = PrefixSet(passive)
        }

        public func classify(_ path: Substring) -> RouteClass {
            var path = path
            return path.withUTF8 { p in
                let p = UnsafeRawBufferPointer(p)
                if let i = own.firstMatch(p) { return i < RouteClass.loginPaths.count ? .login : .logout }
                if RouteClass.isStatic(p) { return .staticFile }
                if passive.matches(p) { return .passive }
                return .activity
            }
        }
    }

    /// Routes that are never refused, so the login form always works: an expired or refused id is
    /// left out of the forwarded Cookie and Odoo starts a fresh anonymous session.
    public static let loginPaths = [loginForm, loginJSON, "/web/reset_password", "/web/signup"]
    /// The login routes that carry a login name: the form and the JSON-RPC call.
    public static let loginForm = "/web/login"
    public static let loginJSON = "/web/session/authenticate"

    /// Routes that end a session in Odoo.
    public static let logoutPaths = ["/web/session/logout", "/web/session/destroy"]

    /// `/web/assets/…` or `/<module>/static/…`.
    static func isStatic(_ p: UnsafeRawBufferPointer) -> Bool {
        if PathPrefix.matches(p, webAssets) { return true }
        guard p.count > 1, p[0] == UInt8(ascii: "/") else { return false }
        var i = 1
        while i < p.count && p[i] != UInt8(ascii: "/") { i += 1 }
        guard i > 1, i + 8 <= p.count else { return false }
        let slash: StaticString = "static/"
        for k in 0..<7 where p[i + 1 + k] != slash.utf8Start[k] { return false }
        return true
    }

    static let webAssets = Array("/web/assets/".utf8)
}
