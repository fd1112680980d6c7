import IdlegateBase
import Synchronization

/// The lock-striped in-memory session table: many stripes, each its own lock and map, so threads
/// touching different sessions never wait on each other. A touch writes one timestamp. Locks guard
/// only map operations: no I/O, no logging, no allocation beyond the map's own.
public final class SessionTable: SessionStore, @unchecked Sendable {
    /// One stripe's map, padded to two cache lines so that no two stripes' maps share a line (two
    /// threads touching different sessions never bounce a line between cores). Its lock is
    /// `locks[i]`, in a cache line of its own.
    struct Stripe {
        var map = SlotMap()
        var padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// The stripes, in one block aligned to 128 bytes. Each is reached through its own pointer, under
    /// its own lock: no Swift array is shared and mutated across threads.
    private let stripes: UnsafeMutablePointer<Stripe>
    /// One lock per stripe; the array itself never changes after init.
    private let locks: [IdlegateBase.Mutex]
    private let stripeCount: Int
    private let mask: Int
    /// Most records per stripe (`maxEntries / stripes`).
    private let perStripe: Int
    /// How long an ended record is kept so that the id stays refused (ms). Default 7 days: Odoo 16+'s
    /// own session lifetime, past which Odoo would not know the id either.
    public let tombstone: Int64
    /// The longest window any policy allows (ms): past `lastActive + longest`, a record is dead. A
    /// reload may change it.
    public var longestWindow: Int64 {
        get { longest.load(ordering: .relaxed) }
        set { longest.store(newValue, ordering: .relaxed) }
    }
    private let longest: Atomic<Int64>

    /// - maxEntries: the most sessions tracked. When a stripe is full, a new session evicts the
    ///   stripe's longest-idle eighth first (so the eviction rule is: longest idle goes first).
    /// - longestWindow: the largest idle window or lifetime of any policy.
    public init(stripes count: Int = 256, maxEntries: Int = 1_000_000, longestWindow: Int64, tombstone: Int64 = 7 * 24 * 3_600_000) {
        var n = 1
        while n < count { n <<= 1 }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Stripe>.stride, alignment: 128)
        stripes = raw.bindMemory(to: Stripe.self, capacity: n)
        for i in 0..<n { (stripes + i).initialize(to: Stripe()) }
        locks = (0..<n).map { _ in IdlegateBase.Mutex() }
        stripeCount = n
        mask = n - 1
        perStripe = max(8, maxEntries / n)
        longest = Atomic(longestWindow)
        self.tombstone = tombstone
    }

    deinit {
        stripes.deinitialize(count: stripeCount)
        UnsafeMutableRawPointer(stripes).deallocate()
    }

    /// Runs `body` on the map of `key`'s stripe with that stripe's lock held.
    @inline(__always) private func withStripe<R>(_ key: SessionKey, _ body: (inout SlotMap) -> R) -> R {
        withStripe(at: Int(truncatingIfNeeded: key.lo) & mask, body)
    }

    @inline(__always) private func withStripe<R>(at i: Int, _ body: (inout SlotMap) -> R) -> R {
        let lock = locks[i]
        lock.lock()
        defer { lock.unlock() }
        return body(&(stripes + i).pointee.map)
    }

    public func check(_ key: SessionKey, now: Int64, limits: SessionLimits, activity: Bool, unknown: UnknownSessions) -> SessionVerdict {
        let perStripe = self.perStripe
        return withStripe(key) { map in
            guard let slot = map.find(key) else {
                if unknown == .reject { return .unknownRefused }
                Self.makeRoomLocked(&map, perStripe: perStripe)
                map.insert(key, SessionRecord(started: now, lastActive: now, limits: limits))
                return .adopted
            }
            return map.update(at: slot) { r in
                if r.isEnded { return .ended }
                r.tighten(limits)
                let gap = now - r.lastActive
                if let reason = r.expiry(at: now) {
                    r.endedAt = now
                    return .expired(idleFor: gap, reason: reason, window: reason == .idle ? r.idle.millis : r.maxLifetime.millis)
                }
                if activity && gap > 0 { r.lastActive = now }  // a touch writes one timestamp
                return .active(idleFor: max(0, gap), remaining: r.remaining(at: now))
            }
        }
    }


    @discardableResult
    public func start(_ key: SessionKey, now: Int64, limits: SessionLimits) -> Bool {
        insertFresh(key, now: now, limits: limits, overEnded: false)
    }

    public func restart(_ key: SessionKey, now: Int64, limits: SessionLimits) {
        _ = insertFresh(key, now: now, limits: limits, overEnded: true)
    }

    /// A fresh record for `key`, replacing what was known unless that is an ended one and `overEnded`
    /// is false. Returns whether it went in.
    private func insertFresh(_ key: SessionKey, now: Int64, limits: SessionLimits, overEnded: Bool) -> Bool {
        let perStripe = self.perStripe
        return withStripe(key) { map in
            if let r = map[key] {
                if r.isEnded && !overEnded { return false }
            } else {
                Self.makeRoomLocked(&map, perStripe: perStripe)
            }
            map.insert(key, SessionRecord(started: now, lastActive: now, limits: limits))
            return true
        }
    }

    public func end(_ key: SessionKey, now: Int64) {
        withStripe(key) { map in
            if let slot = map.find(key) {
                map.update(at: slot) { r in if !r.isEnded { r.endedAt = now } }
            } else {
                var r = SessionRecord(started: now, lastActive: now, limits: SessionLimits(idle: 0))
                r.endedAt = now
                map.insert(key, r)
            }
        }
    }

    public func sweep(now: Int64) -> Int {
        var dropped = 0
        let longest = longestWindow, tombstone = self.tombstone
        for i in 0..<stripeCount {
            dropped += withStripe(at: i) { map in
                map.filter { r in r.isEnded ? now - r.endedAt < tombstone : now - r.lastActive <= longest + tombstone }
            }
        }
        return dropped
    }

    public var count: Int {
        (0..<stripeCount).reduce(0) { total, i in total + withStripe(at: i) { $0.count } }
    }

    /// Calls `body` with each stripe's records in turn, copied out under that stripe's lock (the lock is
    /// not held while `body` runs): snapshots and the admin listing never stall the request path for
    /// more than one stripe's copy.
    public func forEachStripe(_ body: ([(SessionKey, SessionRecord)]) throws -> Void) rethrows {
        for i in 0..<stripeCount {
            let entries = withStripe(at: i) { $0.entries }
            try body(entries)
        }
    }

    /// Puts back a record read from a snapshot, unless the sweeper would drop it at `now` or the
    /// stripe is full. Returns whether it went in.
    @discardableResult
    public func restore(_ key: SessionKey, _ record: SessionRecord, now: Int64) -> Bool {
        let keep = record.isEnded ? now - record.endedAt < tombstone : now - record.lastActive <= longestWindow + tombstone
        // The all-zero key marks an empty slot (SlotMap): no HMAC gives it, only a damaged file
        // (found by the snapshot fuzzer: it was reported restored and silently not kept).
        guard keep, key.hi != 0 || key.lo != 0 else { return false }
        let perStripe = self.perStripe
        return withStripe(key) { map in
            guard map.count < perStripe || map.find(key) != nil else { return false }
            map.insert(key, record)
            return true
        }
    }

    /// Whether `check` would find the session expired at `now` under `limits`, changing nothing.
    public func wouldExpire(_ key: SessionKey, now: Int64, limits: SessionLimits) -> Bool {
        guard var r = record(key), !r.isEnded else { return false }
        r.tighten(limits)
        return r.expiry(at: now) != nil
    }

    /// Moves a session's last activity forward to `lastActive` if that is later (never back).
    public func advance(_ key: SessionKey, lastActive: Int64) {
        withStripe(key) { map in
            if let slot = map.find(key) { map.update(at: slot) { r in if !r.isEnded && lastActive > r.lastActive { r.lastActive = lastActive } } }
        }
    }

    /// Puts `record` in place of whatever `key` had (a shared layer taking on another replica's clocks).
    public func put(_ key: SessionKey, _ record: SessionRecord) {
        let perStripe = self.perStripe
        withStripe(key) { map in
            if map.find(key) == nil { Self.makeRoomLocked(&map, perStripe: perStripe) }
            map.insert(key, record)
        }
    }

    /// The record as stored (tests, admin).
    public func record(_ key: SessionKey) -> SessionRecord? {
        withStripe(key) { $0[key] }
    }

    /// A full stripe drops its longest-idle eighth before a new record goes in. Called with the
    /// stripe's lock held.
    private static func makeRoomLocked(_ map: inout SlotMap, perStripe: Int) {
        guard map.count >= perStripe else { return }
        let victims = map.entries.sorted { $0.1.lastActive < $1.1.lastActive }.prefix(max(1, perStripe / 8))
        for (k, _) in victims { map.remove(k) }
    }
}
