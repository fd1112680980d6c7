import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy

/// Upstream → client: parsing, rewriting and re-framing responses; upstream failures and the retry.
extension ConnectionMachine {
    /// Bytes from the upstream.
    func upstreamBytes(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .proxying:
            guard let x = exchange else { return }
            x.sawResponseByte = true
            let mark = out.client.count
            do {
                try consumeResponse(x, bytes)
            } catch {
                out.client.truncate(to: mark)
                upstreamFailed(x, status: 502, reason: "malformed response: \(error)")
                return
            }
            touchProgress(x)
            if x.switchToTunnel {
                enterTunnel(x)
            } else if x.responseDone {
                finishExchange(x)
            }
        case .tunnel:
            tunnelBytes(bytes)
        default:
            break
        }
    }

    /// The upstream closed its side, or (`failure`) the connection broke.
    func upstreamClosed(failure: String?) {
        switch phase {
        case .proxying:
            guard let x = exchange else { return }
            if let failure { upstreamGone(x, reason: failure) } else { upstreamEOF(x) }
        case .tunnel:
            releaseUpstream(reusable: false)
            exchange = nil
            phase = .closing
        default:
            break
        }
    }

    /// Opening the upstream connection failed (refused, unreachable, no address): a 502 at once.
    func upstreamFailed(reason: String) {
        guard phase == .proxying, let x = exchange else { return }
        upstreamFailed(x, status: 502, reason: reason)  // its release closes the socket that failed
    }

    /// Parses and re-frames response bytes into the client's output.
    func consumeResponse(_ x: Exchange, _ input: UnsafeRawBufferPointer) throws {
        var rest = input
        while x.responseBody == nil && !x.switchToTunnel {
            if x.responseHeadBytes.isEmpty {
                guard let (head, length) = try x.responseParser.parse(rest) else {
                    x.responseHeadBytes.append(rest)
                    return
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[length...])
                try responseHead(x, head)
            } else {
                x.responseHeadBytes.append(rest)
                guard let (head, length) = try x.responseHeadBytes.withBytes({ try x.responseParser.parse($0) }) else { return }
                let remainder: [UInt8] = x.responseHeadBytes.withBytes { Array($0[length...]) }
                x.responseHeadBytes.clear()
                try responseHead(x, head)
                try remainder.withUnsafeBytes { try consumeResponse(x, $0) }
                return
            }
        }
        if x.switchToTunnel {
            out.client.append(contentsOf: rest)  // the first WebSocket frames, if any came along
            serverFrames.feed(rest)
            return
        }
        guard var body = x.responseBody else { return }
        let framing = x.responseFraming
        let used = try body.decode(rest) { data in
            if x.injector != nil { return try guardedBody(x, data) }
            writeBody(framing, data)
        }
        x.responseBody = body
        if body.isDone {
            finishGuardedBody(x)
            if framing == .chunked { out.client.append(contentsOf: ChunkedEncoder.lastChunk) }
            if used < rest.count { x.upstreamReusable = false }  // bytes past the response: not reusable
            x.responseDone = true
        }
    }

    /// Decides what a response head means and writes the client's version of it.
    func responseHead(_ x: Exchange, _ head: ResponseHead) throws {
        x.responseParser.reset()
        let fields = head.fields
        let named = HeaderRewriting.connectionNamed(fields)
        if head.status == 101 {
            guard x.isUpgrade else { throw HTTPParseError(502, "101 to a request that asked for no upgrade") }
            head.writeStatusLine(into: out.client)
            writeResponseFields(x, fields, named: named)  // Odoo's 101 carries a Set-Cookie too
            HTTPFields.writeField("Connection", "Upgrade", into: out.client)
            if let u = fields.first(.upgrade) { HTTPFields.writeField("Upgrade", u, into: out.client) }
            out.client.append(contentsOf: ChunkedEncoder.chunkEnd)
            countResponse(x, status: 101)
            x.responseStarted = true
            x.switchToTunnel = true
            return
        }
        if head.status < 200 {
            // Interim responses: 103 Early Hints reaches HTTP/1.1 clients; 100 was answered here already.
            if head.status == 103 && x.clientVersion == .http11 {
                head.writeStatusLine(into: out.client)
                fields.write(into: out.client) { !HeaderRewriting.isHopByHop(fields, $0, $1, named: named) }
                out.client.append(contentsOf: ChunkedEncoder.chunkEnd)
            }
            return
        }
        let framing = try head.framing(requestMethod: x.method)
        countResponse(x, status: head.status)
        x.upstreamReusable = head.allowsReuse && framing != .untilClose && !x.isUpgrade
        let guarding = framing != .none && startGuard(x, head, fields)
        head.writeStatusLine(into: out.client)
        writeResponseFields(x, fields, named: named, guarding: guarding)
        if x.session.logoutKey != nil { current.gate.logoutAnswered(x.session, status: head.status, method: x.method, path: x.logPath) }
        switch framing {
        case .none:
            x.responseFraming = .passthrough
        case .length where !guarding:
            x.responseFraming = .passthrough
        case .length, .chunked, .untilClose:  // a guarded page's length changes: re-framed
            if x.clientVersion == .http11 {
                x.responseFraming = .chunked
                HTTPFields.writeField("Transfer-Encoding", "chunked", into: out.client)
            } else {
                x.responseFraming = .untilClose
                x.keepAlive = false
            }
        }
        if !x.keepAlive || closeAfterResponse {
            x.keepAlive = false
            HTTPFields.writeField("Connection", "close", into: out.client)
        } else if x.clientVersion == .http10 {
            HTTPFields.writeField("Connection", "keep-alive", into: out.client)
        }
        out.client.append(contentsOf: ChunkedEncoder.chunkEnd)
        x.responseStarted = true
        x.responseBody = BodyDecoder(framing, limits: current.limits)
        if framing == .none { x.responseDone = true }
    }

    /// The response's end-to-end fields, each Set-Cookie hardened (and a new session_id recorded). A page
    /// the screen guard rewrites (`guarding`) loses its Content-Length (re-framed) and, when it was
    /// inflated, its Content-Encoding; its CSP lets the script run.
    func writeResponseFields(_ x: Exchange, _ fields: HTTPFields, named: [String], guarding: Bool = false) {
        var run = HTTPFields.Run()
        defer { fields.flush(&run, into: out.client) }
        for i in 0..<fields.count {
            let known = fields.known(at: i)
            if HeaderRewriting.isHopByHop(fields, i, known, named: named) { continue }
            if guarding {
                switch known {
                case .contentLength:
                    fields.flush(&run, into: out.client)
                    continue
                case .contentEncoding where x.inflater != nil:
                    fields.flush(&run, into: out.client)
                    continue
                case .contentSecurityPolicy:
                    fields.flush(&run, into: out.client)
                    HTTPFields.writeField("Content-Security-Policy", ScreenGuard.allowingScript(fields.value(at: i)).csp, into: out.client)
                    continue
                default: break
                }
            }
            guard known == .setCookie else {
                fields.copy(i, &run, into: out.client)
                continue
            }
            fields.flush(&run, into: out.client)
            let (hardened, order) = current.gate.responseCookie(fields.value(at: i), of: x.session, loginBody: &x.loginBody, json: x.loginIsJSON,
                                                                method: x.method, path: x.logPath)
            if let hardened {
                HTTPFields.writeField("Set-Cookie", hardened, into: out.client)
            } else {
                fields.writeField(at: i, into: out.client)
            }
            if let order { destroy(order, x.request) }
        }
        if overTLS, let hsts = current.hsts, !fields.contains(.strictTransportSecurity) {
            fields.flush(&run, into: out.client)
            HTTPFields.writeField("Strict-Transport-Security", hsts, into: out.client)
        }
    }

    // MARK: the screen guard's pages

    /// Whether this response is a page the screen guard puts its script into; if so, sets up the
    /// injector (with the CSP's nonce, if it runs scripts by nonce) and the inflater for a compressed one.
    func startGuard(_ x: Exchange, _ head: ResponseHead, _ fields: HTTPFields) -> Bool {
        guard let warn = x.session.screenGuard, ScreenGuard.guards(x.session, method: x.method, status: head.status, fields: fields) else { return false }
        if let coding = fields.first(.contentEncoding)?.trimmingCharacters(in: " \t").lowercased(), coding != "identity" {
            guard let inflater = ContentInflater(coding: coding) else {
                // br or zstd, which idlegate cannot open: the page passes as it is (and says so).
                out.actions.append(.log("screen guard: \(x.describe) came with Content-Encoding \(coding): passed unguarded"))
                return false
            }
            x.inflater = inflater
        }
        var nonce: String? = nil
        for i in 0..<fields.count where fields.known(at: i) == .contentSecurityPolicy {
            if let n = ScreenGuard.allowingScript(fields.value(at: i)).nonce { nonce = n }
        }
        x.injector = ScriptInjector(snippet: ScreenGuard.snippet(warn: warn, nonce: nonce))
        return true
    }

    /// A guarded page's body bytes: inflated if need be, the tag put in, written in the client's framing.
    func guardedBody(_ x: Exchange, _ data: UnsafeRawBufferPointer) throws {
        if let inflater = x.inflater {
            try inflater.inflate(data) { injectAndWrite(x, $0) }
        } else {
            injectAndWrite(x, data)
        }
    }

    private func injectAndWrite(_ x: Exchange, _ data: UnsafeRawBufferPointer) {
        let framing = x.responseFraming
        x.injector!.feed(data) { writeBody(framing, $0) }
    }

    /// The end of a guarded page: the tag, if no `</head>` came.
    func finishGuardedBody(_ x: Exchange) {
        guard x.injector != nil else { return }
        let framing = x.responseFraming
        x.injector!.finish { writeBody(framing, $0) }
        x.injector = nil
    }

    /// Body bytes to the client in its framing (a chunk each when re-framed).
    @inline(__always) func writeBody(_ framing: Exchange.ResponseFraming, _ data: UnsafeRawBufferPointer) {
        guard !data.isEmpty else { return }
        if framing == .chunked { ChunkedEncoder.chunkHeader(data.count, into: out.client) }
        out.client.append(contentsOf: data)
        if framing == .chunked { out.client.append(contentsOf: ChunkedEncoder.chunkEnd) }
    }

    func upstreamEOF(_ x: Exchange) {
        if var body = x.responseBody {
            if body.finishAtEOF() {
                // A close-delimited body (HTTP/1.0 Odoo) ends here.
                x.responseBody = body
                finishGuardedBody(x)
                if x.responseFraming == .chunked { out.client.append(contentsOf: ChunkedEncoder.lastChunk) }
                x.upstreamReusable = false
                x.responseDone = true
                finishExchange(x)
            } else {
                upstreamGone(x, reason: "closed mid-response")
            }
            return
        }
        upstreamGone(x, reason: x.responseHeadBytes.isEmpty ? "closed without a response" : "closed mid-head")
    }

    /// The upstream connection broke. A request that met a pooled connection Odoo had just closed,
    /// before any response byte and with no body, is sent once more on a fresh connection (RFC 9112
    /// §9.3.1: safe to retry, nothing of it was processed); anything else becomes a 502.
    func upstreamGone(_ x: Exchange, reason: String) {
        if case .open(reused: true) = upstream, !x.retried, !x.sawResponseByte, x.requestBody.framing == .none {
            x.retried = true
            releaseUpstream(reusable: false)
            out.actions.append(.dropIdleUpstreams(x.upstreamIndex))
            out.upstream.removeAll()
            connectUpstream(x)
            return
        }
        upstreamFailed(x, status: 502, reason: reason)
    }

    /// Upstream failures: a 502 or 504 through the error funnel while nothing of the response has gone
    /// out; otherwise the client connection is cut, the only honest signal left for a truncated response.
    func upstreamFailed(_ x: Exchange, status: Int, reason: String) {
        let websocket = x.upstreamIndex == Router.websocket
        releaseUpstream(reusable: false)
        out.upstream.removeAll()
        exchange = nil
        if x.responseStarted {
            out.actions.append(.upstreamCut(status: status, line: "\(status) for \(x.describe) from \(peer.host): \(websocket ? "websocket upstream" : "upstream") \(reason)"))
            closeNow()
        } else {
            answer(status, ErrorResponse.bytes(status), cause: .upstream(websocket: websocket), reason: reason, route: x.session.route,
                   request: x.describe, keepAlive: false)
        }
    }

    /// A response head from Odoo: its status class and how long Odoo took.
    func countResponse(_ x: Exchange, status: Int) {
        out.countResponse(route: x.session.route, status: status, latencyNanos: time.nanos() - x.sentAt)
    }

    func finishExchange(_ x: Exchange) {
        releaseUpstream(reusable: x.upstreamReusable && x.requestBody.isDone)
        exchange = nil
        // A response that came before the whole request body leaves the stream mid-body: close.
        if !x.requestBody.isDone { closeAfterResponse = true }
        if !x.keepAlive || closeAfterResponse {
            inbound.clear()
            phase = .closing
            arm(.closing, current.timeouts.clientBody)
            return
        }
        phase = .awaitingRequest
        arm(.idle, current.timeouts.clientIdle)
        parseInbound()
    }

    // MARK: tunnels

    func enterTunnel(_ x: Exchange) {
        phase = .tunnel
        arm(.tunnel, current.timeouts.tunnelIdle)
        if !inbound.isEmpty {
            inbound.withBytes { out.upstream.append(contentsOf: $0) }
            inbound.clear()
        }
    }

    /// Upstream → client in a tunnel; once the session ended, up to the next frame boundary only.
    func tunnelBytes(_ bytes: UnsafeRawBufferPointer) {
        if closeTunnelAtBoundary, let end = serverFrames.feed(bytes, stopAtBoundary: true) {
            out.client.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<end]))
            sendSessionExpiredClose()
            return
        }
        if !closeTunnelAtBoundary { serverFrames.feed(bytes) }
        out.client.append(contentsOf: bytes)
        arm(.tunnel, current.timeouts.tunnelIdle)
    }

    /// On every tick: a tunnel whose session expired (its HTTP requests stopped; WebSocket frames never
    /// count) gets Odoo's close code 4001, SESSION_EXPIRED, between two frames.
    /// The driver asks the session gate (`tunnelSessionChecked` brings the answer, now or later).
    func checkTunnel() {
        guard phase == .tunnel, !closeTunnelAtBoundary, !tunnelCheckPending, let x = exchange, x.session.enforce, x.session.key != nil else { return }
        tunnelCheckPending = true
        out.actions.append(.checkTunnel)
    }

    /// The tunnel's session is over (`ended`) or goes on.
    func tunnelSessionChecked(ended: Bool) {
        tunnelCheckPending = false
        guard ended, phase == .tunnel, !closeTunnelAtBoundary else { return }
        closeTunnelAtBoundary = true
        if serverFrames.atBoundary { sendSessionExpiredClose() }
    }

    func sendSessionExpiredClose() {
        out.client.append(contentsOf: WebSocketFrames.closeFrame(code: 4001, reason: "session expired"))
        releaseUpstream(reusable: false)
        exchange = nil
        phase = .closing
        arm(.closing, current.timeouts.clientBody)
    }
}
