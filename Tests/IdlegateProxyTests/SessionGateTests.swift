import Dispatch
import IdlegateAudit
import IdlegateBase
import IdlegateConfig
import IdlegateHTTP
import IdlegatePolicy
import IdlegateSessions
import Logging
import StoreConformance
import Testing
@testable import IdlegateProxy

extension SessionGate {
    /// A decision with a fresh key cache: these tests are about the store's answers, not the cache.
    func decide(_ r: SessionRequest, later: () -> @Sendable (Verdict) -> Void) -> Verdict? {
        decide(r, keys: SessionKeyCache(deriver: deriver), later: later)
    }
}

/// The session gate against a store that confirms later, on another thread (the Redis layer's shape).
@Suite("Session gate")
struct SessionGateTests {
    func gate(_ store: SessionStore, clock: Clock) -> SessionGate {
        let c = Config()
        return SessionGate(rules: SessionRules(config: c, auditing: false), store: store, deriver: SessionKeyDeriver(secret: Array(repeating: 5, count: 32)),
                           clock: clock, metrics: ProxyMetrics(), audit: Auditor(log: nil, activityFloor: 60_000, clock: clock),
                           logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
    }

    func request(_ id: String) throws -> SessionRequest {
        var p = RequestHeadParser(limits: HTTPLimits())
        let raw = Array("GET /odoo HTTP/1.1\r\nHost: erp\r\nCookie: session_id=\(id)\r\n\r\n".utf8)
        let (head, _) = try #require(try raw.withUnsafeBytes { try p.parse($0) })
        return SessionRequest(head: head, path: head.path, client: [10, 0, 0, 1], clientText: "10.0.0.1", https: false, isUpgrade: false, keepAlive: true)
    }

    @Test func aVerdictThatLooksFinalComesLaterFromAnotherThread() throws {
        let clock = ManualClock()
        let store = LaterConfirmingStore(local: SessionTable(stripes: 16, longestWindow: 900_000))
        let g = gate(store, clock: clock)
        let id = String(repeating: "5a", count: 20)
        _ = store.start(g.deriver.key(for: Array(id.utf8)[...]), now: clock.now(), limits: SessionLimits(idle: 900_000))
        // A live session is settled at once, without a closure.
        var asked = false
        #expect(g.decide(try request(id)) { asked = true; return { _ in } }?.action == .forward)
        #expect(!asked)
        // An expired one waits for the store's confirmation, which arrives on another thread.
        clock.advance(seconds: 901)
        let done = DispatchSemaphore(value: 0)
        let box = VerdictBox()
        let now = g.decide(try request(id)) { { v in box.set(v); done.signal() } }
        #expect(now == nil)
        #expect(done.wait(timeout: .now() + 5) == .success)
        if case .answer(let status, _)? = box.get()?.action { #expect(status == 303) } else { Issue.record("no expiry answer") }
    }

    @Test func anotherReplicasActivityKeepsTheSessionAlive() throws {
        let clock = ManualClock()
        let store = LaterConfirmingStore(local: SessionTable(stripes: 16, longestWindow: 900_000))
        store.seenElsewhere = { _ in true }
        let g = gate(store, clock: clock)
        let id = String(repeating: "6b", count: 20)
        _ = store.start(g.deriver.key(for: Array(id.utf8)[...]), now: clock.now(), limits: SessionLimits(idle: 900_000))
        clock.advance(seconds: 901)
        let done = DispatchSemaphore(value: 0)
        let box = VerdictBox()
        #expect(g.decide(try request(id)) { { v in box.set(v); done.signal() } } == nil)
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(box.get()?.action == .forward)
        #expect(g.decide(try request(id)) { { _ in } }?.action == .forward)  // revived locally
    }
}
