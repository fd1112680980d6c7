/// Path-prefix matching, one rule for routes, policies and the upstream router: a prefix matches itself
/// and what lies below it (`/web/login` matches `/web/login` and `/web/login/x`, not `/web/loginx`); a
/// prefix ending in `/` matches anything under it. Paths come without their query.
public enum PathPrefix {
    @inlinable
    public static func matches(_ path: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        let n = prefix.count
        guard path.count >= n else { return false }
        let same = prefix.withUnsafeBytes { equal(path.baseAddress, $0.baseAddress, n) }
        return same && (path.count == n || prefix.last == UInt8(ascii: "/") || path[n] == UInt8(ascii: "/"))
    }

    /// Whether `n` bytes at `a` and `b` are the same: eight at a time (the last word overlapping the one
    /// before), so most prefixes are told apart by their first word. Every route is checked against
    /// every request.
    @inlinable
    static func equal(_ a: UnsafeRawPointer?, _ b: UnsafeRawPointer?, _ n: Int) -> Bool {
        guard n > 0, let a, let b else { return n == 0 }
        guard n >= 8 else {
            for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
            return true
        }
        var i = 0
        while true {
            let at = Swift.min(i, n - 8)
            if a.loadUnaligned(fromByteOffset: at, as: UInt64.self) != b.loadUnaligned(fromByteOffset: at, as: UInt64.self) { return false }
            if at == n - 8 { return true }
            i += 8
        }
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
