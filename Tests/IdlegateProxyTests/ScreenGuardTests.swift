import Foundation
import IdlegateBase
import IdlegateConfig
import IdlegateHTTP
import Testing
@testable import IdlegateProxy

/// The screen guard's server half, through the connection machine: which pages get the script and how,
/// what stays byte for byte, and idlegate's own `/idlegate/` paths.
@Suite("Screen guard")
struct ScreenGuardTests {
    static let page = "<html><head><title>Odoo</title></head><body><p>customer data: ACME Corp, 12 345.00</p></body></html>"
    static let tag = #"<script src="\#(ScreenGuard.scriptPath)" data-warn="5000" defer></script>"#

    func guarded(_ more: (inout Config) -> Void = { _ in }) -> MachineRig {
        MachineRig {
            $0.idleTimeout = 10_000
            $0.screenGuard = true
            $0.warnBefore = 5_000
            more(&$0)
        }
    }

    func get(_ rig: MachineRig, _ sid: String, path: String = "/odoo") {
        rig.send("GET \(path) HTTP/1.1\r\nHost: erp\r\nCookie: session_id=\(sid)\r\n\r\n")
    }

    /// The body the client got, chunks joined (the guard re-frames every page it changes).
    func body(_ text: String) -> String {
        let parts = text.components(separatedBy: "\r\n\r\n")
        let head = parts[0]
        let rest = parts.dropFirst().joined(separator: "\r\n\r\n")
        guard head.contains("Transfer-Encoding: chunked") else { return rest }
        var out = "", s = Substring(rest)
        while let nl = s.range(of: "\r\n"), let n = Int(s[..<nl.lowerBound], radix: 16), n > 0 {
            let start = nl.upperBound
            let data = s.utf8[start...].prefix(n)
            out += String(decoding: data, as: UTF8.self)
            s = s[s.utf8.index(start, offsetBy: n + 2)...]
        }
        return out
    }

    @Test func aPageGetsTheScriptBeforeHeadAndIsReframed() {
        let rig = guarded()
        let sid = rig.session()
        get(rig, sid)
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(Self.page.utf8.count)\r\n\r\n" + Self.page)
        #expect(!rig.clientText.contains("Content-Length"))
        #expect(rig.clientText.contains("Transfer-Encoding: chunked\r\n"))
        #expect(body(rig.clientText) == Self.page.replacingOccurrences(of: "</head>", with: Self.tag + "</head>"))
        #expect(rig.phase == .awaitingRequest)  // keep-alive survives the re-framing
    }

    /// `</HEAD>` split across three reads from Odoo, upper case: found once; a page without one gets the
    /// tag at its end.
    @Test func theMarkerIsFoundAcrossReadsAndWithoutIt() {
        let rig = guarded()
        let sid = rig.session()
        get(rig, sid)
        let page = Self.page.replacingOccurrences(of: "</head>", with: "</HEAD>")
        let cut1 = page.range(of: "</HE")!.upperBound, cut2 = page.index(after: cut1)
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in [page[..<cut1], page[cut1..<cut2], page[cut2...]] {
            rig.fromOdoo(String(piece.utf8.count, radix: 16) + "\r\n" + piece + "\r\n")
        }
        rig.fromOdoo("0\r\n\r\n")
        #expect(body(rig.clientText) == page.replacingOccurrences(of: "</HEAD>", with: Self.tag + "</HEAD>"))

        let bare = guarded()
        get(bare, bare.session())
        bare.fromOdoo("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\n<p>no head tag</p>")
        #expect(body(bare.clientText) == "<p>no head tag</p>" + Self.tag)
    }

    /// An HTTP/1.0 client cannot take chunks: the page goes to it close-delimited.
    @Test func anHTTP10ClientGetsTheGuardedPageUntilClose() {
        let rig = guarded()
        rig.send("GET /odoo HTTP/1.0\r\nHost: erp\r\nCookie: session_id=\(rig.session())\r\n\r\n")
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: \(Self.page.utf8.count)\r\n\r\n" + Self.page)
        #expect(rig.clientText.contains("Connection: close\r\n") && !rig.clientText.contains("Content-Length"))
        #expect(body(rig.clientText) == Self.page.replacingOccurrences(of: "</head>", with: Self.tag + "</head>"))
    }

    @Test(arguments: [("gzip", "H4sIAAAAAAACA7PJKMnNsbPJSE1MsbMpySzJSbXzT8nPt9GHsG30ITJJ+SmVdjYFdsmlxSX5ualFCimJJYlWCo7Ovq4KzvlFBToKhkYKxiamegYGNvoFQG0QDfpg0wFxuiP5ZAAAAA=="),
                      ("deflate", "s8koyc2xs8lITUyxsynJLMlJtfNPyc+30YewbfQhMkn5KZV2NgV2yaXFJfm5qUUKKYkliVYKjs6+rgrO+UUFOgqGRgrGJqZ6BgY2+gVAbRAN+mDTAQ==")])
    func aCompressedPageIsInflatedAndGuarded(_ coding: String, _ base64: String) {
        let rig = guarded()
        get(rig, rig.session())
        let packed = Data(base64Encoded: base64)!
        rig.fromOdoo(Array("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: \(coding)\r\nContent-Length: \(packed.count)\r\n\r\n".utf8) + Array(packed))
        #expect(!rig.clientText.contains("Content-Encoding"))
        #expect(body(rig.clientText) == Self.page.replacingOccurrences(of: "</head>", with: Self.tag + "</head>"))
    }

    @Test func theCSPLetsTheScriptRun() {
        #expect(ScreenGuard.allowingScript("default-src 'self'").csp == "default-src 'self'")
        #expect(ScreenGuard.allowingScript("script-src 'nonce-abc123' 'strict-dynamic'; object-src 'none'") ==
                ("script-src 'nonce-abc123' 'strict-dynamic'; object-src 'none'", "abc123"))
        #expect(ScreenGuard.allowingScript("default-src 'none'; img-src *").csp == " default-src 'self'; img-src *")
        #expect(ScreenGuard.allowingScript("script-src https://cdn.example; style-src 'self'").csp == "script-src https://cdn.example 'self'; style-src 'self'")
        #expect(ScreenGuard.allowingScript("frame-ancestors 'self'").csp == "frame-ancestors 'self'")

        let rig = guarded()
        get(rig, rig.session())
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Security-Policy: script-src 'nonce-r4nd0m'\r\nContent-Length: \(Self.page.utf8.count)\r\n\r\n" + Self.page)
        #expect(body(rig.clientText).contains(#"defer nonce="r4nd0m"></script></head>"#))
    }

    /// What must stay byte for byte: JSON, assets, downloads, HEAD, other statuses, an unguarded policy,
    /// audit mode, a request without a session.
    @Test func everythingElseIsUntouched() {
        let json = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"b\"}\r\n"
        let download = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=\"r.html\"\r\nContent-Length: 4\r\n\r\n<p/>"
        let moved = "HTTP/1.1 303 See Other\r\nContent-Type: text/html\r\nLocation: /web/login\r\nContent-Length: 4\r\n\r\n<p/>"
        let page = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: \(Self.page.utf8.count)\r\n\r\n" + Self.page
        for (rig, path, answer) in [(guarded(), "/web/dataset/call_kw", json), (guarded(), "/report/r.html", download), (guarded(), "/odoo", moved),
                                    (MachineRig { $0.idleTimeout = 10_000 }, "/odoo", page),
                                    (guarded { $0.mode = .audit }, "/odoo", page)] {
            get(rig, rig.session(), path: path)
            rig.fromOdoo(answer)
            #expect(rig.clientText == answer, "\(path)")
        }
        let anonymous = guarded()
        anonymous.send("GET /web/login HTTP/1.1\r\nHost: erp\r\n\r\n")
        anonymous.fromOdoo(page)
        #expect(anonymous.clientText == page)
    }

    @Test func theScriptIsServedByIdlegateWithAYearsCache() {
        let rig = guarded()
        rig.send("GET \(ScreenGuard.scriptPath) HTTP/1.1\r\nHost: erp\r\n\r\n")
        #expect(rig.connects == 0)
        #expect(rig.clientText.contains("Cache-Control: public, max-age=31536000, immutable\r\n"))
        #expect(rig.clientText.hasSuffix(ScreenGuardScript.source))
        #expect(ScreenGuardScript.source.utf8.count < 8 * 1024)
        rig.send("GET /idlegate/other HTTP/1.1\r\nHost: erp\r\n\r\n")
        #expect(rig.clientText.contains("HTTP/1.1 404 ") && rig.connects == 0)
    }

    /// Asking how long is left never refreshes the clock; "stay signed in" does, and needs its header.
    @Test func statusIsPassiveAndExtendIsActivity() {
        let rig = guarded()
        let sid = rig.session(idleFor: 4_000)
        func status(_ method: String, _ path: String, extra: String = "") -> String {
            rig.toClient.removeAll()
            rig.send("\(method) \(path) HTTP/1.1\r\nHost: erp\r\nCookie: session_id=\(sid)\r\n\(extra)Content-Length: 0\r\n\r\n")
            return body(rig.clientText)
        }
        #expect(status("GET", ScreenGuard.statusPath) == #"{"guard": true, "remaining": 6000, "warn": 5000}"#)
        rig.advance(ms: 3_000)
        #expect(status("GET", ScreenGuard.statusPath) == #"{"guard": true, "remaining": 3000, "warn": 5000}"#)
        _ = status("POST", ScreenGuard.extendPath)  // no X-Idlegate header: refused, nothing refreshed
        #expect(rig.clientText.hasPrefix("HTTP/1.1 404 "))
        let rig2 = guarded()
        let sid2 = rig2.session(idleFor: 4_000)
        rig2.send("POST \(ScreenGuard.extendPath) HTTP/1.1\r\nHost: erp\r\nCookie: session_id=\(sid2)\r\nX-Idlegate: 1\r\nContent-Length: 0\r\n\r\n")
        #expect(body(rig2.clientText) == #"{"guard": true, "remaining": 10000, "warn": 5000}"#)
        #expect(rig.connects == 0 && rig2.connects == 0)
    }
}
