import CSystem
import Glibc
import IdlegateBase

/// Receives the readiness bits epoll reported for one registered fd.
public protocol EventHandler: AnyObject {
    func handleEvents(_ events: UInt32)
}

/// Readiness bits, as epoll reports them.
public enum Events {
    public static let readable = UInt32(CS_EPOLLIN)
    public static let writable = UInt32(CS_EPOLLOUT)
    public static let error = UInt32(CS_EPOLLERR)
    public static let hangup = UInt32(CS_EPOLLHUP)
    public static let readHangup = UInt32(CS_EPOLLRDHUP)
}

/// One thread, one epoll instance. Everything registered with a loop is touched only on that loop's
/// thread, so connections need no locks; other threads reach a loop only through `execute`.
///
/// Registration is edge-triggered for reading and writing at once, made once per fd: a handler reads
/// until `wouldBlock` and remembers that it may read again, instead of the loop re-arming interest with
/// an extra syscall per state change.
public final class EventLoop: @unchecked Sendable {
    private let epfd: Int32
    private let wakeFD: Int32
    private var handlers: [EventHandler?] = []
    private var pending: [@Sendable () -> Void] = []
    private let pendingLock = Mutex()
    private var running = true
    private let tickMillis: Int64
    private var nextTick: Int64

    /// Called on the loop thread about every `tickMillis` ms: where connection deadlines are checked.
    public var onTick: (Int64) -> Void = { _ in }

    /// The clock's time (Unix ms), read once per wake-up: what deadlines are measured against.
    public var now: Int64 { time.now }
    public var clock: Clock { time.clock }
    public let time: LoopTime

    public init(clock: Clock, tickMillis: Int64 = 250) throws {
        time = LoopTime(clock: clock)
        epfd = cs_epoll_create()
        guard epfd >= 0 else { throw IOError("epoll_create1") }
        wakeFD = cs_eventfd()
        guard wakeFD >= 0 else { throw IOError("eventfd") }
        self.tickMillis = tickMillis
        nextTick = time.now + tickMillis
        guard cs_epoll_add(epfd, wakeFD, UInt32(CS_EPOLLIN), UInt64(wakeFD)) == 0 else { throw IOError("epoll_ctl") }
    }

    deinit {
        Glibc.close(epfd)
        Glibc.close(wakeFD)
    }

    /// Watches `fd` for reading and writing (edge-triggered) and hands its events to `handler`.
    public func register(fd: Int32, handler: EventHandler) throws {
        let index = Int(fd)
        if index >= handlers.count {
            handlers.append(contentsOf: repeatElement(nil, count: max(index + 1 - handlers.count, handlers.count)))
        }
        handlers[index] = handler
        let bits = UInt32(CS_EPOLLIN) | UInt32(CS_EPOLLOUT) | UInt32(CS_EPOLLRDHUP) | UInt32(truncatingIfNeeded: CS_EPOLLET)
        guard cs_epoll_add(epfd, fd, bits, UInt64(fd)) == 0 else {
            handlers[index] = nil
            throw IOError("epoll_ctl add")
        }
    }

    /// Watches a listening socket shared by every loop: level-triggered, and exclusive so that one
    /// new connection wakes one loop, not all of them.
    public func registerListener(fd: Int32, handler: EventHandler) throws {
        let index = Int(fd)
        if index >= handlers.count {
            handlers.append(contentsOf: repeatElement(nil, count: max(index + 1 - handlers.count, handlers.count)))
        }
        handlers[index] = handler
        guard cs_epoll_add(epfd, fd, UInt32(CS_EPOLLIN) | UInt32(CS_EPOLLEXCLUSIVE), UInt64(fd)) == 0 else {
            handlers[index] = nil
            throw IOError("epoll_ctl add")
        }
    }

    /// Stops watching `fd`. Call before closing it.
    public func deregister(fd: Int32) {
        _ = cs_epoll_del(epfd, fd)
        if Int(fd) < handlers.count { handlers[Int(fd)] = nil }
    }

    /// Runs `task` on the loop thread, soon. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        pendingLock.withLock { pending.append(task) }
        _ = cs_eventfd_signal(wakeFD)
    }

    /// Closes the epoll fd under the loop, so that the next `epoll_wait` fails (tests of the failure path).
    /// Puts a descriptor that is not an epoll instance where the loop's epoll was, so the next
    /// `epoll_wait` fails with EINVAL. (Closing it instead raced with tests running beside: another
    /// loop's new epoll could take the freed number, and this one then waited on it forever.)
    func breakEpollForTesting() {
        let other = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
        precondition(other >= 0 && dup2(other, epfd) == epfd, "cannot replace the epoll descriptor")
        Glibc.close(other)
    }

    /// Makes `run` return after the current iteration. Call on the loop thread.
    public func stop() { running = false }

    /// Runs until `stop` is called (nil), or until epoll fails with anything but EINTR (its errno:
    /// then nothing on this loop can make progress, and the caller shuts down).
    public func run() -> Int32? {
        var events = [cs_event](repeating: cs_event(), count: 256)
        while running {
            let timeout = Int32(clamping: max(0, nextTick - now))
            let n = events.withUnsafeMutableBufferPointer { cs_epoll_wait(epfd, $0.baseAddress, 256, timeout) }
            let count = Int(n)
            if n < 0 && errno != EINTR { return errno }
            time.refresh()
            var i = 0
            while i < count {
                let token = Int(events[i].token)
                if token == Int(wakeFD) {
                    _ = cs_eventfd_drain(wakeFD)
                    runPending()
                } else if token < handlers.count, let handler = handlers[token] {
                    handler.handleEvents(events[i].events)
                }
                i += 1
            }
            if now >= nextTick {
                nextTick = now + tickMillis
                onTick(now)
            }
        }
        return nil
    }

    private func runPending() {
        let tasks = pendingLock.withLock { () -> [@Sendable () -> Void] in
            let t = pending
            pending.removeAll()
            return t
        }
        for task in tasks { task() }
    }
}

/// A loop's time, for everything that runs on the loop: its clock read once per wake-up, not once per
/// event. A concrete class, so that reading it on the hot path is one load.
public final class LoopTime: @unchecked Sendable {
    public private(set) var now: Int64
    public let clock: Clock

    public init(clock: Clock) {
        self.clock = clock
        now = clock.now()
    }

    /// Reads the clock again (the loop, on each wake-up; tests, after moving a manual clock).
    @inline(__always) public func refresh() { now = clock.now() }

    /// Monotonic nanoseconds, read now (for durations).
    @inline(__always) public func nanos() -> Int64 { clock.nanos() }
}
