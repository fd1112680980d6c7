import Glibc

/// The one lock type: a pthread mutex in memory of its own, so its address never moves (an inout of
/// a stored property is only guaranteed for the length of the call, which a mutex cannot live with).
/// pthread rather than a futex of our own so that ThreadSanitizer sees every acquire and release.
/// Each mutex has a cache line to itself, so the session table's stripes never share one.
public final class Mutex: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(64, MemoryLayout<pthread_mutex_t>.size), alignment: 64)
            .bindMemory(to: pthread_mutex_t.self, capacity: 1)
        pthread_mutex_init(pointer, nil)
    }

    deinit {
        pthread_mutex_destroy(pointer)
        UnsafeMutableRawPointer(pointer).deallocate()
    }

    @inline(__always) public func lock() { pthread_mutex_lock(pointer) }
    @inline(__always) public func unlock() { pthread_mutex_unlock(pointer) }

    @inline(__always) public func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(pointer)
        defer { pthread_mutex_unlock(pointer) }
        return try body()
    }
}

/// A condition variable that waits with a `Mutex` held, timed on the monotonic clock (a wall-clock
/// step never shortens or stretches a wait).
public final class Condition: @unchecked Sendable {
    private let pointer: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        pointer = .allocate(capacity: 1)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(pointer, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(pointer)
        pointer.deallocate()
    }

    public func signal() { pthread_cond_signal(pointer) }

    /// Waits (with `mutex` locked by the caller) until signalled or `millis` passed; true on timeout.
    public func wait(_ mutex: Mutex, millis: Int64) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let nsec = Int(ts.tv_nsec) + Int(millis % 1000) * 1_000_000
        ts.tv_sec += Int(millis / 1000) + nsec / 1_000_000_000
        ts.tv_nsec = nsec % 1_000_000_000
        return pthread_cond_timedwait(pointer, mutex.pointer, &ts) == ETIMEDOUT
    }
}
