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
        let login: [[UInt8]]
        let logout: [[UInt8]]
        let passive: [[UInt8]]

        public init(config: Config) {
            login = Config.loginPaths.map { Array($0.utf8) }
            logout = Config.logoutPaths.map { Array($0.utf8) }
            passive = config.passivePaths.map { Array($0.utf8) }
        }

        public func classify(_ path: Substring) -> RouteClass {
            var path = path
            return path.withUTF8 { p in
                let p = UnsafeRawBufferPointer(p)
                if login.contains(where: { RouteClass.hasPathPrefix(p, $0) }) { return .login }
                if logout.contains(where: { RouteClass.hasPathPrefix(p, $0) }) { return .logout }
                if RouteClass.isStatic(p) { return .staticFile }
                if passive.contains(where: { RouteClass.hasPathPrefix(p, $0) }) { return .passive }
                return .activity
            }
        }
    }

    /// Byte-level `hasPathPrefix`.
    static func hasPathPrefix(_ path: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        guard path.count >= prefix.count else { return false }
        var i = 0
        while i < prefix.count {
            if path[i] != prefix[i] { return false }
            i += 1
        }
        return path.count == prefix.count || prefix.last == UInt8(ascii: "/") || path[prefix.count] == UInt8(ascii: "/")
    }

    /// `/web/assets/…` or `/<module>/static/…`.
    static func isStatic(_ p: UnsafeRawBufferPointer) -> Bool {
        if hasPathPrefix(p, webAssets) { return true }
        guard p.count > 1, p[0] == UInt8(ascii: "/") else { return false }
        var i = 1
        while i < p.count && p[i] != UInt8(ascii: "/") { i += 1 }
        guard i > 1, i + 8 <= p.count else { return false }
        return p[(i + 1)..<(i + 8)].elementsEqual(staticSlash)
    }

    static let webAssets = Array("/web/assets/".utf8)
    static let staticSlash = Array("static/".utf8)

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
