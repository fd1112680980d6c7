/// Reading a `Cookie` header exactly as the werkzeug versions under Odoo 12–19 read it.
///
/// Two readers cover them all (`../shared/odoo/FACTS.md`; the test command checks both against the real
/// packages):
/// - `.search` — werkzeug 0.16, 2.0 and 2.2 (Odoo 12–18, 19 on Python 3.11): the pattern
///   `(?P<key>[^=;]+)(?:\s*=\s*(?P<val>"(?:[^\\"]|\\.)*"|.*?))?\s*;` searched again and again over the
///   header with a `;` appended; the key stripped of ASCII whitespace; a value that starts and ends with
///   a quote unquoted (`\NNN` octal, `\x` → `x`). 0.16 also drops keys named like cookie attributes
///   (`path`, `expires`, …) and keeps the last of duplicates; 2.x keeps the first.
/// - `.findall` — werkzeug 2.3 and 3.x (Odoo 19 on Python 3.12+): `([^=;]*)(?:\s*=\s*("…"|.*?))?\s*;\s*`
///   with `findall`, key and value stripped of Unicode whitespace (on the Latin-1 text: also 0x1C–0x1F,
///   0x85, 0xA0), empty keys skipped, the value unquoted when it starts and ends with a quote.
///
/// Neither splits on commas, and neither percent-decodes. Both read bytes in place: no allocation
/// until a caller copies a name or value out.
public enum CookieHeader {
    public enum Reader: Sendable, CaseIterable { case search, findall }

    /// One cookie as byte ranges of the header.
    public struct Span: Sendable {
        /// The name, stripped.
        public var name: Range<Int>
        /// The value as written, stripped, quotes included.
        public var value: Range<Int>
    }

    /// Calls `body` with each cookie of `header` as `reader` finds it, in order.
    public static func forEach(_ header: ArraySlice<UInt8>, _ reader: Reader, _ body: (Span) -> Void) {
        switch reader {
        case .search: forEachSearch(header, body)
        case .findall: forEachFindall(header, body)
        }
    }

    /// werkzeug ≤ 2.2's loop over `header + ";"`, without copying: an index at the end reads as `;`.
    static func forEachSearch(_ header: ArraySlice<UInt8>, _ body: (Span) -> Void) {
        let n = header.endIndex
        @inline(__always) func at(_ i: Int) -> UInt8 { i < n ? header[i] : semicolon }
        var i = header.startIndex
        while i < n {
            // re.search: the first position where a key ([^=;]+) can start.
            var p = i
            while p < n && (header[p] == equals || header[p] == semicolon) { p += 1 }
            if p >= n { break }
            var k = p
            while at(k) != equals && at(k) != semicolon { k += 1 }
            let (value, end) = valueAndEnd(header, afterKey: k)
            var k0 = p, k1 = k
            while k0 < k1 && isASCIISpace(header[k0]) { k0 += 1 }
            while k1 > k0 && isASCIISpace(header[k1 - 1]) { k1 -= 1 }
            if k1 > k0 { body(Span(name: k0..<k1, value: value)) }
            i = end
        }
    }

    /// werkzeug ≥ 2.3's `findall` over `header + ";"`.
    static func forEachFindall(_ header: ArraySlice<UInt8>, _ body: (Span) -> Void) {
        let n = header.endIndex
        guard n > header.startIndex else { return }  // `if not cookie: return cls()`
        @inline(__always) func at(_ i: Int) -> UInt8 { i < n ? header[i] : semicolon }
        var i = header.startIndex
        while i <= n {
            var k = i
            while at(k) != equals && at(k) != semicolon { k += 1 }  // ([^=;]*)
            var (value, end) = valueAndEnd(header, afterKey: k)
            while end < n && isASCIISpace(header[end]) { end += 1 }  // \s*;\s*
            var k0 = i, k1 = k
            while k0 < k1 && isLatin1Space(header[k0]) { k0 += 1 }
            while k1 > k0 && isLatin1Space(header[k1 - 1]) { k1 -= 1 }
            var v0 = value.lowerBound, v1 = value.upperBound
            while v0 < v1 && isLatin1Space(header[v0]) { v0 += 1 }
            while v1 > v0 && isLatin1Space(header[v1 - 1]) { v1 -= 1 }
            if k1 > k0 { body(Span(name: k0..<k1, value: v0..<v1)) }
            i = end
        }
    }

    /// What both readers do after a key ending at `k` (at `=` or `;`): no value when it is `;`; else,
    /// past `=` and whitespace, a quoted string followed by `\s*;`, or failing that the shortest run up
    /// to the first `;` less the whitespace before it. Returns the value and the index past its `;`.
    @inline(__always)
    static func valueAndEnd(_ header: ArraySlice<UInt8>, afterKey k: Int) -> (Range<Int>, Int) {
        let n = header.endIndex
        @inline(__always) func at(_ i: Int) -> UInt8 { i < n ? header[i] : semicolon }
        if at(k) == semicolon { return (k..<k, k + 1) }
        var j = k + 1
        while j < n && isASCIISpace(header[j]) { j += 1 }
        if at(j) == quote {
            // "(?:[^\\"]|\\.)*" — escapes are forced pairs, so the first unescaped quote closes it.
            var q = j + 1
            while q < n && header[q] != quote {
                q += header[q] == backslash ? 2 : 1
            }
            if q < n {
                var after = q + 1
                while after < n && isASCIISpace(header[after]) { after += 1 }
                if at(after) == semicolon { return (j..<(q + 1), after + 1) }
            }
        }
        var t = j
        while at(t) != semicolon { t += 1 }
        var m = t
        while m > j && isASCIISpace(header[m - 1]) { m -= 1 }
        return (j..<m, t + 1)
    }

    static let semicolon = UInt8(ascii: ";"), equals = UInt8(ascii: "="), quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    static let sessionName = Array("session_id".utf8)

    public static func isSessionName(_ header: ArraySlice<UInt8>, _ r: Range<Int>) -> Bool {
        r.count == 10 && header[r].elementsEqual(sessionName)
    }

    /// (Two word compares: every plain Cookie line's every name is asked.)
    static func isSessionName(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        let spelling: StaticString = "session_id"
        return name.count == 10 && Words.equal(name.baseAddress, spelling.utf8Start, 10)
    }

    /// Python's bytes `\s` and `bytes.strip()`: space, \t, \n, \r, \v, \f.
    @inline(__always) static func isASCIISpace(_ c: UInt8) -> Bool {
        c == 0x20 || (c >= 0x09 && c <= 0x0D)
    }

    /// Python's `str.strip()` on Latin-1 text: the ASCII ones, 0x1C–0x1F, 0x85 and 0xA0.
    @inline(__always) static func isLatin1Space(_ c: UInt8) -> Bool {
        isASCIISpace(c) || (c >= 0x1C && c <= 0x1F) || c == 0x85 || c == 0xA0
    }

    /// werkzeug's unquoting, the same in every version: a value that starts and ends with `"` loses
    /// them, then `\NNN` (octal 000–377) becomes that byte and `\x` becomes `x`, whichever comes first.
    public static func unquote(_ v: ArraySlice<UInt8>) -> [UInt8] {
        guard v.count >= 2, v.first == quote, v.last == quote else { return Array(v) }
        let s = v.dropFirst().dropLast()
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == backslash, i + 1 < s.endIndex {
                if i + 3 < s.endIndex, (0x30...0x33).contains(s[i + 1]), (0x30...0x37).contains(s[i + 2]), (0x30...0x37).contains(s[i + 3]) {
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

    /// A cookie name every reader takes as it is: an RFC 9110 token.
    @inline(__always) static func isPlainNameByte(_ c: UInt8) -> Bool { ByteClass.isToken(c) }

    /// RFC 6265 §4.1.1 cookie-octet — visible ASCII less `"`, `;` and `\\` — and the comma it also
    /// leaves out: no werkzeug reader treats a comma in one line specially (only joining lines does),
    /// and Odoo 16–17's web client writes `cids=1,2` itself (its server splits the value on `,`). A
    /// value made of these means the same to every reader within one line.
    @inline(__always) static func isPlainValueByte(_ c: UInt8) -> Bool { ByteClass.isCookieValue(c) }

    /// Names werkzeug 0.16 drops as cookie attributes (any case): a cookie so named never reaches Odoo
    /// 12–15, so idlegate forwards none, or versions would disagree.
    static let attributeNames: [[UInt8]] = ["expires", "path", "comment", "max-age", "secure", "httponly", "version"].map { Array($0.utf8) }

    static func isAttributeName<Name: Collection<UInt8>>(_ name: Name) -> Bool {
        guard name.count >= 4 && name.count <= 8 else { return false }
        return attributeNames.contains { a in a.count == name.count && zip(a, name).allSatisfy { $0 == $1.asciiLowercased } }
    }
}
