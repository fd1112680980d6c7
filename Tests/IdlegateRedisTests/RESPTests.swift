import IdlegateBase
import IdlegateRedis
import Testing

@Suite("RESP and Redis URLs")
struct RESPTests {
    @Test func encodesCommandsAsBulkArrays() {
        #expect(String(decoding: RESP.command(["SET", "k", "vé"]), as: UTF8.self) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nvé\r\n")
    }

    @Test func parsesEveryReplyTypeCutAnywhere() throws {
        let stream = Array("+OK\r\n-ERR no\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*3\r\n$1\r\na\r\n*-1\r\n*1\r\n:7\r\n*0\r\n".utf8)
        let expected: [RESPValue] = [.simple("OK"), .error("ERR no"), .integer(42), .bulk(Array("he\r\no".utf8)), .null,
                                     .array([.bulk([97]), .null, .array([.integer(7)])]), .array([])]
        for cut in 0...stream.count {
            var p = RESPParser()
            var got: [RESPValue] = []
            p.feed(Array(stream[..<cut]))
            while let v = try p.next() { got.append(v) }
            p.feed(Array(stream[cut...]))
            while let v = try p.next() { got.append(v) }
            #expect(got == expected, "cut at \(cut)")
        }
    }

    @Test(arguments: ["?x\r\n", "$3\r\nabcd\r\n", ":1x\r\n", "$99999999999\r\n", "*-5\r\n", "+a\rb\r\n",
                      String(repeating: "*1\r\n", count: 20) + ":1\r\n"])
    func refusesMalformedStreams(_ text: String) {
        var p = RESPParser()
        p.feed(Array(text.utf8))
        #expect(throws: RESPError.self) { while try p.next() != nil {} }
    }

    @Test func aLineThatNeverEndsIsBounded() {
        var p = RESPParser()
        p.feed(Array(("+" + String(repeating: "a", count: RESPParser.maxLine + 10)).utf8))
        #expect(throws: RESPError.self) { _ = try p.next() }
    }

    @Test func readsEachURLForm() throws {
        let a = try RedisURL.parse("redis://localhost")
        #expect(a.place == .tcp(host: "localhost", port: 6379) && !a.tls && a.database == 0 && a.password == nil)
        let b = try RedisURL.parse("rediss://idlegate:p%40ss@redis.example:6380/3")
        #expect(b.place == .tcp(host: "redis.example", port: 6380) && b.tls && b.user == "idlegate" && b.password == "p@ss" && b.database == 3)
        #expect(b.description == "rediss://idlegate:***@redis.example:6380/3")
        let c = try RedisURL.parse("unix://:secret@/run/redis/redis.sock?db=2")
        #expect(c.place == .unix(path: "/run/redis/redis.sock") && c.password == "secret" && c.user == nil && c.database == 2)
        let d = try RedisURL.parse("redis://[::1]:7000")
        #expect(d.place == .tcp(host: "::1", port: 7000))
    }

    @Test(arguments: ["localhost:6379", "http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x", "unix://relative.sock",
                      "redis://h:p%4@x", "unix:///s?db=x"])
    func refusesBadURLs(_ text: String) {
        #expect(throws: RedisURL.Invalid.self) { try RedisURL.parse(text) }
    }
}
