import Glibc

/// The one clock: the event loops, the connection machine, the session table, the audit trail and the
/// reaper all read time through it, and tests inject a `ManualClock`.
///
/// `now()` is Unix milliseconds that advance with the monotonic clock from a wall-clock reading taken
/// once at start. Session times are stored, persisted and shared between replicas, so they must be
/// wall-clock; a wall-clock step (NTP, a VM resume) must still never expire every session at once or
/// revive them. Audit events carry the same time as the decisions they record.
public protocol Clock: Sendable {
    /// Unix time in milliseconds, never going backwards.
    func now() -> Int64
    /// A monotonic reading in nanoseconds, for durations (latency histograms, reap timing).
    func nanos() -> Int64
}

/// The system's clocks: CLOCK_REALTIME once, CLOCK_MONOTONIC from then on.
public struct SystemClock: Clock {
    private let wallAtStart: Int64
    private let monoAtStart: Int64

    public init() {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        wallAtStart = Int64(wall.tv_sec) * 1000 + Int64(wall.tv_nsec) / 1_000_000
        monoAtStart = Self.monotonicNanos() / 1_000_000
    }

    @inline(__always) public func now() -> Int64 { wallAtStart + (Self.monotonicNanos() / 1_000_000 - monoAtStart) }

    @inline(__always) public func nanos() -> Int64 { Self.monotonicNanos() }

    @inline(__always) static func monotonicNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// A clock tests move by hand.
public final class ManualClock: Clock, @unchecked Sendable {
    private var value: Int64
    private let lock = Mutex()

    public init(_ start: Int64 = 1_764_000_000_000) { value = start }

    public func now() -> Int64 { lock.withLock { value } }
    public func nanos() -> Int64 { now() * 1_000_000 }

    public func advance(seconds: Int64) { advance(millis: seconds * 1000) }
    public func advance(millis: Int64) { lock.withLock { value += millis } }
}
