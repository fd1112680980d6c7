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
        let login: [[UInt8]]
        let logout: [[UInt8]]
        let passive: [[UInt8]]

        /// Login and logout routes are Odoo's own (`RouteClass.loginPaths`, `logoutPaths`); the passive
        /// prefixes are configured.
        public init(passive: [String]) {
            login = RouteClass.loginPaths.map { Array($0.utf8) }
            logout = RouteClass.logoutPaths.map { Array($0.utf8) }
            self.passive = passive.map { Array($0.utf8) }
        }

        public func classify(_ path: Substring) -> RouteClass {
            var path = path
            return path.withUTF8 { p in
                let p = UnsafeRawBufferPointer(p)
                if login.contains(where: { PathPrefix.matches(p, $0) }) { return .login }
                if logout.contains(where: { PathPrefix.matches(p, $0) }) { return .logout }
                if RouteClass.isStatic(p) { return .staticFile }
                if passive.contains(where: { PathPrefix.matches(p, $0) }) { return .passive }
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
        return p[(i + 1)..<(i + 8)].elementsEqual(staticSlash)
    }

    static let webAssets = Array("/web/assets/".utf8)
    static let staticSlash = Array("static/".utf8)


}
