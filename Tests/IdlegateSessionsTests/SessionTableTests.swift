import Glibc
import IdlegateBase
import Testing
@testable import IdlegateSessions

@Suite("Session table")
struct SessionTableTests {
    let fifteen = SessionLimits(idle: 15 * 60_000)
    let three = SessionLimits(idle: 3 * 60_000, maxLifetime: 8 * 3_600_000)

    func key(_ n: UInt64) -> SessionKey { SessionKey(hi: (n + 1) &* 0x9E37_79B9_7F4A_7C15, lo: n + 1) }

    @Test func lifecycle() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 15 * 60_000)
        let k = key(1)
        #expect(t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .adopted)
        clock.advance(seconds: 600)
        #expect(t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .active(idleFor: 600_000, remaining: 900_000))
        clock.advance(seconds: 901)
        #expect(t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .expired(idleFor: 901_000, reason: .idle, window: 900_000))
        // Replaying an expired id never revives it.
        clock.advance(seconds: 1)
        #expect(t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .ended)
        // A new login (Odoo hands out a new id) starts afresh.
        #expect(t.start(key(100), now: clock.now(), limits: fifteen))
        #expect(t.check(key(100), now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .active(idleFor: 0, remaining: 900_000))
    }

    /// What the screen guard is told: a passive check leaves the clock and reports what is left; activity
    /// gives the whole window back; the lifetime caps it near its end.
    @Test func remainingTimeForPassiveAndActiveChecks() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 8 * 3_600_000)
        let k = key(2)
        #expect(t.start(k, now: clock.now(), limits: three))
        clock.advance(seconds: 100)
        #expect(t.check(k, now: clock.now(), limits: three, activity: false, unknown: .adopt) == .active(idleFor: 100_000, remaining: 80_000))
        clock.advance(seconds: 50)  // passive again: still counted from the start
        #expect(t.check(k, now: clock.now(), limits: three, activity: false, unknown: .adopt) == .active(idleFor: 150_000, remaining: 30_000))
        #expect(t.check(k, now: clock.now(), limits: three, activity: true, unknown: .adopt) == .active(idleFor: 150_000, remaining: 180_000))
        for _ in 0..<(8 * 60 - 5) {  // active every minute, up to 2.5 min before the 8 h lifetime
            clock.advance(seconds: 60)
            _ = t.check(k, now: clock.now(), limits: three, activity: true, unknown: .adopt)
        }
        clock.advance(seconds: 30)
        #expect(t.check(k, now: clock.now(), limits: three, activity: true, unknown: .adopt) == .active(idleFor: 30_000, remaining: 120_000))
    }

    /// Regression (a real Odoo 18 behind idlegate): Odoo re-sends `Set-Cookie: session_id=<the id it
    /// used>`, and taking that as a new session revived an expired id for good.
    @Test func anEndedSessionIsNeverStartedAgain() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 900_000, tombstone: 3_600_000)
        let expired = key(7), kicked = key(8)
        t.start(expired, now: clock.now(), limits: fifteen)
        t.start(kicked, now: clock.now(), limits: fifteen)
        clock.advance(seconds: 901)
        _ = t.check(expired, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt)
        t.end(kicked, now: clock.now())
        for k in [expired, kicked] {
            #expect(!t.start(k, now: clock.now(), limits: fifteen))
            #expect(t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .ended)
        }
        // Past its tombstone the key is swept, and only then may it start fresh.
        clock.advance(seconds: 3_601)
        #expect(t.sweep(now: clock.now()) == 2)
        #expect(t.start(expired, now: clock.now(), limits: fifteen))
        #expect(t.check(expired, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .active(idleFor: 0, remaining: 900_000))
    }

    @Test func auditModeRestartsWhatItWouldHaveExpired() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 900_000)
        let k = key(9)
        t.start(k, now: clock.now(), limits: fifteen)
        clock.advance(seconds: 901)
        if case .expired = t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) {} else { Issue.record("not expired") }
        t.restart(k, now: clock.now(), limits: fifteen)
        #expect(t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) == .active(idleFor: 0, remaining: 900_000))
    }

    @Test func passiveRequestsDoNotMoveTheClock() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 900_000)
        let k = key(2)
        t.start(k, now: clock.now(), limits: fifteen)
        for _ in 0..<14 {
            clock.advance(seconds: 60)
            #expect(t.check(k, now: clock.now(), limits: fifteen, activity: false, unknown: .adopt) != .ended)
        }
        clock.advance(seconds: 61)
        if case .expired = t.check(k, now: clock.now(), limits: fifteen, activity: false, unknown: .adopt) {} else {
            Issue.record("passive traffic kept the session alive")
        }
    }

    @Test func windowShrinksNeverGrows() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 900_000)
        let k = key(3)
        t.start(k, now: clock.now(), limits: fifteen)
        _ = t.check(k, now: clock.now(), limits: three, activity: true, unknown: .adopt)  // a kiosk request
        clock.advance(seconds: 200)
        if case .expired(_, .idle, let window) = t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt) {
            #expect(window == 180_000)
        } else {
            Issue.record("the kiosk's 3 min window did not stick")
        }
    }

    /// Regression: windows and lifetimes above ~24.8 days are stored as negative seconds, and comparing
    /// the stored form loosened a 7-day lifetime to 30 days and let a 30-day window ignore 15 minutes.
    @Test func longWindowsAndLifetimesTightenToo() {
        let day: Int64 = 86_400_000
        var r = SessionRecord(started: 0, lastActive: 0, limits: SessionLimits(idle: 30 * day, maxLifetime: 30 * day))
        r.tighten(SessionLimits(idle: 15 * 60_000, maxLifetime: 7 * day))
        #expect(r.idle.millis == 15 * 60_000)
        #expect(r.maxLifetime.millis == 7 * day)
        r.tighten(SessionLimits(idle: 30 * day, maxLifetime: 30 * day))  // never loosened again
        #expect(r.idle.millis == 15 * 60_000)
        #expect(r.maxLifetime.millis == 7 * day)
        var none = SessionRecord(started: 0, lastActive: 0, limits: SessionLimits(idle: 60_000))
        none.tighten(SessionLimits(idle: 60_000, maxLifetime: 40 * day))
        #expect(none.maxLifetime.millis == 40 * day)

        let clock = ManualClock()
        let t = SessionTable(longestWindow: 30 * day)
        let k = key(40)
        t.start(k, now: clock.now(), limits: SessionLimits(idle: 30 * day, maxLifetime: 30 * day))
        _ = t.check(k, now: clock.now(), limits: fifteen, activity: true, unknown: .adopt)
        clock.advance(seconds: 901)
        #expect(t.check(k, now: clock.now(), limits: SessionLimits(idle: 30 * day), activity: true, unknown: .adopt)
                == .expired(idleFor: 901_000, reason: .idle, window: 900_000))
    }

    @Test func absoluteLifetime() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 8 * 3_600_000)
        let k = key(4)
        t.start(k, now: clock.now(), limits: three)
        for _ in 0..<(8 * 60) {
            clock.advance(seconds: 60)
            _ = t.check(k, now: clock.now(), limits: three, activity: true, unknown: .adopt)
        }
        clock.advance(seconds: 60)
        #expect(t.check(k, now: clock.now(), limits: three, activity: true, unknown: .adopt) == .expired(idleFor: 60_000, reason: .lifetime, window: 28_800_000))
        #expect(t.record(k)?.isEnded == true)
    }

    @Test func unknownRejected() {
        let t = SessionTable(longestWindow: 900_000)
        #expect(t.check(key(5), now: 0, limits: fifteen, activity: true, unknown: .reject) == .unknownRefused)
        #expect(t.count == 0)
    }

    @Test func logoutEnds() {
        let t = SessionTable(longestWindow: 900_000)
        t.start(key(6), now: 0, limits: fifteen)
        t.end(key(6), now: 10)
        #expect(t.check(key(6), now: 20, limits: fifteen, activity: true, unknown: .adopt) == .ended)
    }

    @Test func sweeperKeepsMemoryBounded() {
        let clock = ManualClock()
        let t = SessionTable(longestWindow: 900_000, tombstone: 3_600_000)
        for n in 0..<1000 { t.start(key(UInt64(n)), now: clock.now(), limits: fifteen) }
        t.end(key(0), now: clock.now())
        clock.advance(seconds: 3599)
        #expect(t.sweep(now: clock.now()) == 0)
        clock.advance(seconds: 2)
        #expect(t.sweep(now: clock.now()) == 1)    // the logged-out id, past its tombstone
        clock.advance(seconds: 900 - 2)
        #expect(t.sweep(now: clock.now()) == 0)
        clock.advance(seconds: 2)
        #expect(t.sweep(now: clock.now()) == 999)  // idle past every window
        #expect(t.count == 0)
    }

    @Test func evictionDropsTheLongestIdleFirst() {
        let clock = ManualClock()
        let t = SessionTable(stripes: 1, maxEntries: 64, longestWindow: 900_000)
        for n in 0..<64 {
            t.start(key(UInt64(n)), now: clock.now(), limits: fifteen)
            clock.advance(millis: 10)
        }
        t.start(key(1000), now: clock.now(), limits: fifteen)
        #expect(t.count <= 64)
        #expect(t.record(key(0)) == nil)        // the oldest went
        #expect(t.record(key(63)) != nil)       // the freshest stayed
        #expect(t.record(key(1000)) != nil)
    }

    @Test func recordsAreSmall() {
        #expect(MemoryLayout<SessionRecord>.stride <= 32)
    }

    /// Many threads touching overlapping sessions: every touch lands, nothing is lost or torn.
    @Test func concurrentTouches() async {
        let t = SessionTable(stripes: 16, longestWindow: 900_000)
        let keys = (0..<512).map { key(UInt64($0)) }
        for k in keys { t.start(k, now: 0, limits: fifteen) }
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for round in 1...2000 {
                        let k = keys[(round * 7 + worker * 13) % keys.count]
                        let v = t.check(k, now: Int64(round), limits: fifteen, activity: true, unknown: .adopt)
                        if case .active = v {} else { Issue.record("unexpected \(v)") }
                    }
                }
            }
        }
        #expect(t.count == 512)
        let latest = keys.map { t.record($0)!.lastActive }.max()
        #expect(latest == 2000)
    }
}

@Suite("Slot map")
struct SlotMapTests {
    /// Keys that all want the same home slot: removal must shift the run back so every other key is
    /// still found (regression guard for backward-shift deletion).
    @Test func removalInACollisionRun() {
        var m = SlotMap()
        let keys = (1...10).map { SessionKey(hi: 5, lo: UInt64($0)) }
        let r = SessionRecord(started: 1, lastActive: 1, limits: SessionLimits(idle: 1000))
        for k in keys { m.insert(k, r) }
        m.remove(keys[3])
        m.remove(keys[0])
        #expect(m.count == 8)
        for (i, k) in keys.enumerated() { #expect((m[k] != nil) == (i != 0 && i != 3)) }
        m.insert(SessionKey(hi: 6, lo: 1), r)
        #expect(m[SessionKey(hi: 6, lo: 1)] != nil)
    }

    @Test func growsAndFilters() {
        var m = SlotMap()
        let r = SessionRecord(started: 1, lastActive: 1, limits: SessionLimits(idle: 1000))
        for n in 1...1000 { m.insert(SessionKey(hi: UInt64(n) &* 0x9E37_79B9_7F4A_7C15, lo: UInt64(n)), SessionRecord(started: 0, lastActive: Int64(n), limits: SessionLimits(idle: 1000))) }
        #expect(m.count == 1000)
        #expect(m.filter { $0.lastActive > 500 } == 500)
        #expect(m[SessionKey(hi: 900 &* 0x9E37_79B9_7F4A_7C15, lo: 900)] != nil)
        #expect(m[SessionKey(hi: 100 &* 0x9E37_79B9_7F4A_7C15, lo: 100)] == nil)
        _ = r
    }
}
