import IdlegateAudit
import IdlegateBase
import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy
import IdlegateTLS

/// One client connection on its sockets: the driver of its `ConnectionMachine`. It reads a side only
/// when the machine wants that side's bytes, writes what the machine put in the worker's outbox, and
/// carries out the machine's actions (connect, release, close, the error funnel's report). Everything
/// here runs on the worker's loop thread; `drive()` makes all the progress the sockets allow.
final class ClientConnection: EventHandler {
    // The worker owns every connection and outlives them all: a connection is in the worker's registry
    // from `accepted` to `closeNow`, and the worker stops its loop (no more events or ticks) before it
    // goes. So no reference counting is needed on this hot path.
    unowned(unsafe) let worker: Worker
    let client: Channel
    let machine: ConnectionMachine
    var upstream: UpstreamConnection?
    var registryIndex = -1
    private var closed = false
    /// A TLS handshake is still going on the client side.
    private var handshaking: Bool

    /// `redirectPort`: a connection of the plain-HTTP redirect listener, whose every request is sent to
    /// https on this port.
    init(transport: Transport, peer who: ConnectionMachine.Peer, worker: Worker, redirectPort: UInt16? = nil) {
        self.worker = worker
        client = Channel(transport: transport)
        handshaking = transport.isHandshaking
        machine = ConnectionMachine(peer: who, settings: worker.settingsBox, time: worker.loop.time, outbox: worker.outbox, tls: handshaking,
                                    redirectPort: redirectPort)
    }

    var deadline: Int64 { machine.deadline }

    // MARK: events

    func handleEvents(_ events: UInt32) {
        client.note(events)
        drive()
    }

    func upstreamEvents(_ events: UInt32) {
        guard let up = upstream else { return }
        up.channel.note(events)
        if up.connecting {
            guard events & (Events.writable | Events.error | Events.hangup) != 0 else { return }
            let err = Socket.pendingError(up.channel.fd)
            if err != 0 {
                machine.upstreamFailed(reason: "\(IOError("connect", errno: err))")
            } else {
                up.connecting = false
                machine.upstreamConnected(reused: false)
            }
            perform()
        }
        drive()
    }

    /// The worker's tick: deadlines, and tunnels whose session ended.
    func tick() {
        machine.tick()
        perform()
        drive()
    }

    /// Shutdown: an idle connection closes now; a busy one after its current response.
    func drain() {
        machine.drain()
        perform()
    }

    /// A session verdict that came later, from another thread, hopped back onto this loop.
    func verdictArrived(_ v: Verdict) {
        machine.verdict(v)
        perform()
        drive()
    }

    func tunnelCheckArrived(_ ended: Bool) {
        machine.tunnelSessionChecked(ended: ended)
        perform()
        drive()
    }

    /// Makes every step the sockets allow now.
    func drive() {
        let scratch = worker.scratch
        while machine.phase != .closed {
            var progressed = false
            flushClient()
            if let up = upstream, !up.connecting, up.channel.hasQueuedOutput {
                switch up.channel.flush() {
                case .failed: machine.upstreamClosed(failure: up.channel.transport.failureReason ?? "write failed")
                case .drained: machine.upstreamDrained()
                case .pending: break
                }
                perform()
            }
            if machine.wantsUpstreamBytes, let up = upstream, up.channel.mayRead {
                switch up.channel.read(into: scratch) {
                case .bytes(let n):
                    machine.upstreamBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                    progressed = true
                case .eof:
                    machine.upstreamClosed(failure: nil)
                    progressed = true
                case .failed(let e):
                    machine.upstreamClosed(failure: up.channel.transport.failureReason ?? "\(IOError("read", errno: e))")
                    progressed = true
                case .wouldBlock:
                    break
                }
                perform()
            }
            if machine.wantsClientBytes && client.mayRead {
                let r = client.read(into: scratch)
                if handshaking && !client.transport.isHandshaking {
                    handshaking = false
                    machine.handshakeDone()
                }
                switch r {
                case .bytes(let n):
                    machine.clientBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                    progressed = true
                case .eof:
                    machine.clientClosed(failed: false)
                    progressed = true
                case .failed:
                    if handshaking { handshakeFailed() }
                    machine.clientClosed(failed: true)
                    progressed = true
                case .wouldBlock:
                    break
                }
                perform()
            }
            if !progressed { return }
        }
    }

    /// A TLS handshake that failed: a line at debug level (scanners and old clients make these all day),
    /// and, to a client that spoke plain HTTP to the HTTPS port, a short 400 saying so, as nginx answers.
    private func handshakeFailed() {
        let reason = client.transport.failureReason ?? "connection failed"
        worker.logger.debug("TLS handshake with \(machine.peer.host) failed: \(reason)")
        worker.metrics.tlsHandshakeFailures.increment()
        if let tls = client.transport as? TLSTransport, tls.plainHTTPSeen { tls.answerPlain(ErrorResponse.plainHTTPOnHTTPS) }
    }

    /// Writes what is queued for the client and tells the machine what moved.
    private func flushClient() {
        guard machine.phase != .closed, client.hasQueuedOutput else { return }
        let before = client.bytesWritten
        let result = client.flush()
        if client.bytesWritten != before { machine.clientProgress() }
        switch result {
        case .failed: machine.clientClosed(failed: true)
        case .drained: machine.clientDrained()
        case .pending: break
        }
        perform()
    }

    // MARK: carrying out

    /// Empties the outbox until the machine asks for nothing more: the actions in order (so an answer's
    /// log line is written before the answer reaches the client), each side's bytes before what ends that
    /// side's stream, and the rest after the actions.
    func perform() {
        let out = worker.outbox
        repeat {
            var i = 0
            while i < out.actions.count {
                let action = out.actions[i]
                i += 1
                if action.endsClientStream { writeClient(out) }
                if case .releaseUpstream = action { writeUpstream(out) }
                carryOut(action)
            }
            // (One action is the usual batch: removing it alone is cheaper than the general removeAll.)
            if i == 1 { out.actions.removeLast() } else if i > 1 { out.actions.removeAll(keepingCapacity: true) }
            writeClient(out)
            writeUpstream(out)
        } while !out.actions.isEmpty
        if machine.phase == .closing && !client.hasQueuedOutput {
            machine.clientDrained()
            if !out.isEmpty { perform() }
        }
    }

    /// Hands the outbox's client bytes to the client's channel and tells the machine what did not go through.
    private func writeClient(_ out: Outbox) {
        if !out.client.isEmpty {
            let ok = machine.phase == .closed || out.client.withBytes { client.write($0) }
            out.client.removeAll()
            if !ok {
                machine.clientClosed(failed: true)
            } else if client.hasQueuedOutput && !machine.clientBacklog {
                machine.clientBacklogged()
            }
        }
    }

    /// The same for the upstream's bytes.
    private func writeUpstream(_ out: Outbox) {
        if !out.upstream.isEmpty {
            if let up = upstream {
                if up.connecting {
                    out.upstream.withBytes { up.channel.queue($0) }
                } else if !out.upstream.withBytes({ up.channel.write($0) }) {
                    out.upstream.removeAll()
                    machine.upstreamClosed(failure: up.channel.transport.failureReason ?? "write failed")
                } else if up.channel.hasQueuedOutput && !machine.upstreamBacklog {
                    machine.upstreamBacklogged()
                }
            }
            out.upstream.removeAll()
        }
    }

    private func carryOut(_ action: Action) {
        switch action {
        case .connect(let index):
            do {
                let up = try worker.pool.acquire(index, owner: self)
                upstream = up
                if !up.connecting { machine.upstreamConnected(reused: up.reused) }
            } catch {
                machine.upstreamFailed(reason: "\(error)")
            }
        case .releaseUpstream(let reusable):
            guard let up = upstream else { return }
            upstream = nil
            if reusable && !up.channel.sawEOF && !up.channel.failed {
                worker.pool.release(up)
            } else {
                up.close()
            }
        case .dropIdleUpstreams(let index):
            worker.pool.dropIdle(index)
        case .checkSession:
            guard let request = machine.pending?.check else { return }
            let decided = worker.settings.gate.decide(request, keys: worker.keys, now: machine.now) {
                let me = Unchecked(self)
                let loop = worker.loop
                return { verdict in loop.execute { me.value.verdictArrived(verdict) } }
            }
            if let decided { machine.verdict(decided) }
        case .checkTunnel:
            guard let session = machine.exchange?.session else { return }
            let ended = worker.settings.gate.tunnelSessionEnded(of: session) {
                let me = Unchecked(self)
                let loop = worker.loop
                return { ended in loop.execute { me.value.tunnelCheckArrived(ended) } }
            }
            if let ended { machine.tunnelSessionChecked(ended: ended) }
        case .destroy(let call):
            worker.destroyer.destroy(id: call.order.id, key: call.order.key.description, host: call.host, forwarded: call.forwarded)
        case .answered(let a):
            funnel(a)
        case .upstreamCut(let status, let line):
            worker.logger.error("\(line)")
            worker.metrics.upstreamErrors[status]?.increment()
        case .log(let line):
            worker.logger.info("\(line)")
        case .shutdownClientWrite:
            client.transport.shutdownWrite()
        case .closeClient:
            closeNow()
        }
    }

    /// The error funnel's side effects: one log line, one count, one audit event per answer idlegate
    /// made itself (the expiry answers are logged and audited by the session gate, with their session).
    private func funnel(_ a: Answered) {
        let peer = machine.peer.host
        worker.outbox.counts.request(a.route, status: a.status)
        let audit = worker.settings.gate.audit
        switch a.cause {
        case .expiry, .own:
            return
        case .refused:
            worker.logger.info("refused request from \(peer): \(a.status) \(a.reason)")
        case .timeout:
            worker.logger.info("\(a.status) to \(peer): \(a.reason)")
        case .sessionLayer:
            worker.logger.error("\(a.status) for \(a.request ?? "a request") from \(peer): \(a.reason)")
        case .upstream(let websocket):
            worker.logger.error("\(a.status) for \(a.request ?? "a request") from \(peer): \(websocket ? "websocket upstream" : "upstream") \(a.reason)")
            worker.metrics.upstreamErrors[a.status]?.increment()
        }
        let kind: AuditEvent.Kind
        if case .upstream = a.cause { kind = .upstreamFailed } else { kind = .requestRefused }
        audit.emit(kind) { e in
            e.client = peer
            e.status = a.status
            e.reason = a.reason
            if let r = a.request, let space = r.firstIndex(of: " ") {
                e.method = String(r[..<space])
                e.path = String(r[r.index(after: space)...])
            }
        }
    }

    /// Closes both sides now. The machine is told first, so that the outbox it shares with the other
    /// connections is left empty.
    func closeNow() {
        if machine.phase != .closed {
            machine.closeNow()
            perform()  // carries out .closeClient: back here, with the machine closed
            return
        }
        guard !closed else { return }
        closed = true
        worker.outbox.client.removeAll()
        worker.outbox.upstream.removeAll()
        if let up = upstream {
            up.close()
            upstream = nil
        }
        worker.loop.deregister(fd: client.fd)
        client.transport.close()
        worker.remove(self)
    }

    /// For a connection that never made it into the loop.
    func discard() {
        client.transport.close()
    }
}
