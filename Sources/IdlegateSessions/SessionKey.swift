import COpenSSL
import IdlegateBase

/// What idlegate knows a session by: HMAC-SHA256 over the id's first 42 characters (the whole id for
/// 40-hex ids; Odoo 19 keeps those 42 across its 3-hourly rotation), truncated to 128 bits. The raw id
/// is never stored; the audit log, admin API, a shared store and the reaper all use this key.
public struct SessionKey: Hashable, Sendable, CustomStringConvertible {
    public let hi: UInt64
    public let lo: UInt64

    public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    /// 32 lower-case hex digits.
    public var description: String {
        Hex.encode(withUnsafeBytes(of: hi.bigEndian) { Array($0) } + withUnsafeBytes(of: lo.bigEndian) { Array($0) })
    }

    /// From its 32 lower-case hex digits (the admin API's paths, the shared store's messages).
    public init?<S: StringProtocol>(hex text: S) {
        guard text.utf8.count == 32, text.utf8.allSatisfy({ Hex.value($0) != nil && !(UInt8(ascii: "A")...UInt8(ascii: "F")).contains($0) }),
              let hi = UInt64(text.prefix(16), radix: 16), let lo = UInt64(text.suffix(16), radix: 16) else { return nil }
        self.init(hi: hi, lo: lo)
    }

    public init?(hex bytes: [UInt8]) { self.init(hex: String(decoding: bytes, as: UTF8.self)) }

    /// The part of a session id that names the session: 42 characters, or the whole 40-hex id.
    public static func stablePart(of id: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        id.count > 42 ? id.prefix(42) : id
    }
}

/// Whether a cookie value has the shape of an Odoo session id: 40 lower-case hex (Odoo 12–17), or
/// 84–86 URL-safe base64 characters (18, 19, master). Anything else Odoo ignores, and so does idlegate.
public enum SessionIDShape {
    public static func isValid(_ id: [UInt8]) -> Bool {
        id.withUnsafeBufferPointer { isValid($0) }
    }

    public static func isValid(_ id: ArraySlice<UInt8>) -> Bool {
        id.withUnsafeBufferPointer { isValid($0) }
    }

    public static func isValid(_ id: UnsafeBufferPointer<UInt8>) -> Bool {
        let set: UInt8
        switch id.count {
        case 40: set = hex
        case 84...86: set = base64url
        default: return false
        }
        var all = set
        for c in id { all &= table[Int(c)] }
        return all != 0
    }

    static let hex: UInt8 = 1, base64url: UInt8 = 2

    /// For each byte, which alphabets hold it: 0-9 a-f (`hex`), 0-9 A-Z a-z - _ (`base64url`).
    nonisolated(unsafe) static let table: UnsafePointer<UInt8> = {  // written once, then only read
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for b in 0...255 {
            let digit = (0x30...0x39).contains(b)
            let lower = (0x61...0x7A).contains(b), upper = (0x41...0x5A).contains(b)
            t[b] = (digit || (0x61...0x66).contains(b) ? hex : 0)
                | (digit || lower || upper || b == 0x2D || b == 0x5F ? base64url : 0)
        }
        return UnsafePointer(t)
    }()
}

/// Derives session keys with one secret. HMAC (RFC 2104) with its inner and outer key pads hashed once
/// at start, so that each derivation costs two SHA-256 compressions. Safe to share between threads:
/// derivation copies the precomputed states.
public final class SessionKeyDeriver: Sendable {
    private let inner: SHA256_CTX
    private let outer: SHA256_CTX

    /// `secret`: at least 16 bytes (32 from the key file).
    public init(secret: [UInt8]) {
        precondition(secret.count >= 16, "session key secret too short")
        var key = secret
        if key.count > 64 {
            var digest = [UInt8](repeating: 0, count: 32)
            _ = SHA256(key, key.count, &digest)
            key = digest
        }
        key += [UInt8](repeating: 0, count: 64 - key.count)
        var i = SHA256_CTX()
        var o = SHA256_CTX()
        SHA256_Init(&i)
        SHA256_Init(&o)
        let ipad = key.map { $0 ^ 0x36 }
        let opad = key.map { $0 ^ 0x5C }
        SHA256_Update(&i, ipad, 64)
        SHA256_Update(&o, opad, 64)
        inner = i
        outer = o
    }

    /// The key of session id `id` (its stable part is taken here).
    public func key(for id: ArraySlice<UInt8>) -> SessionKey {
        SessionKey.stablePart(of: id).withUnsafeBytes { key(stablePart: $0) }
    }

    /// The key of a session id given as raw bytes (a file name), without copying it.
    public func key(for id: UnsafeRawBufferPointer) -> SessionKey {
        key(stablePart: id.count > 42 ? UnsafeRawBufferPointer(rebasing: id.prefix(42)) : id)
    }

    private func key(stablePart part: UnsafeRawBufferPointer) -> SessionKey {
        var i = inner
        var o = outer
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buf in
            let mid = buf.baseAddress!
            let digest = mid + 32
            _ = SHA256_Update(&i, part.baseAddress, part.count)
            SHA256_Final(mid, &i)
            SHA256_Update(&o, mid, 32)
            SHA256_Final(digest, &o)
            var hi: UInt64 = 0
            var lo: UInt64 = 0
            for k in 0..<8 { hi = hi << 8 | UInt64(digest[k]) }
            for k in 8..<16 { lo = lo << 8 | UInt64(digest[k]) }
            return SessionKey(hi: hi, lo: lo)
        }
    }

    /// Fresh random bytes from OpenSSL's CSPRNG.
    public static func randomSecret(count: Int = 32) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        return RAND_bytes(&bytes, Int32(count)) == 1 ? bytes : nil
    }
}

/// One worker's memory of the keys it derived last, so that an id seen again — the next call of a page,
/// the burst of requests a page load makes — costs a comparison instead of two SHA-256 compressions.
/// Direct-mapped: 2,048 slots of 64 bytes (the id's stable part, at most 42 bytes, zero-padded,
/// its length in the last byte, then the key); a new id takes its slot's place. Slots are compared a
/// word at a time without an early exit, so a hit and a miss take the time of the slot's whole width
/// whatever bytes match. Ids stay in this process's memory only, as they do in its read buffers.
/// One thread only (a worker's loop); the deriver is the same for every worker.
public final class SessionKeyCache {
    public let deriver: SessionKeyDeriver
    private let slots: UnsafeMutablePointer<UInt64>
    static let slotBits = 11  // 2,048 slots, 128 KiB
    static let slotCount = 1 << slotBits
    static let words = 8  // 6 words of id (48 bytes: 42 of id, length in the last), hi, lo

    public init(deriver: SessionKeyDeriver) {
        self.deriver = deriver
        slots = .allocate(capacity: Self.slotCount * Self.words)
        slots.initialize(repeating: 0, count: Self.slotCount * Self.words)  // length 0: never an id's
    }

    deinit { slots.deallocate() }

    /// The key of session id `id`: the deriver's, remembered.
    public func key(for id: ArraySlice<UInt8>) -> SessionKey {
        let part = SessionKey.stablePart(of: id)
        var w: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &w) { raw in
            part.withUnsafeBytes { raw.copyMemory(from: $0) }
            raw[47] = UInt8(part.count)
        }
        // Which slot: the id's words mixed (an attacker who picks ids can only evict, never read).
        let mixed = (w.0 ^ w.1 &* 0x9E37_79B9_7F4A_7C15 ^ w.2 ^ w.3 &* 0xC2B2_AE3D_27D4_EB4F ^ w.4 ^ w.5)
            &* 0x9E37_79B9_7F4A_7C15
        let slot = slots + Int(mixed >> UInt64(64 - Self.slotBits)) * Self.words
        let diff = (slot[0] ^ w.0) | (slot[1] ^ w.1) | (slot[2] ^ w.2) | (slot[3] ^ w.3) | (slot[4] ^ w.4) | (slot[5] ^ w.5)
        if diff == 0 { return SessionKey(hi: slot[6], lo: slot[7]) }
        let key = part.withUnsafeBytes { deriver.key(for: $0) }
        slot[0] = w.0; slot[1] = w.1; slot[2] = w.2; slot[3] = w.3; slot[4] = w.4; slot[5] = w.5
        slot[6] = key.hi
        slot[7] = key.lo
        return key
    }
}
