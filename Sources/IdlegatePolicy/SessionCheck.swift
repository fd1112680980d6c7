import IdlegateHTTP
import IdlegateSessions

/// The session check's own settings: built from the configuration by the proxy, never the whole of it.
public struct SessionRules: Sendable {
    /// Where older Odoo also reads the session id (`?session_id=`, `X-Openerp-Session-Id`).
    public enum LegacySources: Sendable { case strip, check }

    public let policies: PolicySet
    public let routes: RouteClass.Table
    public let hardening: CookieHardening
    public let unknown: UnknownSessions
    public let legacy: LegacySources
    /// Expired, refused and revived sessions are also destroyed in Odoo.
    public let destroyInOdoo: Bool
    /// A person's request after at least this long idle is an `activityResumed` event (ms); `.max` for
    /// none (no audit log to write it to).
    public let activityFloor: Int64

    public init(policies: PolicySet, routes: RouteClass.Table, hardening: CookieHardening, unknown: UnknownSessions,
                legacy: LegacySources, destroyInOdoo: Bool, activityFloor: Int64) {
        self.policies = policies
        self.routes = routes
        self.hardening = hardening
        self.unknown = unknown
        self.legacy = legacy
        self.destroyInOdoo = destroyInOdoo
        self.activityFloor = activityFloor
    }
}

/// What a request's session check found worth telling: the proxy turns each into an audit event, a
/// log line or a metric. Sessions are named by key; nothing here carries a raw id.
public enum SessionEvent: Sendable, Equatable {
    /// The forwarded Cookie is idlegate's own line, not the client's.
    case cookieRewritten(reason: String)
    /// A person came back after at least the activity floor.
    case activityResumed(idle: Int64, window: Int64)
    /// A session idlegate had not seen, adopted with a fresh clock.
    case firstSeen
    /// Past its window or lifetime (`enforced` false: audit mode, it would have been).
    case expired(idle: Int64, reason: ExpiryReason, window: Int64, enforced: Bool)
    /// An open tunnel's session expired (its HTTP requests stopped; frames never count): closed with 4001.
    case tunnelExpired(idle: Int64, reason: ExpiryReason, window: Int64)
    /// An id never seen before, refused (`unknown_sessions: reject`).
    case unknownRefused(enforced: Bool)
    /// Odoo handed out an id held as ended here: it stays ended.
    case revivalRefused(key: SessionKey, enforced: Bool)
    /// Odoo started a session (a login when `login` is set).
    case started(key: SessionKey, login: String?)
    /// Odoo answered a logout route: the session is over.
    case loggedOut(status: Int)
    /// The shared session store could not be read (fail-closed: the request got a temporary refusal).
    case storeUnavailable(enforced: Bool)
}

/// A change to the session store that a decision implies, carried out by the proxy.
public enum StoreChange: Sendable, Equatable {
    /// Audit mode: a session that would have expired is watched on with a fresh clock.
    case restart(SessionKey, SessionLimits)
    /// Audit mode: an unknown id that would have been refused is watched from now on.
    case start(SessionKey, SessionLimits)
    /// A logout route answered, or a session expired in enforce mode: the session is ended.
    case end(SessionKey)
}

/// The order to end a session in Odoo too: the one place a raw session id leaves the check.
public struct DestroyOrder: Sendable, Equatable {
    public let id: String
    public let key: SessionKey
}

/// What the store is asked about a request's session.
public struct StoreQuery: Sendable, Equatable {
    public let key: SessionKey
    public let limits: SessionLimits
    /// Whether the request counts as a person's activity (it moves the clock).
    public let activity: Bool
    public let unknown: UnknownSessions
}

/// The decision about one request, as data: forward (and how) or answer, the events to emit, the store
/// change and at most one destroy order. Made by `SessionCheck`, carried out by the proxy.
public struct Verdict: Sendable {
    public enum Action: Sendable, Equatable {
        case forward
        /// Answer this instead of forwarding (an expired or refused session, enforce mode).
        case answer(status: Int, response: [UInt8])
        /// A malformed request: this status, then close.
        case refuse(status: Int, reason: String)
    }

    public var action = Action.forward
    /// The forwarded Cookie header.
    public var cookie: ForwardedCookie = .asSent
    /// Drop `X-Openerp-Session-Id` from the forwarded request.
    public var stripHeader = false
    /// The forwarded target, when `?session_id=` was removed from it.
    public var target: String? = nil
    /// The session's key, when the request named a well-formed id.
    public var key: SessionKey? = nil
    /// The browser-facing scheme is https (for cookie hardening).
    public var https = false
    /// The policy's limits: a session Odoo creates in the response starts with them.
    public var limits = SessionLimits(idle: 15 * 60_000)
    public var mode = PolicySet.Mode.enforce
    /// The session a logout route ends, once Odoo has answered it.
    public var logoutKey: SessionKey? { route == .logout ? key : nil }
    /// What the path means for a session (the metrics' route label).
    public var route = RouteClass.activity
    /// The policy's name (log lines, metrics, audit events).
    public var policy = "default"
    /// The kiosk screen guard's warning time (ms), when the policy guards this request's pages (enforce only).
    public var screenGuard: Int64? = nil
    /// What the store said of a live session: how long it has left before it expires (ms).
    public var remaining: Int64? = nil
    /// The client address the request is attributed to (audit events, log lines).
    public var client = ""
    public var events: [SessionEvent] = []
    public var storeChange: StoreChange? = nil
    public var destroy: DestroyOrder? = nil

    public init() {}

    /// Sessions are tracked (the policy is not `off`).
    public var tracking: Bool { mode != .off }
    /// An open tunnel of this session is closed when the session expires.
    public var enforce: Bool { mode == .enforce }
}

/// A request as the session check sees it (a class: the machine hands it to the gate, and a late
/// verdict's closure holds it, without copying its head, path and addresses).
public final class SessionRequest: Sendable {
    public let head: RequestHead
    /// The path, without the query.
    public let path: Substring
    /// The address the request is attributed to (a trusted proxy's X-Forwarded-For, else the peer): 4
    /// or 16 bytes, and as text.
    public let client: [UInt8]
    public let clientText: String
    /// The browser-facing scheme is https.
    public let https: Bool
    /// A WebSocket handshake idlegate would tunnel.
    public let isUpgrade: Bool
    /// The client keeps the connection after an answer idlegate makes itself.
    public let keepAlive: Bool

    public init(head: RequestHead, path: Substring, client: [UInt8], clientText: String, https: Bool, isUpgrade: Bool, keepAlive: Bool) {
        self.head = head
        self.path = path
        self.client = client
        self.clientText = clientText
        self.https = https
        self.isUpgrade = isUpgrade
        self.keepAlive = keepAlive
    }
}

/// Where a request's session id comes from. Odoo ≤ 15 reads ?session_id=, then X-Openerp-Session-Id,
/// then the cookie (the first non-empty one); 16+ the cookie only. Query and header never reach Odoo: in
/// check mode the id they carried is checked and forwarded in the Cookie instead.
struct IDSource {
    let cookie: SessionCookie
    let queryID: [UInt8]?
    let headerID: [UInt8]?
    /// The id checked (not yet known to be well-formed), nil when none.
    let id: ArraySlice<UInt8>?
    /// It came from the query or the header, not the cookie.
    let moved: Bool

    /// (A function, not an init: it borrows the head rather than taking a copy.)
    static func read(_ head: borrowing RequestHead, legacy: SessionRules.LegacySources) -> IDSource {
        let cookie = SessionCookie(head.fields, isSessionID: SessionIDShape.isValid)
        let queryID = FormEncoding.queryValue(of: "session_id", in: head.target)
        let headerID = SessionCheck.legacyHeaderValue(head.fields)
        if legacy == .check, let q = queryID, !q.isEmpty {
            return IDSource(cookie: cookie, queryID: queryID, headerID: headerID, id: q[...], moved: true)
        } else if legacy == .check, let h = headerID, !h.isEmpty {
            return IDSource(cookie: cookie, queryID: queryID, headerID: headerID, id: h[...], moved: true)
        }
        return IDSource(cookie: cookie, queryID: queryID, headerID: headerID, id: cookie.value, moved: false)
    }
}

/// The session decision as pure functions: of the request, the rules and the store's answer. No store,
/// clock, log or socket is reached from here; what should happen is returned, as a `Verdict`.
public enum SessionCheck {
    /// The first half: which session, which policy, what to forward (written into `d`, a fresh
    /// `Verdict`: filled in place, as it is large), and what to ask the store (nil: nothing to ask: an
    /// anonymous request, a policy that is off, a refusal).
    public static func check(_ r: SessionRequest, rules: SessionRules, into d: inout Verdict,
                             key deriveKey: (ArraySlice<UInt8>) -> SessionKey) -> StoreQuery? {
        d.https = r.https
        let fields = r.head.fields
        let policies = rules.policies
        let policy = policies.policies.isEmpty ? policies.fallback
            : policies.select(client: r.client, host: policies.needsHost ? fields.first(.host) : nil, path: r.path)
        d.limits = policy.limits
        d.policy = policy.name
        d.mode = policy.mode
        d.screenGuard = policy.mode == .enforce ? policy.screenGuard : nil
        d.client = r.clientText
        let source = IDSource.read(r.head, legacy: rules.legacy)
        if source.cookie.conflict {
            // Two Cookie lines whose `,` join (Odoo's HTTP port) and `; ` join (its gevent port) name
            // different sessions: no browser sends that, and no one reading can be right for both.
            d.action = .refuse(status: 400, reason: "Cookie lines name different sessions on Odoo's two ports")
            return nil
        }
        if source.queryID != nil { d.target = FormEncoding.removingQuery("session_id", from: r.head.target) }
        if source.headerID != nil { d.stripHeader = true }
        let moved = source.moved  // (the cookie and the id are read from `source` in place: no copies)
        let valid = source.id.map { SessionIDShape.isValid($0) } ?? false
        // The forwarded Cookie carries exactly the id checked, or none: the client's line as it came only
        // when it is plain and its session_id (if any) is the well-formed one checked; otherwise one line
        // idlegate built and read back itself (cookie tossing, quote games across lines or rewrites).
        d.cookie = source.cookie.forwarded(fields, id: source.id, valid: valid, moved: moved)
        if d.cookie != .asSent && (moved || source.cookie.value != nil) {
            d.events.append(.cookieRewritten(reason: moved ? "id moved from query or header"
                                                    : !valid ? "malformed session_id" : "several Cookie lines or an unusual spelling"))
        }
        let route = rules.routes.classify(r.path)
        d.route = route
        guard policy.mode != .off, valid, let raw = source.id else { return nil }  // anonymous, as Odoo would treat it
        let key = deriveKey(raw)
        d.key = key
        return StoreQuery(key: key, limits: policy.limits, activity: route == .activity || route == .login, unknown: rules.unknown)
    }

    /// Whether the store's first answer is final: a live or adopted session needs no confirmation; one
    /// that looks over is confirmed first (a shared layer may know newer activity).
    /// `adoption`: the store confirms `.adopted` too (a shared layer: another replica may know the id).
    public static func needsConfirmation(_ answer: SessionVerdict, adoption: Bool = false) -> Bool {
        switch answer {
        case .active, .unavailable: return false
        case .adopted: return adoption
        case .expired, .ended, .unknownRefused: return true
        }
    }

    /// The second half: the decision once the store's answer is final (completed in place: a verdict
    /// is large, and this is every tracked request's path).
    public static func settle(_ d: inout Verdict, _ answer: SessionVerdict, _ r: SessionRequest, rules: SessionRules) {
        guard let key = d.key else { return }
        switch answer {
        case .active(let gap, let remaining):
            d.remaining = remaining
            if gap >= rules.activityFloor && (d.route == .activity || d.route == .login) {
                d.events.append(.activityResumed(idle: gap, window: d.limits.idle))
            }
            return
        case .adopted:
            d.events.append(.firstSeen)
            d.remaining = d.limits.maxLifetime > 0 ? min(d.limits.idle, d.limits.maxLifetime) : d.limits.idle
            return
        case .expired(let idle, let reason, let window):
            d.events.append(.expired(idle: idle, reason: reason, window: window, enforced: d.enforce))
            if !d.enforce {
                d.storeChange = .restart(key, d.limits)  // watched, not enforced: a fresh clock
                return
            }
            // The table marked it ended as it answered; ending it through the store again (a no-op
            // there) is what tells a shared layer's other replicas.
            d.storeChange = .end(key)
        case .unavailable:
            // Nothing is ended or destroyed: the session may be alive. Static files need no session.
            guard d.route != .staticFile else { return }
            d.events.append(.storeUnavailable(enforced: d.enforce))
            guard d.enforce else { return }
            d.action = .answer(status: 503, response: ExpiryResponse.storeUnavailable(keepAlive: r.keepAlive))
            return
        case .ended:
            // Audit mode forwards it, but never un-ends it: a session another policy ended (or a kick,
            // or a logout) stays ended for every policy.
            if !d.enforce { return }
        case .unknownRefused:
            d.events.append(.unknownRefused(enforced: d.enforce))
            if !d.enforce {
                d.storeChange = .start(key, d.limits)  // would be refused; watched from now on
                return
            }
        }
        // Over, in enforce mode. Destroying it in Odoo too is harmless when Odoo no longer knows it.
        if rules.destroyInOdoo, let raw = IDSource.read(r.head, legacy: rules.legacy).id {  // read again: rare, and it keeps the verdict small
            d.destroy = DestroyOrder(id: String(decoding: raw, as: UTF8.self), key: key)
        }
        // Login, sign-up, logout and static files are never refused (no login loops): the dead id is
        // left out and Odoo starts a fresh anonymous session.
        if d.route == .login || d.route == .staticFile || d.route == .logout {
            d.cookie = .canonical(r.head.fields, sessionID: nil)
            d.stripHeader = true
            return
        }
        let clear = rules.hardening.clearSessionCookie(https: d.https)
        d.action = r.isUpgrade ? .answer(status: 403, response: ExpiryResponse.refusedUpgrade(clearCookie: clear))
                               : ExpiryResponse.answer(for: r.head, clearCookie: clear, keepAlive: r.keepAlive)
    }

    /// A logout route's answer from Odoo: below 400 the session is over.
    public static func logoutAnswered(_ d: Verdict, status: Int) -> (StoreChange, SessionEvent)? {
        guard status < 400, let key = d.logoutKey else { return nil }
        return (.end(key), .loggedOut(status: status))
    }

    /// A new session in a `Set-Cookie` from Odoo: the id it hands out, when it is a session other than
    /// the request's own (Odoo re-sends the request's id on the WebSocket 101 and on many JSON-RPC
    /// answers; Odoo 19's rotation keeps the first 42 characters, so the same key).
    public static func newSession(in setCookie: String, of d: Verdict, key deriveKey: (ArraySlice<UInt8>) -> SessionKey) -> (id: [UInt8], key: SessionKey)? {
        guard d.tracking, let sid = setCookieSessionID(setCookie) else { return nil }
        let key = deriveKey(sid[...])
        return key == d.key ? nil : (sid, key)
    }

    /// What the browser gets for a `Set-Cookie` from Odoo, and what to record: hardened as every other;
    /// for a new session the store refused to start (it is held as ended: Odoo was reached some way
    /// idlegate did not see), in enforce mode the cookie is cleared and the session destroyed in Odoo.
    /// Returns the value to send (nil: as it came), the events, and a destroy order.
    public static func setCookie(_ value: String, of d: Verdict, new: (id: [UInt8], key: SessionKey)?, started: Bool, login: String?,
                                 rules: SessionRules) -> (value: String?, events: [SessionEvent], destroy: DestroyOrder?) {
        guard let new else { return (rules.hardening.harden(value, https: d.https), [], nil) }
        if !started {
            let events = [SessionEvent.revivalRefused(key: new.key, enforced: d.enforce)]
            guard d.enforce else { return (rules.hardening.harden(value, https: d.https), events, nil) }
            let destroy = rules.destroyInOdoo ? DestroyOrder(id: String(decoding: new.id, as: UTF8.self), key: new.key) : nil
            return (rules.hardening.clearSessionCookie(https: d.https), events, destroy)
        }
        return (rules.hardening.harden(value, https: d.https), [.started(key: new.key, login: login)], nil)
    }

    /// An open tunnel's session, checked passively on each tick: whether to close it with 4001, and
    /// the event to emit (an expiry noticed now).
    public static func tunnel(_ answer: SessionVerdict) -> (close: Bool, event: SessionEvent?) {
        switch answer {
        case .expired(let idle, let reason, let window):
            return (true, .tunnelExpired(idle: idle, reason: reason, window: window))
        case .ended:
            return (true, nil)
        case .active, .adopted, .unknownRefused, .unavailable:
            return (false, nil)
        }
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

    /// The id a `Set-Cookie: session_id=…` hands out, if it is one (not a clearing, not malformed).
    static func setCookieSessionID(_ value: String) -> [UInt8]? {
        guard value.hasPrefix("session_id=") else { return nil }
        let id = Array(value.utf8.dropFirst(11).prefix { $0 != UInt8(ascii: ";") })
        guard SessionIDShape.isValid(id) else { return nil }
        if value.lowercased().contains("max-age=0") { return nil }
        return id
    }
}
