import COpenSSL

/// The session table on disk, so that a restart neither revives an expired session nor gives every
/// idle session a fresh clock. Records hold wall-clock times, so time spent down counts as idle time.
///
/// Layout (integers little-endian):
///
///     magic     "IDLEGATE-SESSIONS\n"  18 bytes
///     version   UInt16                 2 (1: no login section; still read)
///     check     16 bytes               the key of a fixed text under this secret: a snapshot made
///                                      with another secret names other sessions and is refused
///     written   Int64                  Unix ms
///     count     UInt64
///     length    UInt64                 the whole file's size, digest included (version 2)
///     records   count × 48 bytes       key hi, key lo, started, last active, idle, lifetime, ended
///     logins    UInt32 n, then n × (key 16 bytes, UInt8 length, UTF-8 name)   (version 2)
///     digest    32 bytes               SHA-256 of everything before it
///
/// No session id is in it: keys are HMACs of ids.
public enum SessionSnapshot {
    public static let magic = Array("IDLEGATE-SESSIONS\n".utf8)
    public static let version: UInt16 = 2
    static let headerSize = 18 + 2 + 16 + 8 + 8
    /// Unix milliseconds from 1970 to the year 3000: what a record's times can be.
    static let times: ClosedRange<Int64> = 0...32_503_680_000_000
    static let recordSize = 48

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The key that marks which secret a snapshot was made with.
    public static func check(_ deriver: SessionKeyDeriver) -> SessionKey {
        deriver.key(for: Array("idlegate session snapshot".utf8)[...])
    }

    /// Writes `table` through `emit` in chunks of about 256 KiB, a stripe at a time.
    /// `logins`: the login names attributed to sessions (names longer than 255 bytes are left out).
    public static func write(_ table: SessionTable, logins: [(SessionKey, String)] = [], check: SessionKey, now: Int64,
                             emit: ([UInt8]) throws -> Void) throws -> Int {
        // The count goes in the header, but records are copied stripe by stripe while the table keeps
        // changing: gather them first (48 bytes each, a transient copy), then stream.
        var body: [UInt8] = []
        var count = 0
        table.forEachStripe { entries in
            body.reserveCapacity(body.count + entries.count * recordSize)
            for (k, r) in entries {
                append(&body, k.hi); append(&body, k.lo)
                append(&body, UInt64(bitPattern: r.started)); append(&body, UInt64(bitPattern: r.lastActive))
                append(&body, UInt32(bitPattern: r.idle.value)); append(&body, UInt32(bitPattern: r.maxLifetime.value))
                append(&body, UInt64(bitPattern: r.endedAt))
            }
            count += entries.count
        }
        let named = logins.filter { $0.1.utf8.count <= 255 }
        append(&body, UInt32(named.count))
        for (k, name) in named {
            append(&body, k.hi); append(&body, k.lo)
            body.append(UInt8(name.utf8.count))
            body.append(contentsOf: name.utf8)
        }
        var head = magic
        append(&head, version)
        append(&head, check.hi); append(&head, check.lo)
        append(&head, UInt64(bitPattern: now))
        append(&head, UInt64(count))
        append(&head, UInt64(head.count + 8 + body.count + 32))
        var sha = SHA256_CTX()
        SHA256_Init(&sha)
        SHA256_Update(&sha, head, head.count)
        try emit(head)
        var at = 0
        while at < body.count {
            let chunk = Array(body[at..<min(body.count, at + 256 * 1024)])
            SHA256_Update(&sha, chunk, chunk.count)
            try emit(chunk)
            at += chunk.count
        }
        var digest = [UInt8](repeating: 0, count: 32)
        SHA256_Final(&digest, &sha)
        try emit(digest)
        return count
    }

    /// What a snapshot holds, checked whole before anything is used.
    public struct Contents {
        public let written: Int64
        public let records: [(SessionKey, SessionRecord)]
        public let logins: [(SessionKey, String)]
    }

    public static func read(_ bytes: [UInt8], check: SessionKey) throws(Invalid) -> Contents {
        guard bytes.count >= magic.count, bytes.starts(with: magic) else { throw Invalid("not an idlegate session snapshot") }
        guard bytes.count >= headerSize + 32 else { throw Invalid("truncated (\(bytes.count) bytes)") }
        var at = magic.count
        let v: UInt16 = load(bytes, &at)
        guard v == 1 || v == version else { throw Invalid("version \(v), this idlegate reads versions 1 and \(version)") }
        let c = SessionKey(hi: load(bytes, &at), lo: load(bytes, &at))
        let written = Int64(bitPattern: load(bytes, &at) as UInt64)
        let count: UInt64 = load(bytes, &at)
        var hs = headerSize
        if v >= 2 {
            hs += 8
            guard bytes.count >= hs + 4 + 32 else { throw Invalid("truncated (\(bytes.count) bytes)") }
            let length: UInt64 = load(bytes, &at)
            if length > UInt64(bytes.count) { throw Invalid("truncated (\(bytes.count) of \(length) bytes)") }
            if length < UInt64(bytes.count) { throw Invalid("padded (\(bytes.count) bytes, \(length) expected)") }
        }
        let end = bytes.count - 32
        guard count <= UInt64((bytes.count - hs - 32) / recordSize),
              v == 1 ? bytes.count == hs + Int(count) * recordSize + 32 : bytes.count >= hs + Int(count) * recordSize + 4 + 32 else {
            throw Invalid("truncated or padded: \(bytes.count) bytes for \(count) records")
        }
        guard sha256(bytes.dropLast(32))[...] == bytes[(bytes.count - 32)...] else { throw Invalid("checksum mismatch (corrupt)") }
        guard c == check else { throw Invalid("written with another session secret (its keys name other sessions)") }
        guard Self.times.contains(written) else { throw Invalid("written at an impossible time (\(written))") }
        var records: [(SessionKey, SessionRecord)] = []
        records.reserveCapacity(Int(count))
        for n in 0..<count {
            let k = SessionKey(hi: load(bytes, &at), lo: load(bytes, &at))
            var r = SessionRecord(started: Int64(bitPattern: load(bytes, &at)), lastActive: Int64(bitPattern: load(bytes, &at)), limits: SessionLimits(idle: 0))
            r.idle = Int32Millis(raw: Int32(bitPattern: load(bytes, &at)))
            r.maxLifetime = Int32Millis(raw: Int32(bitPattern: load(bytes, &at)))
            r.endedAt = Int64(bitPattern: load(bytes, &at))
            // Found by the snapshot fuzzer: a checksummed file with absurd times made the table's
            // arithmetic trap on restore. Every time idlegate writes is a wall-clock time.
            guard Self.times.contains(r.started), Self.times.contains(r.lastActive), r.endedAt == 0 || Self.times.contains(r.endedAt) else {
                throw Invalid("record \(n) holds an impossible time")
            }
            records.append((k, r))
        }
        var logins: [(SessionKey, String)] = []
        if v >= 2 {
            let n: UInt32 = load(bytes, &at)
            for _ in 0..<n {
                guard at + 17 <= end else { throw Invalid("truncated or padded: the login section runs past the end") }
                let k = SessionKey(hi: load(bytes, &at), lo: load(bytes, &at))
                let length = Int(bytes[at])
                at += 1
                guard at + length <= end else { throw Invalid("truncated or padded: the login section runs past the end") }
                logins.append((k, String(decoding: bytes[at..<(at + length)], as: UTF8.self)))
                at += length
            }
            guard at == end else { throw Invalid("truncated or padded: \(end - at) bytes after the login section") }
        }
        return Contents(written: written, records: records, logins: logins)
    }

    /// SHA-256 of `bytes` (OpenSSL).
    static func sha256(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBufferPointer { b in _ = SHA256(b.baseAddress, b.count, &digest) }
        return digest
    }

    static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        var le = v.littleEndian
        withUnsafeBytes(of: &le) { out.append(contentsOf: $0) }
    }

    static func load<T: FixedWidthInteger>(_ b: [UInt8], _ at: inout Int) -> T {
        var v: T = 0
        for i in (0..<MemoryLayout<T>.size).reversed() { v = v << 8 | T(b[at + i]) }
        at += MemoryLayout<T>.size
        return v
    }
}
