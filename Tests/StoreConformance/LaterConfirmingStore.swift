import Dispatch
import IdlegateSessions

/// A store with the shape the Redis layer will have: the local table answers at once, but a verdict
/// that looks final is confirmed later, on another thread (as a round trip to Redis would be). It may
/// also be told that another replica saw the session (`seenElsewhere`): then the confirmation finds it
/// alive, revives the local record and replies `.active`.
public final class LaterConfirmingStore: SessionStore, @unchecked Sendable {
    public let local: SessionTable
    let queue = DispatchQueue(label: "later-confirming-store")
    let delayMillis: Int
    public var seenElsewhere: @Sendable (SessionKey) -> Bool = { _ in false }

    public init(local: SessionTable, delayMillis: Int = 5) {
        self.local = local
        self.delayMillis = delayMillis
    }

    public func check(_ key: SessionKey, now: Int64, limits: SessionLimits, activity: Bool, unknown: UnknownSessions) -> SessionVerdict {
        local.check(key, now: now, limits: limits, activity: activity, unknown: unknown)
    }


    public func start(_ key: SessionKey, now: Int64, limits: SessionLimits) -> Bool { local.start(key, now: now, limits: limits) }

    public func restart(_ key: SessionKey, now: Int64, limits: SessionLimits) { local.restart(key, now: now, limits: limits) }

    public func end(_ key: SessionKey, now: Int64) { local.end(key, now: now) }

    public func confirm(_ key: SessionKey, _ verdict: SessionVerdict, now: Int64, limits: SessionLimits, activity: Bool,
                        reply: @escaping @Sendable (SessionVerdict) -> Void) {
        let seen = seenElsewhere
        queue.asyncAfter(deadline: .now() + .milliseconds(delayMillis)) { [local] in
            if case .expired = verdict, seen(key) {
                local.restart(key, now: now, limits: limits)
                reply(.active(idleFor: 0, remaining: limits.maxLifetime > 0 ? min(limits.idle, limits.maxLifetime) : limits.idle))
            } else {
                reply(verdict)
            }
        }
    }

    public func sweep(now: Int64) -> Int { local.sweep(now: now) }

    public var count: Int { local.count }
}
