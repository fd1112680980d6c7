import CZlib
import Glibc

/// `idlegate audit report`: reads audit logs (plain or gzip) as a stream and sums up, per policy and
/// per login, the sessions seen, the distribution of idle gaps, and how many sessions each candidate
/// window would have expired (those with an idle gap at least that long), so that a window is picked
/// from evidence before enforcing.
///
/// Memory is bounded by the sessions open at one time, not by the number of lines: a session's state
/// (its longest gap so far) is folded into its groups when it ends (logout, expiry, kick) or at the end.
public struct AuditReport {
    /// Candidate windows, in seconds.
    public let windows: [Int64]
    /// Idle-gap buckets: lower bounds in seconds.
    public static let gapBuckets: [(Int64, String)] = [(0, "<5m"), (300, "5-10m"), (600, "10-15m"), (900, "15-30m"), (1800, "30-60m"), (3600, "1-4h"), (14_400, ">=4h")]

    public struct Group {
        public var sessions = 0
        public var gaps = [Int](repeating: 0, count: AuditReport.gapBuckets.count)
        public var longestGap: Int64 = 0
        public var wouldExpire: [Int]
        public var expired = 0
        public var wouldExpireEvents = 0
        init(windows: Int) { wouldExpire = [Int](repeating: 0, count: windows) }
    }

    struct Key: Hashable { let hi: UInt64; let lo: UInt64 }
    struct Open { var policy: Int; var login: Int; var longest: Int64 }

    public private(set) var lines = 0
    public private(set) var unreadable = 0
    public private(set) var first: String? = nil
    public private(set) var last: String? = nil
    public var policyNames: [String] { policies.names }
    public var loginNames: [String] { logins.names }
    public private(set) var byPolicy: [Group] = []
    public private(set) var byLogin: [Group] = []
    private var policies = Names()
    private var logins = Names(first: "(unknown)")
    private var openSessions: [Key: Open] = [:]

    /// Names seen, numbered in order of appearance; a one-entry cache in front, since consecutive
    /// lines mostly name the same policy and login.
    struct Names {
        private(set) var names: [String] = []
        private var index: [[UInt8]: Int] = [:]
        private var last: ([UInt8], Int) = ([], -1)

        init(first: String? = nil) { if let first { names.append(first) } }

        /// The name's number, and whether it is new.
        mutating func intern(_ bytes: UnsafeRawBufferPointer) -> (Int, Bool) {
            if last.1 >= 0 && last.0.count == bytes.count && last.0.elementsEqual(bytes) { return (last.1, false) }
            let array = Array(bytes)
            var new = false
            let i: Int
            if let known = index[array] {
                i = known
            } else {
                i = names.count
                index[array] = i
                names.append(Fields.unescape(array))
                new = true
            }
            last = (array, i)
            return (i, new)
        }
    }

    public init(windows: [Int64] = [300, 600, 900, 1800]) {
        self.windows = windows.sorted()
        byLogin = [Group(windows: windows.count)]
    }

    // MARK: reading

    /// Reads one file (`.gz` by name or by its magic bytes) line by line.
    public mutating func read(path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AuditError("\(path): \(String(cString: strerror(errno)))") }
        var magic = [UInt8](repeating: 0, count: 2)
        let m = Glibc.read(fd, &magic, 2)
        lseek(fd, 0, SEEK_SET)
        if m == 2 && magic == [0x1F, 0x8B] {
            guard let gz = gzdopen(fd, "rb") else { Glibc.close(fd); throw AuditError("\(path): cannot read gzip") }
            defer { gzclose(gz) }
            gzbuffer(gz, 256 * 1024)
            var failed = false
            try stream(path) { buf, cap in
                let n = gzread(gz, buf, UInt32(cap))
                if n < 0 { failed = true }
                return Int(n)
            }
            if failed { throw AuditError("\(path): corrupt gzip data") }
        } else {
            defer { Glibc.close(fd) }
            try stream(path) { buf, cap in
                while true {
                    let n = Glibc.read(fd, buf, cap)
                    if n < 0 && errno == EINTR { continue }
                    return n
                }
            }
        }
    }

    private mutating func stream(_ path: String, _ fill: (UnsafeMutableRawPointer, Int) -> Int) throws {
        let capacity = 1 << 20
        let buf = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buf.deallocate() }
        var held = 0  // bytes of an unfinished line at the start of buf
        while true {
            if held == capacity {
                // A line longer than the buffer is not one of ours: skip to its end.
                unreadable += 1
                held = 0
            }
            let n = fill(buf + held, capacity - held)
            if n < 0 { throw AuditError("\(path): read failed") }
            if n == 0 {
                if held > 0 { line(UnsafeRawBufferPointer(start: buf, count: held)) }
                return
            }
            let end = held + n
            var start = 0
            let bytes = UnsafeRawBufferPointer(start: buf, count: end)
            var i = held
            while let nl = memchr(buf + i, 0x0A, end - i) {
                let at = buf.distance(to: nl)
                line(UnsafeRawBufferPointer(rebasing: bytes[start..<at]))
                start = at + 1
                i = start
            }
            held = end - start
            if held > 0 && start > 0 { memmove(buf, buf + start, held) }
        }
    }

    // MARK: one line

    private mutating func line(_ b: UnsafeRawBufferPointer) {
        guard !b.isEmpty else { return }
        lines += 1
        var f = Fields()
        guard f.parse(b) else { unreadable += 1; return }
        guard let event = f.event else { unreadable += 1; return }
        if let ts = f.ts {
            if first == nil { first = String(decoding: ts, as: UTF8.self) }
            last = String(decoding: ts, as: UTF8.self)
        }
        guard let key = f.key else { return }
        let policy = f.policy.map { intern($0, policy: true) }
        let login = f.login.map { intern($0, policy: false) }
        var s = openSessions[key] ?? Open(policy: -1, login: 0, longest: 0)
        if s.policy < 0, let p = policy { s.policy = p }
        if let l = login { s.login = l }
        switch event {
        case .activityResumed:
            if let g = f.idle { s.longest = max(s.longest, g); addGap(g, s) }
        case .expired, .wouldExpire:
            if let g = f.idle { s.longest = max(s.longest, g); addGap(g, s) }
            if s.policy >= 0 {
                if event == .expired { byPolicy[s.policy].expired += 1 } else { byPolicy[s.policy].wouldExpireEvents += 1 }
            }
            if event == .expired { byLogin[s.login].expired += 1 } else { byLogin[s.login].wouldExpireEvents += 1 }
        default:
            break
        }
        if event == .expired || event == .logout || event == .kicked {
            finish(s)
            openSessions[key] = nil
        } else if event == .sessionStarted && f.anonymous {
            // An anonymous session (the login page): not a person's session until it logs in.
            return
        } else {
            openSessions[key] = s
        }
    }

    private mutating func addGap(_ g: Int64, _ s: Open) {
        var bucket = 0
        for (i, (low, _)) in Self.gapBuckets.enumerated() where g >= low { bucket = i }
        if s.policy >= 0 {
            byPolicy[s.policy].gaps[bucket] += 1
            byPolicy[s.policy].longestGap = max(byPolicy[s.policy].longestGap, g)
        }
        byLogin[s.login].gaps[bucket] += 1
        byLogin[s.login].longestGap = max(byLogin[s.login].longestGap, g)
    }

    /// Folds a session into its groups.
    private mutating func finish(_ s: Open) {
        func add(_ g: inout Group) {
            g.sessions += 1
            for (i, w) in windows.enumerated() where s.longest >= w { g.wouldExpire[i] += 1 }
        }
        if s.policy >= 0 { add(&byPolicy[s.policy]) }
        add(&byLogin[s.login])
    }

    /// Call after the last file: sessions still open are counted with what is known of them.
    public mutating func finishOpenSessions() {
        for s in openSessions.values { finish(s) }
        openSessions.removeAll()
    }

    private mutating func intern(_ bytes: UnsafeRawBufferPointer, policy: Bool) -> Int {
        let (i, new) = policy ? policies.intern(bytes) : logins.intern(bytes)
        if new {
            if policy { byPolicy.append(Group(windows: windows.count)) } else { byLogin.append(Group(windows: windows.count)) }
        }
        return i
    }

    // MARK: output

    public func table() -> String {
        var out = "\(lines) lines"
        if unreadable > 0 { out += " (\(unreadable) unreadable, skipped)" }
        if let first, let last { out += ", \(first) to \(last)" }
        out += "\nA session counts for a window when one of its idle gaps (between two requests a person made) was at least that long.\n"
        for (title, names, groups) in [("policy", policyNames, byPolicy), ("login", loginNames, byLogin)] {
            let rows = zip(names, groups).filter { $0.1.sessions > 0 || $0.1.gaps.contains { $0 > 0 } }
            guard !rows.isEmpty else { continue }
            var header = ["by \(title)", "sessions"] + Self.gapBuckets.map { "gaps \($0.1)" } + ["longest"]
            header += windows.map { "expire@\(Self.duration($0))" }
            var body: [[String]] = []
            for (name, g) in rows {
                var row = [name, "\(g.sessions)"] + g.gaps.map(String.init) + [Self.duration(g.longestGap)]
                row += g.wouldExpire.map { n in g.sessions == 0 ? "0" : "\(n) (\(n * 100 / g.sessions)%)" }
                body.append(row)
            }
            let widths = header.indices.map { c in max(header[c].count, body.map { $0[c].count }.max() ?? 0) }
            func render(_ r: [String]) -> String {
                r.enumerated().map { c, v in c == 0 ? v.padding(widths[c]) : v.leftPad(widths[c]) }.joined(separator: "  ")
            }
            out += "\n" + render(header) + "\n"
            for r in body { out += render(r) + "\n" }
        }
        return out
    }

    public func json() -> String {
        func groups(_ label: String, _ names: [String], _ gs: [Group]) -> String {
            zip(names, gs).filter { $0.1.sessions > 0 || $0.1.gaps.contains { $0 > 0 } }.map { name, g in
                var s: [UInt8] = []
                AuditEvent.appendString(name, into: &s)
                let gaps = zip(Self.gapBuckets, g.gaps).map { "\"\($0.0.1)\": \($0.1)" }.joined(separator: ", ")
                let expire = zip(windows, g.wouldExpire).map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ")
                return "{\"\(label)\": \(String(decoding: s, as: UTF8.self)), \"sessions\": \(g.sessions), \"idle_gaps\": {\(gaps)}, \"longest_gap_s\": \(g.longestGap), \"would_expire_by_window_s\": {\(expire)}, \"expired_events\": \(g.expired), \"would_expire_events\": \(g.wouldExpireEvents)}"
            }.joined(separator: ", ")
        }
        return "{\"lines\": \(lines), \"unreadable\": \(unreadable), \"windows_s\": [\(windows.map(String.init).joined(separator: ", "))], "
            + "\"by_policy\": [\(groups("policy", policyNames, byPolicy))], \"by_login\": [\(groups("login", loginNames, byLogin))]}"
    }

    static func duration(_ s: Int64) -> String {
        if s >= 3600 && s % 3600 == 0 { return "\(s / 3600)h" }
        if s >= 3600 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        if s >= 60 && s % 60 == 0 { return "\(s / 60)m" }
        if s >= 60 { return "\(s / 60)m\(s % 60)s" }
        return "\(s)s"
    }
}

/// The fields of one audit line the report needs, found by one pass over a flat JSON object; strings
/// stay as byte ranges of the line (nothing is allocated for a line).
struct Fields {
    enum Event { case sessionStarted, activityResumed, expired, wouldExpire, logout, kicked, other }
    var event: Event? = nil
    var ts: UnsafeRawBufferPointer? = nil
    var key: AuditReport.Key? = nil
    var policy: UnsafeRawBufferPointer? = nil
    var login: UnsafeRawBufferPointer? = nil
    var idle: Int64? = nil
    var anonymous = false
    private var reason: UnsafeRawBufferPointer? = nil

    mutating func parse(_ b: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = b.count
        func skipSpace() { while i < n && (b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0D) { i += 1 } }
        /// A string starting at i (at its quote); returns the raw (escaped) contents.
        func string() -> UnsafeRawBufferPointer? {
            guard i < n && b[i] == 0x22 else { return nil }
            i += 1
            let start = i
            while i < n && b[i] != 0x22 {
                if b[i] == 0x5C { i += 1 }
                i += 1
            }
            guard i < n else { return nil }
            let s = UnsafeRawBufferPointer(rebasing: b[start..<i])
            i += 1
            return s
        }
        skipSpace()
        guard i < n && b[i] == 0x7B else { return false }
        i += 1
        while true {
            skipSpace()
            if i < n && b[i] == 0x7D { break }
            guard let name = string() else { return false }
            skipSpace()
            guard i < n && b[i] == 0x3A else { return false }
            i += 1
            skipSpace()
            guard i < n else { return false }
            if b[i] == 0x22 {
                guard let value = string() else { return false }
                switch name.count {
                case 2 where Self.equal(name, "ts"): ts = value
                case 3 where Self.equal(name, "key"): key = Self.hexKey(value)
                case 5 where Self.equal(name, "event"): event = Self.event(value)
                case 5 where Self.equal(name, "login"): login = value
                case 6 where Self.equal(name, "policy"): policy = value
                case 6 where Self.equal(name, "reason"): reason = value
                default: break
                }
            } else {
                let start = i
                while i < n && b[i] != 0x2C && b[i] != 0x7D { i += 1 }  // numbers, true/false/null
                if name.count == 6 && Self.equal(name, "idle_s") {
                    var v: Int64 = 0
                    var any = false
                    for c in b[start..<i] where c >= 0x30 && c <= 0x39 { v = v &* 10 &+ Int64(c - 0x30); any = true }
                    if any { idle = v }
                }
            }
            skipSpace()
            if i < n && b[i] == 0x2C { i += 1; continue }
            if i < n && b[i] == 0x7D { break }
            return false
        }
        anonymous = event == .sessionStarted && login == nil && reason.map { Self.equal($0, "odoo") } == true
        return true
    }

    static func equal(_ b: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        b.count == s.utf8CodeUnitCount && b.elementsEqual(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    static func event(_ v: UnsafeRawBufferPointer) -> Event {
        if equal(v, "activity_resumed") { return .activityResumed }
        if equal(v, "session_started") { return .sessionStarted }
        if equal(v, "expired") { return .expired }
        if equal(v, "would_expire") { return .wouldExpire }
        if equal(v, "logout") { return .logout }
        if equal(v, "kicked") { return .kicked }
        return .other
    }

    static func hexKey(_ v: UnsafeRawBufferPointer) -> AuditReport.Key? {
        guard v.count == 32 else { return nil }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for j in 0..<32 {
            let c = v[j]
            let d: UInt64
            switch c {
            case 0x30...0x39: d = UInt64(c - 0x30)
            case 0x61...0x66: d = UInt64(c - 0x61 + 10)
            default: return nil
            }
            if j < 16 { hi = hi << 4 | d } else { lo = lo << 4 | d }
        }
        return AuditReport.Key(hi: hi, lo: lo)
    }

    /// The text of a JSON string's raw contents (escapes resolved).
    static func unescape(_ raw: [UInt8]) -> String {
        guard raw.contains(0x5C) else { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        var i = 0
        while i < raw.count {
            if raw[i] == 0x5C && i + 1 < raw.count {
                let c = raw[i + 1]
                switch c {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "u") where i + 5 < raw.count:
                    if let v = UInt32(String(decoding: raw[(i + 2)...(i + 5)], as: UTF8.self), radix: 16), let u = Unicode.Scalar(v) {
                        out.append(contentsOf: Array(String(u).utf8))
                    }
                    i += 4
                default: out.append(c)
                }
                i += 2
            } else {
                out.append(raw[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
