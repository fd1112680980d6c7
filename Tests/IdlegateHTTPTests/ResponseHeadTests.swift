import IdlegateBase
import Testing
@testable import IdlegateHTTP

@Suite("Response heads")
struct ResponseHeadTests {
    /// Odoo's prefork port (18-real, captures/04): HTTP/1.0, Content-Length, Connection: close.
    @Test func odooPreforkResponse() throws {
        let text = "HTTP/1.0 200 OK\r\nServer: Werkzeug/2.2.2 Python/3.11.7\r\nContent-Type: application/json\r\nContent-Length: 12388\r\nConnection: close\r\n\r\n"
        let (head, _) = try #require(try parseResponse(text))
        #expect(head.version == .http10)
        #expect(head.status == 200)
        #expect(!head.allowsReuse)
        #expect(try head.framing(requestMethod: "GET") == .length(12388))
    }

    @Test func http10WithoutLengthIsCloseDelimited() throws {
        let (head, _) = try #require(try parseResponse("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n"))
        #expect(try head.framing(requestMethod: "GET") == .untilClose)
    }

    @Test func bodilessResponses() throws {
        let (ok, _) = try #require(try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"))
        #expect(try ok.framing(requestMethod: "HEAD") == BodyFraming.none)
        for status in ["204 No Content", "304 Not Modified", "101 Switching Protocols", "103 Early Hints"] {
            let (h, _) = try #require(try parseResponse("HTTP/1.1 \(status)\r\nContent-Length: 50\r\n\r\n"))
            #expect(try h.framing(requestMethod: "GET") == BodyFraming.none)
        }
    }

    /// Regression (found by a scenario test while the request and response framing rules were merged):
    /// `Content-Length: 0` is a body of none, not a close-delimited one.
    @Test func anEmptyLengthIsNoBody() throws {
        let (redirect, _) = try #require(try parseResponse("HTTP/1.1 303 SEE OTHER\r\nLocation: /odoo\r\nContent-Length: 0\r\n\r\n"))
        #expect(try redirect.framing(requestMethod: "GET") == BodyFraming.none)
        let (request, _) = try #require(try parseRequest("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"))
        #expect(try request.framing(limits: HTTPLimits()) == BodyFraming.none)
    }

    @Test func websocket101FromOdoo() throws {
        let (head, _) = try #require(try parseResponse("HTTP/1.1 101 SWITCHING PROTOCOLS\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: laN6LDhx3jHWnPXHqBN5Fy/ZU5w=\r\n\r\n"))
        #expect(head.status == 101)
        #expect(head.reason == "SWITCHING PROTOCOLS")
    }

    @Test func keepsEverySetCookie() throws {
        let (head, _) = try #require(try parseResponse("HTTP/1.1 303 See Other\r\nSet-Cookie: cids=; Max-Age=0\r\nSet-Cookie: session_id=x; HttpOnly; Path=/\r\nLocation: /odoo\r\nContent-Length: 0\r\n\r\n"))
        #expect(head.fields.values(named: "set-cookie").count == 2)
    }

    @Test func missingReasonPhraseIsTolerated() throws {
        let (head, _) = try #require(try parseResponse("HTTP/1.1 204\r\n\r\n"))
        #expect(head.status == 204)
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
    ])
    func ambiguousFramingIsRefused(_ raw: String) throws {
        let (head, _) = try #require(try parseResponse(raw))
        #expect(throws: HTTPParseError.self) { try head.framing(requestMethod: "GET") }
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/3.0 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
    ])
    func malformedHeadsAreRefused(_ raw: String) {
        #expect(throws: HTTPParseError.self) { try parseResponse(raw) }
    }
}
