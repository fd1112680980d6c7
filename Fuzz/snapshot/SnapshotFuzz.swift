// Session snapshots read back at start: the reader refuses what is not whole and checked, and never
// crashes. The input is the file between the magic and the digest; the target writes this secret's
// check key into it (and, when its first byte says so, the right length), then the SHA-256, so that the
// fuzzer reaches the record and login parsing behind the digest. What reads is restored into a table,
// written, and must read back to what the table holds.
import FuzzSupport
@testable import IdlegateSessions

let deriver = SessionKeyDeriver(secret: Array("fuzz secret, 32 bytes long......".utf8))
let checkKey = SessionSnapshot.check(deriver)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (flags, rest) = FuzzInput(data, size).parameters(1)
    var body = Array(rest)
    if body.count >= 18 {  // version (2 bytes), then the check key
        var key: [UInt8] = []
        SessionSnapshot.append(&key, checkKey.hi)
        SessionSnapshot.append(&key, checkKey.lo)
        body.replaceSubrange(2..<18, with: key)
    }
    var file = SessionSnapshot.magic + body
    if flags[0] & 1 == 1, file.count >= SessionSnapshot.headerSize + 8 {  // the length field (version 2)
        var length: [UInt8] = []
        SessionSnapshot.append(&length, UInt64(file.count + 32))
        file.replaceSubrange(SessionSnapshot.headerSize..<(SessionSnapshot.headerSize + 8), with: length)
    }
    file += SessionSnapshot.sha256(file[...])
    guard let contents = try? SessionSnapshot.read(file, check: checkKey) else { return 0 }
    let table = SessionTable(stripes: 4, maxEntries: 1 << 20, longestWindow: 30 * 24 * 3_600_000)
    var kept: [SessionKey: SessionRecord] = [:]
    for (k, r) in contents.records where table.restore(k, r, now: contents.written) { kept[k] = r }
    var written: [UInt8] = []
    _ = try? SessionSnapshot.write(table, logins: contents.logins, check: checkKey, now: contents.written) { written += $0 }
    guard let again = try? SessionSnapshot.read(written, check: checkKey) else {
        invariant(false, "a written snapshot does not read back")
        return 0
    }
    invariant(again.records.count == kept.count, "\(again.records.count) records read back, \(kept.count) restored")
    for (k, r) in again.records { invariant(kept[k] == r, "record \(k) changed on the way through") }
    invariant(again.logins.map(\.1) == contents.logins.filter { $0.1.utf8.count <= 255 }.map(\.1), "logins changed")
    return 0
}
