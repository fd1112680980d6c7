import IdlegateHTTP

/// What an expired session gets: what Odoo itself answers for one, so its web client reacts as it
/// always does (FACTS: "What an expired session gets from Odoo itself").
public enum ExpiryResponse {
    /// Odoo's SessionExpiredException as JSON-RPC: HTTP 200, error code 100 (18-real: id is null).
    public static let jsonBody: [UInt8] = Array(#"{"jsonrpc": "2.0", "id": null, "error": {"code": 100, "message": "Odoo Session Expired", "data": {"name": "odoo.http.SessionExpiredException", "debug": "", "message": "Session expired", "arguments": ["Session expired"], "context": {}}}}"#.utf8)

    /// Whether Odoo would answer this request the JSON-RPC way: a POST with a JSON body (type=json
    /// routes such as /web/dataset/call_kw).
    public static func wantsJSON(_ head: RequestHead) -> Bool {
        guard head.method == "POST", let ct = head.fields.first(.contentType) else { return false }
        return ct.lowercased().hasPrefix("application/json")
    }

    /// The whole response for an expired session: JSON (code 100) or a 303 to the login form, each
    /// clearing the cookie; `Connection: close` when the client will not keep the connection.
    public static func bytes(for head: RequestHead, clearCookie: String, keepAlive: Bool) -> [UInt8] {
        let connection = keepAlive ? "" : "Connection: close\r\n"
        if wantsJSON(head) {
            return Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(jsonBody.count)\r\nCache-Control: no-store\r\nSet-Cookie: \(clearCookie)\r\n\(connection)\r\n".utf8) + jsonBody
        }
        return Array("HTTP/1.1 303 See Other\r\nLocation: \(loginLocation(for: head.target))\r\nContent-Length: 0\r\nCache-Control: no-store\r\nSet-Cookie: \(clearCookie)\r\n\(connection)\r\n".utf8)
    }

    /// The answer for an expired session, with its status.
    public static func answer(for head: RequestHead, clearCookie: String, keepAlive: Bool) -> Verdict.Action {
        .answer(status: wantsJSON(head) ? 200 : 303, response: bytes(for: head, clearCookie: clearCookie, keepAlive: keepAlive))
    }

    /// `/web/login?redirect=<target, url-encoded>`, as Odoo builds it. The target is always a local
    /// path: one that could read as another site (`//evil.example`, `/\evil`) goes back to `/odoo`.
    public static func loginLocation(for target: String) -> String {
        var t = target
        if !t.hasPrefix("/") || t.hasPrefix("//") || t.hasPrefix("/\\") { t = "/odoo" }
        return "/web/login?redirect=" + percentEncode(t)
    }

    /// Everything but unreserved characters percent-encoded (so the value cannot break the header).
    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// For a session whose shared state cannot be read (the shared store down, fail-closed): a
    /// temporary refusal, the cookie left alone, to be retried.
    public static func storeUnavailable(keepAlive: Bool) -> [UInt8] {
        let body = "idlegate cannot reach its shared session store; try again in a few seconds\n"
        let connection = keepAlive ? "" : "Connection: close\r\n"
        return Array("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nRetry-After: 5\r\n\(connection)\r\n\(body)".utf8)
    }

    /// For an Upgrade (WebSocket) on an expired session: not forwarded; the browser's socket fails and
    /// Odoo's bus worker backs off until the next click meets the JSON-RPC answer above.
    public static func refusedUpgrade(clearCookie: String) -> [UInt8] {
        let body = "session expired\n"
        return Array("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nCache-Control: no-store\r\nSet-Cookie: \(clearCookie)\r\nConnection: close\r\n\r\n\(body)".utf8)
    }
}
