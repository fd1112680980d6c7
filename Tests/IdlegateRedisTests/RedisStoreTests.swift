import Dispatch
import Foundation
import IdlegateBase
import IdlegateRedis
import IdlegateSessions
import StoreConformance
import Synchronization
import Testing

/// The Redis layer against a real `redis-server`: the store conformance cases every store passes, and
/// what only a shared store does (replicas sharing clocks, tombstones, outages).
@Suite("Redis store", .serialized, .enabled(if: RedisServer.available, "needs Debian's redis-server (the test command installs it)"))
final class RedisStoreTests: @unchecked Sendable {
    let server: RedisServer
    static let counter = Atomic(0)

    init() throws { server = try RedisServer() }
    deinit { server.stop() }

    static let window: Int64 = 900_000

    func store(prefix: String? = nil, failMode: RedisStore.FailMode = .open, longest: Int64 = window, tombstone: Int64 = 3_600_000,
               timeout: Int64 = 200) throws -> RedisStore {
        var cs = RedisClient.Settings(url: try RedisURL.parse("redis://127.0.0.1:\(server.port)"))
        cs.timeout = timeout
        cs.connectTimeout = 300
        var s = RedisStore.Settings()
        s.prefix = prefix ?? "t\(Self.counter.add(1, ordering: .relaxed).newValue):"
        s.syncInterval = 50
        s.failMode = failMode
        let st = try RedisStore(local: SessionTable(stripes: 16, longestWindow: longest, tombstone: tombstone), client: cs, settings: s, clock: SystemClock())
        st.start()
        return st
    }

    func waitUntil(_ what: String, seconds: Double = 5, _ cond: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if cond() { return true }
            usleep(10_000)
        }
        return false
    }

    @Test(arguments: StoreConformance.cases)
    func conformance(_ c: StoreConformance.Case) throws {
        let made = Made()
        let failures = c.run { longest, tombstone in
            let s = try! self.store(longest: longest, tombstone: tombstone)
            _ = self.waitUntil("up") { s.isUp }
            made.add(s)
            return s
        }
        made.stopAll()
        #expect(failures.isEmpty, "\(c.name): \(failures)")
    }

    static let limits = SessionLimits(idle: window)
    static func key(_ n: UInt64) -> SessionKey { SessionKey(hi: 0xABCD_0000 + n, lo: n &* 0x9E37_79B9_7F4A_7C15 | 1) }

    @Test func activityThroughOneReplicaKeepsTheSessionAliveOnAnother() throws {
        let a = try store(prefix: "share1:"), b = try store(prefix: "share1:")
        defer { a.stop(); b.stop() }
        #expect(waitUntil("up") { a.isUp && b.isUp })
        let t0 = SystemClock().now(), k = Self.key(1)
        a.start(k, now: t0, limits: Self.limits)
        // Ten minutes of work through A…
        _ = a.check(k, now: t0 + 600_000, limits: Self.limits, activity: true, unknown: .adopt)
        #expect(waitUntil("synced") { (try? server.hget("share1:s:\(k)", "a")) != nil })
        usleep(100_000)  // a write-behind interval
        // …then B, which never saw it, is asked 14 minutes after the start (a passive request): alive,
        // idle 4 minutes, with A's clock.
        let v = StoreConformance.decide(b, k, now: t0 + 840_000, activity: false)
        #expect(v == .active(idleFor: 240_000, remaining: Self.window - 240_000), "\(String(describing: v))")
        // And B asked again at 16 minutes from A's last activity: expired there as well.
        let w = StoreConformance.decide(b, k, now: t0 + 600_000 + Self.window + 1_000, activity: false)
        #expect(w == .expired(idleFor: Self.window + 1_000, reason: .idle, window: Self.window), "\(String(describing: w))")
    }

    @Test func aTunnelOnOneReplicaLivesOnWhileItsSessionIsUsedThroughAnother() throws {
        let a = try store(prefix: "share6:"), b = try store(prefix: "share6:")
        defer { a.stop(); b.stop() }
        #expect(waitUntil("up") { a.isUp && b.isUp })
        let t0 = SystemClock().now(), k = Self.key(6)
        for s in [a, b] { _ = StoreConformance.decide(s, k, now: t0) }  // B holds the WebSocket, A the clicks
        _ = a.check(k, now: t0 + 600_000, limits: Self.limits, activity: true, unknown: .adopt)
        #expect(waitUntil("synced") { (try? server.hget("share6:s:\(k)", "a")) == String(t0 + 600_000) })
        func tunnel(_ s: RedisStore, at now: Int64) -> SessionVerdict? {
            let box = Made.Verdicts(), done = DispatchSemaphore(value: 0)
            s.checkTunnel(k, now: now, limits: Self.limits) { v in
                box.set(v)
                done.signal()
            }
            return done.wait(timeout: .now() + 5) == .success ? box.get() : nil
        }
        // By B's own clock the session is 15 min 1 s idle; Redis holds A's clicks: the tunnel stays.
        #expect(tunnel(b, at: t0 + 901_000) == .active(idleFor: 301_000, remaining: Self.window - 301_000))
        #expect(b.check(k, now: t0 + 902_000, limits: Self.limits, activity: false, unknown: .adopt) != .ended)
        // Idle past the window by A's clock too: over.
        if case .expired? = tunnel(b, at: t0 + 600_000 + Self.window + 1_000) {} else { Issue.record("not expired") }
    }

    @Test func anEndOnOneReplicaHoldsOnEveryOther() throws {
        let a = try store(prefix: "share2:"), b = try store(prefix: "share2:"), c = try store(prefix: "share2:")
        defer { a.stop(); b.stop(); c.stop() }
        #expect(waitUntil("up") { a.isUp && b.isUp && c.isUp })
        let t0 = SystemClock().now(), k = Self.key(2)
        for s in [a, b, c] { #expect(StoreConformance.decide(s, k, now: t0) != nil) }
        usleep(300_000)  // subscribers listening
        a.end(k, now: t0 + 1_000)
        #expect(waitUntil("ended everywhere") {
            [b, c].allSatisfy { $0.check(k, now: t0 + 2_000, limits: Self.limits, activity: true, unknown: .adopt) == .ended }
        })
        // A replica that was not there (restarted, empty table) refuses it too: the tombstone is in Redis.
        let d = try store(prefix: "share2:")
        defer { d.stop() }
        #expect(waitUntil("up") { d.isUp })
        #expect(StoreConformance.decide(d, k, now: t0 + 3_000) == .ended)
        #expect(try server.command(["ZSCORE", "share2:ended", k.description]).hasPrefix("$"))
    }

    @Test func aReplicaWhoseSubscriberWasAwayCatchesUpFromTheTombstones() throws {
        let a = try store(prefix: "share5:"), b = try store(prefix: "share5:")
        defer { a.stop(); b.stop() }
        #expect(waitUntil("up") { a.isUp && b.isUp })
        let t0 = SystemClock().now(), k = Self.key(5)
        for s in [a, b] { _ = StoreConformance.decide(s, k, now: t0) }
        usleep(200_000)
        // Every subscriber is cut off; the end is published to nobody while they reconnect.
        try server.command(["CLIENT", "KILL", "TYPE", "pubsub"])
        a.end(k, now: t0 + 1_000)
        #expect(waitUntil("caught up") { b.check(k, now: t0 + 2_000, limits: Self.limits, activity: false, unknown: .adopt) == .ended })
    }

    @Test func aScriptFlushCostsOneFailedWriteAndTheWriteComesAgain() throws {
        let a = try store(prefix: "share7:")
        defer { a.stop() }
        #expect(waitUntil("up") { a.isUp })
        let t0 = SystemClock().now(), k = Self.key(7)
        a.start(k, now: t0, limits: Self.limits)
        #expect(waitUntil("written") { (try? server.hget("share7:s:\(k)", "a")) == String(t0) })
        try server.command(["SCRIPT", "FLUSH"])
        _ = a.check(k, now: t0 + 5_000, limits: Self.limits, activity: true, unknown: .adopt)
        #expect(waitUntil("written after a reconnect") { (try? server.hget("share7:s:\(k)", "a")) == String(t0 + 5_000) })
    }

    @Test func racingTouchesNeverMoveLastActivityBackwards() throws {
        let a = try store(prefix: "share3:"), b = try store(prefix: "share3:")
        defer { a.stop(); b.stop() }
        #expect(waitUntil("up") { a.isUp && b.isUp })
        let t0 = SystemClock().now(), k = Self.key(3)
        a.start(k, now: t0, limits: Self.limits)
        b.start(k, now: t0, limits: Self.limits)
        // A saw the later activity; B's older one is written after it.
        _ = a.check(k, now: t0 + 50_000, limits: Self.limits, activity: true, unknown: .adopt)
        #expect(waitUntil("A synced") { (try? server.hget("share3:s:\(k)", "a")) == String(t0 + 50_000) })
        _ = b.check(k, now: t0 + 20_000, limits: Self.limits, activity: true, unknown: .adopt)
        usleep(300_000)  // B's older activity written after A's
        #expect(try server.hget("share3:s:\(k)", "a") == String(t0 + 50_000))
    }

    @Test func failOpenKeepsEnforcingLocallyAndFailClosedRefusesForTheOutage() throws {
        let open = try store(prefix: "share4:"), closed = try store(prefix: "share4:", failMode: .closed)
        defer { open.stop(); closed.stop() }
        #expect(waitUntil("up") { open.isUp && closed.isUp })
        let t0 = SystemClock().now(), k = Self.key(4)
        open.start(k, now: t0, limits: Self.limits)
        closed.start(k, now: t0, limits: Self.limits)
        server.stop()
        #expect(waitUntil("down") { !open.isUp && !closed.isUp })
        // Open: the local table answers, and a verdict that asks Redis comes back (within the timeout).
        #expect(open.check(k, now: t0 + 1_000, limits: Self.limits, activity: true, unknown: .adopt) == .active(idleFor: 1_000, remaining: Self.window))
        let started = Date()
        #expect(StoreConformance.decide(open, Self.key(40), now: t0) == .adopted)
        #expect(Date().timeIntervalSince(started) < 1)
        // Closed: a temporary refusal, and nothing ended locally.
        #expect(closed.check(k, now: t0 + 1_000, limits: Self.limits, activity: true, unknown: .adopt) == .unavailable)
        #expect(closed.local.record(k)?.isEnded == false)
    }
}

final class Made: @unchecked Sendable {
    final class Verdicts: @unchecked Sendable {
        private let lock = Mutex()
        private var value: SessionVerdict?
        func set(_ v: SessionVerdict) { lock.withLock { value = v } }
        func get() -> SessionVerdict? { lock.withLock { value } }
    }

    private let lock = Mutex()
    private var stores: [RedisStore] = []
    func add(_ s: RedisStore) { lock.withLock { stores.append(s) } }
    func stopAll() { for s in lock.withLock({ stores }) { s.stop() } }
}
