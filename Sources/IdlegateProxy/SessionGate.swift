import IdlegateAudit
import IdlegateBase
import IdlegateHTTP
import IdlegatePolicy
import IdlegateSessions
import Logging

/// Carries out the session check (`SessionCheck`, pure) against the shared store: asks the store,
/// confirms verdicts that look final, and turns what a verdict says into store changes, audit events,
/// log lines and metrics — in this one place. Shared by every worker; a reload makes a new one.
final class SessionGate: Sendable {
    let store: SessionStore
    let deriver: SessionKeyDeriver
    let clock: Clock
    let rules: SessionRules
    let logger: Logger
    let metrics: ProxyMetrics
    let audit: Auditor
    /// Read once: whether the store confirms adoptions (a shared layer).
    let confirmsAdoption: Bool

    init(rules: SessionRules, store: SessionStore, deriver: SessionKeyDeriver, clock: Clock, metrics: ProxyMetrics, audit: Auditor, logger: Logger) {
        self.rules = rules
        self.store = store
        confirmsAdoption = store.confirmsAdoption
        self.deriver = deriver
        self.clock = clock
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
    }

    /// Decides one request. Returns the verdict when it is settled now: every live session, and every
    /// verdict the local table gives alone. Returns nil when the store confirms later (a shared layer
    /// asking whether another replica saw the session): the verdict then goes to the reply `later()`
    /// makes, from any thread (asked for only then, so the common path allocates no closure).
    /// `keys`: the calling worker's cache of this gate's deriver; `now`: the time its loop read when it
    /// woke (nil: the gate's clock is read).
    func decide(_ r: SessionRequest, keys: SessionKeyCache, now loopNow: Int64? = nil, later: () -> @Sendable (Verdict) -> Void) -> Verdict? {
        var verdict = Verdict()
        let query = SessionCheck.check(r, rules: rules, into: &verdict) { keys.key(for: $0) }
        guard let query else {
            finish(verdict, r)
            return consume verdict
        }
        let now = loopNow ?? clock.now()
        let answer = store.check(query.key, now: now, limits: query.limits, activity: query.activity, unknown: query.unknown)
        guard SessionCheck.needsConfirmation(answer, adoption: confirmsAdoption) else {
            SessionCheck.settle(&verdict, answer, r, rules: rules)
            finish(verdict, r)
            return consume verdict
        }
        // Rare: a session that looks over. The local table confirms inline; a shared layer may answer
        // later, from anywhere.
        let slot = LateSlot<Verdict>()
        let reply = later()
        let first = verdict
        store.confirm(query.key, answer, now: now, limits: query.limits, activity: query.activity) { [self] final in
            var settled = first
            SessionCheck.settle(&settled, final, r, rules: rules)
            finish(settled, r)
            if !slot.takeInline(settled) { reply(settled) }
        }
        return slot.close()
    }

    /// Applies what the verdict says besides its answer: the store change and the events.
    private func finish(_ d: borrowing Verdict, _ r: SessionRequest) {
        if let change = d.storeChange { apply(change) }
        for e in d.events { record(e, d, method: r.head.method, path: r.path, target: r.head.target) }
    }

    func apply(_ change: StoreChange) {
        switch change {
        case .restart(let key, let limits): store.restart(key, now: clock.now(), limits: limits)
        case .start(let key, let limits): store.start(key, now: clock.now(), limits: limits)
        case .end(let key): store.end(key, now: clock.now())
        }
    }

    /// A `Set-Cookie` from Odoo on its way to the browser: the value to send (nil: as it came) and, for a
    /// revival refused in enforce mode, the session to destroy in Odoo. A login request's body prefix
    /// (`loginBody`) is read for the login name and dropped here, password and all.
    func responseCookie(_ value: String, of d: Verdict, loginBody: inout [UInt8]?, json: Bool, method: String, path: Substring) -> (String?, DestroyOrder?) {
        let new = SessionCheck.newSession(in: value, of: d) { deriver.key(for: $0) }
        var started = false
        var login: String? = nil
        if let new {
            started = store.start(new.key, now: clock.now(), limits: d.limits)
            if started {
                login = loginBody.flatMap { LoginField.parse($0, json: json) }
                loginBody = nil
            }
        }
        let (out, events, destroy) = SessionCheck.setCookie(value, of: d, new: new, started: started, login: login, rules: rules)
        for e in events { record(e, d, method: method, path: path) }
        return (out, destroy)
    }

    /// A logout route answered by Odoo with `status`.
    func logoutAnswered(_ d: Verdict, status: Int, method: String, path: Substring) {
        guard let (change, event) = SessionCheck.logoutAnswered(d, status: status) else { return }
        apply(change)
        record(event, d, method: method, path: path)
    }

    /// Whether an open tunnel's session is over (it is marked ended when it just expired): now, or nil
    /// when a shared store answers later, through the reply `later()` makes (from any thread).
    func tunnelSessionEnded(of d: Verdict, later: () -> @Sendable (Bool) -> Void) -> Bool? {
        guard let key = d.key else { return false }
        let slot = LateSlot<Bool>()
        let reply = later()
        store.checkTunnel(key, now: clock.now(), limits: d.limits) { [self] answer in
            let (close, event) = SessionCheck.tunnel(answer)
            if close {
                if let event {
                    store.end(key, now: clock.now())  // tells a shared store's other replicas (a no-op in the table)
                    record(event, d, method: "GET", path: "/websocket")
                } else {
                    logger.notice("session \(key) ended; closing its WebSocket (4001)")
                }
            }
            if !slot.takeInline(close) { reply(close) }
        }
        return slot.close()
    }

    // MARK: events → log lines, metrics, audit events

    /// The one translation of a session event into what operators see. `path` has no query (log lines);
    /// audit events get the request's `target` with its query values removed, worked out only when there
    /// is an audit log to write to.
    private func record(_ e: SessionEvent, _ d: Verdict, method: String, path: Substring, target: String? = nil) {
        func describe(_ a: inout AuditEvent) {
            a.client = d.client
            a.policy = d.policy
            a.method = method
            a.path = target.map(AuditEvent.pathWithoutQueryValues) ?? String(path)
        }
        let key = d.key
        switch e {
        case .cookieRewritten(let reason):
            audit.emit(.cookieRewritten) { a in
                describe(&a)
                a.reason = reason
            }
        case .activityResumed(let idle, let window):
            audit.emit(.activityResumed, key: key) { a in
                describe(&a)
                a.idleSeconds = idle / 1000
                a.windowSeconds = window / 1000
            }
        case .firstSeen:
            logger.info("session \(key.map(\.description) ?? "-") first seen (adopted) from \(d.client), policy \(d.policy)")
            audit.emit(.sessionStarted, key: key) { a in
                describe(&a)
                a.reason = "first_seen"
            }
        case .expired(let idle, let reason, let window, let enforced):
            logger.notice("session \(key.map(\.description) ?? "-") \(enforced ? "expired" : "would_expire"): \(reason.rawValue), idle \(idle / 1000)s, window \(window / 1000)s, policy \(d.policy), \(method) \(path) from \(d.client)")
            metrics.expired(policy: d.policy, enforced: enforced)
            audit.emit(enforced ? .expired : .wouldExpire, key: key) { a in
                describe(&a)
                a.mode = enforced ? "enforce" : "audit"
                a.idleSeconds = idle / 1000
                a.windowSeconds = window / 1000
                a.reason = reason.rawValue
            }
        case .tunnelExpired(let idle, let reason, let window):
            logger.notice("session \(key.map(\.description) ?? "-") expired: \(reason.rawValue), idle \(idle / 1000)s, window \(window / 1000)s; closing its WebSocket (4001)")
            metrics.expired(policy: d.policy, enforced: true)
            audit.emit(.expired, key: key) { a in
                a.client = d.client
                a.policy = d.policy
                a.mode = "enforce"
                a.path = "/websocket"
                a.idleSeconds = idle / 1000
                a.windowSeconds = window / 1000
                a.reason = reason.rawValue
            }
        case .unknownRefused(let enforced):
            logger.notice("session \(key.map(\.description) ?? "-") refused: unknown, policy \(d.policy), \(method) \(path) from \(d.client)")
            audit.emit(.refused, key: key) { a in
                describe(&a)
                a.mode = enforced ? "enforce" : "audit"
                a.reason = "unknown"
            }
        case .revivalRefused(let newKey, let enforced):
            metrics.revivalsRefused.increment()
            logger.warning("session \(newKey) handed out by Odoo is ended here: not revived\(enforced ? "; cookie cleared, destroying it in Odoo" : "") (client \(d.client), policy \(d.policy))")
            audit.emit(.revivalRefused, key: newKey) { a in
                a.client = d.client
                a.policy = d.policy
                a.mode = enforced ? "enforce" : "audit"
            }
        case .started(let newKey, let login):
            if let login { audit.logins.set(newKey, login) }
            audit.emit(.sessionStarted, key: newKey) { a in
                a.client = d.client
                a.policy = d.policy
                a.reason = "odoo"
            }
            if login != nil {
                audit.emit(.login, key: newKey) { a in
                    a.client = d.client
                    a.policy = d.policy
                }
            }
        case .storeUnavailable(let enforced):
            if enforced { metrics.storeRefusals.increment() }
            logger.info("session \(key.map(\.description) ?? "-") \(enforced ? "refused" : "forwarded"): shared session store unavailable (fail_closed), \(method) \(path) from \(d.client)")
        case .loggedOut(let status):
            audit.emit(.logout, key: d.logoutKey) { a in
                describe(&a)
                a.status = status
            }
        }
    }
}

/// Where an answer lands if it comes while the asking call is still running (the local table); after
/// that, the caller is told to wait for a hop back to its loop.
final class LateSlot<Value>: @unchecked Sendable {
    private let lock = Mutex()
    private var open = true
    private var verdict: Value?

    /// Keeps the answer if the asking call has not returned yet; false when it must go the long way.
    func takeInline(_ v: Value) -> Bool {
        lock.withLock {
            guard open else { return false }
            verdict = v
            return true
        }
    }

    /// The asking call returns: the answer if it came inline.
    func close() -> Value? {
        lock.withLock {
            open = false
            return verdict
        }
    }
}

