import Testing
@testable import IdlegateHTTP

/// FACTS' cookie table (measured on a real Odoo 18), row by row: the session_id idlegate reads must be
/// the one werkzeug reads. A = a valid id, B = another well-formed one.
@Suite("Cookie reading, the werkzeug way")
struct CookieTests {
    static let A = String(repeating: "A", count: 83) + "a"
    static let B = String(repeating: "B", count: 84)

    func session(_ headers: [String]) -> SessionCookie {
        var text = "GET / HTTP/1.1\r\nHost: a\r\n"
        for h in headers { text += "Cookie: \(h)\r\n" }
        text += "\r\n"
        var p = HeadParser(kind: .request, limits: HTTPLimits())
        let bytes = Array(text.utf8)
        guard case .request(let head, _) = try! bytes.withUnsafeBytes({ try p.parse($0) }) else { fatalError() }
        return SessionCookie(head.fields)
    }

    func first(_ headers: [String]) -> String? {
        session(headers).value.map { String(decoding: $0, as: UTF8.self) }
    }

    struct Row: CustomTestStringConvertible, Sendable {
        let label: String
        let headers: [String]
        let expected: String?
        var testDescription: String { label }
    }

    static let rows: [Row] = [
        Row(label: "first of two wins", headers: ["session_id=\(A); session_id=\(B)"], expected: A),
        Row(label: "first of two wins, other order", headers: ["session_id=\(B); session_id=\(A)"], expected: B),
        Row(label: "two Cookie headers read as one, first wins", headers: ["session_id=\(B)", "session_id=\(A)"], expected: B),
        Row(label: "quoted", headers: ["session_id=\"\(A)\""], expected: A),
        Row(label: "octal escape", headers: ["session_id=\"\\101\(A.dropFirst())\""], expected: A),
        Row(label: "backslash escape", headers: ["session_id=\"\\xyz\""], expected: "xyz"),
        Row(label: "space before =", headers: ["session_id =\(A)"], expected: A),
        Row(label: "space after =", headers: ["session_id= \(A)"], expected: A),
        Row(label: "tab after =", headers: ["session_id=\t\(A)"], expected: A),
        Row(label: "bare first entry wins", headers: ["session_id; session_id=\(A)"], expected: ""),
        Row(label: "empty first entry wins", headers: ["session_id=; session_id=\(A)"], expected: ""),
        Row(label: "comma is not a separator", headers: ["session_id=\(B), session_id=\(A)"], expected: "\(B), session_id=\(A)"),
        Row(label: "name is case-sensitive", headers: ["SESSION_ID=\(A)"], expected: nil),
        Row(label: "no URL decoding", headers: ["session_id=%41\(A.dropFirst())"], expected: "%41\(A.dropFirst())"),
        Row(label: "other cookies around", headers: ["tz=UTC; session_id=\(A); cids=1"], expected: A),
        Row(label: "quoted value with a semicolon", headers: ["x=\"a;session_id=\(B)\"; session_id=\(A)"], expected: A),
    ]

    @Test(arguments: rows)
    func factsTable(_ row: Row) {
        #expect(first(row.headers) == row.expected)
    }

    @Test func canonicalSingleCookieNeedsNoRebuild() {
        #expect(!session(["tz=UTC; session_id=\(Self.A); cids=1"]).needsRebuild)
        #expect(session(["session_id=\(Self.A); session_id=\(Self.A)"]).needsRebuild)
        #expect(session(["session_id=\"\(Self.A)\""]).needsRebuild)
        #expect(session(["session_id =\(Self.A)"]).needsRebuild)
        #expect(session(["x=1", "session_id=\(Self.A)"]).needsRebuild)
    }

    @Test func rebuildKeepsOtherCookiesAndOneSessionID() {
        var p = HeadParser(kind: .request, limits: HTTPLimits())
        let text = "GET / HTTP/1.1\r\nHost: a\r\nCookie: tz=UTC; session_id=\(Self.B); cids=\"1,2\"\r\nCookie: session_id=\(Self.A); frontend_lang=en_US\r\n\r\n"
        let bytes = Array(text.utf8)
        guard case .request(let head, _) = try! bytes.withUnsafeBytes({ try p.parse($0) }) else { Issue.record("no head"); return }
        #expect(SessionCookie.rebuild(head.fields, sessionID: Self.B) == "tz=UTC; cids=\"1,2\"; frontend_lang=en_US; session_id=\(Self.B)")
        #expect(SessionCookie.rebuild(head.fields, sessionID: nil) == "tz=UTC; cids=\"1,2\"; frontend_lang=en_US")
    }
}
