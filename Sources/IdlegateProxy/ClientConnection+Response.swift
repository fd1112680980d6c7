import IdlegateHTTP
import IdlegateIO
import IdlegateSessions

/// Upstream → client: parsing, rewriting and re-framing responses, and the one error funnel.
extension ClientConnection {
    /// Upstream → client: the response head, rewritten, then the body, re-framed where needed.
    func pumpResponse(_ x: Exchange, _ up: UpstreamConnection) -> Bool {
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
    func consumeResponse(_ x: Exchange, _ input: UnsafeRawBufferPointer) throws {
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
    func responseHead(_ x: Exchange, _ head: ResponseHead) throws {
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
            countResponse(x, status: 101)
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
        countResponse(x, status: head.status)
        x.upstreamReusable = head.allowsReuse && framing != .untilClose && !x.isUpgrade
        head.writeStatusLine(into: &worker.staging)
        writeResponseFields(x, fields, named: named)
        if x.session.logoutKey != nil { settings.gate.logoutAnswered(x.session, status: head.status, method: x.method, path: x.logPath) }
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
        x.responseStarted = true
        x.responseBody = BodyDecoder(framing, limits: settings.limits)
        if framing == .none { x.responseDone = true }
    }

    /// The response's end-to-end fields, each Set-Cookie hardened (and a new session_id recorded).
    func writeResponseFields(_ x: Exchange, _ fields: HTTPFields, named: [String]) {
        for i in 0..<fields.count {
            let known = fields.known(at: i)
            if HeaderRewriting.isHopByHop(fields, i, known, named: named) { continue }
            guard known == .setCookie else {
                fields.writeField(at: i, into: &worker.staging)
                continue
            }
            let (hardened, destroy) = settings.gate.responseCookie(fields.value(at: i), of: x.session, loginBody: &x.loginBody, json: x.loginIsJSON,
                                                                   method: x.method, path: x.logPath)
            if let hardened {
                HTTPFields.writeField("Set-Cookie", hardened, into: &worker.staging)
            } else {
                fields.writeField(at: i, into: &worker.staging)
            }
            if let order = destroy {
                worker.destroyer.destroy(id: order.id, key: order.key.description, host: x.request.fields.first(.host), forwarded: forwardedPairs(x.request))
            }
        }
    }

    func upstreamEOF(_ x: Exchange, _ up: UpstreamConnection) {
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
    func upstreamGone(_ x: Exchange, reason: String) {
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
    func upstreamFailed(_ x: Exchange, status: Int, reason: String) {
        let name = x.upstreamIndex == Router.websocket ? "websocket upstream" : "upstream"
        worker.logger.error("\(status) for \(x.method) \(x.logPath) from \(peerHost): \(name) \(reason)")
        x.upstream?.close()
        x.upstream = nil
        exchange = nil
        worker.metrics.upstreamErrors[status]?.increment()
        if x.responseStarted {
            closeNow()
        } else {
            worker.counts.request(x.session.route, status: status)
            inbound.clear()
            client.write(ErrorResponse.bytes(status))
            state = .closing
        }
    }

    /// A response head from Odoo: its status class and how long Odoo took.
    func countResponse(_ x: Exchange, status: Int) {
        worker.counts.request(x.session.route, status: status)
        worker.metrics.upstreamLatency.recordNanoseconds(worker.loop.clock.nanos() - x.sentAt)
    }

    func finishExchange(_ x: Exchange) {
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
    func touchProgress(_ x: Exchange) {
        guard state == .proxying, let up = x.upstream, !up.connecting else { return }
        if client.hasQueuedOutput || (!x.requestBody.isDone && !up.channel.hasQueuedOutput) {
            setDeadline(.client, settings.timeouts.clientBody)
        } else {
            setDeadline(.upstream, settings.timeouts.upstreamResponse)
        }
    }
}
