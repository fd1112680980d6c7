/// The limits a request's policy puts on its session, in milliseconds (0 = no absolute lifetime).
public struct SessionLimits: Sendable, Equatable {
    public var idle: Int64
    public var maxLifetime: Int64

    public init(idle: Int64, maxLifetime: Int64 = 0) {
        self.idle = idle
        self.maxLifetime = maxLifetime
    }
}

/// What idlegate remembers of one session: 32 bytes, no id, no name.
public struct SessionRecord: Sendable, Equatable {
    /// When the session was first seen or logged in (Unix ms).
    public var started: Int64
    /// The last request a person caused (Unix ms); passive traffic never moves it.
    public var lastActive: Int64
    /// The strictest idle window this session has been held to, in ms: it can shrink, never grow, so a
    /// cookie carried from a kiosk to another network keeps the kiosk's window.
    public var idle: Int32Millis
    /// The strictest absolute lifetime, in ms; 0 = none.
    public var maxLifetime: Int32Millis
    /// Set once the session expired, was logged out or kicked: the id stays refused until swept, so
    /// that replaying it never revives it.
    public var endedAt: Int64

    public init(started: Int64, lastActive: Int64, limits: SessionLimits) {
        self.started = started
        self.lastActive = lastActive
        idle = Int32Millis(limits.idle)
        maxLifetime = Int32Millis(limits.maxLifetime)
        endedAt = 0
    }

    public var isEnded: Bool { endedAt != 0 }

    /// Holds the session to `limits` from now on, if they are stricter.
    public mutating func tighten(_ limits: SessionLimits) {
        // Compared in milliseconds: the stored form is negative (seconds) above ~24.8 days.
        if limits.idle < idle.millis { idle = Int32Millis(limits.idle) }
        let m = limits.maxLifetime
        if m != 0 && (maxLifetime.millis == 0 || m < maxLifetime.millis) { maxLifetime = Int32Millis(m) }
    }

    /// How long the session has left at `now` before its idle window or its lifetime ends (ms, ≥ 0).
    public func remaining(at now: Int64) -> Int64 {
        var left = idle.millis - (now - lastActive)
        if maxLifetime.value != 0 { left = min(left, maxLifetime.millis - (now - started)) }
        return max(0, left)
    }

    /// Why the session is over at `now`, if it is.
    public func expiry(at now: Int64) -> ExpiryReason? {
        if now - lastActive > idle.millis { return .idle }
        if maxLifetime.value != 0 && now - started > maxLifetime.millis { return .lifetime }
        return nil
    }
}

public enum ExpiryReason: String, Sendable { case idle, lifetime }

/// A duration in milliseconds stored in 32 bits as seconds×1000 up to ~24 days, then in seconds: keeps
/// the record at 32 bytes. (Windows are minutes to hours; lifetimes hours to days.)
public struct Int32Millis: Sendable, Equatable {
    /// Milliseconds when non-negative; minus seconds when negative.
    let value: Int32

    /// The stored form, as snapshots write it.
    init(raw: Int32) { value = raw }

    public init(_ millis: Int64) {
        if millis <= Int64(Int32.max) {
            value = Int32(max(0, millis))
        } else {
            value = -Int32(clamping: millis / 1000)
        }
    }

    public var millis: Int64 { value >= 0 ? Int64(value) : -Int64(value) * 1000 }
}
