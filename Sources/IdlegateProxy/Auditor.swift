import IdlegateAudit
import IdlegateBase
import IdlegateHTTP
import IdlegateSessions

/// The audit trail as the proxy sees it: where events go (nothing when no audit log is set), the
/// login names attributed to sessions, and the activity floor. Events are built only when there is a
/// log to write them to; the request path never waits on the log.
public final class Auditor: Sendable {
    public let log: AuditLog?
    public let logins = SessionLogins()
    /// A person's request after at least this long idle is an `activity_resumed` event (ms).
    let floor: Int64
    /// The time events carry: the same clock the decisions they record were made by.
    let clock: Clock

    public init(log: AuditLog?, activityFloor: Int64, clock: Clock) {
        self.log = log
        floor = activityFloor
        self.clock = clock
    }

    @inline(__always) var enabled: Bool { log != nil }

    /// Builds and queues an event; `fill` runs only when there is a log.
    @inline(__always) func emit(_ kind: AuditEvent.Kind, key: SessionKey? = nil, _ fill: (inout AuditEvent) -> Void = { _ in }) {
        guard let log else { return }
        var e = AuditEvent(kind, time: clock.now())
        if let key {
            e.key = key.description
            e.login = logins[key]
        }
        fill(&e)
        log.emit(e)
    }

    /// Public entry for events raised outside the proxy (config reloads).
    public func record(_ kind: AuditEvent.Kind, count: Int? = nil, reason: String? = nil) {
        emit(kind) { e in
            e.reason = reason
            if let count { e.count = count }
        }
    }
}

/// Login names of sessions, as attributed at login: for audit events and the admin API. Bounded: names
/// of sessions the table no longer tracks are dropped by `prune`.
public final class SessionLogins: @unchecked Sendable {
    private let lock = Mutex()
    private var names: [SessionKey: String] = [:]

    public subscript(key: SessionKey) -> String? {
        get { lock.withLock { names[key] } }
    }

    func set(_ key: SessionKey, _ login: String) {
        lock.withLock { names[key] = login }
    }

    /// Keeps the names of keys `tracked` still holds.
    public func prune(keeping tracked: (SessionKey) -> Bool) {
        let keys = lock.withLock { Array(names.keys) }
        let gone = keys.filter { !tracked($0) }
        guard !gone.isEmpty else { return }
        lock.withLock { for k in gone { names[k] = nil } }
    }

    public var count: Int { lock.withLock { names.count } }

    /// Every name, for the snapshot.
    var all: [(SessionKey, String)] { lock.withLock { names.map { ($0.key, $0.value) } } }
}

/// The login name in the bounded prefix of a login request's body: the `login` field of the form
/// `POST /web/login` sends, or of the JSON-RPC params of `/web/session/authenticate`. Nothing else of
/// the body is kept or returned (the password is right beside it).
enum LoginField {
    static let maxBytes = 4096

    static func parse(_ body: [UInt8], json: Bool) -> String? {
        let value = json ? fromJSON(body) : fromForm(body)
        guard let v = value, !v.isEmpty, v.count <= 256 else { return nil }
        return v
    }

    static func fromForm(_ body: [UInt8]) -> String? {
        var login: String? = nil
        FormEncoding.forEachPair(body) { name, value in
            guard name.elementsEqual("login".utf8) else { return true }
            login = value.map { String(decoding: $0, as: UTF8.self) }
            return false
        }
        return login
    }

    static func fromJSON(_ body: [UInt8]) -> String? {
        let needle = Array("\"login\"".utf8)
        var i = 0
        while i + needle.count <= body.count {
            if body[i] == needle[0] && Array(body[i..<(i + needle.count)]) == needle {
                var j = i + needle.count
                while j < body.count && (body[j] == 0x20 || body[j] == 0x0A || body[j] == 0x0D || body[j] == 0x09) { j += 1 }
                guard j < body.count, body[j] == UInt8(ascii: ":") else { i += 1; continue }
                j += 1
                while j < body.count && (body[j] == 0x20 || body[j] == 0x0A || body[j] == 0x0D || body[j] == 0x09) { j += 1 }
                guard j < body.count, body[j] == 0x22 else { return nil }
                j += 1
                var out: [UInt8] = []
                while j < body.count && body[j] != 0x22 {
                    if body[j] == 0x5C, j + 1 < body.count {
                        let c = body[j + 1]
                        if c == UInt8(ascii: "u"), j + 5 < body.count,
                           let v = UInt32(String(decoding: body[(j + 2)...(j + 5)], as: UTF8.self), radix: 16), let u = Unicode.Scalar(v) {
                            out += Array(String(u).utf8)
                            j += 6
                            continue
                        }
                        out.append(c == UInt8(ascii: "n") ? 0x0A : c == UInt8(ascii: "t") ? 0x09 : c)
                        j += 2
                        continue
                    }
                    out.append(body[j])
                    j += 1
                }
                guard j < body.count else { return nil }  // cut off by the prefix bound
                return String(decoding: out, as: UTF8.self)
            }
            i += 1
        }
        return nil
    }
}
