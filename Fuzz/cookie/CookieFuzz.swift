// The cookie path (the cookie-bypass issue) under coverage guidance: 1-3 Cookie lines go through
// idlegate's reader and its forwarding decision, and the line Odoo would get is read back by both of
// werkzeug's readers. Whatever the lines: a refusal happens only when Odoo's two joins name different
// sessions; otherwise both readers find in the forwarded line exactly the checked session_id (or none),
// the same pairs, no name twice, and nothing the client did not send.
import FuzzSupport
import IdlegateBase
@testable import IdlegateHTTP
import IdlegateSessions

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let lines = FuzzInput(data, size).bytes.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
    var request = Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8)
    for l in lines { request += Array("Cookie: ".utf8) + l + [0x0D, 0x0A] }
    request += [0x0D, 0x0A]
    var parser = HeadParser(kind: .request, limits: HTTPLimits())
    guard let parsed = try? request.withUnsafeBytes({ try parser.parse($0) }), case .request(let head, _) = parsed else { return 0 }
    let fields = head.fields
    let c = SessionCookie(fields, isSessionID: SessionIDShape.isValid)
    func validID(_ v: [UInt8]?) -> [UInt8]? { v.flatMap { SessionIDShape.isValid($0) ? $0 : nil } }
    let byComma = validID(SessionCookie.firstSessionID(SessionCookie.join(fields, 0x2C)[...], .search))
    let byGevent = validID(SessionCookie.firstSessionID(SessionCookie.join(fields, 0x3B, space: true)[...], .search))
    if c.conflict {
        invariant(byComma != byGevent, "refused, yet both joins read the same session: \(show(request))")
        return 0
    }
    invariant(byComma == byGevent, "the joins name different sessions and it was not refused: \(show(request))")
    let value = c.value.map { Array($0) }
    let valid = value.map(SessionIDShape.isValid) ?? false
    invariant(validID(value) == byComma, "checked id is not what the comma join reads")
    let line: [UInt8]?
    switch c.forwarded(fields, id: c.value, valid: valid, moved: false) {
    case .asSent:
        let all = fields.indices(of: .cookie)
        invariant(all.count <= 1, "several lines forwarded as sent")
        line = all.first.map { Array(fields.valueBytes(at: $0)) }
    case .rebuilt(let s):
        line = s.map { Array($0.utf8) }
    }
    let forwarded = read(line ?? [], .search)
    invariant(forwarded == read(line ?? [], .findall), "the readers disagree on the forwarded line \(show(line ?? []))")
    let ids = forwarded.filter { $0.0 == Array("session_id".utf8) }.map(\.1)
    invariant(ids == (valid ? [value!] : []), "forwarded \(show(line ?? [])) reads session_id \(ids.map(show)), checked \(valid ? show(value!) : "none")")
    invariant(Set(forwarded.map(\.0)).count == forwarded.count, "a name twice in \(show(line ?? []))")
    if line != nil, lines.count > 1 || line! != Array(fields.valueBytes(at: fields.indices(of: .cookie)[0])) {
        let sent = SessionCookie.join(fields, 0x3B, space: true)
        let a = read(sent, .search), b = read(sent, .findall)
        for p in forwarded where p.0 != Array("session_id".utf8) {
            invariant(a.contains { $0 == p } && b.contains { $0 == p }, "forwarded \(show(p.0))=\(show(p.1)) that was not sent")
        }
    }
    return 0
}

func read(_ line: [UInt8], _ reader: CookieHeader.Reader) -> [([UInt8], [UInt8])] {
    var out: [([UInt8], [UInt8])] = []
    CookieHeader.forEach(line[...], reader) { sp in out.append((Array(line[sp.name]), CookieHeader.unquote(line[sp.value]))) }
    return out
}

func == (a: [([UInt8], [UInt8])], b: [([UInt8], [UInt8])]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
}
