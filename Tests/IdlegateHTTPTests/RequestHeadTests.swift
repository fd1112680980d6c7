import IdlegateBase
import Testing
@testable import IdlegateHTTP

@Suite("Request heads")
struct RequestHeadTests {
    @Test func parsesAnOdooJSONRPCCall() throws {
        let text = "POST /web/dataset/call_kw/res.partner/read HTTP/1.1\r\nHost: odoo.example\r\nContent-Type: application/json\r\nCookie: tz=UTC; session_id=abc\r\nContent-Length: 2\r\n\r\n{}"
        let (head, length) = try #require(try parseRequest(text))
        #expect(head.method == "POST")
        #expect(head.target == "/web/dataset/call_kw/res.partner/read")
        #expect(head.version == .http11)
        #expect(head.fields.count == 4)
        #expect(head.fields.first(named: "cookie") == "tz=UTC; session_id=abc")
        #expect(length == text.utf8.count - 2)
        #expect(try head.framing(limits: HTTPLimits()) == .length(2))
    }

    @Test func sameResultWhateverTheReadBoundaries() throws {
        let text = "GET /odoo?x=1 HTTP/1.1\r\nHost: a\r\nX-A:  spaced value \t\r\n\r\n"
        let whole = try #require(try parseRequest(text))
        let trickled = try #require(try parseRequestByteByByte(text))
        #expect(whole.0 == trickled.0)
        #expect(whole.1 == trickled.1)
        #expect(whole.0.fields.first(named: "x-a") == "spaced value")
        #expect(whole.0.path == "/odoo")
    }

    /// werkzeug's server maps `-` and `_` alike to `_`: these would reach Odoo as the fields idlegate
    /// checks or drops under their real names.
    @Test func namesWithAnUnderscoreAreTaggedApart() throws {
        let (head, _) = try #require(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nX_Openerp_Session_Id: x\r\nX-Forwarded_Host: h\r\nX-A-Very-Long-Header_Name-Here: 1\r\nX-Openerp-Session-Id: y\r\n\r\n"))
        #expect((0..<head.fields.count).map { head.fields.known(at: $0) } == [.host, .underscored, .underscored, .underscored, .xOpenerpSessionID])
    }

    /// werkzeug cuts `#…` off before it reads the query; RFC 9112 has no fragment in a request-target.
    @Test func aFragmentIsRefused() throws {
        #expect(refusal("GET /web/x#?session_id=a HTTP/1.1\r\nHost: a\r\n\r\n") == 400)
        #expect(throws: HTTPParseError(400, "fragment (#) in the request target")) { try parseRequest("GET /a?b=1#c HTTP/1.1\r\nHost: a\r\n\r\n") }
    }

    /// Found by the request-head fuzzer: an absolute-form target's authority becomes a Host field, which
    /// counts against the field limit like any other (100 fields plus it wrote out to a head of 101).
    @Test func theHostAnAbsoluteTargetAddsCountsAgainstTheLimit() throws {
        func request(_ n: Int) -> String {
            "GET http://odoo.test/web HTTP/1.1\r\n" + (0..<n).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        }
        let (head, _) = try #require(try parseRequest(request(99)))
        #expect(head.fields.count == 100 && head.fields.first(.host) == "odoo.test")
        #expect(refusal(request(100)) == 431)
    }

    @Test func keepsRepeatedFieldsInOrder() throws {
        let (head, _) = try #require(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: 1\r\nCookie: b=2\r\n\r\n"))
        #expect(head.fields.values(named: "cookie") == ["a=1", "b=2"])
        #expect(head.fields.first(.cookie) == "a=1" && head.fields.last(.cookie) == "b=2" && head.fields.last(.xForwardedFor) == nil)
        let out = ByteSink()
        head.write(into: out)
        #expect(String(decoding: out.bytes, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: 1\r\nCookie: b=2\r\n\r\n")
    }

    @Test func keepsObsTextBytesExactly() throws {
        var bytes = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf".bytes
        bytes += [0xE9]  // Latin-1 é: obs-text, allowed, never re-encoded
        bytes += "\r\n\r\n".bytes
        let r = try #require(try parseHead(bytes, kind: .request, limits: HTTPLimits()))
        guard case .request(let head, _) = r else { Issue.record("not a request"); return }
        #expect(Array(head.fields.valueBytes(at: 1)) == "caf".bytes + [0xE9])
    }

    @Test func waitsForTheEndOfTheHead() throws {
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n") == nil)
        #expect(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r") == nil)
    }

    @Test func toleratesLeadingEmptyLines() throws {
        let (head, length) = try #require(try parseRequest("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(head.target == "/")
        #expect(length == 29)
    }

    @Test func acceptsHTTP10WithoutHost() throws {
        let (head, _) = try #require(try parseRequest("GET / HTTP/1.0\r\n\r\n"))
        #expect(head.version == .http10)
        #expect(!head.wantsKeepAlive)
    }

    @Test func reducesAbsoluteFormToOriginFormAndHost() throws {
        let (head, _) = try #require(try parseRequest("GET http://odoo.example:8069/web?db=x HTTP/1.1\r\nHost: other\r\n\r\n"))
        #expect(head.target == "/web?db=x")
        #expect(head.fields.values(named: "host") == ["odoo.example:8069"])
    }

    @Test func keepAliveRules() throws {
        #expect(try #require(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).0.wantsKeepAlive)
        #expect(try !#require(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).0.wantsKeepAlive)
        #expect(try #require(try parseRequest("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).0.wantsKeepAlive)
    }

    @Test func expectContinue() throws {
        #expect(try #require(try parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")).0.expectsContinue)
        #expect(try !#require(try parseRequest("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")).0.expectsContinue)
    }

    @Test func chunkedFraming() throws {
        let (head, _) = try #require(try parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"))
        #expect(try head.framing(limits: HTTPLimits()) == .chunked)
    }

    @Test func zeroContentLengthHasNoBody() throws {
        let (head, _) = try #require(try parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"))
        #expect(try head.framing(limits: HTTPLimits()) == BodyFraming.none)
    }
}

/// The common methods and the reason "OK" come from literals matched as words: each is what decoding the
/// bytes gives, any other spelling (case included) is decoded as sent, and a short reason at the very
/// end of the head (where no whole word can be loaded) is read byte by byte.
struct CommonWordsTests {
    @Test func methodsAreWhatWasSent() throws {
        for method in ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "Post", "GETS", "GE", "PROPFIND", "OPTIONSX", "DELETF"] {
            let (head, _) = try #require(try parseRequest("\(method) / HTTP/1.1\r\nHost: a\r\n\r\n"))
            #expect(head.method == method)
        }
    }

    @Test func reasonsAreWhatWasSent() throws {
        for reason in ["OK", "ok", "O", "OKAY", "Not Found", "OK OK"] {
            let (head, _) = try #require(try parseResponse("HTTP/1.1 200 \(reason)\r\nContent-Length: 0\r\n\r\n"))
            #expect(head.reason == reason)
            let (bare, _) = try #require(try parseResponse("HTTP/1.1 200 \(reason)\r\n\r\n"))
            #expect(bare.reason == reason)
        }
    }
}
