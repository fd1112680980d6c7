import COpenSSL
import Dispatch
import IdlegateBase
import IdlegateSessions
import Synchronization

/// The session store replicas share: the local lock-striped table stays the fast path, and Redis holds
/// the shared view behind it.
///
/// - Activity is written behind: a touched session is marked dirty, and every `syncInterval` the
///   dirty ones go to Redis in one pipelined batch (a session at most once per interval). A Lua script
///   keeps the later of two last-activity times, so a write never moves it backwards.
/// - Before a session is declared over — expired, or unknown here — Redis is asked (another replica
///   may have seen newer activity, or started it): the request waits in its own state, never a loop.
/// - Expiries, logouts and kicks become tombstones (the record marked ended, kept for the tombstone
///   period, listed in a sorted set) and are published, so every replica drops the session at once; a
///   replica whose subscriber was away reads what it missed from the sorted set.
/// - Redis down, slow or restarting: `fail_open` keeps enforcing on local state and resyncs (dirty
///   sessions and unsent tombstones go when it is back); `fail_closed` answers sessions' requests with a
///   temporary refusal until it is back, destroying nothing.
///
/// Keys: `<prefix>s:<session key>` (a hash: a = last activity, s = started, i = idle window,
/// l = lifetime, e = ended at), `<prefix>ended` (sorted set and channel). Never a raw id.
public final class RedisStore: SessionStore, @unchecked Sendable {
    public enum FailMode: String, Sendable { case open = "fail_open", closed = "fail_closed" }

    public struct Settings: Sendable {
        public var prefix = "idlegate:"
        /// How often dirty sessions are written (ms).
        public var syncInterval: Int64 = 30_000
        public var failMode = FailMode.open
        /// A key of this replica's secret (the snapshot's check key): replicas that name sessions with
        /// different secrets never share anything, which is said once, loudly. Nil: not checked.
        public var secretCheck: String?
        public init() {}
    }

    public let local: SessionTable
    public let client: RedisClient
    public let settings: Settings
    private let dirty: DirtyKeys
    /// Tombstones not yet written (Redis was down): replayed when it is back. Client thread only.
    private var unsentEnds: [(SessionKey, Int64)] = []
    private var lastFlush: Int64 = 0
    /// When the subscriber last lost its channel (ms): catch-up reads tombstones from there.
    private var missedSince: Int64?
    /// The subscriber is back but the tombstones it missed are not read yet (no command connection was).
    private var catchUpPending = false
    public let tombstonesReceived = Atomic<Int64>(0)
    /// State changes, for the log, metrics and audit (on the client's thread).
    public var onStateChange: (_ up: Bool, _ why: String) -> Void = { _, _ in }
    /// Something an operator must fix (replicas with different secrets), on the client's thread.
    public var onMisconfiguration: (String) -> Void = { _ in }

    private let touchSHA: String
    private let endSHA: String
    private let clock: Clock

    public init(local: SessionTable, client clientSettings: RedisClient.Settings, settings: Settings, clock: Clock) throws {
        self.local = local
        self.settings = settings
        self.clock = clock
        touchSHA = Self.sha1(Self.touchScript)
        endSHA = Self.sha1(Self.endScript)
        var cs = clientSettings
        cs.login = [["SCRIPT", "LOAD", Self.touchScript], ["SCRIPT", "LOAD", Self.endScript]]
        cs.channel = settings.prefix + "ended"
        client = try RedisClient(settings: cs, clock: clock)
        dirty = DirtyKeys()
        client.onMessage = { [unowned self] payload in
            guard let key = SessionKey(hex: payload) else { return }
            tombstonesReceived.add(1, ordering: .relaxed)
            local.end(key, now: clock.now())
        }
        client.onUnsubscribed = { [unowned self] in
            if missedSince == nil { missedSince = clock.now() }
        }
        client.onSubscribed = { [unowned self] in
            catchUpPending = true
            if client.isUp { catchUp() }
        }
        client.onStateChange = { [unowned self] up, why in
            if up {
                checkSecret()
                if catchUpPending { catchUp() }
                resync()
            }
            onStateChange(up, why)
        }
        client.onTick = { [unowned self] now in
            if now - lastFlush >= settings.syncInterval {
                lastFlush = now
                flush()
            }
        }
    }

    public func start() { client.start() }
    public func stop() { client.stop() }

    public var isUp: Bool { client.isUp }
    public var confirmsAdoption: Bool { true }

    // MARK: the request path

    public func check(_ key: SessionKey, now: Int64, limits: SessionLimits, activity: Bool, unknown: UnknownSessions) -> SessionVerdict {
        if settings.failMode == .closed && !client.isUp { return .unavailable }
        let v = local.check(key, now: now, limits: limits, activity: activity, unknown: unknown)
        // Written behind: a touch, or a window tightened by this request's policy.
        if activity, case .active = v { dirty.insert(key) }
        return v
    }

    @discardableResult
    public func start(_ key: SessionKey, now: Int64, limits: SessionLimits) -> Bool {
        guard local.start(key, now: now, limits: limits) else { return false }
        write(key, mode: "touch")
        return true
    }

    public func restart(_ key: SessionKey, now: Int64, limits: SessionLimits) {
        local.restart(key, now: now, limits: limits)
        write(key, mode: "restart")
    }

    public func end(_ key: SessionKey, now: Int64) {
        local.end(key, now: now)
        client.execute { [self] in sendEnds([(key, now)]) }
    }

    public func sweep(now: Int64) -> Int { local.sweep(now: now) }
    public var count: Int { local.count }

    public func confirm(_ key: SessionKey, _ verdict: SessionVerdict, now: Int64, limits: SessionLimits, activity: Bool,
                        reply: @escaping @Sendable (SessionVerdict) -> Void) {
        switch verdict {
        case .expired, .unknownRefused, .adopted: break
        case .active, .ended, .unavailable:
            reply(verdict)
            return
        }
        let command: [String]
        if case .adopted = verdict, let r = local.record(key) {
            // Create it in Redis unless another replica already has it; the script answers what it holds.
            command = touchCommand(key, r, mode: "adopt")
        } else {
            command = ["HMGET", redisKey(key), "a", "s", "i", "l", "e"]
        }
        let failMode = settings.failMode
        client.request(command) { [self] answer in
            guard let answer, !answer.isError else {
                reply(failMode == .closed ? .unavailable : verdict)
                return
            }
            reply(settle(key, verdict, SharedRecord(answer), now: now, limits: limits, activity: activity))
        }
    }

    /// A tunnel's session about to expire here may be in use through another replica: Redis is asked
    /// before the local record is marked, and a later activity there is taken on.
    public func checkTunnel(_ key: SessionKey, now: Int64, limits: SessionLimits, reply: @escaping @Sendable (SessionVerdict) -> Void) {
        if settings.failMode == .closed && !client.isUp { return reply(.unavailable) }
        guard local.wouldExpire(key, now: now, limits: limits) else {
            return reply(local.check(key, now: now, limits: limits, activity: false, unknown: .adopt))
        }
        let failMode = settings.failMode
        client.request(["HMGET", redisKey(key), "a", "s", "i", "l", "e"]) { [self] answer in
            guard let answer, !answer.isError else {
                reply(failMode == .closed ? .unavailable : local.check(key, now: now, limits: limits, activity: false, unknown: .adopt))
                return
            }
            if let shared = SharedRecord(answer) {
                if shared.endedAt != nil { local.end(key, now: now) } else { local.advance(key, lastActive: shared.record.lastActive) }
            }
            reply(local.check(key, now: now, limits: limits, activity: false, unknown: .adopt))
        }
    }

    /// The final verdict from what Redis holds for the session.
    private func settle(_ key: SessionKey, _ verdict: SessionVerdict, _ shared: SharedRecord?, now: Int64, limits: SessionLimits, activity: Bool) -> SessionVerdict {
        guard let shared else { return verdict }  // unknown to Redis too (or just created there: adopted)
        if shared.endedAt != nil {
            local.end(key, now: now)
            return .ended
        }
        var r = shared.record
        r.tighten(limits)
        // And to the windows this replica already held it to (tightened here, not yet written).
        if let mine = local.record(key) { r.tighten(SessionLimits(idle: mine.idle.millis, maxLifetime: mine.maxLifetime.millis)) }
        if let reason = r.expiry(at: now) {
            if case .expired = verdict { return verdict }  // the local record is ended already
            local.end(key, now: now)
            return .expired(idleFor: now - r.lastActive, reason: reason, window: reason == .idle ? r.idle.millis : r.maxLifetime.millis)
        }
        // Alive on another replica: taken on with the shared clocks.
        let gap = now - r.lastActive
        if activity && gap > 0 {
            r.lastActive = now
            dirty.insert(key)
        }
        local.put(key, r)
        return .active(idleFor: max(0, gap), remaining: r.remaining(at: now))
    }

    // MARK: writes (on the client's thread)

    private func redisKey(_ key: SessionKey) -> String { settings.prefix + "s:" + key.description }

    private func touchCommand(_ key: SessionKey, _ r: SessionRecord, mode: String) -> [String] {
        ["EVALSHA", touchSHA, "1", redisKey(key), mode, String(r.lastActive), String(r.started), String(r.idle.millis),
         String(r.maxLifetime.millis), String(local.tombstone)]
    }

    private func write(_ key: SessionKey, mode: String) {
        client.execute { [self] in
            guard let r = local.record(key), !r.isEnded else { return }
            client.send([touchCommand(key, r, mode: mode)], replies: [{ [self] answer in written(key, answer) }])
        }
    }

    /// A write's answer: what Redis holds now. Ended there (a message this replica missed): ended here.
    /// Not written (down, timed out, an error): written again with the next batch.
    private func written(_ key: SessionKey, _ answer: RESPValue?) {
        guard let answer, !answer.isError else { return dirty.insert(key) }
        if let shared = SharedRecord(answer), shared.endedAt != nil { local.end(key, now: clock.now()) }
    }

    /// Writes every dirty session's last activity, pipelined in batches of `batchSize` spread over the
    /// pool (a request's own question never waits behind more than one). Down: they stay dirty.
    func flush() {
        guard client.isUp else { return }
        let keys = dirty.drain()
        var start = 0
        while start < keys.count {
            var batch: [[String]] = [], replies: [RedisClient.Reply] = []
            for k in keys[start..<min(keys.count, start + Self.batchSize)] {
                guard let r = local.record(k), !r.isEnded else { continue }
                batch.append(touchCommand(k, r, mode: "touch"))
                replies.append { [self] answer in written(k, answer) }
            }
            client.send(batch, replies: replies)
            start += Self.batchSize
        }
    }

    static let batchSize = 256

    private func sendEnds(_ ends: [(SessionKey, Int64)]) {
        guard client.isUp else {
            unsentEnds.append(contentsOf: ends.prefix(max(0, 100_000 - unsentEnds.count)))
            return
        }
        let set = settings.prefix + "ended"
        let batch = ends.map { (k, at) in
            ["EVALSHA", endSHA, "2", redisKey(k), set, String(at), String(local.tombstone), k.description]
        }
        client.send(batch, replies: ends.map { e in { [self] answer in if answer == nil { unsentEnds.append(e) } } })
    }

    /// The first replica to connect writes its secret's check key; every other one compares.
    private func checkSecret() {
        guard let check = settings.secretCheck else { return }
        let key = settings.prefix + "secret-check"
        client.send([["SET", key, check, "NX"], ["GET", key]], replies: [{ _ in }, { [self] answer in
            if let held = answer?.text, held != check {
                onMisconfiguration("the replicas sharing \(client.settings.url) (prefix \(settings.prefix)) use different session secrets: "
                    + "they name sessions differently and share nothing; give every replica the same session_secret or key_file")
            }
        }])
    }

    /// Redis is back: what waited goes now.
    private func resync() {
        let ends = unsentEnds
        unsentEnds = []
        if !ends.isEmpty { sendEnds(ends) }
        flush()
    }

    /// The subscriber listens again: tombstones written while it was away are read and applied.
    private func catchUp() {
        let now = clock.now()
        let since = (missedSince ?? (now - local.tombstone)) - 5_000
        catchUpPending = false
        client.send([["ZRANGEBYSCORE", settings.prefix + "ended", String(since), "+inf"]], replies: [{ [self] answer in
            guard case .array(let items)? = answer else {
                catchUpPending = true  // again when Redis is back
                return
            }
            missedSince = nil
            let now = clock.now()
            for item in items {
                if case .bulk(let b) = item, let key = SessionKey(hex: b) { local.end(key, now: now) }
            }
        }])
    }

    /// Every session Redis holds, a SCAN page at a time, each as a record (ended ones with `endedAt`):
    /// the admin API's listing across replicas. Blocking (never on a proxy loop). False when Redis did
    /// not answer.
    public func forEachShared(_ body: ([(SessionKey, SessionRecord)]) -> Void) -> Bool {
        let prefix = settings.prefix + "s:"
        var cursor = "0"
        repeat {
            guard let scan = blocking([["SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"]])?.first,
                  case .array(let parts)? = scan, parts.count == 2, let next = parts[0].text, case .array(let names) = parts[1] else { return false }
            cursor = next
            let keys = names.compactMap { $0.text.flatMap { SessionKey(hex: $0.dropFirst(prefix.count)) } }
            guard !keys.isEmpty else { continue }
            guard let replies = blocking(keys.map { ["HMGET", redisKey($0), "a", "s", "i", "l", "e"] }) else { return false }
            var page: [(SessionKey, SessionRecord)] = []
            for (k, reply) in zip(keys, replies) {
                guard let reply, let shared = SharedRecord(reply) else { continue }
                var r = shared.record
                if let e = shared.endedAt { r.endedAt = e }
                page.append((k, r))
            }
            body(page)
        } while cursor != "0"
        return true
    }

    /// Sends a batch from a thread that may wait, and waits for every reply (nil: Redis did not answer).
    private func blocking(_ batch: [[String]]) -> [RESPValue?]? {
        let box = RepliesBox(count: batch.count), done = DispatchSemaphore(value: 0)
        client.execute { [client] in
            client.send(batch, replies: (0..<batch.count).map { i in { v in
                if box.set(i, v) { done.signal() }
            } })
        }
        let wait = client.settings.timeout * 4 + client.settings.connectTimeout
        guard done.wait(timeout: .now() + .milliseconds(Int(wait))) == .success else { return nil }
        let replies = box.all
        return replies.contains { $0 == nil } ? nil : replies
    }

    /// Asks Redis for one session, waiting at most the command timeout (never call on a proxy loop:
    /// the admin API's queue uses it for a kick of a session this replica has not seen).
    public func sharedRecord(_ key: SessionKey) -> (found: Bool, ended: Bool)? {
        guard let reply = blocking([["HMGET", redisKey(key), "a", "s", "i", "l", "e"]])?.first, let reply, !reply.isError else { return nil }
        let shared = SharedRecord(reply)
        return (shared != nil, shared?.endedAt != nil)
    }

    /// The shared store's metrics, in Prometheus's text format (read at each scrape).
    public func prometheusText() -> String {
        func metric(_ name: String, _ type: String, _ help: String, _ value: Int64) -> String {
            "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        return metric("idlegate_redis_up", "gauge", "Whether the shared session store answers (1) or not (0)", client.isUp ? 1 : 0)
            + metric("idlegate_redis_commands_total", "counter", "Commands sent to Redis", client.commands.load(ordering: .relaxed))
            + metric("idlegate_redis_round_trips_total", "counter", "Round trips to Redis (a pipelined batch is one)", client.roundTrips.load(ordering: .relaxed))
            + metric("idlegate_redis_errors_total", "counter", "Commands that failed, timed out or found Redis down", client.errors.load(ordering: .relaxed))
            + metric("idlegate_redis_tombstones_received_total", "counter", "Ended sessions announced by other replicas", tombstonesReceived.load(ordering: .relaxed))
    }

    // MARK: scripts

    /// Touch (mode `touch`: the later last activity wins; `restart`: audit mode's fresh clock; `adopt`:
    /// only if absent). Windows only tighten. An ended record is never changed. Answers what Redis
    /// then holds (an empty array for a record `adopt` just created).
    static let touchScript = """
    local cur = redis.call('HMGET', KEYS[1], 'a', 's', 'i', 'l', 'e')
    if cur[5] then return cur end
    local mode = ARGV[1]
    local a, s, i, l = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
    if cur[1] then
      if mode == 'adopt' then return cur end
      local ca, cs, ci, cl = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[3]), tonumber(cur[4])
      if mode == 'touch' then
        if ca > a then a = ca end
        s = cs
      end
      if ci < i then i = ci end
      if cl > 0 and (l == 0 or cl < l) then l = cl end
    end
    redis.call('HSET', KEYS[1], 'a', string.format('%d', a), 's', string.format('%d', s), 'i', string.format('%d', i), 'l', string.format('%d', l))
    local last = a + i
    if l > 0 and s + l < last then last = s + l end
    redis.call('PEXPIREAT', KEYS[1], string.format('%d', last + tonumber(ARGV[6])))
    if mode == 'adopt' then return {} end
    return redis.call('HMGET', KEYS[1], 'a', 's', 'i', 'l', 'e')
    """

    /// End: the record is marked ended (kept for the tombstone period), listed in the sorted set
    /// (trimmed to that period) and published.
    static let endScript = """
    if not redis.call('HGET', KEYS[1], 'e') then redis.call('HSET', KEYS[1], 'e', ARGV[1]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', tonumber(ARGV[1]) - tonumber(ARGV[2])))
    redis.call('PUBLISH', KEYS[2], ARGV[3])
    return 1
    """

    static func sha1(_ text: String) -> String {
        var digest = [UInt8](repeating: 0, count: 20)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBufferPointer { SHA1($0.baseAddress, $0.count, &digest) }
        return Hex.encode(digest)
    }
}

final class RepliesBox: @unchecked Sendable {
    private let lock = Mutex()
    private var replies: [RESPValue?]
    private var left: Int
    init(count: Int) {
        replies = Array(repeating: nil, count: count)
        left = count
    }
    /// Stores reply `i`; true for the last one.
    func set(_ i: Int, _ v: RESPValue?) -> Bool {
        lock.withLock {
            replies[i] = v
            left -= 1
            return left == 0
        }
    }
    var all: [RESPValue?] { lock.withLock { replies } }
}

/// A session as Redis holds it.
struct SharedRecord {
    var record: SessionRecord
    var endedAt: Int64?

    /// From an HMGET of a, s, i, l, e (nil when there is no such record).
    init?(_ v: RESPValue) {
        guard case .array(let f) = v, f.count == 5 else { return nil }
        endedAt = f[4].int64
        if let a = f[0].int64, let s = f[1].int64, let i = f[2].int64, let l = f[3].int64 {
            record = SessionRecord(started: s, lastActive: a, limits: SessionLimits(idle: i, maxLifetime: l))
        } else if let e = endedAt {
            record = SessionRecord(started: e, lastActive: e, limits: SessionLimits(idle: 0))  // ended, whatever else is left
        } else {
            return nil
        }
    }
}

/// Sessions touched since the last write-behind: striped like the table, so threads touching different
/// sessions rarely share a lock.
final class DirtyKeys: Sendable {
    final class Stripe: @unchecked Sendable {
        let lock = Mutex()
        var keys = Set<SessionKey>()
    }
    private let stripes = (0..<64).map { _ in Stripe() }

    func insert(_ key: SessionKey) {
        let s = stripes[Int(truncatingIfNeeded: key.hi) & 63]
        s.lock.withLock { _ = s.keys.insert(key) }
    }

    func drain() -> [SessionKey] {
        var out: [SessionKey] = []
        for s in stripes {
            out.append(contentsOf: s.lock.withLock { () -> Set<SessionKey> in
                defer { s.keys = [] }
                return s.keys
            })
        }
        return out
    }
}
