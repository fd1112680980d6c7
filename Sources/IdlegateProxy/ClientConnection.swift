import IdlegateAudit
import IdlegateBase
import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy

/// One client connection: reads requests, forwards each to Odoo, streams the response back, one
/// exchange at a time (so pipelined requests are answered in order), or carries a WebSocket tunnel.
///
/// Everything here runs on the worker's loop thread. `drive()` makes all the progress the sockets
/// allow and returns; epoll calls back when more is possible.
final class ClientConnection: EventHandler {
    enum State {
        /// Between requests, or reading a request head.
        case awaitingRequest
        /// A request is being forwarded and its response relayed.
        case proxying
        /// Waiting for a shared session layer to confirm that the request's session is over.
        case checkingSession
        /// After a 101: bytes both ways, uninterpreted.
        case tunnel
        /// Writing what is queued, then closing.
        case closing
        /// Write side shut; reading and discarding until the client closes, so that unread request
        /// bytes do not make the kernel reset the connection before the client reads our answer.
        case lingering
        case closed
    }

    enum DeadlineKind { case idle, header, client, upstream, connect, tunnel, closing }

    // The worker owns every connection and outlives them all: no reference counting needed.
    unowned(unsafe) let worker: Worker
    /// The worker's settings: a reload swaps them, and the next request on this connection reads the
    /// new ones (an exchange in flight keeps the decision it was made with).
    var settings: ProxySettings { worker.settings }
    let client: Channel
    let peer: SocketAddress
    /// The peer's address as text and whether it is a trusted proxy, worked out once per connection.
    let peerHost: String
    let peerTrusted: Bool
    var registryIndex = -1
    var state: State = .awaitingRequest
    var deadline: Int64 = 0
    var deadlineKind: DeadlineKind = .idle

    /// Client bytes read but not yet used: a head split across reads, body bytes that came with the
    /// head, or the next pipelined request.
    var inbound = ByteBuffer()
    var inboundUnparsed = false
    var parser: HeadParser
    var exchange: Exchange?
    var closeAfterResponse = false
    var lingerBytes = 0
    /// Frame boundaries of the server→client side of a WebSocket tunnel, and whether a 4001 close is
    /// waiting for the next one.
    var serverFrames = WebSocketFrames()
    var closeTunnelAtBoundary = false

    var now: Int64 { worker.loop.now }

    init(fd: Int32, peer: SocketAddress, worker: Worker) {
        self.worker = worker
        self.peer = peer
        peerHost = peer.host
        peerTrusted = worker.settings.isTrusted(peer)
        client = Channel(transport: PlainTransport(fd: fd))
        parser = HeadParser(kind: .request, limits: worker.settings.limits)
        setDeadline(.idle, settings.timeouts.clientIdle)
    }

    func setDeadline(_ kind: DeadlineKind, _ millis: Int64) {
        deadlineKind = kind
        deadline = now + millis
    }

    // MARK: events

    func handleEvents(_ events: UInt32) {
        client.note(events)
        drive()
    }

    func upstreamEvents(_ events: UInt32) {
        guard let x = exchange, let up = x.upstream else { return }
        up.channel.note(events)
        if up.connecting {
            guard events & (Events.writable | Events.error | Events.hangup) != 0 else { return }
            let err = Socket.pendingError(up.channel.fd)
            if err != 0 {
                upstreamFailed(x, status: 502, reason: "\(IOError("connect", errno: err))")
                return
            }
            up.connecting = false
            setDeadline(.upstream, settings.timeouts.upstreamResponse)
        }
        drive()
    }

    /// Makes every step the sockets allow now.
    func drive() {
        while true {
            let progressed: Bool
            switch state {
            case .awaitingRequest: progressed = readRequest()
            case .proxying: progressed = pumpExchange()
            case .tunnel: progressed = pumpTunnel()
            case .checkingSession: progressed = false
            case .closing, .lingering: progressed = continueClosing()
            case .closed: return
            }
            if !progressed { return }
        }
    }

    // MARK: reading a request

    func readRequest() -> Bool {
        // The tail of the previous response may still be queued for a slow reader.
        if client.hasQueuedOutput {
            let written = client.bytesWritten
            if client.flush() == .failed { closeNow(); return false }
            if client.bytesWritten != written && deadlineKind == .idle { setDeadline(.idle, settings.timeouts.clientIdle) }
        }
        if inboundUnparsed {
            inboundUnparsed = false
            return parseInbound()
        }
        switch client.read(into: worker.scratch) {
        case .wouldBlock:
            return false
        case .eof, .failed:
            // Between requests this is an ordinary close; mid-head the client gave up.
            if client.hasQueuedOutput && !client.failed { state = .closing; return true }
            closeNow()
            return false
        case .bytes(let n):
            let bytes = UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n])
            if deadlineKind == .idle { setDeadline(.header, settings.timeouts.clientHeader) }
            if !inbound.isEmpty {
                inbound.append(bytes)
                return parseInbound()
            }
            // The common case: a whole head in one read, parsed where it landed.
            do {
                switch try parser.parse(bytes) {
                case .incomplete:
                    inbound.append(bytes)
                case .request(let head, let length):
                    if length < n { inbound.append(UnsafeRawBufferPointer(rebasing: bytes[length...])) }
                    startExchange(head)
                case .response:
                    break
                }
            } catch {
                refuse(error)
            }
            return true
        }
    }

    func parseInbound() -> Bool {
        do {
            let result = try inbound.withBytes { try parser.parse($0) }
            switch result {
            case .incomplete:
                return false
            case .request(let head, let length):
                inbound.consume(length)
                startExchange(head)
                return true
            case .response:
                return false
            }
        } catch {
            refuse(error)
            return true
        }
    }

    /// A request idlegate will not forward: the status the codec chose, then close (RFC 9112 §11.2:
    /// after a framing error the rest of the stream cannot be trusted).
    func refuse(_ anyError: Error) {
        let error = anyError as? HTTPParseError ?? HTTPParseError(400, "bad request")
        worker.logger.info("refused request from \(peerHost): \(error.status) \(error.reason)")
        worker.counts.request(nil, status: error.status)
        settings.gate.audit.emit(.requestRefused) { e in
            e.client = peerHost
            e.status = error.status
            e.reason = error.reason
        }
        inbound.clear()
        client.write(ErrorResponse.bytes(error.status))
        state = .closing
    }

    // MARK: forwarding

    func startExchange(_ head: RequestHead) {
        parser.reset()
        let framing: BodyFraming
        do {
            framing = try head.framing(limits: settings.limits)
        } catch {
            refuse(error)
            return
        }
        let upgrade = upgradeProtocol(head)
        let keepAlive = head.wantsKeepAlive && !worker.draining && !closeAfterResponse && upgrade == nil
        let expectsContinue = head.expectsContinue && framing != .none

        let path = head.path
        let (clientIP, clientText, https) = attribution(head)
        let request = PendingRequest(head: head, path: path, framing: framing, upgrade: upgrade, keepAlive: keepAlive, expectsContinue: expectsContinue)
        // The local table decides at once; a shared layer confirming that a session is over answers
        // later, from anywhere: then the reply hops back to this loop.
        let check = SessionRequest(head: head, path: path, client: clientIP, clientText: clientText, https: https,
                                   isUpgrade: upgrade != nil, keepAlive: keepAlive && framing == .none)
        let decided = settings.gate.decide(check) {
            let me = Unchecked(self)
            let loop = worker.loop
            return { verdict in loop.execute { me.value.sessionDecided(verdict, request) } }
        }
        if let decision = decided {
            forward(decision, request)
        } else {
            state = .checkingSession
            setDeadline(.upstream, settings.timeouts.upstreamResponse)
        }
    }

    /// What a request needs once its session is decided.
    struct PendingRequest: @unchecked Sendable {
        let head: RequestHead
        let path: Substring
        let framing: BodyFraming
        let upgrade: String?
        let keepAlive: Bool
        let expectsContinue: Bool
    }

    /// A late session decision (a shared layer confirmed an expiry) arrives on the loop.
    func sessionDecided(_ decision: Verdict, _ request: PendingRequest) {
        guard state == .checkingSession else { return }  // the client went away meanwhile
        state = .awaitingRequest
        forward(decision, request)
        drive()
    }

    /// Answers an expired session, or forwards the request.
    func forward(_ session: Verdict, _ r: PendingRequest) {
        let head = r.head
        if case .refuse(let status, let reason) = session.action {
            refuse(HTTPParseError(status, reason))
            return
        }
        if let order = session.destroy {
            worker.destroyer.destroy(id: order.id, key: order.key.description, host: head.fields.first(.host), forwarded: forwardedPairs(head))
        }
        if case .answer(let status, let answer) = session.action {
            // An expired session (enforce): Odoo's own answer, without asking Odoo. A request body the
            // answer leaves unread means the connection cannot go on.
            client.write(answer)
            worker.counts.request(session.route, status: status)
            if r.keepAlive && r.framing == .none && r.upgrade == nil {
                setDeadline(.idle, settings.timeouts.clientIdle)
                if !inbound.isEmpty { inboundUnparsed = true }
            } else {
                inbound.clear()
                state = .closing
            }
            return
        }
        let x = Exchange(head: head, path: r.path, upgrade: r.upgrade, session: session, framing: r.framing,
                         upstreamIndex: settings.router.upstream(for: r.path), keepAlive: r.keepAlive, limits: settings.limits)
        x.sentAt = worker.loop.clock.nanos()
        exchange = x
        state = .proxying
        if !inbound.isEmpty { inboundUnparsed = true }
        // RFC 9110 §10.1.1: idlegate answers 100-continue itself once it has decided to forward, as
        // nginx does; the upstream never sees Expect (an HTTP/1.0 Odoo would not answer it).
        if r.expectsContinue { client.write(ErrorResponse.continueInterim) }
        openUpstream(x)
    }

    /// The head sent upstream: the client's fields less hop-by-hop ones, Expect (answered by idlegate)
    /// and, from an untrusted peer, the forwarding fields; then the fields idlegate sets.
    func writeForwardedHead(_ x: Exchange, into out: inout [UInt8]) {
        let head = x.request
        let fields = head.fields
        let named = HeaderRewriting.connectionNamed(fields)
        let trusted = peerTrusted
        let session = x.session
        var replaceCookie = false
        if case .rebuilt = session.cookie { replaceCookie = true }
        let stripHeader = session.stripHeader
        if let target = session.target {
            out.append(contentsOf: head.method.utf8)
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: target.utf8)
            out.append(contentsOf: " HTTP/1.1\r\n".utf8)
        } else {
            head.writeRequestLine(into: &out)
        }
        fields.write(into: &out) { i, known in
            !(HeaderRewriting.isHopByHop(fields, i, known, named: named) || known == .expect || known == .underscored
              || (!trusted && HeaderRewriting.isForwardingField(known))
              || (replaceCookie && known == .cookie) || (stripHeader && known == .xOpenerpSessionID))
        }
        if head.version == .http10 && !fields.contains(.host) { HTTPFields.writeField("Host", settings.upstreamAuthority, into: &out) }
        if case .rebuilt(.some(let cookie)) = session.cookie { HTTPFields.writeField("Cookie", cookie, into: &out) }
        HeaderRewriting.writeForwarded(fields, peerHost: peerHost, trusted: trusted, scheme: settings.publicScheme.rawValue, into: &out)
        if x.requestChunked { HTTPFields.writeField("Transfer-Encoding", "chunked", into: &out) }
        if let upgrade = x.upgrade {
            HTTPFields.writeField("Connection", "upgrade", into: &out)
            HTTPFields.writeField("Upgrade", upgrade, into: &out)
        }
        out.append(contentsOf: ChunkedEncoder.chunkEnd)
    }

    /// Who the request is attributed to and how the browser reached us: from a trusted proxy, its last
    /// X-Forwarded-For hop and X-Forwarded-Proto; otherwise the peer and idlegate's own scheme.
    func attribution(_ head: RequestHead) -> (ip: [UInt8], text: String, https: Bool) {
        if peerTrusted {
            let fields = head.fields
            var ip = peer.ip
            var text = peerHost
            if fields.contains(.xForwardedFor),
               let last = fields.values(.xForwardedFor).last?.split(separator: ",").last?.trimmingCharacters(in: " \t"),
               let parsed = CIDR.parseIP(last) {
                ip = parsed
                text = last
            }
            let proto = fields.values(.xForwardedProto).last?.lowercased() ?? settings.publicScheme.rawValue
            return (ip, text, proto == "https")
        }
        return (peer.ip, peerHost, settings.publicScheme == .https)
    }

    /// The forwarding fields Odoo sees for this request (for the destroy call, so Odoo's dbfilter picks
    /// the same database).
    func forwardedPairs(_ head: RequestHead) -> [(String, String)] {
        let f = head.fields
        let host = f.first(.host) ?? ""
        if peerTrusted {
            return [("X-Forwarded-For", f.values(.xForwardedFor).joined(separator: ", ").isEmpty ? peerHost : f.values(.xForwardedFor).joined(separator: ", ")),
                    ("X-Forwarded-Proto", f.first(.xForwardedProto) ?? settings.publicScheme.rawValue),
                    ("X-Forwarded-Host", f.first(.xForwardedHost) ?? host)]
        }
        return [("X-Forwarded-For", peerHost), ("X-Forwarded-Proto", settings.publicScheme.rawValue), ("X-Forwarded-Host", host)]
    }

    /// The protocol of an Upgrade request idlegate will tunnel (RFC 9110 §7.8), or nil. Only GET on
    /// HTTP/1.1 and only the configured protocols (WebSocket by default).
    func upgradeProtocol(_ head: RequestHead) -> String? {
        guard head.method == "GET", head.version == .http11,
              let value = head.fields.first(.upgrade),
              head.fields.containsToken(.connection, "upgrade") else { return nil }
        let first = head.fields.tokens(.upgrade).first ?? ""
        let name = String(first.split(separator: "/").first ?? "")
        return settings.allowedUpgrades.contains(name) ? value : nil
    }

    func openUpstream(_ x: Exchange) {
        do {
            let up = try worker.pool.acquire(x.upstreamIndex, owner: self)
            x.upstream = up
            worker.staging.removeAll(keepingCapacity: true)
            writeForwardedHead(x, into: &worker.staging)
            if up.connecting {
                up.channel.queue(worker.staging)
                setDeadline(.connect, settings.timeouts.upstreamConnect)
            } else {
                up.channel.write(worker.staging)
                setDeadline(.upstream, settings.timeouts.upstreamResponse)
            }
            worker.staging.removeAll(keepingCapacity: true)
        } catch {
            upstreamFailed(x, status: 502, reason: "\(error)")
        }
    }

    func pumpExchange() -> Bool {
        guard let x = exchange, let up = x.upstream else { return false }
        if up.connecting { return false }
        if up.channel.flush() == .failed || up.channel.failed {
            upstreamGone(x, reason: "write failed")
            return true
        }
        var progressed = false
        if !x.requestBody.isDone {
            progressed = pumpRequestBody(x, up)
            if state != .proxying { return true }
        }
        let written = client.bytesWritten
        let flushed = client.flush()
        if client.bytesWritten != written { touchProgress(x) }  // a slow reader that reads is alive
        switch flushed {
        case .failed: closeNow(); return false
        case .pending: return progressed
        case .drained: break
        }
        return pumpResponse(x, up) || progressed
    }

    /// Client → upstream: body bytes, re-framed, while the upstream takes them.
    func pumpRequestBody(_ x: Exchange, _ up: UpstreamConnection) -> Bool {
        guard !up.channel.hasQueuedOutput else { return false }
        if inboundUnparsed {
            inboundUnparsed = false
            let used: Int
            do {
                used = try inbound.withBytes { try forwardBody(x, $0, to: up) }
            } catch {
                requestBodyFailed(x, error)
                return true
            }
            inbound.consume(used)
            inboundUnparsed = !inbound.isEmpty && !x.requestBody.isDone
            if x.requestBody.isDone && !inbound.isEmpty { inboundUnparsed = true }  // the next request
            touchProgress(x)
            return true
        }
        switch client.read(into: worker.scratch) {
        case .wouldBlock:
            return false
        case .eof, .failed:
            worker.logger.info("client \(peerHost) closed during the request body of \(x.method) \(x.logPath)")
            closeNow()
            return false
        case .bytes(let n):
            let bytes = UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n])
            let used: Int
            do {
                used = try forwardBody(x, bytes, to: up)
            } catch {
                requestBodyFailed(x, error)
                return true
            }
            if used < n {
                inbound.append(UnsafeRawBufferPointer(rebasing: bytes[used...]))
                inboundUnparsed = true
            }
            touchProgress(x)
            return true
        }
    }

    func forwardBody(_ x: Exchange, _ input: UnsafeRawBufferPointer, to up: UpstreamConnection) throws -> Int {
        worker.staging.removeAll(keepingCapacity: true)
        let limit = settings.limits.body
        let used = try x.requestBody.decode(input) { data in
            x.requestBodyBytes += Int64(data.count)
            if x.loginBody != nil && x.loginBody!.count < LoginField.maxBytes {
                x.loginBody!.append(contentsOf: data.prefix(LoginField.maxBytes - x.loginBody!.count))
            }
            if x.requestBodyBytes > limit { throw HTTPParseError(413, "request body larger than the limit") }
            if x.requestChunked {
                ChunkedEncoder.chunkHeader(data.count, into: &worker.staging)
                worker.staging.append(contentsOf: data)
                worker.staging.append(contentsOf: ChunkedEncoder.chunkEnd)
            } else {
                worker.staging.append(contentsOf: data)
            }
        }
        if x.requestChunked && x.requestBody.isDone { worker.staging.append(contentsOf: ChunkedEncoder.lastChunk) }
        up.channel.write(worker.staging)
        worker.staging.removeAll(keepingCapacity: true)
        return used
    }

    func requestBodyFailed(_ x: Exchange, _ error: Error) {
        let e = error as? HTTPParseError ?? HTTPParseError(400, "bad request body")
        x.upstream?.close()
        x.upstream = nil
        if x.responseStarted {
            worker.logger.info("request body from \(peerHost) refused mid-response: \(e.reason)")
            closeNow()
        } else {
            exchange = nil
            refuse(e)
        }
    }
}
