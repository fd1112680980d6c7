import Foundation
import IdlegateBase
import IdlegateHTTP
import IdlegateSessions
import Testing
@testable import IdlegateAdmin

@Suite("Admin API routing")
struct AdminRouterTests {
    final class Kicked: @unchecked Sendable { var keys: [SessionKey] = [] }

    static func backend(_ table: SessionTable, token: String = "", kicked: Kicked = Kicked()) -> AdminBackend {
        AdminBackend(metrics: { Array("idlegate_sessions_tracked 3\n".utf8) }, ready: { (false, "upstream http://127.0.0.1:1") },
                     table: table, now: { 1_000_000 }, policyName: { _ in "default" }, login: { _ in nil },
                     kick: { key in kicked.keys.append(key); return table.record(key) != nil },
                     reload: { (false, "policies[0].match.cidr[0]: \"10.0.0.0/33\" is not a CIDR") }, token: { token })
    }

    static func head(_ method: String, _ target: String, _ fields: [(String, String)] = []) throws -> RequestHead {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: admin\r\n"
        for (n, v) in fields { text += "\(n): \(v)\r\n" }
        let bytes = Array((text + "\r\n").utf8)
        var p = HeadParser(kind: .request, limits: HTTPLimits())
        guard case .request(let h, _) = try bytes.withUnsafeBytes({ try p.parse($0) }) else { throw CancellationError() }
        return h
    }

    static func body(_ r: AdminResponse) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any]
    }

    @Test func healthAndReadinessNeedNoToken() throws {
        let router = AdminRouter(backend: Self.backend(SessionTable(longestWindow: 60_000), token: "s3cret"))
        #expect(router.answer(try Self.head("GET", "/healthz")).status == 200)
        let ready = router.answer(try Self.head("GET", "/readyz"))
        #expect(ready.status == 503)
        #expect(try Self.body(ready)["ready"] as? Bool == false)
    }

    @Test func tokenIsRequiredWhenSet() throws {
        let router = AdminRouter(backend: Self.backend(SessionTable(longestWindow: 60_000), token: "s3cret"))
        #expect(router.answer(try Self.head("GET", "/metrics")).status == 401)
        #expect(router.answer(try Self.head("GET", "/metrics", [("Authorization", "Bearer wrong")])).status == 401)
        #expect(router.answer(try Self.head("GET", "/metrics", [("Authorization", "Bearer s3cret0")])).status == 401)
        let ok = router.answer(try Self.head("GET", "/metrics", [("Authorization", "Bearer s3cret")]))
        #expect(ok.status == 200)
        #expect(String(decoding: ok.body, as: UTF8.self) == "idlegate_sessions_tracked 3\n")
        #expect(String(decoding: router.answer(try Self.head("GET", "/sessions")).bytes, as: UTF8.self).contains("WWW-Authenticate: Bearer"))
    }

    @Test func unknownPathsAndMethods() throws {
        let router = AdminRouter(backend: Self.backend(SessionTable(longestWindow: 60_000)))
        #expect(router.answer(try Self.head("GET", "/web/login")).status == 404)
        #expect(router.answer(try Self.head("GET", "/")).status == 404)
        #expect(router.answer(try Self.head("GET", "/reload")).status == 405)
        #expect(router.answer(try Self.head("POST", "/metrics")).status == 405)
        #expect(router.answer(try Self.head("GET", "/sessions/00000000000000000000000000000001")).status == 405)
        #expect(router.answer(try Self.head("DELETE", "/sessions/nothex")).status == 400)
    }

    @Test func reloadFailureSaysWhy() throws {
        let r = AdminRouter(backend: Self.backend(SessionTable(longestWindow: 60_000))).answer(try Self.head("POST", "/reload"))
        #expect(r.status == 400)
        #expect(try Self.body(r)["error"] as? String == "policies[0].match.cidr[0]: \"10.0.0.0/33\" is not a CIDR")
    }

    @Test func sessionsArePagedInKeyOrderWithoutLosingAny() throws {
        let table = SessionTable(stripes: 16, longestWindow: 600_000)
        var keys: Set<String> = []
        for i in 1...250 {
            let k = SessionKey(hi: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, lo: UInt64(i) &* 0xBF58_476D_1CE4_E5B9)
            table.start(k, now: 1_000_000 - Int64(i) * 1000, limits: SessionLimits(idle: 900_000))
            keys.insert(k.description)
        }
        let router = AdminRouter(backend: Self.backend(table))
        var seen: [String] = []
        var after = ""
        var pages = 0
        while true {
            let r = router.answer(try Self.head("GET", "/sessions?limit=100" + (after.isEmpty ? "" : "&after=\(after)")))
            #expect(r.status == 200)
            let b = try Self.body(r)
            #expect(b["total"] as? Int == 250)
            let rows = b["sessions"] as! [[String: Any]]
            seen += rows.map { $0["key"] as! String }
            pages += 1
            guard let next = b["next"] as? String else { break }
            after = next
        }
        #expect(pages == 3)
        #expect(seen == seen.sorted())
        #expect(Set(seen) == keys)
        #expect(seen.count == 250)
        // The first row's fields.
        let one = try Self.body(router.answer(try Self.head("GET", "/sessions?limit=1")))
        let row = (one["sessions"] as! [[String: Any]])[0]
        #expect(row["state"] as? String == "active")
        #expect(row["policy"] as? String == "default")
        #expect(row["idle_window_seconds"] as? Int == 900)
        #expect(row["login"] is NSNull)
    }

    @Test func kickNamesTheKey() throws {
        let table = SessionTable(longestWindow: 600_000)
        let key = SessionKey(hi: 0xabc, lo: 0xdef)
        table.start(key, now: 1_000_000, limits: SessionLimits(idle: 900_000))
        let kicked = Kicked()
        let router = AdminRouter(backend: Self.backend(table, kicked: kicked))
        let r = router.answer(try Self.head("DELETE", "/sessions/\(key)"))
        #expect(r.status == 200)
        #expect(kicked.keys == [key])
        #expect(router.answer(try Self.head("DELETE", "/sessions/0000000000000000000000000000beef")).status == 404)
        #expect(router.answer(try Self.head("GET", "/sessions?limit=0")).status == 400)
        #expect(router.answer(try Self.head("GET", "/sessions?after=zz")).status == 400)
    }
}
