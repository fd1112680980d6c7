import IdlegateAudit
import IdlegateConfig
import IdlegateHTTP
import IdlegateIO
import IdlegatePolicy
import IdlegateSessions
import Logging

/// The session check of one request: what to forward, or what to answer instead.
struct SessionDecision: Sendable {
    /// The forwarded Cookie header.
    var cookie: ForwardedCookie = .asSent
    /// Drop `X-Openerp-Session-Id` from the forwarded request.
    var stripHeader = false
    /// The forwarded target, when `?session_id=` was removed from it.
    var target: String? = nil
    /// Refuse the request as malformed (and close), before anything else.
    var refusal: HTTPParseError? = nil
    /// Answer this instead of forwarding (an expired or refused session, enforce mode).
    var answer: [UInt8]? = nil
    /// The raw id to destroy in Odoo once the answer is out (enforce mode only; never stored).
    var destroyID: String? = nil
    /// The session's key (what logs and the destroy call name it by).
    var key: SessionKey? = nil
    /// The browser-facing scheme is https (for cookie hardening).
    var https = false
    /// The policy that applied, whose limits a session Odoo creates in the response starts with.
    var limits = SessionLimits(idle: 15 * 60_000)
    var tracking = true
    /// The policy enforces (rather than audits): an open tunnel is closed when the session expires.
    var enforce = false
    /// The session a logout route ends, once Odoo has answered.
    var logoutKey: SessionKey? = nil
    /// What the path means for a session (the metrics' route label).
    var route: RouteClass = .activity
    /// The policy's name (log lines, metrics, audit events).
    var policy = "default"
    /// The client address the request is attributed to (audit events).
    var client = ""
}

/// Session enforcement, shared by every worker: the store, the key deriver, the policies. Decisions
/// are pure functions of the request and the store; the only side effects are store updates and log
/// lines (never with a raw id: sessions are named by their key).
final class SessionEnforcer: Sendable {
    let store: SessionStore
    let deriver: SessionKeyDeriver
    let clock: SessionClock
    let policies: PolicySet
    let routes: RouteClass.Table
    let hardening: CookieHardening
    let unknown: UnknownSessions
    let legacy: LegacySessionSources
    let destroyInOdoo: Bool
    let logger: Logger
    let metrics: ProxyMetrics
    let audit: Auditor

    init(config: Config, store: SessionStore, deriver: SessionKeyDeriver, clock: SessionClock, metrics: ProxyMetrics, audit: Auditor, logger: Logger) {
        self.metrics = metrics
        self.audit = audit
        self.store = store
        self.deriver = deriver
        self.clock = clock
        policies = PolicySet(config: config)
        routes = RouteClass.Table(config: config)
        hardening = CookieHardening(settings: config.cookies)
        unknown = UnknownSessions(rawValue: config.unknownSessions) ?? .adopt
        legacy = config.legacySessionSources
        destroyInOdoo = config.destroyInOdoo
        self.logger = logger
    }

    /// Decides one request. Returns the decision when it is settled now: every live session, and every
    /// verdict the local table gives alone. Returns nil when a shared layer must first confirm that a
    /// session is over: the decision then goes to the reply `later()` makes (asked for only then, so
    /// the common path allocates no closure). `client`: the address the request is attributed to
    /// (trusted X-Forwarded-For, else the peer); `https`: the browser-facing scheme; `isUpgrade`: a
    /// WebSocket handshake.
    func decide(_ head: RequestHead, path: Substring, client: [UInt8], clientText: String, https: Bool, isUpgrade: Bool, keepAlive: Bool,
                later: () -> @Sendable (SessionDecision) -> Void) -> SessionDecision? {
        var d = SessionDecision()
        d.https = https
        let fields = head.fields
        let policy = policies.policies.isEmpty ? policies.fallback
            : policies.select(client: client, host: policies.needsHost ? fields.first(.host) : nil, path: path)
        d.limits = policy.limits
        d.policy = policy.name
        d.client = clientText
        let cookie = SessionCookie(fields, isSessionID: SessionIDShape.isValid)
        if cookie.conflict {
            // Two Cookie lines whose `,` join (Odoo's HTTP port) and `; ` join (its gevent port) name
            // different sessions: no browser sends that, and no one reading can be right for both.
            d.refusal = HTTPParseError(400, "Cookie lines name different sessions on Odoo's two ports")
            return d
        }

        // Where the id comes from. Odoo ≤ 15 reads ?session_id=, then X-Openerp-Session-Id, then the
        // cookie (the first non-empty one); 16+ the cookie only. Query and header never reach Odoo: in
        // check mode the id they carried is checked and forwarded in the Cookie instead.
        var id: [UInt8]? = cookie.value
        var moved = false
        let queryID = head.target.utf8.contains(UInt8(ascii: "?")) ? Self.queryValue(head.target, "session_id") : nil
        let headerID = Self.legacyHeaderValue(fields)
        if queryID != nil { d.target = Self.removingQuery(head.target, "session_id") }
        if headerID != nil { d.stripHeader = true }
        if legacy == .check {
            if let q = queryID, !q.isEmpty {
                id = q
                moved = true
            } else if let h = headerID, !h.isEmpty {
                id = h
                moved = true
            }
        }
        let valid = id.map { SessionIDShape.isValid($0) } ?? false
        // The forwarded Cookie carries exactly the id checked, or none: the client's line as it came only
        // when it is plain and its session_id (if any) is the well-formed one checked; otherwise one line
        // idlegate built and read back itself (cookie tossing, quote games across lines or rewrites).
        d.cookie = cookie.forwarded(fields, id: id, valid: valid, moved: moved)
        if d.cookie != .asSent && (moved || cookie.value != nil) {
            audit.emit(.cookieRewritten) { e in
                Self.describe(&e, head, clientText, policy.name)
                e.reason = moved ? "id moved from query or header" : !valid ? "malformed session_id" : "several Cookie lines or an unusual spelling"
            }
        }
        let route = routes.classify(path)
        d.route = route
        guard policy.mode != .off else { d.tracking = false; return d }
        d.enforce = policy.mode == .enforce
        guard valid, let raw = id else { return d }  // anonymous, as Odoo would treat it

        let key = deriver.key(for: raw[...])
        d.key = key
        let now = clock.now()
        let verdict = store.check(key, now: now, limits: policy.limits, activity: route == .activity || route == .login, unknown: unknown)
        if route == .logout { d.logoutKey = key }
        switch verdict {
        case .active(let gap):
            if audit.enabled && gap >= audit.floor && (route == .activity || route == .login) {
                audit.emit(.activityResumed, key: key) { e in
                    Self.describe(&e, head, clientText, policy.name)
                    e.idleSeconds = gap / 1000
                    e.windowSeconds = policy.limits.idle / 1000
                }
            }
            return d
        case .adopted:
            logger.info("session \(key) first seen (adopted) from \(clientText), policy \(policy.name)")
            audit.emit(.sessionStarted, key: key) { e in
                Self.describe(&e, head, clientText, policy.name)
                e.reason = "first_seen"
            }
            return d
        default:
            // Rare: a session that looks over. The local table confirms inline; a shared layer may
            // answer later, from anywhere.
            let decided = d
            let slot = DecisionSlot()
            let reply = later()
            store.confirm(key, verdict, now: now, limits: policy.limits) { [self] final in
                let settled = self.settle(decided, final, head: head, path: path, policy: policy, route: route, key: key, raw: raw,
                                          clientText: clientText, https: https, isUpgrade: isUpgrade, keepAlive: keepAlive, now: now)
                if !slot.takeInline(settled) { reply(settled) }
            }
            return slot.close()
        }
    }

    /// The decision once the verdict is final.
    private func settle(_ decision: SessionDecision, _ verdict: SessionVerdict, head: RequestHead, path: Substring, policy: PolicySet.Policy,
                        route: RouteClass, key: SessionKey, raw: [UInt8], clientText: String, https: Bool, isUpgrade: Bool, keepAlive: Bool,
                        now: Int64) -> SessionDecision {
        var d = decision
        let fields = head.fields
        let dead: Bool
        switch verdict {
        case .active, .adopted:
            if case .adopted = verdict { logger.info("session \(key) first seen (adopted) from \(clientText), policy \(policy.name)") }
            return d
        case .expired(let idle, let reason, let window):
            dead = true
            let what = policy.mode == .enforce ? "expired" : "would_expire"
            logger.notice("session \(key) \(what): \(reason.rawValue), idle \(idle / 1000)s, window \(window / 1000)s, policy \(policy.name), \(head.method) \(path) from \(clientText)")
            metrics.expired(policy: policy.name, enforced: policy.mode == .enforce)
            audit.emit(policy.mode == .enforce ? .expired : .wouldExpire, key: key) { e in
                Self.describe(&e, head, clientText, policy.name)
                e.mode = policy.mode.rawValue
                e.idleSeconds = idle / 1000
                e.windowSeconds = window / 1000
                e.reason = reason.rawValue
            }
            if policy.mode == .audit {
                store.restart(key, now: now, limits: policy.limits)  // watched, not enforced: a fresh clock
                return d
            }
            if destroyInOdoo { d.destroyID = String(decoding: raw, as: UTF8.self) }
        case .ended:
            dead = true
            // Audit mode forwards it, but never un-ends it: a session another policy ended (or a kick,
            // or a logout) stays ended for every policy.
            if policy.mode == .audit { return d }
            // Ended without a request to act on (an open tunnel expired, a logout): destroy now.
            // Destroying an unknown session is a no-op in Odoo.
            if destroyInOdoo { d.destroyID = String(decoding: raw, as: UTF8.self) }
        case .unknownRefused:
            dead = true
            logger.notice("session \(key) refused: unknown, policy \(policy.name), \(head.method) \(path) from \(clientText)")
            audit.emit(.refused, key: key) { e in
                Self.describe(&e, head, clientText, policy.name)
                e.mode = policy.mode.rawValue
                e.reason = "unknown"
            }
            if policy.mode == .audit {
                store.start(key, now: now, limits: policy.limits)  // would be refused; watched from now on
                return d
            }
            if destroyInOdoo { d.destroyID = String(decoding: raw, as: UTF8.self) }
        }
        guard dead else { return d }
        // Login, sign-up, logout and static files are never refused (no login loops): the dead id is
        // left out and Odoo starts a fresh anonymous session.
        if route == .login || route == .staticFile || route == .logout {
            d.cookie = .canonical(fields, sessionID: nil)
            d.stripHeader = true
            return d
        }
        let clear = hardening.clearSessionCookie(https: https)
        d.answer = isUpgrade ? ExpiryResponse.refusedUpgrade(clearCookie: clear)
                             : ExpiryResponse.bytes(for: head, clearCookie: clear, keepAlive: keepAlive)
        return d
    }

    /// Whether an open tunnel's session is over (it is marked ended when it just expired).
    func tunnelSessionEnded(_ key: SessionKey, limits: SessionLimits, policy: String, client: String) -> Bool {
        let now = clock.now()
        switch store.check(key, now: now, limits: limits, activity: false, unknown: .adopt) {
        case .expired(let idle, let reason, let window):
            logger.notice("session \(key) expired: \(reason.rawValue), idle \(idle / 1000)s, window \(window / 1000)s; closing its WebSocket (4001)")
            metrics.expired(policy: policy, enforced: true)
            audit.emit(.expired, key: key) { e in
                e.client = client
                e.policy = policy
                e.mode = "enforce"
                e.path = "/websocket"
                e.idleSeconds = idle / 1000
                e.windowSeconds = window / 1000
                e.reason = reason.rawValue
            }
            return true
        case .ended:
            logger.notice("session \(key) ended; closing its WebSocket (4001)")
            return true
        default:
            return false
        }
    }

    /// A Set-Cookie from Odoo: a new session_id starts a session (login rotates the id; anonymous
    /// visitors get one too). Odoo also re-sends the request's own id (on the WebSocket 101, on many
    /// JSON-RPC answers; Odoo 19's rotation keeps the first 42 characters, so the same key): that is
    /// no new session and must not move its clock. An id held as ended is never started again: if Odoo
    /// hands one out, it was reached some way idlegate did not see, so in enforce mode the cookie is
    /// cleared towards the browser and `destroy` gets the id to end it in Odoo as well. Returns the
    /// value to send, or nil to pass it as is.
    func responseCookie(_ value: String, decision: SessionDecision, loginBody: inout [UInt8]?, json: Bool, destroy: inout (id: String, key: SessionKey)?) -> String? {
        if decision.tracking, let sid = Self.setCookieSessionID(value) {
            let key = deriver.key(for: sid[...])
            if key != decision.key {
                guard store.start(key, now: clock.now(), limits: decision.limits) else {
                    metrics.revivalsRefused.increment()
                    logger.warning("session \(key) handed out by Odoo is ended here: not revived\(decision.enforce ? "; cookie cleared, destroying it in Odoo" : "") (client \(decision.client), policy \(decision.policy))")
                    audit.emit(.revivalRefused, key: key) { e in
                        e.client = decision.client
                        e.policy = decision.policy
                        e.mode = decision.enforce ? "enforce" : "audit"
                    }
                    guard decision.enforce else { return hardening.harden(value, https: decision.https) }
                    if destroyInOdoo { destroy = (String(decoding: sid, as: UTF8.self), key) }
                    return hardening.clearSessionCookie(https: decision.https)
                }
                // A login answered with a new session: pair it with the login name the request carried.
                // The body prefix is dropped here, password and all.
                let login = loginBody.flatMap { LoginField.parse($0, json: json) }
                loginBody = nil
                if let login { audit.logins.set(key, login) }
                audit.emit(.sessionStarted, key: key) { e in
                    e.client = decision.client
                    e.policy = decision.policy
                    e.reason = "odoo"
                }
                if login != nil {
                    audit.emit(.login, key: key) { e in
                        e.client = decision.client
                        e.policy = decision.policy
                    }
                }
            }
        }
        return hardening.harden(value, https: decision.https)
    }

    /// `X-Openerp-Session-Id` as Odoo ≤ 15 reads it: several lines reach it joined with `,` (werkzeug's
    /// server), which is then no well-formed id. Nil when absent.
    static func legacyHeaderValue(_ fields: HTTPFields) -> [UInt8]? {
        var out: [UInt8]? = nil
        for i in 0..<fields.count where fields.known(at: i) == .xOpenerpSessionID {
            if out == nil { out = [] } else { out!.append(UInt8(ascii: ",")) }
            out!.append(contentsOf: fields.valueBytes(at: i))
        }
        return out
    }

    /// The request fields every event about a request carries.
    static func describe(_ e: inout AuditEvent, _ head: RequestHead, _ client: String, _ policy: String) {
        e.client = client
        e.policy = policy
        e.method = head.method
        e.path = AuditEvent.pathWithoutQueryValues(head.target)
    }

    /// The id a `Set-Cookie: session_id=…` hands out, if it is one (not a clearing, not malformed).
    static func setCookieSessionID(_ value: String) -> [UInt8]? {
        guard value.hasPrefix("session_id=") else { return nil }
        let rest = value.utf8.dropFirst(11)
        let id = Array(rest.prefix { $0 != UInt8(ascii: ";") })
        guard SessionIDShape.isValid(id) else { return nil }
        if value.lowercased().contains("max-age=0") { return nil }
        return id
    }

    /// The value of query parameter `name` (the first), percent-decoded as werkzeug decodes query
    /// strings (`%41` and `+`, names too), so that `?%73ession_id=` is no way around; nil when absent.
    static func queryValue(_ target: String, _ name: String) -> [UInt8]? {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        for pair in target.utf8[target.utf8.index(after: q)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            if percentDecode(kv[0]).elementsEqual(name.utf8) { return kv.count > 1 ? percentDecode(kv[1]) : [] }
        }
        return nil
    }

    /// The target without any parameter whose decoded name is `name`.
    static func removingQuery(_ target: String, _ name: String) -> String {
        guard let q = target.firstIndex(of: "?") else { return target }
        let kept = target[target.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).filter { pair in
            let key = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return !percentDecode(key.utf8).elementsEqual(name.utf8)
        }
        return kept.isEmpty ? String(target[..<q]) : String(target[..<q]) + "?" + kept.joined(separator: "&")
    }

    static func percentDecode<C: Collection<UInt8>>(_ s: C) -> [UInt8] {
        let b = Array(s)
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count + 0, i + 2 <= b.count - 1,
               let h = hexValue(b[i + 1]), let l = hexValue(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : b[i])
                i += 1
            }
        }
        return out
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
