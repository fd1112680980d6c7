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
}

/// A list of path prefixes, matched by `PathPrefix`'s rule, for the lists every request is checked
/// against (routes, the upstream router). Each prefix keeps its first eight bytes as a word and a mask,
/// so that a prefix that cannot match costs one AND and one compare: most are told apart there.
public struct PrefixSet: Sendable {
    @usableFromInline struct Prefix: Sendable {
        @usableFromInline let word: UInt64
        @usableFromInline let mask: UInt64
        @usableFromInline let bytes: [UInt8]
    }

    @usableFromInline let prefixes: [Prefix]

    public init(_ prefixes: [String]) {
        self.prefixes = prefixes.map { text in
            let bytes = Array(text.utf8)
            let n = min(bytes.count, 8)
            return Prefix(word: bytes.withUnsafeBytes { Self.head($0) }, mask: n == 8 ? ~0 : (1 << (8 * UInt64(n))) - 1, bytes: bytes)
        }
    }

    public var isEmpty: Bool { prefixes.isEmpty }

    /// The index of the first prefix that matches `path`, or nil.
    @inlinable
    public func firstMatch(_ path: UnsafeRawBufferPointer) -> Int? {
        let word = Self.head(path)
        for i in 0..<prefixes.count where word & prefixes[i].mask == prefixes[i].word {
            if PathPrefix.matches(path, prefixes[i].bytes) { return i }
        }
        return nil
    }

    @inlinable
    public func matches(_ path: UnsafeRawBufferPointer) -> Bool { firstMatch(path) != nil }

    @inlinable
    public func matches(_ path: Substring) -> Bool {
        var path = path
        return path.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    /// The path's first eight bytes as a little-endian word, zero-padded.
    @inlinable
    static func head(_ path: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = path.baseAddress else { return 0 }
        return Words.head(base, 0, count: path.count, readable: path.count)
    }
}
