import IdlegateBase

/// Byte classes from RFC 9110 §5.6.2 (tokens) and §5.5 (field values), and the request-target, host
/// and cookie-octet sets, as one 256-entry table of flags built once from the rules spelled out in
/// `rule(_:_:)`: the parser's inner loops are one load and one test per byte.
enum ByteClass {
    static let token: UInt8 = 1, target: UInt8 = 2, host: UInt8 = 4, cookieValue: UInt8 = 8

    /// The table: for each byte, the flags of the sets it belongs to.
    nonisolated(unsafe) static let table: UnsafePointer<UInt8> = {  // written once, then only read
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for b in 0...255 {
            var flags: UInt8 = 0
            for f in [token, target, host, cookieValue] where rule(f, UInt8(b)) { flags |= f }
            t[b] = flags
        }
        return UnsafePointer(t)
    }()

    /// The sets, spelled out.
    static func rule(_ set: UInt8, _ b: UInt8) -> Bool {
        let alnum = (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
        switch set {
        case token:
            // tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
            return alnum || Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        case target:
            // Visible ASCII only (RFC 9112 §3.2; browsers percent-encode everything else), less `#`: a
            // fragment is never sent, and werkzeug cuts it off before it finds the query, so a
            // `?session_id=` behind a `#` would mean one thing to idlegate and another to Odoo.
            return b >= 0x21 && b <= 0x7E && b != 0x23
        case host:
            // uri-host and port (RFC 3986 §3.2.2): unreserved, sub-delims, pct-encoded, ":" and the
            // brackets of an IP literal.
            return alnum || Array("-._~!$&'()*+,;=%:[]".utf8).contains(b)
        case cookieValue:
            // RFC 6265 §4.1.1 cookie-octet — visible ASCII less `"`, `;` and `\` — and the comma.
            return b >= 0x21 && b <= 0x7E && b != 0x22 && b != 0x3B && b != 0x5C
        default:
            return false
        }
    }

    @inline(__always) static func isToken(_ b: UInt8) -> Bool { table[Int(b)] & token != 0 }

    /// The end of the run of bytes of `set` in `b[from..<to]`: the table is read once, not per byte.
    @inline(__always) static func end(of set: UInt8, in b: UnsafeRawBufferPointer, from: Int, to: Int) -> Int {
        let t = table
        var i = from
        while i < to && t[Int(b[i])] & set != 0 { i += 1 }
        return i
    }

    /// `end(of:in:from:to:)` for runs that are usually long (request targets, cookie lines): four bytes
    /// a step while all four are in the set (their flags ANDed, one test), then byte by byte. (Measured:
    /// it pays from about a dozen bytes; header names, shorter, keep the plain loop.)
    @inline(__always) static func endOfLongRun(of set: UInt8, in b: UnsafeRawBufferPointer, from: Int, to: Int) -> Int {
        let t = table
        var i = from
        while i &+ 4 <= to && t[Int(b[i])] & t[Int(b[i &+ 1])] & t[Int(b[i &+ 2])] & t[Int(b[i &+ 3])] & set != 0 { i &+= 4 }
        while i < to && t[Int(b[i])] & set != 0 { i &+= 1 }
        return i
    }

    /// field-vchar / SP / HTAB: VCHAR, obs-text (0x80–0xFF), space and tab. Everything else — NUL, CR,
    /// LF, the other controls and DEL — is refused inside a field value (RFC 9110 §5.5: a recipient
    /// MUST reject or replace them; a proxy that passes them on lets two parsers disagree).
    @inline(__always) static func isFieldValue(_ b: UInt8) -> Bool {
        b == 0x09 || (b >= 0x20 && b != 0x7F)
    }

    /// The first byte of `range` that `isFieldValue` refuses, or nil. Eight bytes at a time: a word
    /// with no byte below 0x20 and no DEL is all field-value (0x80–0xFF included); a word that has one
    /// is looked at byte by byte (a tab is fine, anything else below 0x20 is not).
    @inline(__always) static func firstNonFieldValue(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        var k = range.lowerBound
        let base = b.baseAddress!
        // (Wrapping adds: offsets inside a buffer cannot overflow, and the checks cost a third of the loop.)
        while k &+ 8 <= range.upperBound {
            let w = Words.load(base, k)
            if Words.below(w, 0x20) | Words.equal(w, 0x7F) != 0 {
                for j in k..<(k + 8) where !isFieldValue(b[j]) { return j }
            }
            k &+= 8
        }
        // The tail as the last word of the range (overlapping bytes already checked), when it has one.
        if k < range.upperBound && range.count >= 8 {
            let w = Words.load(base, range.upperBound - 8)
            if Words.below(w, 0x20) | Words.equal(w, 0x7F) == 0 { return nil }
        }
        while k < range.upperBound {
            if !isFieldValue(b[k]) { return k }
            k += 1
        }
        return nil
    }

    /// The end of the run of cookie-value bytes starting at `from`: eight at a time while every byte of
    /// a word is one (no byte below 0x21 or above 0x7E, no `"`, `;` or `\\`), then byte by byte.
    @inline(__always) static func cookieValueEnd(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> Int {
        var i = from
        let n = b.count
        if let base = b.baseAddress {
            while i &+ 8 <= n {
                let w = Words.load(UnsafeRawPointer(base), i)
                let other = Words.below(w, 0x21) | Words.above(w, 0x7E) | Words.equal(w, 0x22) | Words.equal(w, 0x3B) | Words.equal(w, 0x5C)
                if other != 0 { break }
                i &+= 8
            }
        }
        return end(of: cookieValue, in: UnsafeRawBufferPointer(b), from: i, to: n)
    }

    @inline(__always) static func isCookieValue(_ b: UInt8) -> Bool { table[Int(b)] & cookieValue != 0 }

    static func isHexDigit(_ b: UInt8) -> Bool { hexValue(b) != nil }

    @inline(__always) static func hexValue(_ b: UInt8) -> UInt64? { Hex.value(b).map(UInt64.init) }
}

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let sp = UInt8(ascii: " ")
    static let htab = UInt8(ascii: "\t")
    static let colon = UInt8(ascii: ":")

    /// ASCII lower case (no other byte changes).
    @inline(__always) var asciiLowercased: UInt8 {
        (self >= 0x41 && self <= 0x5A) ? self | 0x20 : self
    }
}
