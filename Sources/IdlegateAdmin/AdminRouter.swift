import IdlegateHTTP
import IdlegateSessions

/// Answers one admin request. Pure apart from what the backend does.
///
/// - `GET /healthz`: the process is up (no token needed: probes).
/// - `GET /readyz`: Odoo is reachable (no token needed).
/// - `GET /metrics`: Prometheus text format.
/// - `GET /sessions?limit=N&after=KEY`: tracked sessions by key, in key order, a page at a time.
/// - `DELETE /sessions/KEY`: kick a session.
/// - `POST /reload`: re-read the configuration.
struct AdminRouter {
    let backend: AdminBackend

    func answer(_ head: RequestHead) -> AdminResponse {
        let path = head.path
        let method = head.method
        switch path {
        case "/healthz":
            guard method == "GET" || method == "HEAD" else { return notAllowed("GET") }
            return AdminResponse(status: 200, json: #"{"status": "ok"}"#)
        case "/readyz":
            guard method == "GET" || method == "HEAD" else { return notAllowed("GET") }
            let (ok, detail) = backend.ready()
            return AdminResponse(status: ok ? 200 : 503, json: #"{"ready": \#(ok), "detail": \#(json(detail))}"#)
        default:
            break
        }
        if let refused = authorize(head) { return refused }
        switch path {
        case "/metrics":
            guard method == "GET" else { return notAllowed("GET") }
            return AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: backend.metrics())
        case "/sessions":
            guard method == "GET" else { return notAllowed("GET") }
            return sessions(query: Self.query(head.target))
        case "/reload":
            guard method == "POST" else { return notAllowed("POST") }
            let (ok, message) = backend.reload()
            return ok ? AdminResponse(status: 200, json: #"{"reloaded": true, "message": \#(json(message))}"#)
                      : AdminResponse(status: 400, json: #"{"reloaded": false, "error": \#(json(message))}"#)
        default:
            if path.hasPrefix("/sessions/") {
                guard method == "DELETE" else { return notAllowed("DELETE") }
                guard let key = Self.parseKey(path.dropFirst(10)) else {
                    return AdminResponse(status: 400, json: #"{"error": "a session key is 32 hex digits"}"#)
                }
                return backend.kick(key) ? AdminResponse(status: 200, json: #"{"kicked": "\#(key)"}"#)
                                         : AdminResponse(status: 404, json: #"{"error": "no live session with that key"}"#)
            }
            return AdminResponse(status: 404, json: #"{"error": "not found"}"#)
        }
    }

    /// nil when the request may go on; a 401 otherwise.
    func authorize(_ head: RequestHead) -> AdminResponse? {
        let token = backend.token()
        guard !token.isEmpty else { return nil }
        let given = head.fields.indices(named: "authorization").first.map { head.fields.value(at: $0) } ?? ""
        let expected = "Bearer " + token
        if Self.constantTimeEqual(Array(given.utf8), Array(expected.utf8)) { return nil }
        return AdminResponse(status: 401, json: #"{"error": "a valid bearer token is required"}"#, extra: [("WWW-Authenticate", #"Bearer realm="idlegate""#)])
    }

    func notAllowed(_ allow: String) -> AdminResponse {
        AdminResponse(status: 405, json: #"{"error": "method not allowed"}"#, extra: [("Allow", allow)])
    }

    /// One page of sessions in key order, after the cursor. A scan of the table per page (a stripe at
    /// a time, keeping only the page's worth): memory stays bounded however many sessions there are.
    func sessions(query: [String: String]) -> AdminResponse {
        var limit = 100
        if let l = query["limit"] {
            guard let n = Int(l), (1...1000).contains(n) else { return AdminResponse(status: 400, json: #"{"error": "limit is 1 to 1000"}"#) }
            limit = n
        }
        var after: SessionKey? = nil
        if let a = query["after"] {
            guard let k = Self.parseKey(Substring(a)) else { return AdminResponse(status: 400, json: #"{"error": "after is a session key (32 hex digits)"}"#) }
            after = k
        }
        func less(_ a: SessionKey, _ b: SessionKey) -> Bool { a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo }
        var page: [(SessionKey, SessionRecord)] = []
        var total = 0
        if let shared = backend.shared {
            // Every replica's sessions: what Redis holds, and this replica's newer view of its own.
            var all: [SessionKey: SessionRecord] = [:]
            guard shared({ for (k, r) in $0 { all[k] = r } }) else {
                return AdminResponse(status: 503, json: #"{"error": "the shared session store did not answer"}"#)
            }
            backend.table.forEachStripe { entries in
                for (k, r) in entries {
                    guard var held = all[k] else { all[k] = r; continue }
                    held.lastActive = max(held.lastActive, r.lastActive)
                    if held.endedAt == 0 { held.endedAt = r.endedAt }
                    all[k] = held
                }
            }
            total = all.count
            page = all.filter { e in after.map { less($0, e.key) } ?? true }.map { ($0.key, $0.value) }
        } else {
            backend.table.forEachStripe { entries in
                total += entries.count
                for e in entries where after.map({ less($0, e.0) }) ?? true { page.append(e) }
                if page.count > limit * 4 {
                    page.sort { less($0.0, $1.0) }
                    page.removeLast(page.count - limit - 1)
                }
            }
        }
        page.sort { less($0.0, $1.0) }
        let more = page.count > limit
        if more { page.removeLast(page.count - limit) }
        let now = backend.now()
        var rows: [String] = []
        for (k, r) in page {
            let state = r.isEnded ? "ended" : (r.expiry(at: now) != nil ? "expired" : "active")
            let policy = backend.policyName(r).map(json) ?? "null"
            let login = backend.login(k).map(json) ?? "null"
            rows.append(#"{"key": "\#(k)", "login": \#(login), "policy": \#(policy), "state": "\#(state)", "idle_seconds": \#(max(0, now - r.lastActive) / 1000), "age_seconds": \#(max(0, now - r.started) / 1000), "idle_window_seconds": \#(r.idle.millis / 1000), "max_lifetime_seconds": \#(r.maxLifetime.millis / 1000)}"#)
        }
        let next = more ? "\"\(page.last!.0)\"" : "null"
        return AdminResponse(status: 200, json: "{\"total\": \(total), \"next\": \(next), \"sessions\": [\(rows.joined(separator: ", "))]}")
    }

    static func parseKey(_ text: Substring) -> SessionKey? { SessionKey(hex: text) }

    static func query(_ target: String) -> [String: String] {
        guard let q = target.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if out[String(kv[0])] == nil { out[String(kv[0])] = kv.count > 1 ? String(kv[1]) : "" }
        }
        return out
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// A JSON string literal.
func json(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if c.value < 0x20 {
                let h = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(c)
            }
        }
    }
    return out + "\""
}
