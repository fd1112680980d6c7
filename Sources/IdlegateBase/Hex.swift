/// Hex digits, read and written in one place (chunk sizes, percent-encoding, keys, secrets, JSON).
public enum Hex {
    /// Lower-case digits by value.
    public static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The value of one hex digit, either case; nil for anything else.
    @inline(__always) public static func value(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    /// Appends `byte` as two lower-case digits.
    @inline(__always) public static func append(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }

    /// Lower-case digits of `bytes`.
    public static func encode<C: Sequence<UInt8>>(_ bytes: C) -> String {
        var out: [UInt8] = []
        for b in bytes { append(b, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of an even number of hex digits; nil when `text` is not that.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let h = value(chars[i]), let l = value(chars[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}
