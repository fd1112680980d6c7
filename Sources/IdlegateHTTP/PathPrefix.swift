/// Path-prefix matching, one rule for routes, policies and the upstream router: a prefix matches itself
/// and what lies below it (`/web/login` matches `/web/login` and `/web/login/x`, not `/web/loginx`); a
/// prefix ending in `/` matches anything under it. Paths come without their query.
public enum PathPrefix {
    @inlinable
    public static func matches(_ path: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        let n = prefix.count
        guard path.count >= n else { return false }
        // A word at a time: most prefixes are told apart by their first word, and every route is checked
        // against every request.
        let same = prefix.withUnsafeBytes { Words.equal(path.baseAddress, $0.baseAddress, n) }
        return same && (path.count == n || prefix.last == UInt8(ascii: "/") || path[n] == UInt8(ascii: "/"))
    }

    @inlinable
    public static func matches(_ path: Substring, _ prefix: [UInt8]) -> Bool {
        var path = path
        return path.withUTF8 { matches(UnsafeRawBufferPointer($0), prefix) }
    }

    /// Whether any of `prefixes` matches.
    @inlinable
    public static func matchesAny(_ path: Substring, _ prefixes: [[UInt8]]) -> Bool {
        var path = path
        return path.withUTF8 { p in prefixes.contains { matches(UnsafeRawBufferPointer(p), $0) } }
    }
}
