/// Path-prefix matching, one rule for routes, policies and the upstream router: a prefix matches itself
/// and what lies below it (`/web/login` matches `/web/login` and `/web/login/x`, not `/web/loginx`); a
/// prefix ending in `/` matches anything under it. Paths come without their query.
public enum PathPrefix {
    @inlinable
    public static func matches(_ path: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        guard path.count >= prefix.count else { return false }
        var i = 0
        while i < prefix.count {
            if path[i] != prefix[i] { return false }
            i += 1
        }
        return path.count == prefix.count || prefix.last == UInt8(ascii: "/") || path[prefix.count] == UInt8(ascii: "/")
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
