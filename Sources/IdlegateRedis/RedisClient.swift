import Dispatch
import Glibc
import IdlegateBase
import IdlegateIO
import IdlegateTLS
import Synchronization

/// Redis, reached from a thread of its own: an event loop (the proxy's epoll machinery) holding a small
/// pool of pipelined connections and, optionally, one subscriber. Proxy threads never wait on it: they
/// hand it work with `request` and get the reply on this thread, later. Every command has a deadline
/// (`timeout`); a connection that misses one is closed, its commands fail (reply nil) and it is opened
/// again with a backoff. "Up" means at least one pooled connection is logged in and answering.
public final class RedisClient: @unchecked Sendable {
    public struct Settings: Sendable {
        public var url: RedisURL
        /// The CA bundle for `rediss://` (nil: the system's).
        public var caFile: String?
        public var poolSize = 2
        /// A command's deadline, and a connect-and-login's (ms).
        public var timeout: Int64 = 200
        public var connectTimeout: Int64 = 1_000
        /// Commands each pooled connection sends after logging in (script loads).
        public var login: [[String]] = []
        /// The channel the subscriber listens on; nil: no subscriber.
        public var channel: String?

        public init(url: RedisURL) { self.url = url }
    }
    public typealias Reply = (RESPValue?) -> Void

    public let settings: Settings
    public let loop: EventLoop
    private let tls: TLSClient?
    private var pool: [RedisConnection?]
    private var retryAt: [Int64]
    private var backoff: [Int64]
    private var next = 0
    private var subscriber: RedisConnection?
    private var subscriberRetryAt: Int64 = 0
    private var subscriberBackoff: Int64 = 100
    private var lastSubscriberPing: Int64 = 0
    static let subscriberPing: Int64 = 5_000
    private var lastState: Bool?
    private let up = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// Commands written, and round trips (a batch written at once is one): what the metrics show.
    public let commands = Atomic<Int64>(0)
    public let roundTrips = Atomic<Int64>(0)
    public let errors = Atomic<Int64>(0)

    /// On this client's thread: up or down (with why), each time it changes.
    public var onStateChange: (_ up: Bool, _ why: String) -> Void = { _, _ in }
    /// On this client's thread: a message on the channel (its payload).
    public var onMessage: ([UInt8]) -> Void = { _ in }
    /// On this client's thread: the subscriber is listening again (what it may have missed can be read).
    public var onSubscribed: () -> Void = {}
    /// On this client's thread: the subscriber lost its connection (messages may be missed from now).
    public var onUnsubscribed: () -> Void = {}
    /// On this client's thread, about every 10 ms.
    public var onTick: (Int64) -> Void = { _ in }

    public init(settings: Settings, clock: Clock) throws {
        self.settings = settings
        loop = try EventLoop(clock: clock, tickMillis: 10)
        tls = settings.url.tls ? try TLSClient(caFile: settings.caFile) : nil
        pool = Array(repeating: nil, count: max(1, settings.poolSize))
        retryAt = Array(repeating: 0, count: pool.count)
        backoff = Array(repeating: 100, count: pool.count)
    }

    /// Whether a pooled connection is ready (any thread).
    public var isUp: Bool { up.load(ordering: .relaxed) }

    public func start() {
        loop.onTick = { [unowned self] now in tick(now) }
        loop.execute { [unowned self] in tick(loop.now) }
        OSThread.start(name: "idlegate-redis") { [self] in
            _ = loop.run()
            stopped.signal()
        }
    }

    /// Runs `task` on this client's thread (from any thread).
    public func execute(_ task: @escaping @Sendable () -> Void) { loop.execute(task) }

    /// Sends `command` from any thread; `reply` runs on this client's thread (nil: failed or timed out).
    public func request(_ command: [String], reply: @escaping @Sendable (RESPValue?) -> Void) {
        loop.execute { [self] in send([command], replies: [reply]) }
    }

    /// Sends commands pipelined on one connection (call on this client's thread). With no connection
    /// up, every reply is nil at once.
    public func send(_ batch: [[String]], replies: [Reply]) {
        guard !batch.isEmpty else { return }
        // The ready connection with the fewest commands waiting, starting from a rotating index.
        var best: RedisConnection? = nil
        for i in 0..<pool.count {
            let c = pool[(next + i) % pool.count]
            if let c, c.state == .ready, best == nil || c.pendingCount < best!.pendingCount { best = c }
        }
        next &+= 1
        guard let best else {
            errors.add(Int64(batch.count), ordering: .relaxed)
            for r in replies { r(nil) }
            return
        }
        commands.add(Int64(batch.count), ordering: .relaxed)
        roundTrips.add(1, ordering: .relaxed)
        best.send(batch, replies: replies.map { r in { [unowned self, unowned best] v in
            if v == nil || v!.isError { errors.add(1, ordering: .relaxed) }
            r(v)
            // A SCRIPT FLUSH (or a server swapped under the address): a new connection loads them again.
            if case .error(let message)? = v, message.hasPrefix("NOSCRIPT") { best.close("Redis no longer has idlegate's scripts; reconnecting") }
        } })
    }

    private func tick(_ now: Int64) {
        for i in pool.indices {
            if let c = pool[i], c.state != .closed {
                expire(c, now: now)
            } else if now >= retryAt[i] {
                open(slot: i, now: now)
            }
        }
        if let channel = settings.channel {
            if let s = subscriber, s.state != .closed {
                expire(s, now: now)
                // A quiet channel says nothing of the connection under it: a PING every few seconds
                // finds a dead one within the timeout (then the tombstones it missed are read back).
                if s.state == .ready, s.pendingCount == 0, now - lastSubscriberPing >= Self.subscriberPing {
                    lastSubscriberPing = now
                    s.send(["PING"]) { _ in }
                }
            } else if now >= subscriberRetryAt {
                subscribe(channel, now: now)
            }
        }
        onTick(now)
    }

    /// Closes a connection that missed its deadline.
    private func expire(_ c: RedisConnection, now: Int64) {
        if c.state != .ready {
            if now - c.openedAt > settings.connectTimeout { c.close("no answer in \(settings.connectTimeout) ms") }
        } else if let since = c.stalledSince, now - since > settings.timeout {
            c.close("no reply in \(settings.timeout) ms")
        }
    }

    private func open(slot i: Int, now: Int64) {
        do {
            let c = try RedisConnection(loop: loop, url: settings.url, tls: tls, login: settings.login)
            c.onReady = { [unowned self] _ in
                backoff[i] = 100
                report()
            }
            c.onClosed = { [unowned self] _, why in
                retryAt[i] = loop.now + backoff[i]
                backoff[i] = min(2_000, backoff[i] * 2)
                report(why)
            }
            pool[i] = c
        } catch {
            retryAt[i] = now + backoff[i]
            backoff[i] = min(2_000, backoff[i] * 2)
            report("\(error)")
        }
    }

    private func subscribe(_ channel: String, now: Int64) {
        do {
            let s = try RedisConnection(loop: loop, url: settings.url, tls: tls, login: [["SUBSCRIBE", channel]])
            s.onPush = { [unowned self] v in
                // ["message", channel, payload]
                if case .array(let parts) = v, parts.count == 3, parts[0].text == "message", case .bulk(let payload) = parts[2] {
                    onMessage(payload)
                }
            }
            s.onReady = { [unowned self] _ in
                subscriberBackoff = 100
                onSubscribed()
            }
            s.onClosed = { [unowned self] c, _ in
                if c.wasReady { onUnsubscribed() }
                subscriberRetryAt = loop.now + subscriberBackoff
                subscriberBackoff = min(2_000, subscriberBackoff * 2)
            }
            subscriber = s
        } catch {
            subscriberRetryAt = now + subscriberBackoff
            subscriberBackoff = min(2_000, subscriberBackoff * 2)
        }
    }

    /// Reports a change of state once, on the transition.
    private func report(_ why: String = "") {
        let now = pool.contains { $0?.state == .ready }
        up.store(now, ordering: .relaxed)
        guard now != lastState else { return }
        // The very first failures of a start are reported as down too: a site must see that Redis is
        // not there, not silence.
        lastState = now
        onStateChange(now, now ? "connected to \(settings.url)" : why)
    }

    /// Closes every connection and stops the thread; returns once it has stopped (call once, after
    /// `start`, from another thread).
    public func stop() {
        loop.execute { [self] in
            onStateChange = { _, _ in }
            for c in pool { c?.close("stopping") }
            subscriber?.close("stopping")
            loop.stop()
        }
        stopped.wait()
    }
}
