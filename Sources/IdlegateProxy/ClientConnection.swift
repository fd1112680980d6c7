import IdlegateConfig
import IdlegateHTTP
import IdlegateIO

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
    let settings: ProxySettings
    let client: Channel
    let peer: SocketAddress
    /// The peer's address as text and whether it is a trusted proxy, worked out once per connection.
    let peerHost: String
    let peerTrusted: Bool
    var registryIndex = -1
    private(set) var state: State = .awaitingRequest
    private(set) var deadline: Int64 = 0
    private var deadlineKind: DeadlineKind = .idle

    /// Client bytes read but not yet used: a head split across reads, body bytes that came with the
    /// head, or the next pipelined request.
    private var inbound = ByteBuffer()
    private var inboundUnparsed = false
    private var parser: HeadParser
    private var exchange: Exchange?
    private var closeAfterResponse = false
    private var lingerBytes = 0
    /// Frame boundaries of the server→client side of a WebSocket tunnel, and whether a 4001 close is
    /// waiting for the next one.
    private var serverFrames = WebSocketFrames()
    private var closeTunnelAtBoundary = false

    private var now: Int64 { worker.loop.now }

    init(fd: Int32, peer: SocketAddress, worker: Worker) {
        self.worker = worker
        self.peer = peer
        settings = worker.settings
        peerHost = peer.host
        peerTrusted = worker.settings.isTrusted(peer)
        client = Channel(transport: PlainTransport(fd: fd))
        parser = HeadParser(kind: .request, limits: worker.settings.limits)
        setDeadline(.idle, settings.timeouts.clientIdle)
    }

    private func setDeadline(_ kind: DeadlineKind, _ millis: Int64) {
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
    private func drive() {
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

    private func readRequest() -> Bool {
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

    private func parseInbound() -> Bool {
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
    private func refuse(_ anyError: Error) {
        let error = anyError as? HTTPParseError ?? HTTPParseError(400, "bad request")
        worker.logger.info("refused request from \(peerHost): \(error.status) \(error.reason)")
        inbound.clear()
        client.write(ErrorResponse.bytes(error.status))
        state = .closing
    }

    // MARK: forwarding

    private func startExchange(_ head: RequestHead) {
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
        let decided = settings.enforcer.decide(head, path: path, client: clientIP, clientText: clientText, https: https,
                                               isUpgrade: upgrade != nil, keepAlive: keepAlive && framing == .none) {
            let me = Unchecked(self)
            let loop = worker.loop
            return { decision in loop.execute { me.value.sessionDecided(decision, request) } }
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
    func sessionDecided(_ decision: SessionDecision, _ request: PendingRequest) {
        guard state == .checkingSession else { return }  // the client went away meanwhile
        state = .awaitingRequest
        forward(decision, request)
        drive()
    }

    /// Answers an expired session, or forwards the request.
    private func forward(_ session: SessionDecision, _ r: PendingRequest) {
        let head = r.head
        if let id = session.destroyID, let key = session.key {
            worker.destroyer.destroy(id: id, key: key.description, host: head.fields.first(.host), forwarded: forwardedPairs(head))
        }
        if let answer = session.answer {
            // An expired session (enforce): Odoo's own answer, without asking Odoo. A request body the
            // answer leaves unread means the connection cannot go on.
            client.write(answer)
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
    private func writeForwardedHead(_ x: Exchange, into out: inout [UInt8]) {
        let head = x.request
        let fields = head.fields
        let named = HeaderRewriting.connectionNamed(fields)
        let trusted = peerTrusted
        let session = x.session
        let replaceCookie = session.cookie != nil
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
            !(HeaderRewriting.isHopByHop(fields, i, known, named: named) || known == .expect
              || (!trusted && HeaderRewriting.isForwardingField(known))
              || (replaceCookie && known == .cookie) || (stripHeader && known == .xOpenerpSessionID))
        }
        if case .some(.some(let cookie)) = session.cookie { HTTPFields.writeField("Cookie", cookie, into: &out) }
        _ = HeaderRewriting.writeForwarded(fields, peerHost: peerHost, trusted: trusted, scheme: settings.publicScheme, into: &out)
        if x.requestChunked { HTTPFields.writeField("Transfer-Encoding", "chunked", into: &out) }
        if let upgrade = x.upgrade {
            HTTPFields.writeField("Connection", "upgrade", into: &out)
            HTTPFields.writeField("Upgrade", upgrade, into: &out)
        }
        out.append(contentsOf: ChunkedEncoder.chunkEnd)
    }

    /// Who the request is attributed to and how the browser reached us: from a trusted proxy, its last
    /// X-Forwarded-For hop and X-Forwarded-Proto; otherwise the peer and idlegate's own scheme.
    private func attribution(_ head: RequestHead) -> (ip: [UInt8], text: String, https: Bool) {
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
            let proto = fields.values(.xForwardedProto).last?.lowercased() ?? settings.publicScheme
            return (ip, text, proto == "https")
        }
        return (peer.ip, peerHost, settings.publicScheme == "https")
    }

    /// The forwarding fields Odoo sees for this request (for the destroy call, so Odoo's dbfilter picks
    /// the same database).
    private func forwardedPairs(_ head: RequestHead) -> [(String, String)] {
        let f = head.fields
        let host = f.first(.host) ?? ""
        if peerTrusted {
            return [("X-Forwarded-For", f.values(.xForwardedFor).joined(separator: ", ").isEmpty ? peerHost : f.values(.xForwardedFor).joined(separator: ", ")),
                    ("X-Forwarded-Proto", f.first(.xForwardedProto) ?? settings.publicScheme),
                    ("X-Forwarded-Host", f.first(.xForwardedHost) ?? host)]
        }
        return [("X-Forwarded-For", peerHost), ("X-Forwarded-Proto", settings.publicScheme), ("X-Forwarded-Host", host)]
    }

    /// The protocol of an Upgrade request idlegate will tunnel (RFC 9110 §7.8), or nil. Only GET on
    /// HTTP/1.1 and only the configured protocols (WebSocket by default).
    private func upgradeProtocol(_ head: RequestHead) -> String? {
        guard head.method == "GET", head.version == .http11,
              let value = head.fields.first(.upgrade),
              head.fields.containsToken(.connection, "upgrade") else { return nil }
        let first = head.fields.tokens(.upgrade).first ?? ""
        let name = String(first.split(separator: "/").first ?? "")
        return settings.allowedUpgrades.contains(name) ? value : nil
    }

    private func openUpstream(_ x: Exchange) {
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

    private func pumpExchange() -> Bool {
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
    private func pumpRequestBody(_ x: Exchange, _ up: UpstreamConnection) -> Bool {
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

    private func forwardBody(_ x: Exchange, _ input: UnsafeRawBufferPointer, to up: UpstreamConnection) throws -> Int {
        worker.staging.removeAll(keepingCapacity: true)
        let limit = settings.limits.body
        let used = try x.requestBody.decode(input) { data in
            x.requestBodyBytes += Int64(data.count)
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

    private func requestBodyFailed(_ x: Exchange, _ error: Error) {
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

    /// Upstream → client: the response head, rewritten, then the body, re-framed where needed.
    private func pumpResponse(_ x: Exchange, _ up: UpstreamConnection) -> Bool {
        switch up.channel.read(into: worker.scratch) {
        case .wouldBlock:
            return false
        case .eof:
            upstreamEOF(x, up)
            return true
        case .failed(let e):
            upstreamGone(x, reason: "\(IOError("read", errno: e))")
            return true
        case .bytes(let n):
            x.sawResponseByte = true
            worker.staging.removeAll(keepingCapacity: true)
            do {
                try consumeResponse(x, UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n]))
            } catch {
                worker.staging.removeAll(keepingCapacity: true)
                upstreamFailed(x, status: 502, reason: "malformed response: \(error)")
                return true
            }
            if !worker.staging.isEmpty {
                let ok = client.write(worker.staging)
                worker.staging.removeAll(keepingCapacity: true)
                if !ok { closeNow(); return false }
            }
            touchProgress(x)
            if x.switchToTunnel {
                enterTunnel(x)
            } else if x.responseDone {
                finishExchange(x)
            }
            return true
        }
    }

    /// Parses and re-frames response bytes into `worker.staging`.
    private func consumeResponse(_ x: Exchange, _ input: UnsafeRawBufferPointer) throws {
        var rest = input
        while x.responseBody == nil && !x.switchToTunnel {
            let result: HeadParser.Result
            if x.responseHeadBytes.isEmpty {
                result = try x.responseParser.parse(rest)
                guard case .response(let head, let length) = result else {
                    x.responseHeadBytes.append(rest)
                    return
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[length...])
                try responseHead(x, head)
            } else {
                x.responseHeadBytes.append(rest)
                result = try x.responseHeadBytes.withBytes { try x.responseParser.parse($0) }
                guard case .response(let head, let length) = result else { return }
                let remainder: [UInt8] = x.responseHeadBytes.withBytes { Array($0[length...]) }
                x.responseHeadBytes.clear()
                try responseHead(x, head)
                try remainder.withUnsafeBytes { try consumeResponse(x, $0) }
                return
            }
        }
        if x.switchToTunnel {
            worker.staging.append(contentsOf: rest)  // the first WebSocket frames, if any came along
            serverFrames.feed(rest)
            return
        }
        guard var body = x.responseBody else { return }
        let framing = x.responseFraming
        let used = try body.decode(rest) { data in
            if framing == .chunked { ChunkedEncoder.chunkHeader(data.count, into: &worker.staging) }
            worker.staging.append(contentsOf: data)
            if framing == .chunked { worker.staging.append(contentsOf: ChunkedEncoder.chunkEnd) }
        }
        x.responseBody = body
        if body.isDone {
            if framing == .chunked { worker.staging.append(contentsOf: ChunkedEncoder.lastChunk) }
            if used < rest.count { x.upstreamReusable = false }  // bytes past the response: not reusable
            x.responseDone = true
        }
    }

    /// Decides what a response head means and writes the client's version of it into staging.
    private func responseHead(_ x: Exchange, _ head: ResponseHead) throws {
        x.responseParser.reset()
        let fields = head.fields
        let named = HeaderRewriting.connectionNamed(fields)
        if head.status == 101 {
            guard x.isUpgrade else { throw HTTPParseError(502, "101 to a request that asked for no upgrade") }
            head.writeStatusLine(into: &worker.staging)
            writeResponseFields(x, fields, named: named)  // Odoo's 101 carries a Set-Cookie too
            HTTPFields.writeField("Connection", "Upgrade", into: &worker.staging)
            if let u = fields.first(.upgrade) { HTTPFields.writeField("Upgrade", u, into: &worker.staging) }
            worker.staging.append(contentsOf: ChunkedEncoder.chunkEnd)
            x.responseStarted = true
            x.switchToTunnel = true
            return
        }
        if head.status < 200 {
            // Interim responses: 103 Early Hints reaches HTTP/1.1 clients; 100 was answered here already.
            if head.status == 103 && x.clientVersion == .http11 {
                head.writeStatusLine(into: &worker.staging)
                fields.write(into: &worker.staging) { !HeaderRewriting.isHopByHop(fields, $0, $1, named: named) }
                worker.staging.append(contentsOf: ChunkedEncoder.chunkEnd)
            }
            return
        }
        let framing = try head.framing(requestMethod: x.method)
        x.upstreamReusable = head.allowsReuse && framing != .untilClose && !x.isUpgrade
        head.writeStatusLine(into: &worker.staging)
        writeResponseFields(x, fields, named: named)
        if head.status < 400, let k = x.session.logoutKey {
            settings.enforcer.store.end(k, now: settings.enforcer.clock.now())
        }
        switch framing {
        case .none, .length:
            x.responseFraming = .passthrough
        case .chunked, .untilClose:
            if x.clientVersion == .http11 {
                x.responseFraming = .chunked
                HTTPFields.writeField("Transfer-Encoding", "chunked", into: &worker.staging)
            } else {
                x.responseFraming = .untilClose
                x.keepAlive = false
            }
        }
        if !x.keepAlive || closeAfterResponse {
            x.keepAlive = false
            HTTPFields.writeField("Connection", "close", into: &worker.staging)
        } else if x.clientVersion == .http10 {
            HTTPFields.writeField("Connection", "keep-alive", into: &worker.staging)
        }
        worker.staging.append(contentsOf: ChunkedEncoder.chunkEnd)
        x.responseHead = head
        x.responseStarted = true
        x.responseBody = BodyDecoder(framing, limits: settings.limits)
        if framing == .none { x.responseDone = true }
    }

    /// The response's end-to-end fields, each Set-Cookie hardened (and a new session_id recorded).
    private func writeResponseFields(_ x: Exchange, _ fields: HTTPFields, named: [String]) {
        for i in 0..<fields.count {
            let known = fields.known(at: i)
            if HeaderRewriting.isHopByHop(fields, i, known, named: named) { continue }
            if known == .setCookie, let hardened = settings.enforcer.responseCookie(fields.value(at: i), decision: x.session) {
                HTTPFields.writeField("Set-Cookie", hardened, into: &worker.staging)
            } else {
                fields.writeField(at: i, into: &worker.staging)
            }
        }
    }

    private func upstreamEOF(_ x: Exchange, _ up: UpstreamConnection) {
        if var body = x.responseBody {
            if body.finishAtEOF() {
                // A close-delimited body (HTTP/1.0 Odoo) ends here.
                x.responseBody = body
                if x.responseFraming == .chunked { client.write(ChunkedEncoder.lastChunk) }
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
    private func upstreamGone(_ x: Exchange, reason: String) {
        if let up = x.upstream, up.reused, !x.retried, !x.sawResponseByte, x.requestBody.framing == .none {
            x.retried = true
            up.close()
            x.upstream = nil
            worker.pool.dropIdle(x.upstreamIndex)
            openUpstream(x)
            return
        }
        upstreamFailed(x, status: 502, reason: reason)
    }

    /// The one error funnel for upstream failures: a 502 or 504 with a short plain body and a log
    /// line while nothing of the response has gone out; otherwise the client connection is cut, the
    /// only honest signal left for a truncated response.
    private func upstreamFailed(_ x: Exchange, status: Int, reason: String) {
        let name = x.upstreamIndex == Router.websocket ? "websocket upstream" : "upstream"
        worker.logger.error("\(status) for \(x.method) \(x.logPath) from \(peerHost): \(name) \(reason)")
        x.upstream?.close()
        x.upstream = nil
        exchange = nil
        if x.responseStarted {
            closeNow()
        } else {
            inbound.clear()
            client.write(ErrorResponse.bytes(status))
            state = .closing
        }
    }

    private func finishExchange(_ x: Exchange) {
        if let up = x.upstream {
            if x.upstreamReusable && x.requestBody.isDone && !up.channel.sawEOF {
                worker.pool.release(up)
            } else {
                up.close()
            }
            x.upstream = nil
        }
        exchange = nil
        // A response that came before the whole request body leaves the stream mid-body: close.
        if !x.requestBody.isDone { closeAfterResponse = true }
        if !x.keepAlive || closeAfterResponse || worker.draining {
            state = .closing
            return
        }
        state = .awaitingRequest
        setDeadline(.idle, settings.timeouts.clientIdle)
        if !inbound.isEmpty { inboundUnparsed = true }
    }

    /// Refreshes the deadline after bytes moved: waiting on the client when it has output to take or
    /// body bytes to send, on the upstream otherwise.
    private func touchProgress(_ x: Exchange) {
        guard state == .proxying, let up = x.upstream, !up.connecting else { return }
        if client.hasQueuedOutput || (!x.requestBody.isDone && !up.channel.hasQueuedOutput) {
            setDeadline(.client, settings.timeouts.clientBody)
        } else {
            setDeadline(.upstream, settings.timeouts.upstreamResponse)
        }
    }

    // MARK: tunnel

    private func enterTunnel(_ x: Exchange) {
        state = .tunnel
        setDeadline(.tunnel, settings.timeouts.tunnelIdle)
        if !inbound.isEmpty, let up = x.upstream {
            inbound.withBytes { _ = up.channel.write($0) }
            inbound.clear()
        }
        inboundUnparsed = false
    }

    private func pumpTunnel() -> Bool {
        guard let x = exchange, let up = x.upstream else { closeNow(); return false }
        var progressed = false
        if up.channel.flush() == .failed || client.flush() == .failed {
            closeNow()
            return false
        }
        if !up.channel.hasQueuedOutput {
            switch client.read(into: worker.scratch) {
            case .bytes(let n):
                up.channel.write(UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n]))
                progressed = true
            case .eof, .failed:
                closeNow()
                return false
            case .wouldBlock:
                break
            }
        }
        if !client.hasQueuedOutput {
            switch up.channel.read(into: worker.scratch) {
            case .bytes(let n):
                let bytes = UnsafeRawBufferPointer(rebasing: worker.scratch[0..<n])
                if closeTunnelAtBoundary, let end = serverFrames.feed(bytes, stopAtBoundary: true) {
                    client.write(UnsafeRawBufferPointer(rebasing: bytes[0..<end]))
                    sendSessionExpiredClose()
                    return true
                }
                if !closeTunnelAtBoundary { serverFrames.feed(bytes) }
                client.write(bytes)
                progressed = true
            case .eof, .failed:
                up.close()
                x.upstream = nil
                exchange = nil
                state = .closing
                return true
            case .wouldBlock:
                break
            }
        }
        if progressed { setDeadline(.tunnel, settings.timeouts.tunnelIdle) }
        return progressed
    }

    /// Called on every tick: a tunnel whose session expired (its HTTP requests stopped; WebSocket
    /// frames never count) gets Odoo's close code 4001, SESSION_EXPIRED, between two frames.
    func checkTunnel() {
        guard state == .tunnel, !closeTunnelAtBoundary, let x = exchange, x.session.enforce, let key = x.session.key else { return }
        guard settings.enforcer.tunnelSessionEnded(key, limits: x.session.limits) else { return }
        closeTunnelAtBoundary = true
        if serverFrames.atBoundary {
            sendSessionExpiredClose()
            drive()
        }
    }

    private func sendSessionExpiredClose() {
        client.write(WebSocketFrames.closeFrame(code: 4001, reason: "session expired"))
        exchange?.upstream?.close()
        exchange?.upstream = nil
        exchange = nil
        state = .closing
    }

    // MARK: closing

    private func continueClosing() -> Bool {
        if state == .closing {
            let written = client.bytesWritten
            switch client.flush() {
            case .pending:
                if deadlineKind != .closing || client.bytesWritten != written { setDeadline(.closing, settings.timeouts.clientBody) }
                return false
            case .failed:
                closeNow()
                return false
            case .drained:
                client.transport.shutdownWrite()
                state = .lingering
                setDeadline(.closing, 2_000)
            }
        }
        // Lingering close: read and drop what the client still sends, up to a bound.
        while true {
            switch client.read(into: worker.scratch) {
            case .bytes(let n):
                lingerBytes += n
                if lingerBytes > 1 << 20 { closeNow(); return false }
            case .wouldBlock:
                return false
            case .eof, .failed:
                closeNow()
                return false
            }
        }
    }

    /// A deadline passed.
    func timedOut() {
        switch deadlineKind {
        case .idle, .closing, .tunnel:
            closeNow()
        case .header:
            worker.logger.info("request head from \(peerHost) not complete in time: 408")
            inbound.clear()
            client.write(ErrorResponse.bytes(408))
            state = .closing
            setDeadline(.closing, 1_000)
            drive()
        case .connect:
            if let x = exchange { upstreamFailed(x, status: 504, reason: "connect timed out") }
            drive()
        case .upstream:
            if let x = exchange {
                upstreamFailed(x, status: 504, reason: "no response in time")
            } else if state == .checkingSession {
                worker.logger.error("504: the shared session layer did not answer in time")
                client.write(ErrorResponse.bytes(504))
                state = .closing
            } else {
                closeNow()
            }
            drive()
        case .client:
            if let x = exchange, !x.responseStarted {
                worker.logger.info("client \(peerHost) stalled during the body of \(x.method) \(x.logPath): 408")
                x.upstream?.close()
                x.upstream = nil
                exchange = nil
                client.write(ErrorResponse.bytes(408))
                state = .closing
                setDeadline(.closing, 1_000)
                drive()
            } else {
                closeNow()
            }
        }
    }

    /// Shutdown: an idle connection closes now; a busy one closes after its current response.
    func drain() {
        closeAfterResponse = true
        if state == .awaitingRequest && deadlineKind == .idle && inbound.isEmpty && !client.hasQueuedOutput {
            closeNow()
        }
    }

    func closeNow() {
        guard state != .closed else { return }
        state = .closed
        if let up = exchange?.upstream { up.close() }
        exchange = nil
        inbound.clear()
        worker.loop.deregister(fd: client.fd)
        client.transport.close()
        worker.remove(self)
    }

    /// For a connection that never made it into the loop.
    func discard() {
        state = .closed
        client.transport.close()
    }
}

/// Carries a loop-confined object through a `@Sendable` hop that lands back on its own loop.
struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Where a session decision lands if it comes while `decide` is still running (the local table);
/// after that, the caller is told to wait for a hop back to its loop.
final class DecisionSlot: @unchecked Sendable {
    private let lock = Mutex()
    private var open = true
    private var decision: SessionDecision?

    /// Keeps the decision if `decide` has not returned yet; false when it must go the long way.
    func takeInline(_ d: SessionDecision) -> Bool {
        lock.withLock {
            guard open else { return false }
            decision = d
            return true
        }
    }

    /// `decide` returned: the decision if it came inline.
    func close() -> SessionDecision? {
        lock.withLock {
            open = false
            return decision
        }
    }
}
