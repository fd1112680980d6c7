import IdlegateConfig

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
        let passive: [String]

        public init(config: Config) { passive = config.passivePaths }

        public func classify(_ path: Substring) -> RouteClass {
            if Config.loginPaths.contains(where: { RouteClass.hasPathPrefix(path, $0) }) { return .login }
            if Config.logoutPaths.contains(where: { RouteClass.hasPathPrefix(path, $0) }) { return .logout }
            if RouteClass.isStatic(path) { return .staticFile }
            if passive.contains(where: { RouteClass.hasPathPrefix(path, $0) }) { return .passive }
            return .activity
        }
    }

    /// `/web/static/…`, `/<module>/static/…`, `/web/assets/…`: files no session decision may block.
    static func isStatic(_ path: Substring) -> Bool {
        if path.hasPrefix("/web/assets/") { return true }
        let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count == 3 && parts[0].isEmpty && !parts[1].isEmpty && parts[2].hasPrefix("static/")
    }

    /// `prefix` matches itself and what lies below it: `/web/login` matches `/web/login` and
    /// `/web/login/x`, not `/web/loginx`; a prefix ending in `/` matches anything under it.
    public static func hasPathPrefix(_ path: Substring, _ prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        if prefix.hasSuffix("/") || path.utf8.count == prefix.utf8.count { return true }
        let next = path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: prefix.utf8.count)]
        return next == UInt8(ascii: "/")
    }
}
