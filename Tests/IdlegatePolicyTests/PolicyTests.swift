import IdlegateBase
import IdlegateHTTP
import IdlegateSessions
import Testing
@testable import IdlegatePolicy

@Suite("Policies")
struct PolicyTests {
    func policies() -> PolicySet {
        PolicySet([
            .init(name: "warehouse", mode: .enforce, limits: SessionLimits(idle: 180_000, maxLifetime: 28_800_000), networks: [CIDR(parsing: "10.2.0.0/16")!]),
            .init(name: "kiosk-host", mode: .enforce, limits: SessionLimits(idle: 120_000), hosts: ["*.kiosk.example"], paths: ["/odoo/pos"]),
            .init(name: "audit-reports", mode: .audit, limits: SessionLimits(idle: 900_000), paths: ["/report"]),
        ], fallback: .init(name: "default", mode: .enforce, limits: SessionLimits(idle: 900_000)))
    }

    @Test func firstMatchWins() throws {
        let set = policies()
        #expect(set.select(client: [10, 2, 3, 4], host: "erp", path: "/odoo").name == "warehouse")
        #expect(set.select(client: [10, 2, 3, 4], host: "erp", path: "/report/x").name == "warehouse")
        #expect(set.select(client: [192, 168, 1, 1], host: "a.kiosk.example:8069", path: "/odoo/pos/1").name == "kiosk-host")
        #expect(set.select(client: [192, 168, 1, 1], host: "a.kiosk.example", path: "/odoo/sales").name == "default")
        #expect(set.select(client: [192, 168, 1, 1], host: nil, path: "/report/pdf").mode == .audit)
        #expect(set.select(client: [192, 168, 1, 1], host: nil, path: "/reports").name == "default")
        #expect(set.select(client: [10, 2, 3, 4], host: nil, path: "/").limits == .init(idle: 180_000, maxLifetime: 28_800_000))
    }

    @Test(arguments: [
        ("/web/login", RouteClass.login), ("/web/login/", .login), ("/web/loginx", .activity),
        ("/web/session/authenticate", .login), ("/web/signup", .login), ("/web/reset_password", .login),
        ("/web/session/logout", .logout), ("/web/session/destroy", .logout),
        ("/web/static/src/img/logo.png", .staticFile), ("/sale/static/description/icon.png", .staticFile),
        ("/web/assets/1/web.assets_web.min.js", .staticFile),
        ("/websocket", .passive), ("/websocket/peek_notifications", .passive), ("/longpolling/poll", .passive),
        ("/bus/websocket_worker_bundle", .passive), ("/calendar/notify", .passive),
        ("/web/webclient/version_info", .passive), ("/web/image/res.partner/3/avatar_128", .passive),
        ("/web/dataset/call_kw/res.partner/read", .activity), ("/odoo/discuss", .activity), ("/", .activity),
        ("/web/service-worker.js", .passive), ("/odoo/offline", .passive), ("/odoo/offline-notes", .activity),
    ])
    func routeClasses(_ path: String, _ expected: RouteClass) throws {
        let defaultPassive = ["/websocket", "/longpolling", "/bus/", "/calendar/notify", "/web/webclient/version_info",
                              "/web/static/", "/web/assets/", "/web/image", "/web/content", "/web/service-worker.js", "/odoo/offline"]
        #expect(RouteClass.Table(passive: defaultPassive).classify(path[...]) == expected)
    }
}

@Suite("Expiry answers and cookies")
struct ExpiryTests {
    @Test func loginRedirectStaysLocal() {
        #expect(ExpiryResponse.loginLocation(for: "/odoo/discuss?x=1") == "/web/login?redirect=/odoo/discuss%3Fx%3D1")
        #expect(ExpiryResponse.loginLocation(for: "//evil.example/x") == "/web/login?redirect=/odoo")
        #expect(ExpiryResponse.loginLocation(for: "/\\evil.example") == "/web/login?redirect=/odoo")
        #expect(ExpiryResponse.loginLocation(for: "*") == "/web/login?redirect=/odoo")
        #expect(!ExpiryResponse.loginLocation(for: "/a%0d%0aSet-Cookie:x").contains("\r"))
    }

    @Test func jsonRPCGetsOdoosCode100() throws {
        var p = HeadParser(kind: .request, limits: HTTPLimits())
        let raw = Array("POST /web/dataset/call_kw HTTP/1.1\r\nHost: a\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n".utf8)
        guard case .request(let head, _) = try raw.withUnsafeBytes({ try p.parse($0) }) else { Issue.record("no head"); return }
        #expect(ExpiryResponse.wantsJSON(head))
        let text = String(decoding: ExpiryResponse.bytes(for: head, clearCookie: "session_id=; Max-Age=0; Path=/", keepAlive: false), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.contains("\"code\": 100"))
        #expect(text.contains("odoo.http.SessionExpiredException"))
        #expect(text.contains("Set-Cookie: session_id=; Max-Age=0; Path=/\r\n"))
        #expect(text.contains("Connection: close\r\n"))
    }

    @Test func hardening() {
        var s = CookieHardening.Settings()
        let h = CookieHardening(s)
        let odoo = "session_id=abc; Expires=Thu, 25 Nov 2027 08:05:46 GMT; Max-Age=604800; HttpOnly; Path=/"
        #expect(h.harden(odoo, https: true) == odoo + "; Secure; SameSite=Lax")
        #expect(h.harden(odoo, https: false) == odoo + "; SameSite=Lax")
        #expect(h.harden("cids=1; Path=/", https: false) == "cids=1; Path=/; SameSite=Lax")
        #expect(h.harden("session_id=abc; Path=/", https: false) == "session_id=abc; Path=/; SameSite=Lax; HttpOnly")
        #expect(h.harden("x=1; Secure; SameSite=Strict", https: true) == nil)
        s.sessionOnly = true
        let kiosk = CookieHardening(s)
        #expect(kiosk.harden(odoo, https: true) == "session_id=abc; HttpOnly; Path=/; Secure; SameSite=Lax")
        s.sameSite = .none
        s.sessionOnly = false
        #expect(CookieHardening(s).harden("x=1", https: false) == nil)  // None needs Secure
        #expect(CookieHardening(s).harden("x=1", https: true) == "x=1; Secure; SameSite=None")
    }
}
