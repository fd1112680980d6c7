import Testing
@testable import IdlegateHTTP
import IdlegateBase

/// The word-at-a-time scans agree with the byte rules they stand for, for every byte value at every
/// offset within and across the eight-byte words.
struct ByteClassTests {
    @Test func fieldValueScanAgreesWithTheByteRule() {
        for c in 0...255 {
            let byte = UInt8(c)
            for length in [1, 7, 8, 9, 17, 23] {
                for at in 0..<length {
                    var line = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    line[at] = byte
                    let found = line.withUnsafeBytes { ByteClass.firstNonFieldValue($0, 0..<length) }
                    #expect(found == (ByteClass.isFieldValue(byte) ? nil : at), "byte \(c) at \(at) of \(length)")
                }
            }
        }
    }

    /// The table agrees with the sets written as bit masks (an independent spelling of the same rules).
    @Test func tableAgreesWithTheMasks() {
        func inMask(_ b: UInt8, _ low: UInt64, _ high: UInt64) -> Bool {
            b < 64 ? low >> UInt64(b) & 1 != 0 : (b < 128 ? high >> UInt64(b - 64) & 1 != 0 : false)
        }
        for c in 0...255 {
            let b = UInt8(c)
            #expect(ByteClass.isToken(b) == inMask(b, 0x03ff_6cfa_0000_0000, 0x57ff_ffff_c7ff_fffe), "token \(c)")
            #expect((ByteClass.table[c] & ByteClass.host != 0) == inMask(b, 0x2fff_7ff2_0000_0000, 0x47ff_fffe_afff_fffe), "host \(c)")
            #expect((ByteClass.table[c] & ByteClass.target != 0) == (b >= 0x21 && b <= 0x7E && b != 0x23), "target \(c)")
        }
    }

    /// The four-a-step scan ends where the byte-by-byte one does, for every set, byte and place.
    @Test func longRunScanAgreesWithTheByteScan() {
        for set in [ByteClass.token, ByteClass.target, ByteClass.host, ByteClass.cookieValue] {
            for c in 0...255 {
                for length in [1, 3, 4, 5, 8, 13] {
                    for at in 0..<length {
                        var run = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                        run[at] = UInt8(c)
                        run.withUnsafeBytes { b in
                            for from in [0, 1] where from <= length {
                                #expect(ByteClass.endOfLongRun(of: set, in: b, from: from, to: length) == ByteClass.end(of: set, in: b, from: from, to: length))
                            }
                        }
                    }
                }
            }
        }
    }

    @Test func cookieValueRunEndsAtTheFirstOtherByte() {
        for c in 0...255 {
            let byte = UInt8(c)
            for length in [1, 8, 9, 16, 23] {
                for at in 0..<length {
                    var v = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    v[at] = byte
                    let end = v.withUnsafeBufferPointer { ByteClass.cookieValueEnd($0, from: 0) }
                    #expect(end == (CookieHeader.isPlainValueByte(byte) ? length : at), "byte \(c) at \(at) of \(length)")
                    let late = v.withUnsafeBufferPointer { ByteClass.cookieValueEnd($0, from: min(at + 1, length)) }
                    #expect(late == length)
                }
            }
        }
    }

    @Test func cookieValueBytesAreCookieOctetsOrComma() {
        for c in 0...255 {
            let b = UInt8(c)
            let octet = b == 0x21 || (0x23...0x2B).contains(b) || (0x2D...0x3A).contains(b) || (0x3C...0x5B).contains(b) || (0x5D...0x7E).contains(b)
            #expect(CookieHeader.isPlainValueByte(b) == (octet || b == UInt8(ascii: ",")), "byte \(c)")
        }
    }

    @Test func fieldValueScanFindsTheFirstOfSeveralAndKeepsToItsRange() {
        var line = [UInt8](repeating: 0x80, count: 32)
        line[3] = 0x7F
        line[12] = 0x00
        line[20] = 0x0D
        line.withUnsafeBytes { b in
            #expect(ByteClass.firstNonFieldValue(b, 0..<32) == 3)
            #expect(ByteClass.firstNonFieldValue(b, 4..<32) == 12)
            #expect(ByteClass.firstNonFieldValue(b, 13..<20) == nil)
            #expect(ByteClass.firstNonFieldValue(b, 13..<21) == 20)
            #expect(ByteClass.firstNonFieldValue(b, 5..<5) == nil)
        }
        // Tabs, spaces, obs-text and DEL's neighbours are all fine.
        let ok: [UInt8] = [0x09, 0x20, 0x7E, 0x80, 0xFF, 0x21, 0x09, 0x09, 0x41, 0x7E, 0xFE]
        ok.withUnsafeBytes { #expect(ByteClass.firstNonFieldValue($0, 0..<ok.count) == nil) }
    }
}

/// Field names are recognised in any case, and only when spelled exactly.
struct FieldNameTests {
    static let known: [(FieldName, String)] = [
        (.host, "host"), (.contentLength, "content-length"), (.transferEncoding, "transfer-encoding"),
        (.connection, "connection"), (.keepAlive, "keep-alive"), (.proxyConnection, "proxy-connection"),
        (.te, "te"), (.trailer, "trailer"), (.upgrade, "upgrade"), (.proxyAuthenticate, "proxy-authenticate"),
        (.proxyAuthorization, "proxy-authorization"), (.expect, "expect"), (.cookie, "cookie"),
        (.setCookie, "set-cookie"), (.contentType, "content-type"), (.xOpenerpSessionID, "x-openerp-session-id"),
        (.xForwardedFor, "x-forwarded-for"), (.xForwardedProto, "x-forwarded-proto"),
        (.xForwardedHost, "x-forwarded-host"), (.forwarded, "forwarded"), (.xRealIP, "x-real-ip"),
    ]

    @Test func everyKnownNameInAnyCase() {
        for (tag, name) in Self.known {
            #expect(FieldName.classify(name) == tag)
            #expect(FieldName.classify(name.uppercased()) == tag)
            #expect(FieldName.spelling(of: tag).description == name)
            // Mixed case, letter by letter.
            let mixed = String(name.enumerated().map { $0.offset % 2 == 0 ? Character($0.element.uppercased()) : $0.element })
            #expect(FieldName.classify(mixed) == tag)
        }
    }

    @Test func nearMissesAreOther() {
        for (_, name) in Self.known {
            var bytes = Array(name.utf8)
            for i in bytes.indices {
                let keep = bytes[i]
                for other in [UInt8(ascii: "~"), UInt8(ascii: "^"), UInt8(ascii: "0"), UInt8(ascii: "`"), 0x0D, 0x7F] where other | 0x20 != keep {
                    bytes[i] = other
                    let tag = bytes.withUnsafeBytes { FieldName.classify($0) }
                    #expect(tag == .other, "\(String(decoding: bytes, as: UTF8.self))")
                    #expect(FieldName.classify(String(decoding: bytes, as: UTF8.self)) == .other)
                }
                bytes[i] = keep
            }
            #expect(FieldName.classify(name + "s") == .other)
            #expect(FieldName.classify(String(name.dropLast())) == .other)
        }
        #expect(FieldName.classify("X_Openerp_Session_Id") == .underscored)
        #expect(FieldName.classify("host_") == .underscored)
        #expect(FieldName.classify("") == .other)
        #expect(FieldName.classify("x") == .other)
    }
}

/// Copying kept lines in blocks writes exactly what writing them one by one writes.
struct FieldCopyTests {
    static let lines = [
        "Host: a", "X-A:  two spaces", "X-B:\ttab", "X-C: trailing \t", "X-D:", "X-E: ", "X-F:none",
        "Cookie: a=1; b=2", "X-G: v", "Content-Length: 0", "X-H: \u{80}obs", "X-I:  ",
    ]

    @Test func blocksWriteWhatLinesWrite() throws {
        let text = "GET / HTTP/1.1\r\n" + Self.lines.joined(separator: "\r\n") + "\r\n\r\n"
        let (head, _) = try #require(try parseRequest(text))
        let fields = head.fields
        // Every subset given by a mask over the first 12 lines (all 4096 of them).
        for mask in 0..<(1 << fields.count) {
            let blocks = ByteSink()
            fields.write(into: blocks) { i, _ in mask & (1 << i) != 0 }
            let one = ByteSink()
            for i in 0..<fields.count where mask & (1 << i) != 0 { fields.writeField(at: i, into: one) }
            #expect(blocks.bytes == one.bytes, "mask \(mask)")
        }
        // A field added after parsing (its own storage, no CRLF after it) is written, not copied.
        var more = fields
        more.append(name: "X-Z", value: "z")
        let out = ByteSink()
        more.write(into: out)
        #expect(String(decoding: out.bytes, as: UTF8.self).hasSuffix("X-I: \r\nX-Z: z\r\n"))
    }
}

/// Prefix matching compares words; it agrees with a byte-by-byte comparison at every length and for a
/// difference in every place.
struct PathPrefixTests {
    @Test func wordsAgreeWithBytes() {
        let base = Array("/web/dataset/call_kw/res.partner/read".utf8)
        for n in 0...base.count {
            let prefix = Array(base[0..<n])
            base.withUnsafeBytes { #expect(PathPrefix.matches($0, prefix) == (n == base.count || prefix.last == UInt8(ascii: "/") || base[n] == UInt8(ascii: "/"))) }
            for at in 0..<n {
                var other = base
                other[at] ^= 0x01
                other.withUnsafeBytes { #expect(!PathPrefix.matches($0, prefix), "length \(n), difference at \(at)") }
            }
        }
        #expect(PathPrefix.matches(Substring("/web/login"), Array("/web/login".utf8)))
        #expect(PathPrefix.matches(Substring("/web/login/x"), Array("/web/login".utf8)))
        #expect(!PathPrefix.matches(Substring("/web/loginx"), Array("/web/login".utf8)))
        #expect(PathPrefix.matches(Substring("/bus/x"), Array("/bus/".utf8)))
        #expect(!PathPrefix.matches(Substring("/we"), Array("/web/".utf8)))
    }

    /// A set's first-word filter never hides a match: for prefixes and paths of every length around
    /// eight bytes, and a difference in every place, it finds what matching each prefix in turn finds.
    @Test func setAgreesWithEachPrefix() {
        let base = "/web/dataset/call_kw"
        let prefixes = (0...base.count).map { String(base.prefix($0)) } + ["/web/", "/bus/", "/", "/web/dataset/"]
        let set = PrefixSet(prefixes)
        var paths = (0...base.count).map { String(base.prefix($0)) } + [base + "/x", base + "x", "/bus", "/bus/x"]
        for at in 0..<base.count {
            var bytes = Array(base.utf8)
            bytes[at] ^= 0x01
            paths.append(String(decoding: bytes, as: UTF8.self))
        }
        for path in paths {
            let expected = prefixes.firstIndex { PathPrefix.matches(Substring(path), Array($0.utf8)) }
            let found = Array(path.utf8).withUnsafeBytes { set.firstMatch($0) }
            #expect(found == expected, "\(path)")
            #expect(set.matches(Substring(path)) == (expected != nil))
        }
        #expect(!PrefixSet([]).matches(Substring("/web")))
    }
}

/// The Connection options are read when a head is parsed and follow later changes of the fields.
struct ConnectionOptionsTests {
    @Test func readOnceAndKeptUpToDate() throws {
        let (head, _) = try #require(try parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close, X-Secret\r\nconnection:  KEEP-ALIVE\r\n\r\n"))
        var fields = head.fields
        #expect(fields.connectionOptions == [.close, .other, .keepAlive])
        #expect(!head.wantsKeepAlive)
        fields.remove("connection")
        #expect(fields.connectionOptions == [])
        fields.append(name: "Connection", value: "upgrade")
        #expect(fields.connectionOptions == [.upgrade])
        fields.set("Connection", "keep-alive")
        #expect(fields.connectionOptions == [.keepAlive])
        let (plain, _) = try #require(try parseRequest("GET / HTTP/1.0\r\nHost: a\r\n\r\n"))
        #expect(plain.fields.connectionOptions == [] && !plain.wantsKeepAlive)
    }

    /// The parser reads the options as it meets each Connection line: whatever the split, and for the
    /// next message on the same parser, it finds what reading the finished fields finds.
    @Test func parserAgreesWithTheFields() throws {
        for value in ["close", "Keep-Alive", "upgrade, X-A", "  ,, close ,", "x-keep-alive", "", "CLOSE", "keep-alivE, upgrade"] {
            let text = "GET / HTTP/1.1\r\nHost: a\r\nConnection: \(value)\r\nX: 1\r\nConnection: te\r\n\r\n"
            let (whole, _) = try #require(try parseRequest(text))
            let (split, _) = try #require(try parseRequestByteByByte(text))
            let reread = HTTPFields(storage: whole.fields.storage, entries: whole.fields.entries)
            #expect(whole.fields.connectionOptions == reread.connectionOptions, "\(value)")
            #expect(split.fields.connectionOptions == reread.connectionOptions, "\(value)")
        }
        var parser = HeadParser(kind: .request, limits: HTTPLimits())
        for text in ["GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"] {
            let r = try Array(text.utf8).withUnsafeBytes { try parser.parse($0) }
            guard case .request(let head, _) = r else { Issue.record("not parsed"); return }
            #expect(head.fields.connectionOptions == (text.contains("close") ? [HTTPFields.ConnectionOptions.close] : []))
            parser.reset()
        }
    }
}

/// The output sink holds what was appended, in order, across growth; truncating and emptying keep it usable.
struct ByteSinkTests {
    @Test func holdsWhatWasAppendedAcrossGrowth() {
        let sink = ByteSink(capacity: 16)
        var expected: [UInt8] = []
        for k in 0..<300 {
            let piece = (0..<(k % 37)).map { UInt8(truncatingIfNeeded: k &+ $0) }
            sink.append(contentsOf: piece)
            sink.append(UInt8(k % 256))
            expected += piece + [UInt8(k % 256)]
        }
        sink.appendUTF8("literal" as StaticString)
        sink.appendUTF8(String(repeating: "é", count: 40))
        expected += Array("literal".utf8) + Array(String(repeating: "é", count: 40).utf8)
        #expect(sink.bytes == expected)
        #expect(sink.count == expected.count)
        sink.truncate(to: 10)
        #expect(sink.bytes == Array(expected[0..<10]))
        sink.removeAll()
        #expect(sink.isEmpty)
        sink.append(contentsOf: [1, 2, 3])
        #expect(sink.bytes == [1, 2, 3])
    }
}

/// Writing with a set of dropped tags is writing with the same decision as a predicate; the hop-by-hop
/// set is exactly the list written out in the test.
struct DroppedTagsTests {
    @Test func setAndPredicateAgree() throws {
        let all = (0...UInt8.max).compactMap(FieldName.init(rawValue:))
        // RFC 9110 §7.6.1's list plus Proxy-Connection, Keep-Alive and the proxy credentials, spelled out here.
        let hopByHop: [FieldName] = [.connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade,
                                     .proxyAuthenticate, .proxyAuthorization]
        for tag in all { #expect(FieldName.hopByHop.contains(tag) == hopByHop.contains(tag) && tag.isHopByHop == hopByHop.contains(tag), "\(tag)") }
        let text = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nCookie: a=1\r\nX_Y: 1\r\nExpect: 100-continue\r\n"
            + "TE: trailers\r\nX-Forwarded-For: 1.2.3.4\r\nX-Other: 2\r\n\r\n"
        let (head, _) = try #require(try parseRequest(text))
        for mask in [UInt64(0), 1 << UInt64(FieldName.cookie.rawValue), FieldName.hopByHop.bits, ~0] {
            var dropped = FieldName.Set()
            dropped.bits = mask
            let bySet = ByteSink(), byPredicate = ByteSink()
            head.fields.write(into: bySet, dropping: dropped)
            head.fields.write(into: byPredicate) { _, known in !dropped.contains(known) }
            #expect(bySet.bytes == byPredicate.bytes)
        }
    }
}
