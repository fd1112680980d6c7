import IdlegateBase
import IdlegateHTTP
import Testing
@testable import IdlegateProxy

/// A client connection over TLS, as the machine sees it: a handshake with its own deadline, then an
/// ordinary connection whose browser-facing scheme is https.
@Suite("Connection machine over TLS")
struct ConnectionMachineTLSTests {
    let get = "GET /odoo HTTP/1.1\r\nHost: erp\r\n\r\n"

    @Test func aStalledHandshakeIsCutAtItsTimeout() {
        let rig = MachineRig({ $0.timeouts.tlsHandshake = 3_000 }, tls: true)
        #expect(rig.machine.deadlineKind == .handshake)
        rig.advance(ms: 2_900)
        #expect(!rig.closed)
        rig.advance(ms: 200)
        #expect(rig.closed && rig.toClient.isEmpty)
    }

    @Test func afterTheHandshakeItIsAnIdleKeepAliveConnection() {
        let rig = MachineRig({ $0.timeouts.tlsHandshake = 3_000 }, tls: true)
        rig.advance(ms: 1_000)
        rig.machine.handshakeDone()
        #expect(rig.machine.deadlineKind == .idle)
        rig.advance(ms: 10_000)  // past the handshake timeout, well within client_idle
        #expect(!rig.closed)
        rig.send(get)
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(rig.clientText.hasSuffix("ok"))
    }

    /// The scheme is https without any header saying so: Odoo is told, and its session cookie gets
    /// Secure (cookies.secure: auto).
    @Test func theSchemeIsHTTPSWhateverTheHeadersSay() {
        let rig = MachineRig(tls: true)
        rig.machine.handshakeDone()
        rig.send("GET /odoo HTTP/1.1\r\nHost: erp\r\nX-Forwarded-Proto: http\r\n\r\n")
        #expect(rig.upstreamText.contains("X-Forwarded-Proto: https\r\n"))
        #expect(!rig.upstreamText.contains("X-Forwarded-Proto: http\r\n"))
        rig.fromOdoo("HTTP/1.1 200 OK\r\nSet-Cookie: session_id=\(String(repeating: "ab", count: 20)); Path=/; HttpOnly\r\nContent-Length: 0\r\n\r\n")
        let cookie = rig.clientText.split(separator: "\r\n").first { $0.hasPrefix("Set-Cookie:") } ?? ""
        #expect(cookie.contains("; Secure"), "\(cookie)")
        // The same on plain HTTP: no Secure (public_scheme http).
        let plain = MachineRig()
        plain.send(get)
        plain.fromOdoo("HTTP/1.1 200 OK\r\nSet-Cookie: session_id=\(String(repeating: "ab", count: 20)); Path=/; HttpOnly\r\nContent-Length: 0\r\n\r\n")
        #expect(!plain.clientText.contains("Secure"))
    }

    @Test func hstsIsAddedToHTTPSResponsesThatCarryNone() {
        let rig = MachineRig({ $0.tls.hsts = "max-age=600" }, tls: true)
        rig.machine.handshakeDone()
        rig.send(get)
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(rig.clientText == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nStrict-Transport-Security: max-age=600\r\n\r\nok")
        rig.send(get)
        rig.fromOdoo("HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=5\r\nContent-Length: 0\r\n\r\n")
        #expect(rig.clientText.components(separatedBy: "Strict-Transport-Security").count == 3)  // Odoo's own kept, none added
        let plain = MachineRig({ $0.tls.hsts = "max-age=600" })
        plain.send(get)
        plain.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        #expect(!plain.clientText.contains("Strict-Transport-Security"))
    }

    /// The redirect listener: every request goes to the same URL over https, nothing reaches Odoo.
    @Test func theRedirectListenerSendsEachRequestToHTTPS() {
        let rig = MachineRig(redirectPort: 8443)
        rig.send("GET /odoo/action-1?debug=1 HTTP/1.1\r\nHost: kiosk.test:8080\r\nCookie: session_id=\(String(repeating: "ab", count: 20))\r\n\r\n")
        #expect(rig.clientText == "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://kiosk.test:8443/odoo/action-1?debug=1\r\nContent-Length: 0\r\n\r\n")
        #expect(rig.connects == 0 && rig.upstreamText.isEmpty)
        #expect(rig.phase == .awaitingRequest)  // keep-alive: the next request is redirected too
        rig.send("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        #expect(rig.clientText.hasSuffix("Location: https://[::1]:8443/\r\nContent-Length: 0\r\n\r\n"))
        let post = MachineRig(redirectPort: 443)
        post.send("POST /web/login HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n\r\nlogin")
        #expect(post.clientText.hasPrefix("HTTP/1.1 308 Permanent Redirect\r\nLocation: https://shop.test/web/login\r\n"))
        #expect(post.phase != .awaitingRequest)  // the body is not read: the connection ends
    }
}
