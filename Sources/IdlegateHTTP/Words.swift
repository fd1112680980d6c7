/// Byte tests eight bytes at a time (one 64-bit word, SWAR), for the loops that run over every head:
/// comparing names and paths, checking field and cookie values.
@usableFromInline
enum Words {
    @usableFromInline static let ones: UInt64 = 0x0101_0101_0101_0101
    @usableFromInline static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The word at `offset` (unaligned).
    @inline(__always) static func load(_ p: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The first `min(count, 8)` bytes at `p + offset` as a little-endian word, the rest zero: a short
    /// run compared as one number. `readable`: how many bytes from `offset` may be read; with eight or
    /// more, one word is loaded and the bytes past `count` masked off.
    @inlinable @inline(__always)
    static func head(_ p: UnsafeRawPointer, _ offset: Int, count: Int, readable: Int) -> UInt64 {
        let n = Swift.min(count, 8)
        guard n > 0 else { return 0 }
        if readable >= 8 {
            let w = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            return n == 8 ? w : w & ((1 << (8 * UInt64(n))) - 1)
        }
        var w: UInt64 = 0
        for k in 0..<n { w |= UInt64(p.load(fromByteOffset: offset + k, as: UInt8.self)) << (8 * UInt64(k)) }
        return w
    }

    // The three marks below are non-zero exactly when `w` has such a byte (they do not say which one),
    // so a loop ORs the ones it needs and tests once.

    /// Marks a byte of `w` below `n` (n ≤ 128).
    @inline(__always) static func below(_ w: UInt64, _ n: UInt8) -> UInt64 {
        (w &- ones &* UInt64(n)) & ~w & highs
    }

    /// Marks a byte of `w` above `n` (n ≤ 127; bytes of 0x80 and up count as above).
    @inline(__always) static func above(_ w: UInt64, _ n: UInt8) -> UInt64 {
        ((w &+ ones &* UInt64(127 - n)) | w) & highs
    }

    /// Marks a byte of `w` that is `b`.
    @inline(__always) static func equal(_ w: UInt64, _ b: UInt8) -> UInt64 {
        let x = w ^ (ones &* UInt64(b))
        return (x &- ones) & ~x & highs
    }

    /// Whether the `n` bytes at `a`, each OR-ed with `fold`, are the `n` bytes at `b`: a word at a time,
    /// the last word overlapping the one before. `fold` 0x20 compares a token with a lower-case spelling
    /// whatever its case (it lower-cases letters and leaves `-` and digits alone); 0 compares exactly.
    @inlinable
    static func equal(_ a: UnsafeRawPointer?, _ b: UnsafeRawPointer?, _ n: Int, fold: UInt8 = 0) -> Bool {
        guard n > 0, let a, let b else { return n == 0 }
        guard n >= 8 else {
            for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) | fold != b.load(fromByteOffset: i, as: UInt8.self) { return false }
            return true
        }
        let folds = ones &* UInt64(fold)
        var i = 0
        while true {
            let at = Swift.min(i, n - 8)
            if a.loadUnaligned(fromByteOffset: at, as: UInt64.self) | folds != b.loadUnaligned(fromByteOffset: at, as: UInt64.self) { return false }
            if at == n - 8 { return true }
            i += 8
        }
    }
}
