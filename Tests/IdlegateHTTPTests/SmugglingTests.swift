import IdlegateBase
import Testing
@testable import IdlegateHTTP

/// Every request shape that lets two parsers disagree about where a message ends, or that hides
/// bytes one of them skips. Each must be refused with the status given, never forwarded.
@Suite("Refused request shapes")
struct SmugglingTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let label: String
        let raw: String
        let status: Int
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "TE and CL together", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400),
        Case(label: "CL and TE together, other order", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", status: 400),
        Case(label: "duplicate equal CL", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", status: 400),
        Case(label: "conflicting CL", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", status: 400),
        Case(label: "CL list", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", status: 400),
        Case(label: "CL with sign", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", status: 400),
        Case(label: "CL negative", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", status: 400),
        Case(label: "CL hex", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", status: 400),
        Case(label: "CL empty", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", status: 400),
        Case(label: "CL overflow", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", status: 413),
        Case(label: "TE gzip, chunked", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501),
        Case(label: "TE chunked, chunked", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", status: 501),
        Case(label: "TE identity", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", status: 501),
        Case(label: "TE misspelt", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", status: 501),
        Case(label: "two TE fields", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400),
        Case(label: "TE with empty element", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", status: 400),
        Case(label: "TE in HTTP/1.0", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400),
        Case(label: "TE with space before colon", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", status: 400),
        Case(label: "TE with tab before colon", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n", status: 400),
        Case(label: "TE as obs-fold continuation", raw: "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n", status: 400),
        Case(label: "obs-fold with tab", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n", status: 400),
        Case(label: "HTTP/1.1 without Host", raw: "GET / HTTP/1.1\r\nX: y\r\n\r\n", status: 400),
        Case(label: "two Host fields", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        Case(label: "Host with space", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
        Case(label: "Host with userinfo", raw: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", status: 400),
        Case(label: "empty Host", raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n", status: 400),
        Case(label: "bare LF line ending", raw: "GET / HTTP/1.1\nHost: a\n\n", status: 400),
        Case(label: "bare LF inside the head", raw: "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", status: 400),
        Case(label: "bare CR in a value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: y\rTransfer-Encoding: chunked\r\n\r\n", status: 400),
        Case(label: "bare CR in a name", raw: "GET / HTTP/1.1\r\nHost: a\r\nX\r: y\r\n\r\n", status: 400),
        Case(label: "bare CR in the request line", raw: "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", status: 400),
        Case(label: "NUL in a value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", status: 400),
        Case(label: "control character in a value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", status: 400),
        Case(label: "DEL in a value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7f}b\r\n\r\n", status: 400),
        Case(label: "control character in a name", raw: "GET / HTTP/1.1\r\nHost: a\r\nX\u{1}Y: b\r\n\r\n", status: 400),
        Case(label: "non-token name", raw: "GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n", status: 400),
        Case(label: "empty name", raw: "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", status: 400),
        Case(label: "line without colon", raw: "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", status: 400),
        Case(label: "two spaces in request line", raw: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(label: "space in target", raw: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(label: "non-ASCII in target", raw: "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(label: "lower-case version", raw: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(label: "HTTP/2.0 version", raw: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505),
        Case(label: "HTTP/0.9 request", raw: "GET /\r\n\r\n", status: 400),
        Case(label: "whitespace before the first field", raw: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", status: 400),
        Case(label: "CONNECT", raw: "CONNECT odoo:443 HTTP/1.1\r\nHost: odoo:443\r\n\r\n", status: 405),
        Case(label: "authority-form outside CONNECT", raw: "GET odoo:443 HTTP/1.1\r\nHost: odoo\r\n\r\n", status: 400),
        Case(label: "asterisk outside OPTIONS", raw: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Case(label: "body over the limit", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 134217729\r\n\r\n", status: 413),
    ]

    @Test(arguments: cases)
    func refused(_ c: Case) {
        #expect(refusal(c.raw) == c.status)
    }

    @Test func requestLineLimitGives414EvenBeforeTheLineEnds() {
        var limits = HTTPLimits()
        limits.requestLine = 256
        let long = "GET /" + String(repeating: "a", count: 300)
        #expect(refusal(long, limits: limits) == 414)
        #expect(refusal(long + " HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits) == 414)
    }

    @Test func headerBytesLimitGives431() {
        var limits = HTTPLimits()
        limits.headerBytes = 1024
        let big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 2000)
        #expect(refusal(big, limits: limits) == 431)
        #expect(refusal(big + "\r\n\r\n", limits: limits) == 431)
    }

    @Test func headerCountLimitGives431() {
        var limits = HTTPLimits()
        limits.headerCount = 10
        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<11).map { "X-\($0): y\r\n" }.joined() + "\r\n"
        #expect(refusal(many, limits: limits) == 431)
        let ok = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<9).map { "X-\($0): y\r\n" }.joined() + "\r\n"
        #expect(refusal(ok, limits: limits) == nil)
    }

    @Test func acceptedShapesStayAccepted() {
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
        #expect(refusal("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") == nil)
        #expect(refusal("GET / HTTP/1.1\r\nHost: [::1]:8069\r\n\r\n") == nil)
        #expect(refusal("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n") == nil)
        #expect(refusal("GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n") == nil)
    }
}
