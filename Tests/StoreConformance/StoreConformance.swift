import Dispatch
import Glibc
import IdlegateBase
import IdlegateSessions

/// What every `SessionStore` must do, as a list of named cases any store's tests run: the in-memory
/// table now, the Redis layer later. A case returns what went wrong (empty: it held). Stores are made
/// fresh for each case by `make(longestWindow, tombstone)`; time comes from the case's ManualClock.
public enum StoreConformance {
    public typealias Make = @Sendable (_ longestWindow: Int64, _ tombstone: Int64) -> SessionStore

    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        public let run: @Sendable (Make) -> [String]
        public var description: String { name }
    }

    public static let fifteen = SessionLimits(idle: 15 * 60_000)
    /// Each case's clock starts at the real time: a shared store's own expiry (a Redis TTL) runs on it.
    static var startTime: Int64 { SystemClock().now() }
    static let day: Int64 = 86_400_000

    static func key(_ n: UInt64) -> SessionKey { SessionKey(hi: (n + 1) &* 0x9E37_79B9_7F4A_7C15, lo: n &+ 0x51) }

    /// The store's final verdict for `key`: `check`, then `confirm` when the first answer looks final,
    /// waited for (a store may confirm later, on another thread).
    public static func decide(_ s: SessionStore, _ k: SessionKey, now: Int64, limits: SessionLimits = fifteen,
                              activity: Bool = true, unknown: UnknownSessions = .adopt) -> SessionVerdict? {
        let first = s.check(k, now: now, limits: limits, activity: activity, unknown: unknown)
        switch first {
        case .active, .unavailable: return first
        case .adopted where !s.confirmsAdoption: return first
        default: break
        }
        let done = DispatchSemaphore(value: 0)
        let box = Box()
        s.confirm(k, first, now: now, limits: limits, activity: activity) { v in
            box.set(v)
            done.signal()
        }
        guard done.wait(timeout: .now() + 5) == .success else { return nil }
        return box.get()
    }

    final class Box: @unchecked Sendable {
        private let lock = Mutex()
        private var value: SessionVerdict?
        private var calls = 0
        func set(_ v: SessionVerdict) { lock.withLock { value = v; calls += 1 } }
        func get() -> SessionVerdict? { lock.withLock { value } }
        var count: Int { lock.withLock { calls } }
    }

    public static let cases: [Case] = [
        Case(name: "an unknown id is adopted, then active with its gap") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime), k = key(1)
            var bad: [String] = []
            if decide(s, k, now: c.now()) != .adopted { bad.append("first sight not adopted") }
            c.advance(seconds: 60)
            if let v = decide(s, k, now: c.now()), v != .active(idleFor: 60_000, remaining: 900_000) { bad.append("second request: \(v)") }
            if s.count != 1 { bad.append("count \(s.count), not 1") }
            return bad
        },
        Case(name: "unknown ids are refused when asked, and nothing is stored") { make in
            let s = make(900_000, 3_600_000)
            let v = decide(s, key(2), now: 1_000, unknown: .reject)
            return (v == .unknownRefused ? [] : ["verdict \(String(describing: v))"]) + (s.count == 0 ? [] : ["count \(s.count)"])
        },
        Case(name: "passive requests never move the clock") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime), k = key(3)
            _ = s.start(k, now: c.now(), limits: fifteen)
            for _ in 0..<14 {
                c.advance(seconds: 60)
                _ = decide(s, k, now: c.now(), activity: false)
            }
            c.advance(seconds: 61)
            guard case .expired(let idle, .idle, 900_000)? = decide(s, k, now: c.now(), activity: false) else { return ["kept alive by passive traffic"] }
            return idle == 901_000 ? [] : ["idle \(idle)"]
        },
        Case(name: "an expired id stays ended: replaying it never revives it") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime), k = key(4)
            _ = s.start(k, now: c.now(), limits: fifteen)
            c.advance(seconds: 901)
            var bad: [String] = []
            if decide(s, k, now: c.now()) != .expired(idleFor: 901_000, reason: .idle, window: 900_000) { bad.append("not expired") }
            c.advance(seconds: 1)
            if decide(s, k, now: c.now()) != .ended { bad.append("replay not ended") }
            if s.start(k, now: c.now(), limits: fifteen) { bad.append("start revived an ended id") }
            if decide(s, k, now: c.now()) != .ended { bad.append("ended id revived by start") }
            return bad
        },
        Case(name: "the absolute lifetime ends a busy session") { make in
            let s = make(3_600_000, 3_600_000), c = ManualClock(startTime), k = key(5)
            let limits = SessionLimits(idle: 600_000, maxLifetime: 3_600_000)
            _ = s.start(k, now: c.now(), limits: limits)
            for _ in 0..<60 {
                c.advance(seconds: 60)
                _ = decide(s, k, now: c.now(), limits: limits)
            }
            c.advance(seconds: 1)
            return decide(s, k, now: c.now(), limits: limits) == .expired(idleFor: 1_000, reason: .lifetime, window: 3_600_000) ? [] : ["lifetime not enforced"]
        },
        Case(name: "windows tighten, never loosen, above 25 days too") { make in
            let s = make(30 * day, 3_600_000), c = ManualClock(startTime), k = key(6)
            _ = s.start(k, now: c.now(), limits: SessionLimits(idle: 30 * day, maxLifetime: 30 * day))
            _ = decide(s, k, now: c.now(), limits: fifteen)  // one request under a 15-minute policy
            c.advance(seconds: 901)
            let v = decide(s, k, now: c.now(), limits: SessionLimits(idle: 30 * day))
            return v == .expired(idleFor: 901_000, reason: .idle, window: 900_000) ? [] : ["30-day window kept: \(String(describing: v))"]
        },
        Case(name: "audit mode's restart watches an expired session on") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime), k = key(7)
            _ = s.start(k, now: c.now(), limits: fifteen)
            c.advance(seconds: 901)
            _ = decide(s, k, now: c.now())
            s.restart(k, now: c.now(), limits: fifteen)
            return decide(s, k, now: c.now()) == .active(idleFor: 0, remaining: 900_000) ? [] : ["not active after restart"]
        },
        Case(name: "logout and kick end a session, known or not") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime)
            _ = s.start(key(8), now: c.now(), limits: fifteen)
            s.end(key(8), now: c.now())
            s.end(key(9), now: c.now())  // never seen here (another replica's, or before a restart)
            var bad: [String] = []
            for k in [key(8), key(9)] where decide(s, k, now: c.now()) != .ended { bad.append("\(k) not ended") }
            return bad
        },
        Case(name: "a sweep forgets what no window needs, and only then may an id start fresh") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime)
            _ = s.start(key(10), now: c.now(), limits: fifteen)
            _ = s.start(key(11), now: c.now(), limits: fifteen)
            s.end(key(11), now: c.now())
            c.advance(seconds: 900 + 3_600 + 1)
            _ = s.start(key(12), now: c.now(), limits: fifteen)
            let dropped = s.sweep(now: c.now())
            var bad: [String] = []
            if dropped != 2 { bad.append("swept \(dropped), not 2") }
            if s.count != 1 { bad.append("count \(s.count), not 1") }
            if !s.start(key(11), now: c.now(), limits: fifteen) { bad.append("a swept tombstone still refused start") }
            return bad
        },
        Case(name: "confirm replies exactly once, with the verdict, from any thread") { make in
            let s = make(900_000, 3_600_000), c = ManualClock(startTime), k = key(13)
            _ = s.start(k, now: c.now(), limits: fifteen)
            c.advance(seconds: 901)
            let first = s.check(k, now: c.now(), limits: fifteen, activity: true, unknown: .adopt)
            let box = Box()
            let done = DispatchSemaphore(value: 0)
            s.confirm(k, first, now: c.now(), limits: fifteen, activity: true) { v in
                box.set(v)
                done.signal()
            }
            guard done.wait(timeout: .now() + 5) == .success else { return ["no reply in 5 s"] }
            usleep(20_000)  // a second reply would come by now
            var bad: [String] = []
            if box.count != 1 { bad.append("\(box.count) replies") }
            if box.get() != first { bad.append("reply \(String(describing: box.get())) for \(first)") }
            return bad
        },
        Case(name: "threads touching their own sessions never lose one") { make in
            let s = make(900_000, 3_600_000)
            let threads = 4, per = 2_000
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                for i in 0..<per {
                    let k = key(UInt64(100_000 * (t + 1) + i))
                    _ = s.check(k, now: 1_000, limits: fifteen, activity: true, unknown: .adopt)
                    _ = s.check(k, now: 2_000, limits: fifteen, activity: true, unknown: .adopt)
                }
            }
            return s.count == threads * per ? [] : ["count \(s.count), not \(threads * per)"]
        },
    ]
}
