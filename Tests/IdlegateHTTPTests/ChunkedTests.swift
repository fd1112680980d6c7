import IdlegateBase
import Testing
@testable import IdlegateHTTP

@Suite("Chunked bodies")
struct ChunkedTests {
    @Test func decodesChunksExtensionsAndTrailers() throws {
        let body = "5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n".bytes
        let r = try decodeBody(.chunked, [body])
        #expect(String(decoding: r.data, as: UTF8.self) == "hello world")
        #expect(r.done)
        #expect(r.leftover == 0)
    }

    @Test func sameResultAtEverySplitPoint() throws {
        let body = "a\r\n0123456789\r\n1F\r\n0123456789abcdef0123456789abcde\r\n0\r\nT: 1\r\n\r\n".bytes
        let whole = try decodeBody(.chunked, [body])
        for cut in 1..<body.count {
            let r = try decodeBody(.chunked, [Array(body[..<cut]), Array(body[cut...])])
            #expect(r.data == whole.data, "split at \(cut)")
            #expect(r.done)
        }
        let trickled = try decodeBody(.chunked, body.map { [$0] })
        #expect(trickled.data == whole.data)
    }

    @Test func leavesThePipelinedNextRequest() throws {
        let r = try decodeBody(.chunked, ["1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n".bytes])
        #expect(r.data == "x".bytes)
        #expect(r.leftover == 16)
    }

    @Test func uppercaseHexAndLeadingZeros() throws {
        let r = try decodeBody(.chunked, ["000A\r\n0123456789\r\n0\r\n\r\n".bytes])
        #expect(r.data.count == 10)
    }

    struct Bad: CustomTestStringConvertible, Sendable {
        let label: String
        let raw: String
        var testDescription: String { label }
    }

    static let bad: [Bad] = [
        Bad(label: "no size digits", raw: "\r\nx\r\n"),
        Bad(label: "0x prefix", raw: "0x5\r\nhello\r\n0\r\n\r\n"),
        Bad(label: "negative size", raw: "-5\r\nhello\r\n"),
        Bad(label: "leading space", raw: " 5\r\nhello\r\n"),
        Bad(label: "size overflow", raw: "11111111111111111\r\n"),
        Bad(label: "non-hex after digits", raw: "5g\r\nhello\r\n"),
        Bad(label: "bare LF after size", raw: "5\nhello\r\n0\r\n\r\n"),
        Bad(label: "bare CR after size", raw: "5\rhello\r\n"),
        Bad(label: "LF in extension", raw: "5;a\nb\r\nhello\r\n0\r\n\r\n"),
        Bad(label: "NUL in extension", raw: "5;a\u{0}\r\nhello\r\n"),
        Bad(label: "data longer than size", raw: "5\r\nhello!\r\n0\r\n\r\n"),
        Bad(label: "data shorter than size", raw: "5\r\nhell\r\n0\r\n\r\n"),
        Bad(label: "bare LF after data", raw: "5\r\nhello\n0\r\n\r\n"),
        Bad(label: "obs-fold in trailer", raw: "0\r\nX: a\r\n b\r\n\r\n"),
        Bad(label: "bare LF ending trailers", raw: "0\r\n\n"),
        Bad(label: "control char in trailer", raw: "0\r\nX: \u{1}\r\n\r\n"),
        Bad(label: "whitespace then junk", raw: "5 x\r\nhello\r\n"),
    ]

    @Test(arguments: bad)
    func refused(_ b: Bad) {
        #expect(throws: HTTPParseError.self) { try decodeBody(.chunked, [b.raw.bytes]) }
    }

    @Test func chunkLineLimit() {
        var limits = HTTPLimits()
        limits.chunkLine = 64
        let long = "5;" + String(repeating: "x", count: 100) + "\r\nhello\r\n0\r\n\r\n"
        #expect(throws: HTTPParseError.self) { try decodeBody(.chunked, [long.bytes], limits: limits) }
    }

    @Test func encoderFramesData() {
        for (n, text) in [(255, "ff"), (0, "0"), (1, "1"), (16, "10"), (0xABCDEF, "abcdef"), (Int.max, "7fffffffffffffff")] {
            let out = ByteSink()
            ChunkedEncoder.chunkHeader(n, into: out)
            #expect(out.bytes == (text + "\r\n").bytes)
        }
        #expect(ChunkedEncoder.lastChunk == "0\r\n\r\n".bytes)
    }
}

@Suite("Other bodies")
struct BodyTests {
    @Test func contentLengthStopsAtTheEnd() throws {
        let r = try decodeBody(.length(5), ["hel".bytes, "loGET".bytes])
        #expect(r.data == "hello".bytes)
        #expect(r.done)
        #expect(r.leftover == 3)
    }

    @Test func untilCloseTakesEverythingAndEndsAtEOF() throws {
        var d = BodyDecoder(.untilClose, limits: HTTPLimits())
        var out: [UInt8] = []
        _ = try "abc".bytes.withUnsafeBytes { b in try d.decode(b) { out.append(contentsOf: $0) } }
        #expect(!d.isDone)
        let ended = d.finishAtEOF()
        #expect(ended)
        #expect(out == "abc".bytes)
    }

    @Test func truncatedLengthBodyIsNotComplete() throws {
        var d = BodyDecoder(.length(10), limits: HTTPLimits())
        _ = try "abc".bytes.withUnsafeBytes { b in try d.decode(b) { _ in } }
        let ended = d.finishAtEOF()
        #expect(!ended)
    }
}
