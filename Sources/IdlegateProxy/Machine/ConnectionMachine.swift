import IdlegateBase
import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy

/// One client connection's life, with no I/O: events in (bytes read, output drained, upstream
/// connected or gone, a session verdict, a tick of the clock), and out, into the worker's `Outbox`,
/// what to do (bytes for either side, connect, release, close, report an answer). The driver
/// (`ClientConnection`) reads and writes the sockets and carries the actions out; tests drive the
/// machine with a manual clock instead.
///
/// Requests are answered one at a time, in order (pipelined ones wait in `inbound`); a 101 turns the
/// connection into a tunnel. Every answer idlegate makes itself goes through `answer` (the error funnel).
final class ConnectionMachine {
    enum Phase {
        /// Between requests, or reading a request head.
        case awaitingRequest
        /// Waiting for the session verdict (a shared layer confirming that a session is over).
        case checkingSession
        /// A request is being forwarded and its response relayed.
        case proxying
        /// After a 101: bytes both ways, uninterpreted but for WebSocket frame boundaries.
        case tunnel
        /// Writing what is queued for the client, then shutting the write side.
        case closing
        /// Write side shut: reading and dropping what the client still sends (`Linger`).
        case lingering
        case closed
    }

    /// What the deadline, when it passes, means.
    enum DeadlineKind: Equatable {
        /// A TLS handshake not finished yet.
        case handshake
        /// Keep-alive: no request started.
        case idle
        /// A request head started but is not complete (408).
        case header
        /// A client that stalls its body or stops reading its response (408, or cut).
        case client
        /// Odoo has not answered (504), or the shared session layer has not (504).
        case upstream
        /// The upstream connect has not completed (504).
        case connect
        /// A tunnel with no bytes either way.
        case tunnel
        /// Closing and lingering.
        case closing
    }

    var phase = Phase.awaitingRequest
    var deadline: Int64 = 0
    var deadlineKind = DeadlineKind.idle

    let settings: SettingsBox
    /// The time, from the worker's loop (tests: from a manual clock).
    let time: LoopTime
    let out: Outbox
    let peer: Peer
    /// The client connection is TLS (idlegate terminates it).
    let overTLS: Bool
    /// A connection of the redirect listener: each request is answered with a redirect to https on
    /// this port, and nothing reaches Odoo or the session table.
    let redirectPort: UInt16?

    /// Client bytes not yet used: a head split across reads, body bytes that came with the head, or
    /// the next pipelined request.
    var inbound: ByteBuffer
    var parser: RequestHeadParser
    var exchange: Exchange?
    /// The request waiting for its session verdict (what the session gate is asked, and the rest).
    var pending: PendingRequest?
    /// Close after the current response (shutdown, or a request body left unread).
    var closeAfterResponse = false
    /// The driver could not write everything to the client (or the upstream): stop reading the other
    /// side until it says the output drained.
    var clientBacklog = false
    var upstreamBacklog = false
    /// The upstream connection: none, being opened, or open (and whether it came from the pool).
    var upstream = UpstreamState.none
    var lingerBytes = 0
    /// Frame boundaries of the server→client side of a tunnel, and whether a 4001 close waits for the
    /// next one.
    var serverFrames = WebSocketFrames()
    var closeTunnelAtBoundary = false
    /// The tunnel's session is being checked (a shared store may answer after a round trip).
    var tunnelCheckPending = false

    enum UpstreamState: Equatable { case none, connecting, open(reused: Bool) }

    /// Who is on the other end: worked out once per connection.
    struct Peer {
        let ip: [UInt8]
        let host: String
        /// A trusted proxy (its X-Forwarded-* are believed).
        let trusted: Bool
    }

    /// What a request needs once its session is decided.
    struct PendingRequest {
        /// What the session gate is asked about the request.
        let check: SessionRequest
        var head: RequestHead { check.head }
        var path: Substring { check.path }
        let framing: BodyFraming
        let upgrade: String?
        let keepAlive: Bool
        let expectsContinue: Bool
        /// The screen guard's status or extend call: answered by idlegate once the session is checked.
        let guardCall: Bool
    }

    var now: Int64 { time.now }
    var current: ProxySettings { settings.current }

    /// `tls`: the client connection is TLS (its handshake starting): the browser-facing scheme is https
    /// whatever a header says, and the handshake has `timeouts.tls_handshake` to finish.
    init(peer: Peer, settings: SettingsBox, time: LoopTime, outbox: Outbox, tls: Bool = false, redirectPort: UInt16? = nil) {
        self.peer = peer
        self.settings = settings
        self.time = time
        out = outbox
        overTLS = tls
        self.redirectPort = redirectPort
        parser = RequestHeadParser(limits: settings.current.limits)
        inbound = ByteBuffer(spare: outbox.spare)
        if tls {
            arm(.handshake, settings.current.timeouts.tlsHandshake)
        } else {
            arm(.idle, settings.current.timeouts.clientIdle)
        }
    }

    /// The TLS handshake finished: from here on the connection is an idle keep-alive one.
    func handshakeDone() {
        if deadlineKind == .handshake { arm(.idle, current.timeouts.clientIdle) }
    }

    /// The scheme the browser used to reach idlegate.
    func scheme(_ settings: ProxySettings) -> String { overTLS ? "https" : settings.publicScheme.rawValue }

    func arm(_ kind: DeadlineKind, _ millis: Int64) {
        deadlineKind = kind
        deadline = now + millis
    }

    // MARK: what the driver may read now

    /// Whether client bytes are wanted now (backpressure: not while the upstream has output queued).
    var wantsClientBytes: Bool {
        switch phase {
        case .awaitingRequest, .lingering: return true
        case .proxying:
            guard let x = exchange, !x.requestBody.isDone, case .open = upstream else { return false }
            return !upstreamBacklog
        case .tunnel: return !upstreamBacklog
        case .checkingSession, .closing, .closed: return false
        }
    }

    /// Whether upstream bytes are wanted now (not while the client has output queued).
    var wantsUpstreamBytes: Bool {
        switch phase {
        case .proxying:
            guard case .open = upstream else { return false }
            return !clientBacklog
        case .tunnel: return !clientBacklog
        default: return false
        }
    }

    // MARK: client events

    /// Bytes from the client.
    func clientBytes(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .awaitingRequest:
            if deadlineKind == .idle { arm(.header, current.timeouts.clientHeader) }
            if !inbound.isEmpty {
                inbound.append(bytes)
                parseInbound()
                return
            }
            // The common case: a whole head in one read, parsed where it landed.
            do {
                if let (head, length) = try parser.parse(bytes) {
                    if length < bytes.count { inbound.append(UnsafeRawBufferPointer(rebasing: bytes[length...])) }
                    startRequest(head)
                } else {
                    inbound.append(bytes)
                }
            } catch {
                refuse(error)
            }
        case .proxying:
            guard let x = exchange else { return }
            requestBody(x, bytes)
        case .tunnel:
            out.upstream.append(contentsOf: bytes)
            arm(.tunnel, current.timeouts.tunnelIdle)
        case .lingering:
            lingerBytes += bytes.count
            if lingerBytes > Linger.bytes { closeNow() }
        case .checkingSession:
            inbound.append(bytes)  // not asked for now; kept for when the verdict comes
        case .closing, .closed:
            break
        }
    }

    /// The client closed its side (`failed`: the connection broke).
    func clientClosed(failed: Bool) {
        switch phase {
        case .awaitingRequest:
            // Between requests an ordinary close; what is still queued for it goes out first.
            if clientBacklog && !failed { phase = .closing } else { closeNow() }
        case .proxying:
            if let x = exchange, !x.requestBody.isDone {
                out.actions.append(.log("client \(peer.host) closed during the request body of \(x.describe)"))
            }
            closeNow()
        default:
            closeNow()
        }
    }

    /// Everything queued for the client went out.
    func clientDrained() {
        clientBacklog = false
        if phase == .closing { shutdownWrite() }
    }

    /// Some queued client bytes went out: a slow reader that reads is alive.
    func clientProgress() {
        switch phase {
        case .awaitingRequest where deadlineKind == .idle: arm(.idle, current.timeouts.clientIdle)
        case .proxying: if let x = exchange { touchProgress(x) }
        case .tunnel: arm(.tunnel, current.timeouts.tunnelIdle)
        case .closing: arm(.closing, current.timeouts.clientBody)
        default: break
        }
    }

    /// The driver queued client bytes the socket did not take.
    func clientBacklogged() {
        clientBacklog = true
        if phase == .closing && deadlineKind != .closing { arm(.closing, current.timeouts.clientBody) }
        if phase == .proxying, let x = exchange { touchProgress(x) }
    }

    // MARK: requests

    /// Parses what waits in `inbound` (a head split across reads, or the next pipelined request).
    func parseInbound() {
        guard phase == .awaitingRequest, !inbound.isEmpty else { return }
        do {
            guard let (head, length) = try inbound.withBytes({ try parser.parse($0) }) else { return }
            inbound.consume(length)
            startRequest(head)
        } catch {
            refuse(error)
        }
    }

    /// A request head is complete: decide its framing and upgrade, then ask for its session verdict.
    func startRequest(_ head: consuming RequestHead) {
        parser.reset()
        let settings = current
        let framing: BodyFraming
        do {
            framing = try head.framing(limits: settings.limits)
        } catch {
            refuse(error)
            return
        }
        if let port = redirectPort {
            // The same URL over https. A request body is left unread, so the connection then closes.
            let location = Self.httpsLocation(head, port: port)
            answer(308, ErrorResponse.redirect(location), cause: .own, reason: "to https", route: nil,
                   request: Exchange.describe(head.method, head.path), keepAlive: framing == .none && head.wantsKeepAlive)
            return
        }
        let path = head.path
        let own = ScreenGuard.isOwn(path)
        if own {
            // The screen guard's own paths: answered here, never forwarded. The status and extend calls
            // go through the session check first (the first passive, the second a person's action).
            let keep = framing == .none && head.wantsKeepAlive
            if path == ScreenGuard.scriptPath && head.method == "GET" {
                answer(200, ScreenGuard.scriptResponse, cause: .own, reason: "screen guard script", route: nil, request: nil, keepAlive: keep)
                return
            }
            let known = (path == ScreenGuard.statusPath && head.method == "GET")
                || (path == ScreenGuard.extendPath && head.method == "POST" && head.fields.first(named: "x-idlegate") == "1")
            guard known else {
                answer(404, ErrorResponse.bytes(404), cause: .refused, reason: "no such idlegate path", route: nil,
                       request: Exchange.describe(head.method, path), keepAlive: false)
                return
            }
        }
        let upgrade = upgradeProtocol(head, settings)
        let keepAlive = head.wantsKeepAlive && !closeAfterResponse && upgrade == nil
        let (ip, text, https) = attribution(head, settings)
        let expectsContinue = head.expectsContinue && framing != .none
        let check = SessionRequest(head: consume head, path: path, client: ip, clientText: text, https: https,
                                   isUpgrade: upgrade != nil, keepAlive: keepAlive && framing == .none)
        pending = PendingRequest(check: check, framing: framing, upgrade: upgrade, keepAlive: keepAlive,
                                 expectsContinue: expectsContinue, guardCall: own)
        phase = .checkingSession
        arm(.upstream, settings.timeouts.upstreamResponse)
        out.actions.append(.checkSession)
    }

    /// The session verdict for the pending request: now (the local table) or later (a shared layer),
    /// possibly after the client left, in which case only its destroy order still matters.
    func verdict(_ v: consuming Verdict) {
        guard let r = pending.take() else { return }
        guard phase == .checkingSession else {
            if let order = v.destroy { destroy(order, r.head) }
            return
        }
        phase = .awaitingRequest
        if case .refuse(let status, let reason) = v.action {
            refuse(HTTPParseError(status, reason))
            return
        }
        if let order = v.destroy { destroy(order, r.head) }
        if case .answer(let status, let bytes) = v.action {
            // An expired session (enforce): Odoo's own answer, without asking Odoo. A request body the
            // answer leaves unread means the connection cannot go on.
            answer(status, bytes, cause: .expiry, reason: "session expired", route: v.route, request: Exchange.describe(r.head.method, r.path),
                   keepAlive: r.check.keepAlive)  // no body left unread, no upgrade: the answer's own keep-alive
            return
        }
        if r.guardCall {
            answer(200, ScreenGuard.status(v, keepAlive: r.keepAlive), cause: .own, reason: "screen guard status", route: v.route,
                   request: nil, keepAlive: r.keepAlive)
            return
        }
        forward(v, r)
    }

    func destroy(_ order: DestroyOrder, _ head: RequestHead) {
        out.actions.append(.destroy(DestroyCall(order, host: head.fields.first(.host), forwarded: forwardedPairs(head))))
    }

    /// Forwards the request: the exchange starts and the upstream connection is asked for.
    func forward(_ v: consuming Verdict, _ r: PendingRequest) {
        let settings = current
        let x = Exchange(r.check, upgrade: r.upgrade, session: consume v, framing: r.framing,
                         upstreamIndex: settings.router.upstream(for: r.path), keepAlive: r.keepAlive, limits: settings.limits)
        exchange = x
        phase = .proxying
        // RFC 9110 §10.1.1: idlegate answers 100-continue itself once it has decided to forward, as
        // nginx does; the upstream never sees Expect (an HTTP/1.0 Odoo would not answer it).
        if r.expectsContinue { out.client.append(contentsOf: ErrorResponse.continueInterim) }
        connectUpstream(x)
    }

    func connectUpstream(_ x: Exchange) {
        upstream = .connecting
        upstreamBacklog = false
        arm(.connect, current.timeouts.upstreamConnect)
        out.actions.append(.connect(upstream: x.upstreamIndex))
    }

    /// The upstream connection is open (`reused`: it came from the pool): the request head goes out,
    /// then any body bytes that came with it.
    func upstreamConnected(reused: Bool) {
        guard phase == .proxying, let x = exchange, upstream == .connecting else { return }
        upstream = .open(reused: reused)
        x.sentAt = time.nanos()
        writeForwardedHead(x, into: out.upstream)
        arm(.upstream, current.timeouts.upstreamResponse)
        if !inbound.isEmpty && !x.requestBody.isDone {
            var waiting = ByteBuffer(spare: out.spare)
            swap(&waiting, &inbound)  // moved, not shared: clearing it then hands its storage back
            waiting.withBytes { requestBody(x, $0) }
            waiting.clear()
        }
    }

    /// Client → upstream: body bytes, re-framed; what lies past the body waits as the next request.
    func requestBody(_ x: Exchange, _ bytes: UnsafeRawBufferPointer) {
        guard !x.requestBody.isDone else {
            inbound.append(bytes)
            return
        }
        let used: Int
        do {
            used = try forwardBody(x, bytes)
        } catch {
            requestBodyFailed(x, error)
            return
        }
        if used < bytes.count { inbound.append(UnsafeRawBufferPointer(rebasing: bytes[used...])) }
        touchProgress(x)
    }

    func forwardBody(_ x: Exchange, _ input: UnsafeRawBufferPointer) throws -> Int {
        let limit = current.limits.body
        let used = try x.requestBody.decode(input) { data in
            x.requestBodyBytes += Int64(data.count)
            if x.loginBody != nil && x.loginBody!.count < LoginField.maxBytes {
                x.loginBody!.append(contentsOf: data.prefix(LoginField.maxBytes - x.loginBody!.count))
            }
            if x.requestBodyBytes > limit { throw HTTPParseError(413, "request body larger than the limit") }
            if x.requestChunked {
                ChunkedEncoder.chunkHeader(data.count, into: out.upstream)
                out.upstream.append(contentsOf: data)
                out.upstream.append(contentsOf: ChunkedEncoder.chunkEnd)
            } else {
                out.upstream.append(contentsOf: data)
            }
        }
        if x.requestChunked && x.requestBody.isDone { out.upstream.append(contentsOf: ChunkedEncoder.lastChunk) }
        return used
    }

    func requestBodyFailed(_ x: Exchange, _ error: Error) {
        let e = error as? HTTPParseError ?? HTTPParseError(400, "bad request body")
        out.upstream.removeAll()
        releaseUpstream(reusable: false)
        if x.responseStarted {
            out.actions.append(.log("request body from \(peer.host) refused mid-response: \(e.reason)"))
            closeNow()
        } else {
            exchange = nil
            refuse(e, route: x.session.route, request: x.describe)
        }
    }

    func releaseUpstream(reusable: Bool) {
        guard upstream != .none else { return }
        upstream = .none
        upstreamBacklog = false
        out.actions.append(.releaseUpstream(reusable: reusable))
    }

    /// The upstream took everything queued for it.
    func upstreamDrained() {
        upstreamBacklog = false
        if let x = exchange, phase == .proxying { touchProgress(x) }
    }

    func upstreamBacklogged() {
        upstreamBacklog = true
        if let x = exchange, phase == .proxying { touchProgress(x) }
    }

    /// Refreshes the deadline after bytes moved: waiting on the client when it has output to take or
    /// body bytes to send, on the upstream otherwise.
    func touchProgress(_ x: Exchange) {
        guard phase == .proxying, case .open = upstream else { return }
        if clientBacklog || (!x.requestBody.isDone && !upstreamBacklog) {
            arm(.client, current.timeouts.clientBody)
        } else {
            arm(.upstream, current.timeouts.upstreamResponse)
        }
    }

    // MARK: the error funnel

    /// A request idlegate will not forward: the status the codec chose, then close (RFC 9112 §11.2:
    /// after a framing error the rest of the stream cannot be trusted).
    func refuse(_ anyError: Error, route: RouteClass? = nil, request: String? = nil) {
        let error = anyError as? HTTPParseError ?? HTTPParseError(400, "bad request")
        answer(error.status, ErrorResponse.bytes(error.status), cause: .refused, reason: error.reason, route: route, request: request, keepAlive: false)
    }

    /// Every answer idlegate makes itself goes out here: the bytes, the report (one log line, one count,
    /// one audit event), and keep-alive or close. On close, whatever the client still sends is dropped
    /// and the write side shuts as soon as the answer is out (`clientDrained`), not at some deadline.
    func answer(_ status: Int, _ bytes: [UInt8], cause: Answered.Cause, reason: String, route: RouteClass?, request: String?,
                keepAlive: Bool, writeWithin: Int64? = nil) {
        report(Answered(status: status, cause: cause, reason: reason, route: route, request: request))
        out.client.append(contentsOf: bytes)
        if keepAlive && !closeAfterResponse {
            phase = .awaitingRequest
            arm(.idle, current.timeouts.clientIdle)
            parseInbound()
            return
        }
        inbound.clear()
        phase = .closing
        arm(.closing, writeWithin ?? current.timeouts.clientBody)
    }

    func report(_ a: Answered) {
        out.actions.append(.answered(a))
    }

    /// Shuts the write side once the answer is out, then lingers.
    func shutdownWrite() {
        guard phase == .closing else { return }
        phase = .lingering
        out.actions.append(.shutdownClientWrite)
        arm(.closing, Linger.time)
    }

    func closeNow() {
        guard phase != .closed else { return }
        phase = .closed
        exchange = nil
        inbound.clear()
        upstream = .none
        out.actions.append(.closeClient)
    }

    // MARK: time

    /// The clock moved (the worker's tick): a passed deadline, or a tunnel whose session ended.
    func tick() {
        if now >= deadline {
            timedOut()
        } else if phase == .tunnel {
            checkTunnel()
        }
    }

    func timedOut() {
        switch deadlineKind {
        case .handshake, .idle, .closing, .tunnel:
            closeNow()
        case .header:
            answer(408, ErrorResponse.bytes(408), cause: .timeout, reason: "request head not complete in time", route: nil, request: nil,
                   keepAlive: false, writeWithin: Linger.timeoutAnswerWrite)
        case .connect:
            if let x = exchange { upstreamFailed(x, status: 504, reason: "connect timed out") } else { closeNow() }
        case .upstream:
            if let x = exchange {
                upstreamFailed(x, status: 504, reason: "no response in time")
            } else if phase == .checkingSession, let r = pending {
                // The verdict may still come: its destroy order is then carried out (`verdict`).
                answer(504, ErrorResponse.bytes(504), cause: .sessionLayer, reason: "the shared session layer did not answer in time", route: nil,
                       request: Exchange.describe(r.head.method, r.path), keepAlive: false)
            } else {
                closeNow()
            }
        case .client:
            if let x = exchange, !x.responseStarted {
                releaseUpstream(reusable: false)
                exchange = nil
                answer(408, ErrorResponse.bytes(408), cause: .timeout, reason: "client stalled during the request body", route: x.session.route,
                       request: x.describe, keepAlive: false, writeWithin: Linger.timeoutAnswerWrite)
            } else {
                closeNow()
            }
        }
    }

    /// Shutdown: an idle connection closes now; a busy one closes after its current response.
    func drain() {
        closeAfterResponse = true
        if phase == .awaitingRequest && (deadlineKind == .idle || deadlineKind == .handshake) && inbound.isEmpty && !clientBacklog { closeNow() }
    }

    // MARK: reading the request

    /// Who the request is attributed to and how the browser reached us: from a trusted proxy, its last
    /// X-Forwarded-For hop and X-Forwarded-Proto; otherwise the peer and idlegate's own scheme.
    func attribution(_ head: RequestHead, _ settings: ProxySettings) -> (ip: [UInt8], text: String, https: Bool) {
        if peer.trusted {
            let fields = head.fields
            var ip = peer.ip
            var text = peer.host
            if let last = fields.last(.xForwardedFor)?.split(separator: ",").last?.trimmingCharacters(in: " \t"),
               let parsed = CIDR.parseIP(last) {
                ip = parsed
                text = last
            }
            let proto = fields.last(.xForwardedProto)?.lowercased() ?? settings.publicScheme.rawValue
            return (ip, text, proto == "https")
        }
        return (peer.ip, peer.host, overTLS || settings.publicScheme == .https)
    }

    /// `https://HOST[:PORT]/target` for a request's Host (checked by the parser) and origin-form target.
    static func httpsLocation(_ head: RequestHead, port: UInt16) -> String {
        let host = head.fields.first(.host).flatMap { HostPort.split($0, defaultPort: 80) }?.host ?? "localhost"
        let authority = (host.contains(":") ? "[\(host)]" : host) + (port == 443 ? "" : ":\(port)")
        return "https://" + authority + (head.target.hasPrefix("/") ? head.target : "/")
    }

    /// The forwarding fields Odoo sees for this request (for the destroy call, so Odoo's dbfilter picks
    /// the same database).
    func forwardedPairs(_ head: RequestHead) -> [(String, String)] {
        let f = head.fields
        let host = f.first(.host) ?? ""
        let scheme = scheme(current)
        if peer.trusted {
            let chain = f.values(.xForwardedFor).joined(separator: ", ")
            return [("X-Forwarded-For", chain.isEmpty ? peer.host : chain),
                    ("X-Forwarded-Proto", f.first(.xForwardedProto) ?? scheme),
                    ("X-Forwarded-Host", f.first(.xForwardedHost) ?? host)]
        }
        return [("X-Forwarded-For", peer.host), ("X-Forwarded-Proto", scheme), ("X-Forwarded-Host", host)]
    }

    /// The protocol of an Upgrade request idlegate will tunnel (RFC 9110 §7.8), or nil. Only GET on
    /// HTTP/1.1 and only the configured protocols (WebSocket by default).
    func upgradeProtocol(_ head: RequestHead, _ settings: ProxySettings) -> String? {
        guard head.method == "GET", head.version == .http11,
              let value = head.fields.first(.upgrade),
              head.fields.connectionOptions.contains(.upgrade) else { return nil }
        let first = head.fields.tokens(.upgrade).first ?? ""
        let name = String(first.split(separator: "/").first ?? "")
        return settings.allowedUpgrades.contains(name) ? value : nil
    }

    /// The head sent upstream: the client's fields less hop-by-hop ones, Expect (answered by idlegate)
    /// and, from an untrusted peer, the forwarding fields; then the fields idlegate sets.
    func writeForwardedHead(_ x: Exchange, into out: ByteSink) {
        // The head and the verdict are read where they are (a local copy of either costs a retain per
        // reference it holds, and the verdict holds many).
        let check = x.check
        let fields = check.head.fields
        let named = HeaderRewriting.connectionNamed(fields)
        let trusted = peer.trusted
        var replaceCookie = false
        if case .rebuilt = x.session.cookie { replaceCookie = true }
        let stripHeader = x.session.stripHeader
        if let target = x.session.target {
            out.appendUTF8(check.head.method)
            out.append(UInt8(ascii: " "))
            out.appendUTF8(target)
            out.appendUTF8(" HTTP/1.1\r\n" as StaticString)
        } else {
            check.head.writeRequestLine(into: out)
        }
        // What is dropped follows from the tags, decided once; only names listed in Connection need a
        // look at each field (rare: the usual head goes out without a call per field).
        var dropped = FieldName.hopByHop + HeaderRewriting.neverForwarded
        if !trusted { dropped = dropped + HeaderRewriting.forwardingFields }
        if replaceCookie { dropped.insert(.cookie) }
        if stripHeader { dropped.insert(.xOpenerpSessionID) }
        if named.isEmpty {
            fields.write(into: out, dropping: dropped)
        } else {
            fields.write(into: out) { i, known in !(dropped.contains(known) || HeaderRewriting.isHopByHop(fields, i, known, named: named)) }
        }
        let settings = current
        if check.head.version == .http10 && !fields.contains(.host) { HTTPFields.writeField("Host", settings.upstreamAuthority, into: out) }
        if case .rebuilt(.some(let cookie)) = x.session.cookie { HTTPFields.writeField("Cookie", cookie, into: out) }
        HeaderRewriting.writeForwarded(fields, peerHost: peer.host, trusted: trusted, scheme: scheme(settings), into: out)
        if x.requestChunked { HTTPFields.writeField("Transfer-Encoding", "chunked", into: out) }
        if let upgrade = x.upgrade {
            HTTPFields.writeField("Connection", "upgrade", into: out)
            HTTPFields.writeField("Upgrade", upgrade, into: out)
        }
        out.append(contentsOf: ChunkedEncoder.chunkEnd)
    }
}

/// The worker's settings, shared by its connections: a reload swaps `current`, and the next request on
/// each connection reads the new ones (an exchange in flight keeps the verdict it was made with).
final class SettingsBox {
    var current: ProxySettings
    init(_ settings: ProxySettings) { current = settings }
}
