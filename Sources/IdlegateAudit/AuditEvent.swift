import Glibc
import IdlegateBase

/// One audit event: a line of JSON in the audit log. Field names are stable; a field that does not
/// apply (or is not known) is left out of the line rather than written as null.
public struct AuditEvent: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// A session idlegate had not seen: handed out by Odoo (`reason: odoo`, a login when `login` is
        /// set) or first seen on a request (`reason: first_seen`, opened before idlegate ran).
        case sessionStarted = "session_started"
        /// A login name paired with the session Odoo created for it.
        case login
        /// A person's request after a gap of at least the activity floor; `idle_s` is the gap.
        case activityResumed = "activity_resumed"
        case logout
        /// Enforced: the session was logged out.
        case expired
        /// Audit mode: enforcement would have logged the session out.
        case wouldExpire = "would_expire"
        /// An id never seen before, refused (`unknown_sessions: reject`).
        case refused
        case kicked
        /// A request idlegate answered itself with an error status (malformed, too large, too slow, or
        /// the shared session layer did not answer) and a closed connection.
        case requestRefused = "request_refused"
        /// Odoo could not be reached or did not answer in time: idlegate answered 502 or 504.
        case upstreamFailed = "upstream_failed"
        /// Several Cookie lines or an unusual spelling of `session_id`, forwarded as one canonical line.
        case cookieRewritten = "cookie_rewritten"
        /// Odoo handed out (`Set-Cookie`) an id idlegate holds as ended: the session stays ended, and in
        /// enforce mode the cookie is cleared towards the browser and the session destroyed in Odoo.
        case revivalRefused = "revival_refused"
        case destroyFailed = "destroy_failed"
        case configReloaded = "config_reloaded"
        case configReloadFailed = "config_reload_failed"
        /// Odoo session files deleted by the scheduled reaper; `count` how many, `reason` by rule.
        case sessionsReaped = "sessions_reaped"
        /// The shared session store (Redis) went down (`reason` why) or came back: in `fail_closed`
        /// mode, sessions' requests are refused between the two.
        case storeDown = "store_down"
        case storeUp = "store_up"
        /// Events lost to a full queue since the last write; `count` says how many.
        case eventsDropped = "events_dropped"
    }

    public var kind: Kind
    /// Unix milliseconds.
    public var time: Int64
    /// The session key (32 hex digits), never the id.
    public var key: String? = nil
    public var login: String? = nil
    public var client: String? = nil
    public var policy: String? = nil
    /// enforce, audit.
    public var mode: String? = nil
    public var method: String? = nil
    /// The path; of the query only the parameter names are kept (values can hold ids and tokens).
    public var path: String? = nil
    public var status: Int? = nil
    /// Idle seconds: the gap before this request, or at expiry.
    public var idleSeconds: Int64? = nil
    /// The window that applied, in seconds.
    public var windowSeconds: Int64? = nil
    public var reason: String? = nil
    public var count: Int? = nil

    public init(_ kind: Kind, time: Int64) {
        self.kind = kind
        self.time = time
    }

    /// A request target with its query values removed: `/web/login?redirect=&db=`.
    public static func pathWithoutQueryValues<S: StringProtocol>(_ target: S) -> String {
        guard let q = target.firstIndex(of: "?") else { return String(target) }
        let names = target[target.index(after: q)...].split(separator: "&").map { pair in
            pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0] + "="
        }
        return String(target[..<q]) + (names.isEmpty ? "" : "?" + names.joined(separator: "&"))
    }

    /// The JSON line, newline included.
    public func encode(into out: inout [UInt8]) {
        out.append(contentsOf: #"{"ts":""#.utf8)
        Self.appendTimestamp(time, into: &out)
        out.append(contentsOf: #"","event":""#.utf8)
        out.append(contentsOf: kind.rawValue.utf8)
        out.append(UInt8(ascii: "\""))
        func field(_ name: String, _ value: String?) {
            guard let value else { return }
            out.append(contentsOf: ",\"\(name)\":".utf8)
            Self.appendString(value, into: &out)
        }
        func number<I: BinaryInteger>(_ name: String, _ value: I?) {
            guard let value else { return }
            out.append(contentsOf: ",\"\(name)\":\(value)".utf8)
        }
        field("key", key)
        field("login", login)
        field("client", client)
        field("policy", policy)
        field("mode", mode)
        field("method", method)
        field("path", path)
        number("status", status)
        number("idle_s", idleSeconds)
        number("window_s", windowSeconds)
        field("reason", reason)
        number("count", count)
        out.append(contentsOf: "}\n".utf8)
    }

    /// RFC 3339, UTC, milliseconds: `2026-11-25T11:39:24.123Z`.
    static func appendTimestamp(_ ms: Int64, into out: inout [UInt8]) {
        var t = time_t(ms / 1000)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ width: Int) {
            var digits: [UInt8] = []
            var n = v
            for _ in 0..<width { digits.append(UInt8(48 + n % 10)); n /= 10 }
            out.append(contentsOf: digits.reversed())
        }
        pad(tm.tm_year + 1900, 4); out.append(UInt8(ascii: "-"))
        pad(tm.tm_mon + 1, 2); out.append(UInt8(ascii: "-"))
        pad(tm.tm_mday, 2); out.append(UInt8(ascii: "T"))
        pad(tm.tm_hour, 2); out.append(UInt8(ascii: ":"))
        pad(tm.tm_min, 2); out.append(UInt8(ascii: ":"))
        pad(tm.tm_sec, 2); out.append(UInt8(ascii: "."))
        pad(Int32(ms % 1000), 3); out.append(UInt8(ascii: "Z"))
    }

    /// A JSON string: quotes, backslashes and control characters escaped; UTF-8 as is.
    static func appendString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20, 0x7F:
                out.append(contentsOf: #"\u00"#.utf8)
                Hex.append(b, to: &out)
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
