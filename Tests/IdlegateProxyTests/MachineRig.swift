import IdlegateAudit
import IdlegateBase
import IdlegateConfig
import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy
import IdlegateSessions
import Logging
@testable import IdlegateProxy

/// A connection machine on no sockets: what a driver would do, done by hand. Bytes the machine sends
/// are collected per side; actions are recorded and carried out the simple way (the session gate on a
/// real table with a manual clock; connects answered as the test says). Time moves only by `advance`.
final class MachineRig {
    enum Connect { case fresh, pooled, refused }

    let clock = ManualClock()
    let time: LoopTime
    let outbox = Outbox()
    let table: SessionTable
    let store: SessionStore
    let deriver = SessionKeyDeriver(secret: Array(repeating: 3, count: 32))
    let settings: SettingsBox
    let machine: ConnectionMachine
    var config: Config

    /// Everything sent to the client and to the upstream, in order.
    var toClient: [UInt8] = []
    var toUpstream: [UInt8] = []
    /// Actions carried out, in order.
    var log: [Action] = []
    /// How the next `.connect` is answered.
    var connect = Connect.fresh
    /// Whether a fresh connect completes at once (else the test calls `upstreamConnected`).
    var connectCompletes = true
    /// Verdicts still to come: the store holds their confirmation until `confirmNow`.
    var waiting: [VerdictBox] = []
    /// Tunnel checks still to come (a store that answers later).
    var tunnelWaiting: [TunnelBox] = []
    /// The client's socket takes nothing (a client that stopped reading).
    var clientStuck = false
    var upstreamOpen = false
    var shutDown = false
    var closed = false

    /// `tls`: the client connection is TLS, its handshake starting.
    init(_ configure: (inout Config) -> Void = { _ in }, store makeStore: ((SessionTable) -> SessionStore)? = nil, tls: Bool = false,
         redirectPort: UInt16? = nil) {
        var c = Config()
        configure(&c)
        config = c
        table = SessionTable(stripes: 16, longestWindow: c.longestWindow)
        store = makeStore?(table) ?? table
        let audit = Auditor(log: nil, activityFloor: c.audit.activityFloor, clock: clock)
        let gate = SessionGate(rules: SessionRules(config: c, auditing: false), store: store, deriver: deriver, clock: clock,
                               metrics: ProxyMetrics(), audit: audit, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        settings = SettingsBox(ProxySettings(config: c, gate: gate, tls: nil))
        time = LoopTime(clock: clock)
        machine = ConnectionMachine(peer: .init(ip: [192, 0, 2, 7], host: "192.0.2.7", trusted: false), settings: settings, time: time, outbox: outbox, tls: tls,
                                    redirectPort: redirectPort)
    }

    var phase: ConnectionMachine.Phase { machine.phase }
    var clientText: String { String(decoding: toClient, as: UTF8.self) }
    var upstreamText: String { String(decoding: toUpstream, as: UTF8.self) }

    /// The funnel's reports, in order.
    var answered: [Answered] {
        log.compactMap { if case .answered(let a) = $0 { return a } else { return nil } }
    }

    var connects: Int { log.filter { if case .connect = $0 { return true } else { return false } }.count }

    // MARK: events, each followed by what a driver does

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { machine.clientBytes($0) }
        settle()
    }

    func fromOdoo(_ text: String) { fromOdoo(Array(text.utf8)) }

    func fromOdoo(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { machine.upstreamBytes($0) }
        settle()
    }

    func odooCloses(failure: String? = nil) {
        upstreamOpen = false
        machine.upstreamClosed(failure: failure)
        settle()
    }

    func upstreamConnected() {
        upstreamOpen = true
        machine.upstreamConnected(reused: false)
        settle()
    }

    func clientCloses() {
        machine.clientClosed(failed: false)
        settle()
    }

    /// The client reads again: everything queued goes out.
    func clientReads() {
        clientStuck = false
        machine.clientProgress()
        machine.clientDrained()
        settle()
    }

    func advance(ms: Int64) {
        clock.advance(millis: ms)
        time.refresh()
        machine.tick()
        settle()
    }

    /// The held store confirms; each verdict reaches the machine as the loop hop would bring it.
    func confirmNow() {
        (store as? HeldConfirmStore)?.release()
        for box in waiting {
            if let v = box.get() { machine.verdict(v) }
        }
        waiting.removeAll()
        settle()
    }

    /// Empties the outbox as the driver does.
    func settle() {
        while !outbox.isEmpty {
            if !outbox.client.isEmpty {
                if !closed { toClient += outbox.client.bytes }
                outbox.client.removeAll()
                if clientStuck && !machine.clientBacklog { machine.clientBacklogged() }
            }
            if !outbox.upstream.isEmpty {
                toUpstream += outbox.upstream.bytes
                outbox.upstream.removeAll()
            }
            var i = 0
            while i < outbox.actions.count {
                let a = outbox.actions[i]
                i += 1
                log.append(a)
                carryOut(a)
            }
            outbox.actions.removeAll()
            if machine.phase == .closing && !clientStuck { machine.clientDrained() }
        }
    }

    private func carryOut(_ a: Action) {
        switch a {
        case .connect:
            switch connect {
            case .pooled:
                upstreamOpen = true
                machine.upstreamConnected(reused: true)
                connect = .fresh
            case .fresh:
                if connectCompletes {
                    upstreamOpen = true
                    machine.upstreamConnected(reused: false)
                }
            case .refused:
                machine.upstreamFailed(reason: "connect: Connection refused")
            }
        case .releaseUpstream:
            upstreamOpen = false
        case .checkSession:
            guard let request = machine.pending?.check else { return }
            let gate = settings.current.gate
            let box = VerdictBox()
            if let v = gate.decide(request, keys: SessionKeyCache(deriver: gate.deriver), later: { { v in box.set(v) } }) {
                machine.verdict(v)
            } else {
                waiting.append(box)
            }
        case .checkTunnel:
            guard let session = machine.exchange?.session else { return }
            let box = TunnelBox()
            if let ended = settings.current.gate.tunnelSessionEnded(of: session, later: { { ended in box.set(ended) } }) {
                machine.tunnelSessionChecked(ended: ended)
            } else {
                tunnelWaiting.append(box)
            }
        case .shutdownClientWrite:
            shutDown = true
        case .closeClient:
            closed = true
            upstreamOpen = false
        case .destroy, .answered, .upstreamCut, .log, .dropIdleUpstreams:
            break
        }
    }

    /// A valid Odoo 17-shaped session id, last active `idleFor` ms ago.
    func session(_ n: Int = 1, idleFor: Int64 = 0) -> String {
        let id = String(repeating: String(format2: n), count: 20)
        _ = table.start(deriver.key(for: Array(id.utf8)[...]), now: clock.now() - idleFor, limits: SessionLimits(idle: config.idleTimeout))
        return id
    }

    /// A session already past its window.
    func expiredSession(_ n: Int = 1) -> String { session(n, idleFor: config.idleTimeout + 1_000) }
}

final class TunnelBox: @unchecked Sendable {
    private let lock = Mutex()
    private var value: Bool?
    func set(_ v: Bool) { lock.withLock { value = v } }
    var ended: Bool? { lock.withLock { value } }
}

final class VerdictBox: @unchecked Sendable {
    private let lock = Mutex()
    private var value: Verdict?
    func set(_ v: Verdict) { lock.withLock { value = v } }
    func get() -> Verdict? { lock.withLock { value } }
}

/// A store that holds every confirmation until told (the shape of a shared layer's round trip, with
/// the test choosing when it comes back).
final class HeldConfirmStore: SessionStore, @unchecked Sendable {
    let local: SessionTable
    private var held: [() -> Void] = []
    init(_ local: SessionTable) { self.local = local }

    func check(_ key: SessionKey, now: Int64, limits: SessionLimits, activity: Bool, unknown: UnknownSessions) -> SessionVerdict {
        local.check(key, now: now, limits: limits, activity: activity, unknown: unknown)
    }
    func start(_ key: SessionKey, now: Int64, limits: SessionLimits) -> Bool { local.start(key, now: now, limits: limits) }
    func restart(_ key: SessionKey, now: Int64, limits: SessionLimits) { local.restart(key, now: now, limits: limits) }
    func end(_ key: SessionKey, now: Int64) { local.end(key, now: now) }
    func confirm(_ key: SessionKey, _ verdict: SessionVerdict, now: Int64, limits: SessionLimits, activity: Bool, reply: @escaping @Sendable (SessionVerdict) -> Void) {
        held.append { reply(verdict) }
    }
    func sweep(now: Int64) -> Int { local.sweep(now: now) }
    var count: Int { local.count }

    func release() {
        let h = held
        held.removeAll()
        for r in h { r() }
    }
}

extension String {
    /// Two lower-case hex digits.
    init(format2 n: Int) {
        let s = String(n & 0xFF, radix: 16)
        self = s.count == 1 ? "0" + s : s
    }
}
