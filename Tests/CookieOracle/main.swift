// cookie-oracle: idlegate's cookie decision, for the differential test (Tests/scenarios).
//
// Each input line is one request's Cookie lines, each hex-encoded (`.` for an empty one), separated by
// spaces (an empty input line: no Cookie header). Each output line is `refused REASON`, or `forward ID LINE` where ID is the hex of
// the session id idlegate checked and LINE the hex of the one Cookie line it forwards (`-` for none).
// The decision is the proxy's own: `SessionCookie`, the id shape check, `forwarded` (no legacy source).
import IdlegateBase
import IdlegateHTTP
import IdlegateSessions

/// Hex, or `.` for no bytes (an empty line is still a line).
func hex(_ bytes: [UInt8]) -> String { bytes.isEmpty ? "." : Hex.encode(bytes) }

func unhex(_ s: Substring) -> [UInt8]? { Hex.decode(String(s)) }

func decide(_ lines: [[UInt8]]) -> String {
    var request = Array("GET /web/dataset/call_kw HTTP/1.1\r\nHost: odoo.test\r\n".utf8)
    for l in lines { request += Array("Cookie: ".utf8) + l + [0x0D, 0x0A] }
    request += [0x0D, 0x0A]
    var parser = HeadParser(kind: .request, limits: HTTPLimits())
    let parsed: HeadParser.Result
    do {
        parsed = try request.withUnsafeBytes { try parser.parse($0) }
    } catch {
        return "refused malformed"
    }
    guard case .request(let head, _) = parsed else { return "refused incomplete" }
    let cookie = SessionCookie(head.fields, isSessionID: SessionIDShape.isValid)
    if cookie.conflict { return "refused conflict" }
    let valid = cookie.value.map(SessionIDShape.isValid) ?? false
    let id = valid ? hex(Array(cookie.value!)) : "-"
    switch cookie.forwarded(head.fields, id: cookie.value, valid: valid, moved: false) {
    case .asSent:
        let lines = head.fields.indices(of: .cookie).map { Array(head.fields.valueBytes(at: $0)) }
        precondition(lines.count <= 1, "several lines forwarded as sent")
        return "forward \(id) \(lines.first.map(hex) ?? "-")"
    case .rebuilt(let line):
        return "forward \(id) \(line.map { hex(Array($0.utf8)) } ?? "-")"
    }
}

while let line = readLine(strippingNewline: true) {
    let parts = line.split(separator: " ", omittingEmptySubsequences: true)
    let lines = parts.compactMap { $0 == "." ? [] : unhex($0) }
    print(lines.count == parts.count ? decide(lines) : "refused badinput")
}
