import IdlegateBase

/// Byte classes from RFC 9110 §5.6.2 (tokens) and §5.5 (field values), as 256-entry tables so the
/// parser's inner loop is one load per byte.
enum ByteClass {
    /// tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA,
    /// as two 64-bit masks (one load-free test per byte on the parser's inner loop).
    @inline(__always) static func isToken(_ b: UInt8) -> Bool {
        if b < 64 { return (0x03ff6cfa00000000 as UInt64) >> UInt64(b) & 1 != 0 }
        if b < 128 { return (0x57ffffffc7fffffe as UInt64) >> UInt64(b - 64) & 1 != 0 }
        return false
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
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var k = range.lowerBound
        let base = b.baseAddress!
        while k + 8 <= range.upperBound {
            let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: k, as: UInt64.self))
            let below20 = (w &- ones &* 0x20) & ~w & highs           // some byte < 0x20
            let del = ((w ^ (ones &* 0x7F)) &- ones) & ~(w ^ (ones &* 0x7F)) & highs  // some byte == 0x7F
            if below20 | del != 0 {
                for j in k..<(k + 8) where !isFieldValue(b[j]) { return j }
            }
            k += 8
        }
        while k < range.upperBound {
            if !isFieldValue(b[k]) { return k }
            k += 1
        }
        return nil
    }

    /// Characters allowed in a request-target: visible ASCII only (RFC 9112 §3.2; browsers
    /// percent-encode everything else), less `#`: a fragment is never sent (RFC 9112 §3.2 has no place
    /// for one), and werkzeug cuts it off before it finds the query, so a `?session_id=` behind a `#`
    /// would mean one thing to idlegate and another to Odoo.
    @inline(__always) static func isTarget(_ b: UInt8) -> Bool {
        b >= 0x21 && b <= 0x7E && b != 0x23
    }

    /// uri-host and port characters (RFC 3986 §3.2.2): unreserved, sub-delims, pct-encoded, ":" and
    /// the brackets of an IP literal.
    @inline(__always) static func isHostChar(_ b: UInt8) -> Bool {
        if b < 64 { return (0x2fff7ff200000000 as UInt64) >> UInt64(b) & 1 != 0 }
        if b < 128 { return (0x47fffffeaffffffe as UInt64) >> UInt64(b - 64) & 1 != 0 }
        return false
    }

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
