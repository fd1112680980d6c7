/// Reading `Cookie` headers exactly as Odoo's werkzeug (2.x) reads them, and rebuilding them.
///
/// werkzeug finds cookies with the pattern `(?P<key>[^=;]+)(?:\s*=\s*(?P<val>"(?:[^\\"]|\\.)*"|.*?))?\s*;`
/// searched repeatedly over the header with a `;` appended; keys are stripped of whitespace, empty keys
/// skipped, quoted values unquoted (backslash escapes, `\NNN` octal), nothing percent-decoded, and the
/// first `session_id` wins (werkzeug ≥ 1.0, Odoo 16+). Several Cookie headers reach werkzeug joined
/// with a comma, which is not a separator: the first header's first session_id still wins.
/// (`../shared/odoo/FACTS.md`, measured on a real Odoo 18.)
public enum CookieHeader {
    /// One cookie as byte ranges of the header: found without allocating.
    struct Span {
        /// `name=value` as written (leading whitespace dropped).
        var raw: Range<Int>
        /// The name, whitespace stripped.
        var name: Range<Int>
        /// The value as written (quotes included when quoted).
        var value: Range<Int>
        var quoted: Bool
    }

    /// werkzeug's search loop over `header + ";"`, without copying: an index at the end reads as `;`.
    static func forEachSpan(_ header: ArraySlice<UInt8>, _ body: (Span) -> Void) {
        let start = header.startIndex
        let n = header.endIndex
        let semicolon = UInt8(ascii: ";"), equals = UInt8(ascii: "="), quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        @inline(__always) func at(_ i: Int) -> UInt8 { i < n ? header[i] : semicolon }
        var i = start
        while i < n {
            // re.search: the first position where a key can start.
            var p = i
            while p < n && (header[p] == equals || header[p] == semicolon) { p += 1 }
            if p >= n { break }
            var k = p
            while at(k) != equals && at(k) != semicolon { k += 1 }  // key: [^=;]+
            var value = k..<k
            var quoted = false
            var rawEnd = k
            var end: Int
            if at(k) == semicolon {
                end = k + 1
            } else {
                var j = k + 1
                while j < n && isSpace(header[j]) { j += 1 }
                end = 0
                if at(j) == quote {
                    // "(?:[^\\"]|\\.)*" then \s*;
                    var q = j + 1
                    var closed = -1
                    while q < n {
                        if header[q] == backslash {
                            if q + 1 < n { q += 2 } else { break }
                        } else if header[q] == quote {
                            closed = q
                            break
                        } else {
                            q += 1
                        }
                    }
                    if closed >= 0 {
                        var after = closed + 1
                        while after < n && isSpace(header[after]) { after += 1 }
                        if at(after) == semicolon {
                            value = j..<(closed + 1)
                            quoted = closed > j
                            rawEnd = closed + 1
                            end = after + 1
                        }
                    }
                }
                if end == 0 {
                    // .*? then \s*; : up to the first ;, less the whitespace before it.
                    var t = j
                    while at(t) != semicolon { t += 1 }
                    var m = t
                    while m > j && isSpace(header[m - 1]) { m -= 1 }
                    value = j..<m
                    rawEnd = m
                    end = t + 1
                }
            }
            var k0 = p, k1 = k
            while k0 < k1 && isSpace(header[k0]) { k0 += 1 }
            while k1 > k0 && isSpace(header[k1 - 1]) { k1 -= 1 }
            if k1 > k0 {
                body(Span(raw: k0..<max(rawEnd, k0), name: k0..<k1, value: value, quoted: quoted))
            }
            i = end
        }
    }

    static let sessionName = Array("session_id".utf8)

    static func isSessionName(_ header: ArraySlice<UInt8>, _ r: Range<Int>) -> Bool {
        r.count == 10 && header[r].elementsEqual(sessionName)
    }

    /// Python's bytes `\s`: space, \t, \n, \r, \v, \f.
    @inline(__always) static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D)
    }

    /// werkzeug's `_cookie_unquote`: strip the quotes, then `\NNN` (octal 000–377) becomes that byte
    /// and `\x` becomes `x`, whichever comes first.
    static func unquote(_ v: ArraySlice<UInt8>) -> [UInt8] {
        guard v.count >= 2, v.first == UInt8(ascii: "\""), v.last == UInt8(ascii: "\"") else { return Array(v) }
        let s = Array(v.dropFirst().dropLast())
        var out: [UInt8] = []
        var i = 0
        while i < s.count {
            if s[i] == UInt8(ascii: "\\"), i + 1 < s.count {
                if i + 3 < s.count, (0x30...0x33).contains(s[i + 1]), (0x30...0x37).contains(s[i + 2]), (0x30...0x37).contains(s[i + 3]) {
                    out.append((s[i + 1] - 0x30) << 6 | (s[i + 2] - 0x30) << 3 | (s[i + 3] - 0x30))
                    i += 4
                } else {
                    out.append(s[i + 1])
                    i += 2
                }
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}

/// What the request's Cookie headers say about `session_id`, read the werkzeug way.
public struct SessionCookie: Sendable, Equatable {
    /// The value Odoo would use: the first `session_id` entry's (possibly empty), nil when none.
    public let value: [UInt8]?
    /// How many `session_id` entries there were, over all Cookie headers.
    public let count: Int
    /// Whether forwarding the headers as they are could let Odoo and idlegate disagree, or carries an
    /// unusual spelling: several session_id entries, a quoted/escaped/padded one, several Cookie headers.
    public let needsRebuild: Bool

    /// Reads every Cookie field of `fields`, allocating only for the id it returns.
    public init(_ fields: HTTPFields) {
        var first: [UInt8]? = nil
        var count = 0
        var unusual = false
        var headers = 0
        for i in 0..<fields.count where fields.known(at: i) == .cookie {
            headers += 1
            let header = fields.valueBytes(at: i)
            CookieHeader.forEachSpan(header) { sp in
                guard CookieHeader.isSessionName(header, sp.name) else { return }
                count += 1
                if first == nil { first = sp.quoted ? CookieHeader.unquote(header[sp.value]) : Array(header[sp.value]) }
                // Canonical: exactly `session_id=value`, unquoted.
                if sp.quoted || sp.name.lowerBound != sp.raw.lowerBound || sp.value.lowerBound != sp.name.upperBound + 1 || sp.value.upperBound != sp.raw.upperBound {
                    unusual = true
                }
            }
        }
        value = first
        self.count = count
        needsRebuild = count > 1 || unusual || (headers > 1 && count > 0)
    }

    /// The forwarded Cookie value: every cookie but session_id, untouched and in order, then
    /// `session_id=<id>` when `id` is given. Nil when nothing is left (no Cookie header at all).
    public static func rebuild(_ fields: HTTPFields, sessionID id: String?) -> String? {
        var parts: [String] = []
        for i in 0..<fields.count where fields.known(at: i) == .cookie {
            let header = fields.valueBytes(at: i)
            CookieHeader.forEachSpan(header) { sp in
                if !CookieHeader.isSessionName(header, sp.name) { parts.append(String(decoding: header[sp.raw], as: UTF8.self)) }
            }
        }
        if let id { parts.append("session_id=" + id) }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}
