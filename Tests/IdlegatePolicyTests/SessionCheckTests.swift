import IdlegateBase
import IdlegateHTTP
import IdlegateSessions
import Testing
@testable import IdlegatePolicy

/// The session decision as a pure function: request + rules + the store's answer → a verdict.
@Suite("Session check (the verdict as data)")
struct SessionCheckTests {
    static let deriver = SessionKeyDeriver(secret: Array(repeating: 9, count: 32))
    static let sid = String(repeating: "ab12", count: 10)  // 40 hex: Odoo 12–17's shape
    static let other = String(repeating: "cd34", count: 10)

    func rules(mode: PolicySet.Mode = .enforce, unknown: UnknownSessions = .adopt, floor: Int64 = 60_000) -> SessionRules {
        SessionRules(policies: PolicySet([], fallback: .init(name: "default", mode: mode, limits: SessionLimits(idle: 900_000))),
                     routes: RouteClass.Table(passive: ["/websocket", "/longpolling", "/web/image"]),
                     hardening: CookieHardening(CookieHardening.Settings()), unknown: unknown, legacy: .strip,
                     destroyInOdoo: true, activityFloor: floor)
    }

    func request(_ method: String = "POST", _ target: String = "/web/dataset/call_kw", cookie: [String] = ["session_id=\(sid)"],
                 json: Bool = true, upgrade: Bool = false, keepAlive: Bool = true) throws -> SessionRequest {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: erp\r\n"
        for c in cookie { text += "Cookie: \(c)\r\n" }
        if json { text += "Content-Type: application/json\r\n" }
        text += "\r\n"
        var p = HeadParser(kind: .request, limits: HTTPLimits())
        guard case .request(let head, _) = try Array(text.utf8).withUnsafeBytes({ try p.parse($0) }) else { throw ParseFailure() }
        let path = head.target.split(separator: "?", maxSplits: 1).first ?? ""
        return SessionRequest(head: head, path: path, client: [10, 0, 0, 1], clientText: "10.0.0.1", https: true, isUpgrade: upgrade, keepAlive: keepAlive)
    }
    struct ParseFailure: Error {}

    func decide(_ r: SessionRequest, _ rules: SessionRules, store answer: SessionVerdict) -> (Verdict, StoreQuery?) {
        var verdict = Verdict()
        let query = SessionCheck.check(r, rules: rules, into: &verdict) { Self.deriver.key(for: $0) }
        guard query != nil else { return (verdict, nil) }
        SessionCheck.settle(&verdict, answer, r, rules: rules)
        return (verdict, query)
    }

    @Test func anonymousRequestsAskTheStoreNothing() throws {
        let (v, q) = decide(try request(cookie: []), rules(), store: .ended)
        #expect(q == nil && v.action == .forward && v.key == nil && v.events.isEmpty && v.destroy == nil)
    }

    @Test func cookieLinesNamingTwoSessionsAreRefused() throws {
        let (v, q) = decide(try request(cookie: ["tz=UTC", "session_id=\(Self.sid)"]), rules(), store: .active(idleFor: 0, remaining: 900_000))
        #expect(q == nil)
        #expect(v.action == .refuse(status: 400, reason: "Cookie lines name different sessions on Odoo's two ports"))
    }

    @Test func aLiveSessionIsForwardedAndAReturnIsAnEvent() throws {
        let r = try request()
        let (v, q) = decide(r, rules(), store: .active(idleFor: 120_000, remaining: 900_000))
        #expect(q == StoreQuery(key: Self.deriver.key(for: Array(Self.sid.utf8)[...]), limits: SessionLimits(idle: 900_000), activity: true, unknown: .adopt))
        #expect(v.action == .forward && v.destroy == nil && v.storeChange == nil)
        #expect(v.events == [.activityResumed(idle: 120_000, window: 900_000)])
        #expect(decide(r, rules(), store: .active(idleFor: 5_000, remaining: 900_000)).0.events.isEmpty)  // under the floor
        #expect(!SessionCheck.needsConfirmation(.active(idleFor: 1, remaining: 900_000)) && !SessionCheck.needsConfirmation(.adopted))
    }

    @Test func passiveTrafficDoesNotCountAsActivity() throws {
        let (_, q) = decide(try request("GET", "/web/image/res.partner/3", json: false), rules(), store: .active(idleFor: 0, remaining: 900_000))
        #expect(q?.activity == false)
    }

    @Test func anExpiredSessionGetsOdoosAnswerAndOneDestroyOrder() throws {
        let (v, _) = decide(try request(), rules(), store: .expired(idleFor: 901_000, reason: .idle, window: 900_000))
        guard case .answer(let status, let bytes) = v.action else { Issue.record("not answered"); return }
        #expect(status == 200)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"code\": 100") && text.contains("Set-Cookie: session_id=; Max-Age=0; Path=/; Secure; SameSite=Lax; HttpOnly"))
        #expect(v.destroy == DestroyOrder(id: Self.sid, key: Self.deriver.key(for: Array(Self.sid.utf8)[...])))
        #expect(v.events == [.expired(idle: 901_000, reason: .idle, window: 900_000, enforced: true)])
        #expect(SessionCheck.needsConfirmation(.expired(idleFor: 1, reason: .idle, window: 1)))
        // A page load gets the login redirect; a WebSocket handshake a 403.
        let (page, _) = decide(try request("GET", "/odoo/sales", json: false), rules(), store: .ended)
        if case .answer(let s, let b) = page.action {
            #expect(s == 303 && String(decoding: b, as: UTF8.self).contains("Location: /web/login?redirect=/odoo/sales"))
        } else { Issue.record("page not answered") }
        let (ws, _) = decide(try request("GET", "/websocket", json: false, upgrade: true), rules(), store: .ended)
        if case .answer(let s, _) = ws.action { #expect(s == 403) } else { Issue.record("upgrade not answered") }
    }

    @Test func loginAndStaticRoutesAreNeverRefused() throws {
        for target in ["/web/login", "/web/static/src/img/logo.png"] {
            let (v, _) = decide(try request("GET", target, json: false), rules(), store: .ended)
            #expect(v.action == .forward)
            #expect(v.cookie == .rebuilt(nil) && v.stripHeader)  // the dead id is left out
            #expect(v.destroy != nil)
        }
    }

    @Test func aSharedStoreThatCannotBeReadRefusesForTheOutageAndEndsNothing() throws {
        let (v, _) = decide(try request(), rules(), store: .unavailable)
        guard case .answer(503, let bytes) = v.action else { Issue.record("\(v.action)"); return }
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 503 ") && text.contains("Retry-After: 5\r\n") && !text.contains("Set-Cookie"))
        #expect(v.destroy == nil && v.storeChange == nil && v.events == [.storeUnavailable(enforced: true)])
        let (audit, _) = decide(try request(), rules(mode: .audit), store: .unavailable)
        #expect(audit.action == .forward && audit.events == [.storeUnavailable(enforced: false)])
        let (asset, _) = decide(try request("GET", "/web/static/src/img/logo.png", json: false), rules(), store: .unavailable)
        #expect(asset.action == .forward && asset.events.isEmpty)
        #expect(!SessionCheck.needsConfirmation(.unavailable) && SessionCheck.needsConfirmation(.adopted, adoption: true))
        // An expiry in enforce mode goes through the store again: a shared store tells its other replicas.
        let (expired, _) = decide(try request(), rules(), store: .expired(idleFor: 901_000, reason: .idle, window: 900_000))
        #expect(expired.storeChange == .end(Self.deriver.key(for: Array(Self.sid.utf8)[...])))
    }

    @Test func auditModeForwardsWatchesOnAndNeverUnEnds() throws {
        let r = try request()
        let key = Self.deriver.key(for: Array(Self.sid.utf8)[...])
        let (expired, _) = decide(r, rules(mode: .audit), store: .expired(idleFor: 901_000, reason: .idle, window: 900_000))
        #expect(expired.action == .forward && expired.destroy == nil)
        #expect(expired.storeChange == .restart(key, SessionLimits(idle: 900_000)))
        #expect(expired.events == [.expired(idle: 901_000, reason: .idle, window: 900_000, enforced: false)])
        let (ended, _) = decide(r, rules(mode: .audit), store: .ended)
        #expect(ended.action == .forward && ended.storeChange == nil && ended.events.isEmpty)
        let (unknown, _) = decide(r, rules(mode: .audit, unknown: .reject), store: .unknownRefused)
        #expect(unknown.storeChange == .start(key, SessionLimits(idle: 900_000)) && unknown.events == [.unknownRefused(enforced: false)])
        let (off, q) = decide(r, rules(mode: .off), store: .ended)
        #expect(q == nil && off.action == .forward && !off.tracking)
    }

    @Test func setCookieStartsANewSessionOrRefusesARevival() throws {
        let (v, _) = decide(try request("POST", "/web/session/authenticate"), rules(), store: .active(idleFor: 0, remaining: 900_000))
        let value = "session_id=\(Self.other); Path=/; HttpOnly"
        let new = try #require(SessionCheck.newSession(in: value, of: v) { Self.deriver.key(for: $0) })
        #expect(String(decoding: new.id, as: UTF8.self) == Self.other)
        // Odoo re-sending the request's own id is no new session; a clearing is none either.
        #expect(SessionCheck.newSession(in: "session_id=\(Self.sid); Path=/", of: v) { Self.deriver.key(for: $0) } == nil)
        #expect(SessionCheck.newSession(in: "session_id=\(Self.other); Max-Age=0", of: v) { Self.deriver.key(for: $0) } == nil)

        let started = SessionCheck.setCookie(value, of: v, new: new, started: true, login: "admin", rules: rules())
        #expect(started.value == value + "; Secure; SameSite=Lax" && started.destroy == nil)
        #expect(started.events == [.started(key: new.key, login: "admin")])
        let revived = SessionCheck.setCookie(value, of: v, new: new, started: false, login: nil, rules: rules())
        #expect(revived.value == "session_id=; Max-Age=0; Path=/; Secure; SameSite=Lax; HttpOnly")
        #expect(revived.destroy == DestroyOrder(id: Self.other, key: new.key) && revived.events == [.revivalRefused(key: new.key, enforced: true)])
    }

    @Test func logoutEndsOnlyWhenOdooAgreed() throws {
        let (v, _) = decide(try request("GET", "/web/session/logout", json: false), rules(), store: .active(idleFor: 0, remaining: 900_000))
        let key = Self.deriver.key(for: Array(Self.sid.utf8)[...])
        #expect(SessionCheck.logoutAnswered(v, status: 303)?.0 == .end(key))
        #expect(SessionCheck.logoutAnswered(v, status: 500) == nil)
    }

    @Test func tunnelsCloseOnExpiryOrEnd() {
        #expect(SessionCheck.tunnel(.expired(idleFor: 5, reason: .idle, window: 4)) == (true, .tunnelExpired(idle: 5, reason: .idle, window: 4)))
        #expect(SessionCheck.tunnel(.ended).close && !SessionCheck.tunnel(.active(idleFor: 0, remaining: 900_000)).close)
    }
}
