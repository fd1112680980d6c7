import Testing
@testable import IdlegateSessions

@Suite("Session snapshots")
struct SessionSnapshotTests {
    let deriver = SessionKeyDeriver(secret: Array(repeating: 7, count: 32))

    func key(_ n: UInt64) -> SessionKey { SessionKey(hi: (n + 1) &* 0x9E37_79B9_7F4A_7C15, lo: n + 1) }

    func bytes(_ table: SessionTable, now: Int64) throws -> [UInt8] {
        var out: [UInt8] = []
        _ = try SessionSnapshot.write(table, check: SessionSnapshot.check(deriver), now: now) { out += $0 }
        return out
    }

    func table(_ n: Int, now: Int64) -> SessionTable {
        let t = SessionTable(stripes: 16, longestWindow: 15 * 60_000)
        for i in 0..<n {
            t.start(key(UInt64(i)), now: now - Int64(i) * 1000, limits: SessionLimits(idle: i % 2 == 0 ? 180_000 : 15 * 60_000, maxLifetime: i % 3 == 0 ? 8 * 3_600_000 : 0))
        }
        t.end(key(1), now: now)
        return t
    }

    @Test func roundTripKeepsEveryRecordExactly() throws {
        let now: Int64 = 1_800_000_000_000
        let t = table(5000, now: now)
        let data = try bytes(t, now: now)
        #expect(data.count == 18 + 2 + 16 + 8 + 8 + 8 + 5000 * 48 + 4 + 32)
        let contents = try SessionSnapshot.read(data, check: SessionSnapshot.check(deriver))
        #expect(contents.written == now)
        #expect(contents.records.count == 5000)
        let back = SessionTable(stripes: 64, longestWindow: 15 * 60_000)
        for (k, r) in contents.records { #expect(back.restore(k, r, now: now)) }
        for i in 0..<5000 { #expect(back.record(key(UInt64(i))) == t.record(key(UInt64(i)))) }
        #expect(back.record(key(1))?.isEnded == true)
    }

    @Test func loginNamesTravelWithTheRecords() throws {
        let now: Int64 = 1_800_000_000_000
        let t = table(3, now: now)
        var out: [UInt8] = []
        let logins = [(key(0), "ana@example.com"), (key(2), "bjørn"), (key(1), String(repeating: "x", count: 300))]
        _ = try SessionSnapshot.write(t, logins: logins, check: SessionSnapshot.check(deriver), now: now) { out += $0 }
        let contents = try SessionSnapshot.read(out, check: SessionSnapshot.check(deriver))
        #expect(contents.logins.map(\.0) == [key(0), key(2)])  // a name past 255 bytes is left out
        #expect(contents.logins.map(\.1) == ["ana@example.com", "bjørn"])
        #expect(contents.records.count == 3)
    }

    @Test func timeWhileDownCountsAsIdle() throws {
        let now: Int64 = 1_800_000_000_000
        let t = SessionTable(longestWindow: 15 * 60_000)
        t.start(key(1), now: now, limits: SessionLimits(idle: 180_000))
        let contents = try SessionSnapshot.read(try bytes(t, now: now), check: SessionSnapshot.check(deriver))
        let back = SessionTable(longestWindow: 15 * 60_000)
        for (k, r) in contents.records { back.restore(k, r, now: now + 200_000) }
        #expect(back.check(key(1), now: now + 200_000, limits: SessionLimits(idle: 180_000), activity: true, unknown: .adopt)
                == .expired(idleFor: 200_000, reason: .idle, window: 180_000))
    }

    @Test func recordsNoWindowNeedsAreNotRestored() throws {
        let now: Int64 = 1_800_000_000_000
        let t = SessionTable(longestWindow: 15 * 60_000, tombstone: 60_000)
        t.start(key(1), now: now, limits: SessionLimits(idle: 180_000))
        let contents = try SessionSnapshot.read(try bytes(t, now: now), check: SessionSnapshot.check(deriver))
        let back = SessionTable(longestWindow: 15 * 60_000, tombstone: 60_000)
        #expect(back.restore(contents.records[0].0, contents.records[0].1, now: now + 15 * 60_000 + 60_001) == false)
        #expect(back.count == 0)
    }

    @Test func damageIsRefusedWithAReason() throws {
        let now: Int64 = 1_800_000_000_000
        let good = try bytes(table(10, now: now), now: now)
        let check = SessionSnapshot.check(deriver)
        func reason(_ b: [UInt8], _ c: SessionKey? = nil) -> String {
            do {
                _ = try SessionSnapshot.read(b, check: c ?? check)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(reason([]) == "not an idlegate session snapshot")
        #expect(reason(Array("PK\u{3}\u{4} a zip file".utf8)) == "not an idlegate session snapshot")
        #expect(reason(Array(good.prefix(40))) == "truncated (40 bytes)")
        #expect(reason(Array(good.dropLast(1))) == "truncated (\(good.count - 1) of \(good.count) bytes)")
        #expect(reason(good + [0]) == "padded (\(good.count + 1) bytes, \(good.count) expected)")
        var flipped = good
        flipped[100] ^= 0x10
        #expect(reason(flipped) == "checksum mismatch (corrupt)")
        var version = good
        version[18] = 9
        #expect(reason(version) == "version 9, this idlegate reads versions 1 and 2")
        // A huge count in the header must not allocate or read past the end.
        var count = good
        for i in 44..<52 { count[i] = 0xFF }
        #expect(reason(count).hasPrefix("truncated or padded"))
        let other = SessionKeyDeriver(secret: Array(repeating: 8, count: 32))
        #expect(reason(good, SessionSnapshot.check(other)) == "written with another session secret (its keys name other sessions)")
        #expect(reason(good) == "accepted")
    }

    /// Found by the snapshot fuzzer: a file whose digest checks out but whose record holds an absurd
    /// time made SessionTable.restore trap on overflow at start; it is now refused like other damage.
    @Test func impossibleTimesAreRefusedNotRestored() throws {
        let now: Int64 = 1_800_000_000_000
        let check = SessionSnapshot.check(deriver)
        var good = try bytes(table(2, now: now), now: now)
        good.removeLast(32)
        for (offset, value) in [(60 + 16, Int64.min), (60 + 24, Int64.max), (60 + 40, -1)] as [(Int, Int64)] {
            var b = good
            var v = UInt64(bitPattern: value).littleEndian
            withUnsafeBytes(of: &v) { b.replaceSubrange(offset..<(offset + 8), with: $0) }
            b += SessionSnapshot.sha256(b[...])
            #expect(throws: SessionSnapshot.Invalid("record 0 holds an impossible time")) { try SessionSnapshot.read(b, check: check) }
        }
    }

    /// Found by the snapshot fuzzer: a record under the all-zero key (the empty-slot mark) was reported
    /// restored but never kept.
    @Test func theEmptySlotKeyIsNeverRestored() {
        let t = SessionTable(stripes: 4, longestWindow: 900_000)
        #expect(!t.restore(SessionKey(hi: 0, lo: 0), SessionRecord(started: 1_000, lastActive: 1_000, limits: SessionLimits(idle: 900_000)), now: 2_000))
        #expect(t.count == 0)
    }
}
