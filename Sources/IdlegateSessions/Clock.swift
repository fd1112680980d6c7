import Glibc

/// Where session times come from. Stored times are wall-clock Unix milliseconds (they are persisted
/// and shared between replicas), but they advance with the monotonic clock, so that a wall-clock step
/// (NTP, a VM resume) never expires every session at once or revives them. Tests inject a manual clock.
public protocol SessionClock: Sendable {
    /// Unix time in milliseconds.
    func now() -> Int64
}

/// Unix milliseconds taken once at start, advanced by CLOCK_MONOTONIC from then on.
public struct SystemSessionClock: SessionClock {
    private let wallAtStart: Int64
    private let monoAtStart: Int64

    public init() {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        wallAtStart = Int64(wall.tv_sec) * 1000 + Int64(wall.tv_nsec) / 1_000_000
        monoAtStart = Self.monotonic()
    }

    public func now() -> Int64 { wallAtStart + (Self.monotonic() - monoAtStart) }

    private static func monotonic() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

/// A clock tests move by hand.
public final class ManualClock: SessionClock, @unchecked Sendable {
    private var value: Int64
    private var lock = pthread_mutex_t()

    public init(_ start: Int64 = 1_764_000_000_000) {
        value = start
        pthread_mutex_init(&lock, nil)
    }

    public func now() -> Int64 {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return value
    }

    public func advance(seconds: Int64) { advance(millis: seconds * 1000) }

    public func advance(millis: Int64) {
        pthread_mutex_lock(&lock)
        value += millis
        pthread_mutex_unlock(&lock)
    }
}
