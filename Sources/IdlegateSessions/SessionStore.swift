/// What the table decided about one request's session.
public enum SessionVerdict: Sendable, Equatable {
    /// A session seen before and still within its limits; `idleFor` is the gap before this request, and
    /// `remaining` how long the session now has before it expires (idle window or lifetime, whichever
    /// ends first; after this request's touch, if it was activity), both in ms.
    case active(idleFor: Int64, remaining: Int64)
    /// Not seen before and adopted with a fresh clock (unknown_sessions: adopt).
    case adopted
    /// Not seen before and refused (unknown_sessions: reject).
    case unknownRefused
    /// Past its limits now: it has just been marked ended. `idleFor` is the gap that expired it.
    case expired(idleFor: Int64, reason: ExpiryReason, window: Int64)
    /// Ended earlier (expired, logged out, kicked): still refused.
    case ended
    /// The shared state cannot be read now (a shared store down, in its fail-closed mode): refused for
    /// the outage with a temporary answer; nothing is ended or destroyed.
    case unavailable
}

/// How an unknown id is treated: adopted with a fresh clock, or refused (strict kiosks).
public enum UnknownSessions: String, Sendable { case adopt, reject }

/// The session table as the request path sees it. The local lock-striped table is the fast path; a
/// shared layer for replicas (Redis, later) wraps one, consulting the shared state before a session is
/// declared expired or unknown, without changing these calls.
public protocol SessionStore: AnyObject, Sendable {
    /// Checks a session at `now` under `limits`. `activity`: whether this request counts as a person's
    /// activity (it moves the clock) or is passive (it is only checked). Expiry marks the record ended.
    func check(_ key: SessionKey, now: Int64, limits: SessionLimits, activity: Bool, unknown: UnknownSessions) -> SessionVerdict

    /// A session Odoo just created (a new `session_id` in a response): starts it with a fresh clock.
    /// A key held as ended (expired, logged out, kicked) is never started again — Odoo re-sends the
    /// cookie of whatever session it used, so starting on any `Set-Cookie` would revive an ended id —
    /// and the call returns false, changing nothing. Only a key never seen, or swept, starts fresh.
    @discardableResult
    func start(_ key: SessionKey, now: Int64, limits: SessionLimits) -> Bool

    /// Audit mode only: a session that would have expired just now is watched on with a fresh clock,
    /// replacing the ended mark the check gave it.
    func restart(_ key: SessionKey, now: Int64, limits: SessionLimits)

    /// Logout or kick: the id stays refused until swept.
    func end(_ key: SessionKey, now: Int64)

    /// Before a session is declared over (expired, ended or unknown), a shared layer consults the shared
    /// state and calls `reply` with the final verdict, possibly later and from another thread (the caller
    /// hops back to its own loop); it may find the session alive on another replica, revive the local
    /// record and reply `.active`. The local table confirms at once (the default below).
    /// `activity`: as for `check` (a session found alive elsewhere takes this request's touch).
    func confirm(_ key: SessionKey, _ verdict: SessionVerdict, now: Int64, limits: SessionLimits, activity: Bool,
                 reply: @escaping @Sendable (SessionVerdict) -> Void)

    /// Whether `.adopted` must be confirmed too (a shared layer: another replica may know the id).
    var confirmsAdoption: Bool { get }

    /// An open tunnel's session, checked passively on each tick. A shared layer asks first, before the
    /// local record is marked expired, whether another replica saw activity, and replies later, from any
    /// thread; the local table replies at once.
    func checkTunnel(_ key: SessionKey, now: Int64, limits: SessionLimits, reply: @escaping @Sendable (SessionVerdict) -> Void)

    /// Drops records no window can still need; returns how many went.
    func sweep(now: Int64) -> Int

    var count: Int { get }
}

extension SessionStore {
    public func confirm(_ key: SessionKey, _ verdict: SessionVerdict, now: Int64, limits: SessionLimits, activity: Bool,
                        reply: @escaping @Sendable (SessionVerdict) -> Void) {
        reply(verdict)
    }

    public var confirmsAdoption: Bool { false }

    public func checkTunnel(_ key: SessionKey, now: Int64, limits: SessionLimits, reply: @escaping @Sendable (SessionVerdict) -> Void) {
        reply(check(key, now: now, limits: limits, activity: false, unknown: .adopt))
    }
}
