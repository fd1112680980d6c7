import IdlegateBase

/// `name=value&…` as werkzeug reads query strings and form bodies: pairs split on `&`, names and values
/// percent-decoded (`%41`, and `+` as a space). One reader for the session id in a query, the query
/// parameter idlegate removes, and the login name in a login form.
public enum FormEncoding {
    /// Each pair of `s` in order (empty pieces skipped): the decoded name and value, the value nil when
    /// the pair has no `=`. `body` returns false to stop.
    public static func forEachPair<C: Collection<UInt8>>(_ s: C, _ body: (_ name: [UInt8], _ value: [UInt8]?) -> Bool) {
        for pair in s.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: UInt8(ascii: "="))
            let name = decode(pair[..<(eq ?? pair.endIndex)])
            let value = eq.map { decode(pair[pair.index(after: $0)...]) }
            if !body(name, value) { return }
        }
    }

    /// The first pair named `name` in `s`: its value ([] without `=`); nil when there is none.
    public static func value<C: Collection<UInt8>>(of name: String, in s: C) -> [UInt8]? {
        var found: [UInt8]? = nil
        forEachPair(s) { n, v in
            guard n.elementsEqual(name.utf8) else { return true }
            found = v ?? []
            return false
        }
        return found
    }

    /// The value of query parameter `name` in a request target; nil when absent (`?%73ession_id=` is
    /// found too: names are decoded as werkzeug decodes them).
    public static func queryValue(of name: String, in target: String) -> [UInt8]? {
        guard let q = target.utf8Offset(of: UInt8(ascii: "?")) else { return nil }
        return value(of: name, in: target.utf8[target.utf8.index(target.utf8.startIndex, offsetBy: q + 1)...])
    }

    /// The target without any query parameter whose decoded name is `name` (the others as they came).
    public static func removingQuery(_ name: String, from target: String) -> String {
        guard let q = target.firstIndex(of: "?") else { return target }
        let kept = target[target.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).filter { pair in
            let key = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return !decode(key.utf8).elementsEqual(name.utf8)
        }
        return kept.isEmpty ? String(target[..<q]) : String(target[..<q]) + "?" + kept.joined(separator: "&")
    }

    /// Percent-decoding with `+` as a space; a `%` without two hex digits stays as it is.
    public static func decode<C: Collection<UInt8>>(_ s: C) -> [UInt8] {
        let b = Array(s)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let h = Hex.value(b[i + 1]), let l = Hex.value(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : b[i])
                i += 1
            }
        }
        return out
    }
}
