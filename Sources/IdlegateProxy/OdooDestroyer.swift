import IdlegateAudit
import IdlegateHTTP
import IdlegateIO
import Logging

/// Kills expired sessions inside Odoo too: posts Odoo's own `/web/session/destroy` JSON-RPC with the
/// expired cookie (18-real: it deletes the session file; JSON routes need no CSRF token, so this works
/// from outside on every version). Off the request path, on the worker's loop; retried; logged.
///
/// The raw id lives only in the pending call's request bytes, until the call ends.
final class OdooDestroyer {
    struct Call {
        /// The whole request; the only place the raw id is kept.
        let request: [UInt8]
        /// The session's key, for log lines.
        let key: String
        var attempt: Int
        var due: Int64
    }

    static let body = Array(#"{"jsonrpc":"2.0","method":"call","id":1,"params":{}}"#.utf8)
    static let maxAttempts = 3
    static let backoff: [Int64] = [1_000, 5_000]
    static let attemptTimeout: Int64 = 15_000
    /// Bound on calls waiting, so a flood of expired ids cannot grow memory without limit.
    static let maxPending = 10_000

    // The worker creates its destroyer and keeps it for its whole life (workers live as long as the
    // process), so the back reference needs no counting.
    unowned(unsafe) let worker: Worker
    let endpoint: UpstreamEndpoint
    private var waiting: [Call] = []
    private var inFlight: [DestroyConnection] = []

    init(worker: Worker, endpoint: UpstreamEndpoint) {
        self.worker = worker
        self.endpoint = endpoint
    }

    /// Queues a destroy for session `id`, sent with the expiring request's Host and forwarding fields
    /// so that Odoo's dbfilter picks the same database.
    func destroy(id: String, key: String, host: String?, forwarded: [(String, String)]) {
        guard waiting.count + inFlight.count < Self.maxPending else {
            worker.logger.error("session \(key): Odoo destroy call dropped, \(Self.maxPending) already pending")
            worker.metrics.destroyFailures.increment()
            return
        }
        let r = ByteSink()
        r.appendUTF8("POST /web/session/destroy HTTP/1.1\r\n")
        if let host { HTTPFields.writeField("Host", host, into: r) }
        for (n, v) in forwarded { HTTPFields.writeField(named: n, value: v, into: r) }
        HTTPFields.writeField("Content-Type", "application/json", into: r)
        HTTPFields.writeField("Cookie", "session_id=" + id, into: r)
        HTTPFields.writeField("Content-Length", String(Self.body.count), into: r)
        HTTPFields.writeField("Connection", "close", into: r)
        r.appendUTF8("\r\n")
        r.append(contentsOf: Self.body)
        start(Call(request: r.bytes, key: key, attempt: 1, due: 0))
    }

    private func start(_ call: Call) {
        do {
            let addresses = endpoint.addresses
            let fd = try Socket.connect(to: addresses[(call.attempt - 1) % addresses.count])
            let c = DestroyConnection(transport: try endpoint.transport(fd: fd), call: call, owner: self, deadline: worker.loop.now + Self.attemptTimeout)
            try worker.loop.register(fd: fd, handler: c)
            inFlight.append(c)
        } catch {
            finished(call, ok: false, detail: "\(error)")
        }
    }

    func finished(_ call: Call, ok: Bool, detail: String) {
        if ok {
            worker.logger.info("session \(call.key): destroyed in Odoo")
            return
        }
        if call.attempt >= Self.maxAttempts {
            worker.logger.error("session \(call.key): Odoo destroy call failed \(call.attempt) times (\(detail)); the id stays refused here")
            worker.metrics.destroyFailures.increment()
            worker.settings.gate.audit.emit(.destroyFailed) { e in
                e.key = call.key
                e.reason = detail
            }
            return
        }
        worker.logger.warning("session \(call.key): Odoo destroy call failed (\(detail)); retrying")
        var next = call
        next.attempt += 1
        next.due = worker.loop.now + Self.backoff[call.attempt - 1]
        waiting.append(next)
    }

    func remove(_ c: DestroyConnection) {
        inFlight.removeAll { $0 === c }
    }

    /// Starts due retries and times out slow attempts (called on the worker's tick).
    func tick(now: Int64) {
        for c in inFlight where now >= c.deadline { c.fail("timed out") }
        guard !waiting.isEmpty else { return }
        let due = waiting.filter { $0.due <= now }
        waiting.removeAll { $0.due <= now }
        for call in due { start(call) }
    }

    var pending: Int { waiting.count + inFlight.count }
}

/// One destroy call on the wire: write the request, read the status line, close.
final class DestroyConnection: EventHandler {
    let channel: Channel
    let call: OdooDestroyer.Call
    // A call's connection is held in its destroyer's `inFlight` list until it ends, and the destroyer
    // lives as long as its worker: it always outlives the connection.
    unowned(unsafe) let owner: OdooDestroyer
    let deadline: Int64
    private var connected = false
    private var response: [UInt8] = []
    private var done = false

    init(transport: Transport, call: OdooDestroyer.Call, owner: OdooDestroyer, deadline: Int64) {
        channel = Channel(transport: transport)
        self.call = call
        self.owner = owner
        self.deadline = deadline
    }

    func handleEvents(_ events: UInt32) {
        guard !done else { return }
        channel.note(events)
        if !connected {
            guard events & (Events.writable | Events.error | Events.hangup) != 0 else { return }
            let err = Socket.pendingError(channel.fd)
            if err != 0 { fail("\(IOError("connect", errno: err))"); return }
            connected = true
            if !channel.write(call.request) { fail(channel.transport.failureReason ?? "write failed"); return }
        }
        if channel.flush() == .failed { fail(channel.transport.failureReason ?? "write failed"); return }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let r = buf.withUnsafeMutableBytes { channel.read(into: $0) }
            switch r {
            case .bytes(let n):
                response.append(contentsOf: buf[0..<n])
                if let status = statusCode() {
                    // Odoo answers 200 {"jsonrpc":"2.0","id":1} (18-real); anything else is a failure.
                    status == 200 ? succeed() : fail("Odoo answered \(status)")
                    return
                }
                if response.count > 65536 { fail("unreadable answer"); return }
            case .wouldBlock:
                return
            case .eof, .failed:
                fail(channel.transport.failureReason ?? "connection closed before an answer")
                return
            }
        }
    }

    private func statusCode() -> Int? {
        guard let lf = response.firstIndex(of: UInt8(ascii: "\n")), lf >= 12 else { return nil }
        let line = response[0..<lf]
        guard line.starts(with: "HTTP/1.".utf8) else { return -1 }
        return Int(String(decoding: line.dropFirst(9).prefix(3), as: UTF8.self)) ?? -1
    }

    private func succeed() {
        close()
        owner.finished(call, ok: true, detail: "")
    }

    func fail(_ detail: String) {
        guard !done else { return }
        close()
        owner.finished(call, ok: false, detail: detail)
    }

    private func close() {
        done = true
        owner.worker.loop.deregister(fd: channel.fd)
        channel.transport.close()
        owner.remove(self)
    }
}
