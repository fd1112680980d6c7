import IdlegateBase
import IdlegateHTTP
import IdlegatePolicy
import IdlegateSessions
import Testing
@testable import IdlegateProxy

/// The connection's life with a manual clock: no sockets, no sleeps.
@Suite("Connection machine")
struct ConnectionMachineTests {
    static let okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    func get(_ path: String = "/odoo", cookie: String? = nil, extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: erp\r\n" + (cookie.map { "Cookie: session_id=\($0)\r\n" } ?? "") + extra + "\r\n"
    }

    // MARK: requests and answers

    @Test func aRequestIsForwardedAndItsResponseRelayed() {
        let rig = MachineRig()
        rig.send(get())
        #expect(rig.upstreamText.hasPrefix("GET /odoo HTTP/1.1\r\nHost: erp\r\n"))
        #expect(rig.upstreamText.contains("X-Forwarded-For: 192.0.2.7\r\n"))
        rig.fromOdoo(Self.okResponse)
        #expect(rig.clientText == Self.okResponse)
        #expect(rig.phase == .awaitingRequest && rig.machine.deadlineKind == .idle)
        if case .releaseUpstream(reusable: true)? = rig.log.last(where: { if case .releaseUpstream = $0 { return true } else { return false } }) {} else {
            Issue.record("the upstream connection did not go back to the pool")
        }
    }

    @Test func anEmptyResponseEndsTheExchangeAndKeepsTheConnection() {
        let rig = MachineRig()
        rig.send(get())
        rig.fromOdoo("HTTP/1.1 303 See Other\r\nLocation: /web/login\r\nContent-Length: 0\r\n\r\n")
        #expect(rig.clientText == "HTTP/1.1 303 See Other\r\nLocation: /web/login\r\nContent-Length: 0\r\n\r\n")
        #expect(rig.phase == .awaitingRequest && !rig.upstreamOpen)
        rig.machine.drain()  // an idle keep-alive connection closes at once on shutdown
        rig.settle()
        #expect(rig.closed)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() {
        let rig = MachineRig()
        rig.send(get("/a") + get("/b") + get("/c"))
        #expect(rig.upstreamText.components(separatedBy: "GET ").count == 2)  // one at a time
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
        #expect(rig.upstreamText.contains("GET /b "))
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC")
        let bodies = rig.clientText.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.prefix(1) }
        #expect(bodies == ["A", "B", "C"])
        #expect(rig.connects == 3)
    }

    @Test func anExpiredSessionGetsOdoosAnswerAndTheConnectionStays() {
        let rig = MachineRig()
        let id = rig.expiredSession()
        rig.send("POST /web/dataset/call_kw HTTP/1.1\r\nHost: erp\r\nContent-Type: application/json\r\nContent-Length: 0\r\nCookie: session_id=\(id)\r\n\r\n")
        #expect(rig.clientText.contains("\"code\": 100"))
        #expect(rig.connects == 0)  // Odoo never asked
        #expect(rig.answered.map(\.status) == [200] && rig.answered.first?.cause == .expiry)
        #expect(rig.log.contains { if case .destroy(let call) = $0 { return call.order.id == id } else { return false } })
        #expect(rig.phase == .awaitingRequest && !rig.shutDown)
    }

    @Test func malformedRequestsGetTheirStatusAndTheConnectionCloses() {
        let rig = MachineRig()
        rig.send("GET / HTTP/1.1\r\nHost: erp\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        #expect(rig.clientText.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(rig.answered.count == 1 && rig.answered[0].cause == .refused)
        #expect(rig.shutDown && rig.phase == .lingering)  // the answer is out: write side shut at once
    }

    // MARK: every timeout

    @Test func keepAliveIdleCloses() {
        let rig = MachineRig()
        rig.advance(ms: rig.config.timeouts.clientIdle - 1)
        #expect(!rig.closed)
        rig.advance(ms: 2)
        #expect(rig.closed && rig.answered.isEmpty)  // nothing to answer: just closed
    }

    @Test func anIncompleteHeadGets408CountedAndAudited() {
        let rig = MachineRig()
        rig.send("GET / HTTP/1.1\r\nHost: e")
        rig.advance(ms: rig.config.timeouts.clientHeader + 1)
        #expect(rig.clientText.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        #expect(rig.answered.map(\.status) == [408] && rig.answered[0].cause == .timeout)
        #expect(rig.shutDown)
        rig.advance(ms: Linger.time + 1)  // lingering ends
        #expect(rig.closed)
    }

    @Test func aStalledBodyGets408() {
        let rig = MachineRig()
        rig.send("POST /web/dataset/call_kw HTTP/1.1\r\nHost: erp\r\nContent-Length: 10\r\n\r\n12345")
        #expect(rig.upstreamText.hasSuffix("12345"))
        rig.advance(ms: rig.config.timeouts.clientBody + 1)
        #expect(rig.clientText.hasPrefix("HTTP/1.1 408 "))
        #expect(!rig.upstreamOpen && rig.answered.map(\.status) == [408])
    }

    @Test func anUpstreamConnectThatHangsGets504() {
        let rig = MachineRig()
        rig.connectCompletes = false
        rig.send(get())
        rig.advance(ms: rig.config.timeouts.upstreamConnect + 1)
        #expect(rig.clientText.hasPrefix("HTTP/1.1 504 "))
        #expect(rig.answered.first?.cause == .upstream(websocket: false) && rig.answered.first?.reason == "connect timed out")
    }

    @Test func aRefusedConnectGets502AndClosesAtOnce() {
        let rig = MachineRig()
        rig.connect = .refused
        rig.send(get())
        #expect(rig.clientText.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        #expect(rig.clientText.contains("Connection: close\r\n"))
        #expect(rig.shutDown)  // no wait for the connect deadline
        #expect(rig.answered.map(\.status) == [502])
    }

    @Test func aSilentOdooGets504() {
        let rig = MachineRig()
        rig.send(get())
        rig.advance(ms: rig.config.timeouts.upstreamResponse + 1)
        #expect(rig.clientText.hasPrefix("HTTP/1.1 504 Gateway Timeout\r\n"))
        #expect(rig.answered.first?.reason == "no response in time")
    }

    @Test func aClientThatStopsReadingIsCut() {
        let rig = MachineRig()
        rig.clientStuck = true
        rig.send(get())
        rig.fromOdoo("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 1000))
        #expect(rig.machine.deadlineKind == .client && !rig.machine.wantsUpstreamBytes)  // backpressure
        rig.advance(ms: rig.config.timeouts.clientBody + 1)
        #expect(rig.closed)  // the response had begun: nothing to answer, the connection is cut
    }

    @Test func lingerEndsByTimeOrBytes() {
        let rig = MachineRig()
        rig.send("GET / HTTP/1.1\r\nHost: erp\r\nTransfer-Encoding: gzip\r\n\r\n")
        #expect(rig.phase == .lingering)
        rig.send(Array(repeating: UInt8(ascii: "x"), count: Linger.bytes))
        #expect(!rig.closed)
        rig.send("x")
        #expect(rig.closed)
    }

    // MARK: upstream failures and the retry

    @Test func aStalePooledConnectionIsRetriedOnce() {
        let rig = MachineRig()
        rig.connect = .pooled
        rig.send(get())
        rig.odooCloses()  // Odoo had closed the pooled connection: nothing was processed
        #expect(rig.connects == 2 && rig.clientText.isEmpty)
        #expect(rig.log.contains { if case .dropIdleUpstreams = $0 { return true } else { return false } })
        rig.fromOdoo(Self.okResponse)
        #expect(rig.clientText == Self.okResponse)
    }

    @Test func aFreshConnectionIsNotRetriedNorABodyNorTwice() {
        let fresh = MachineRig()
        fresh.send(get())
        fresh.odooCloses()
        #expect(fresh.connects == 1 && fresh.clientText.hasPrefix("HTTP/1.1 502 "))

        let body = MachineRig()
        body.connect = .pooled
        body.send("POST /x HTTP/1.1\r\nHost: erp\r\nContent-Length: 2\r\n\r\nab")
        body.odooCloses()
        #expect(body.connects == 1 && body.clientText.hasPrefix("HTTP/1.1 502 "))
    }

    // MARK: tunnels

    func openTunnel(_ rig: MachineRig, cookie: String? = nil) {
        rig.send(get("/websocket", cookie: cookie, extra: "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n"))
        rig.fromOdoo("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: y\r\n\r\n")
    }

    @Test func a101BecomesATunnelAndItsIdleTimeoutCloses() {
        let rig = MachineRig()
        openTunnel(rig)
        #expect(rig.phase == .tunnel && rig.clientText.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        rig.send([0x81, 0x82, 1, 2, 3, 4, 5, 6])  // a masked client frame passes as it is
        #expect(rig.toUpstream.suffix(8) == [0x81, 0x82, 1, 2, 3, 4, 5, 6])
        rig.fromOdoo([0x81, 0x02, 0x68, 0x69])
        #expect(rig.toClient.suffix(4) == [0x81, 0x02, 0x68, 0x69])
        rig.advance(ms: rig.config.timeouts.tunnelIdle + 1)
        #expect(rig.closed)
    }

    @Test func anExpiredSessionsTunnelClosesWith4001AtAFrameBoundary() {
        let rig = MachineRig { $0.idleTimeout = 120_000 }
        let id = rig.session()
        openTunnel(rig, cookie: id)
        // Half a frame is on its way when the session expires: it is finished first.
        rig.fromOdoo([0x81, 0x04, 0x61, 0x62])
        rig.advance(ms: 121_000)
        #expect(rig.phase == .tunnel)
        rig.fromOdoo([0x63, 0x64, 0x81, 0x01, 0x7A])
        let close = WebSocketFrames.closeFrame(code: 4001, reason: "session expired")
        #expect(Array(rig.toClient.suffix(close.count + 2)) == [0x63, 0x64] + close)  // no byte of the next frame
        #expect(!rig.upstreamOpen && rig.shutDown)
    }

    // MARK: late verdicts

    @Test func aVerdictThatComesLaterIsAnsweredThen() {
        let rig = MachineRig(store: { HeldConfirmStore($0) })
        let id = rig.expiredSession()
        rig.send(get(cookie: id))
        #expect(rig.phase == .checkingSession && rig.clientText.isEmpty && !rig.machine.wantsClientBytes)
        rig.confirmNow()
        #expect(rig.clientText.hasPrefix("HTTP/1.1 303 See Other\r\n"))
    }

    @Test func aLateVerdictForAClientThatLeftOnlyDestroys() {
        let rig = MachineRig(store: { HeldConfirmStore($0) })
        let id = rig.expiredSession()
        rig.send(get(cookie: id))
        rig.clientCloses()
        #expect(rig.closed)
        let before = rig.toClient.count
        rig.confirmNow()
        #expect(rig.toClient.count == before && rig.connects == 0)
        #expect(rig.log.contains { if case .destroy(let call) = $0 { return call.order.id == id } else { return false } })
    }

    @Test func aSessionLayerThatNeverAnswersGets504CountedAndAudited() {
        let rig = MachineRig(store: { HeldConfirmStore($0) })
        let id = rig.expiredSession()
        rig.send(get(cookie: id))
        rig.advance(ms: rig.config.timeouts.upstreamResponse + 1)
        #expect(rig.clientText.hasPrefix("HTTP/1.1 504 "))
        #expect(rig.answered.first?.cause == .sessionLayer)
    }

    // MARK: shutdown

    @Test func drainClosesAnIdleConnectionAndABusyOneAfterItsResponse() {
        let idle = MachineRig()
        idle.machine.drain()
        idle.settle()
        #expect(idle.closed)

        let busy = MachineRig()
        busy.send(get())
        busy.machine.drain()
        busy.settle()
        #expect(!busy.closed)
        busy.fromOdoo(Self.okResponse)
        #expect(busy.clientText.contains("Connection: close\r\n") && busy.shutDown)
    }
}
