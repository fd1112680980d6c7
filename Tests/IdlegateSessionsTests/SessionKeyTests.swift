import Testing
@testable import IdlegateSessions

@Suite("Session keys")
struct SessionKeyTests {
    let deriver = SessionKeyDeriver(secret: Array(0..<32))
    /// An Odoo 18 id from captures/ (dead, from a throw-away database).
    let odoo18 = Array("bc0nPQyGPVEzjwdUfay0CrIH7OBGQGt-e1gAYwaKwFDQzK3sklQ7l5ax6QoOODSSp3_X6vX6NP1RYh2xCJto".utf8)

    /// Reference values from Python's hmac module: HMAC-SHA256(key, id[:42]), first 128 bits.
    @Test func matchesHMACSHA256() {
        #expect(deriver.key(for: odoo18[...]).description == "a48e7587d2bea28f2f48b16ccbb6b6b5")
        let hex = Array("0123456789abcdef0123456789abcdef01234567".utf8)
        #expect(deriver.key(for: hex[...]).description == "e176b9acb1339ac15351852818be440e")
    }

    /// Odoo 19 rotates the id every 3 h keeping its first 42 characters: the key must not change.
    @Test func survivesOdoo19Rotation() {
        var rotated = odoo18
        for i in 42..<rotated.count { rotated[i] = UInt8(ascii: "Z") }
        #expect(deriver.key(for: rotated[...]) == deriver.key(for: odoo18[...]))
        var other = odoo18
        other[41] = UInt8(ascii: "Z")
        #expect(deriver.key(for: other[...]) != deriver.key(for: odoo18[...]))
    }

    @Test func anotherSecretGivesOtherKeys() {
        let d2 = SessionKeyDeriver(secret: Array(repeating: 7, count: 32))
        #expect(d2.key(for: odoo18[...]) != deriver.key(for: odoo18[...]))
    }

    /// The cache gives the deriver's key for every id, hit or miss: ids that share a slot, ids that differ
    /// only in one byte or in length (a 40-hex id and the same with two more characters), and an id
    /// asked again after others took its slot.
    @Test func cacheGivesTheDeriversKeys() {
        let cache = SessionKeyCache(deriver: deriver)
        var ids: [[UInt8]] = [odoo18, Array(odoo18.prefix(40)), Array(odoo18.prefix(41)), Array("0123456789abcdef0123456789abcdef01234567".utf8)]
        for i in 0..<42 {  // one byte changed, in every place of the stable part
            var id = odoo18
            id[i] = id[i] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            ids.append(id)
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {  // more ids than slots: many share one
            ids.append((0..<84).map { _ in UInt8(ascii: "a") + UInt8.random(in: 0..<26, using: &generator) })
        }
        for round in 0..<2 {
            for id in ids {
                #expect(cache.key(for: id[...]) == deriver.key(for: id[...]), "round \(round)")
            }
        }
        // Odoo 19's rotation keeps the key through the cache too.
        var rotated = odoo18
        for i in 42..<rotated.count { rotated[i] = UInt8(ascii: "Z") }
        _ = cache.key(for: odoo18[...])
        #expect(cache.key(for: rotated[...]) == deriver.key(for: odoo18[...]))
    }

    @Test(arguments: [
        ("0123456789abcdef0123456789abcdef01234567", true),
        ("0123456789ABCDEF0123456789abcdef01234567", false),  // 12-17 ids are lower-case
        (String(repeating: "a", count: 84), true),
        (String(repeating: "a", count: 86), true),
        (String(repeating: "a", count: 83), false),
        (String(repeating: "a", count: 87), false),
        (String(repeating: "a", count: 83) + "=", false),
        (String(repeating: "a", count: 83) + "%", false),
        ("", false),
    ])
    func shapes(_ id: String, _ valid: Bool) {
        #expect(SessionIDShape.isValid(Array(id.utf8)) == valid)
    }

    /// Every byte value in every place of a 40-hex and an 86-character id, against the rule spelled out.
    @Test func shapesByteByByte() {
        func hex(_ c: UInt8) -> Bool { (0x30...0x39).contains(c) || (0x61...0x66).contains(c) }
        func base64url(_ c: UInt8) -> Bool {
            (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) || c == 0x2D || c == 0x5F
        }
        for (length, rule) in [(40, hex), (86, base64url)] as [(Int, (UInt8) -> Bool)] {
            for at in [0, 1, 39, length - 1] {
                for c in 0...255 {
                    var id = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    id[at] = UInt8(c)
                    #expect(SessionIDShape.isValid(id) == rule(UInt8(c)), "byte \(c) at \(at) of \(length)")
                }
            }
        }
    }

    @Test func randomSecretsDiffer() throws {
        let a = try #require(SessionKeyDeriver.randomSecret())
        let b = try #require(SessionKeyDeriver.randomSecret())
        #expect(a.count == 32 && a != b)
    }
}
