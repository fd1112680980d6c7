import Foundation
import Glibc
import IdlegateBase
import IdlegateSessions
import Testing
@testable import IdlegateReaper

@Suite("Reaper")
struct ReaperTests {
    static let deriver = SessionKeyDeriver(secret: Array(repeating: 3, count: 32))
    static let now = Int64(Date().timeIntervalSince1970 * 1000)
    static let hour: Int64 = 3_600_000
    static let rules = Reaper.Rules(idle: 7 * 24 * hour, anonymousIdle: hour)

    /// Odoo 18's JSON session file, as in ../shared/odoo/FACTS.md.
    static func json(uid: Int?) -> String {
        let u = uid.map(String.init) ?? "null"
        return #"{"uid": \#(u), "login": \#(uid == nil ? "null" : "\"admin\""), "db": "odoo", "context": {"lang": "en_US", "tz": "Europe/Brussels"}, "session_token": \#(uid == nil ? "null" : "\"3f1c0e9a\""), "debug": "", "_trace": [{"last_activity": 1764070000.0}]}"#
    }

    static func sid84(_ n: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var x = UInt64(n + 1) &* 0x9E37_79B9_7F4A_7C15
        return String((0..<84).map { _ in x = x &* 6364136223846793005 &+ 1442695040888963407; return alphabet[Int(x >> 58)] })
    }

    static func sid40(_ n: Int) -> String {
        var x = UInt64(n + 1) &* 0xBF58_476D_1CE4_E5B9
        return String((0..<40).map { _ in x = x &* 6364136223846793005 &+ 1442695040888963407; return Array("0123456789abcdef")[Int(x >> 60)] })
    }

    final class Tree {
        let root: String
        init() {
            root = NSTemporaryDirectory() + "odoo-sessions-\(UUID().uuidString)"
            try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// A 16+ session file, `age` ms old.
        @discardableResult
        func modern(_ sid: String, _ content: String, age: Int64) -> String {
            let dir = root + "/" + sid.prefix(2)
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return file(dir + "/" + sid, content, age: age)
        }

        @discardableResult
        func file(_ path: String, _ content: String, age: Int64) -> String {
            FileManager.default.createFile(atPath: path, contents: Data(content.utf8))
            setAge(path, age)
            return path
        }

        func setAge(_ path: String, _ age: Int64) {
            let t = ReaperTests.now - age
            var times = [timespec(tv_sec: Int(t / 1000), tv_nsec: Int(t % 1000) * 1_000_000), timespec(tv_sec: Int(t / 1000), tv_nsec: Int(t % 1000) * 1_000_000)]
            utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        }

        func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
    }

    func reap(_ tree: Tree, rules: Reaper.Rules = ReaperTests.rules, ended: @escaping (SessionKey) -> Bool = { _ in false }) throws -> Reaper.Summary {
        try Reaper(sessions: tree.root, rules: rules, deriver: Self.deriver, clock: ManualClock(Self.now), ended: ended).run()
    }

    @Test func modernLayoutByAgeAndLoginState() throws {
        let t = Tree()
        let fresh = t.modern(Self.sid84(1), Self.json(uid: 2), age: 10 * 60_000)
        let staleAnonymous = t.modern(Self.sid84(2), Self.json(uid: nil), age: 2 * Self.hour)
        let freshAnonymous = t.modern(Self.sid84(3), Self.json(uid: nil), age: 30 * 60_000)
        let loggedInDayOld = t.modern(Self.sid84(4), Self.json(uid: 2), age: 24 * Self.hour)
        let weekOld = t.modern(Self.sid84(5), Self.json(uid: 2), age: 8 * 24 * Self.hour)
        let pickle = t.modern(Self.sid40(6), "\u{80}\u{4}\u{95}pickled uid None", age: 2 * Self.hour)  // 16-17: pickle
        let s = try reap(t)
        #expect(s.scanned == 6)
        #expect(s.deleted[.anonymous] == 1 && s.deleted[.idle] == 1 && s.deletedTotal == 2)
        #expect(t.exists(fresh) && t.exists(freshAnonymous) && t.exists(loggedInDayOld) && t.exists(pickle))
        #expect(!t.exists(staleAnonymous) && !t.exists(weekOld))
        #expect(s.errors.isEmpty)
    }

    @Test func legacyFlatLayout() throws {
        let t = Tree()
        let old = t.file(t.root + "/werkzeug_\(Self.sid40(1)).sess", "pickle", age: 8 * 24 * Self.hour)
        let young = t.file(t.root + "/werkzeug_\(Self.sid40(2)).sess", "pickle", age: 2 * Self.hour)  // never judged anonymous
        let temp = t.file(t.root + "/tmpab12cd.__wz_sess", "partial", age: 8 * 24 * Self.hour)
        let s = try reap(t)
        #expect(!t.exists(old) && t.exists(young) && t.exists(temp))
        #expect(s.deleted[.idle] == 1 && s.skipped == 1)
    }

    @Test func endedSessionsGoAtOnceMatchedByKey() throws {
        let t = Tree()
        let sid = Self.sid84(7)
        let mine = t.modern(sid, Self.json(uid: 2), age: 1000)
        let other = t.modern(Self.sid84(8), Self.json(uid: 2), age: 1000)
        let key = Self.deriver.key(for: Array(sid.utf8)[...])
        let dry = try reap(t, rules: Reaper.Rules(idle: Self.rules.idle, anonymousIdle: Self.hour, dryRun: true)) { $0 == key }
        #expect(dry.wouldDelete.count == 1 && dry.wouldDelete[0].key == key.description && dry.wouldDelete[0].reason == .ended)
        #expect(t.exists(mine))  // a dry run deletes nothing
        #expect(!dry.text.contains(sid) && !dry.json.contains(sid))  // listed by key, never by file name
        let s = try reap(t) { $0 == key }
        #expect(s.deleted[.ended] == 1 && !t.exists(mine) && t.exists(other))
    }

    @Test func symlinksJunkAndForeignShapesAreLeftAlone() throws {
        let t = Tree()
        let outside = NSTemporaryDirectory() + "victim-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: outside, contents: Data("keep me".utf8))
        defer { unlink(outside) }
        t.setAge(outside, 30 * 24 * Self.hour)
        let sid = Self.sid84(9)
        try FileManager.default.createDirectory(atPath: t.root + "/" + sid.prefix(2), withIntermediateDirectories: true)
        symlink(outside, t.root + "/" + sid.prefix(2) + "/" + sid)  // a symlink with a session name
        let victimDir = NSTemporaryDirectory() + "victimdir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: victimDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: victimDir) }
        let inVictim = t.file(victimDir + "/" + Self.sid84(10), Self.json(uid: 2), age: 30 * 24 * Self.hour)
        symlink(victimDir, t.root + "/" + Self.sid84(10).prefix(2))  // a symlinked bucket
        let junk = t.modern("README", "x", age: 30 * 24 * Self.hour)
        let wrongBucket = t.file(t.root + "/" + sid.prefix(2) + "/" + Self.sid84(11), Self.json(uid: 2), age: 30 * 24 * Self.hour)
        let shortID = t.modern(String(Self.sid84(12).prefix(60)), Self.json(uid: 2), age: 30 * 24 * Self.hour)
        let s = try reap(t)
        #expect(access(outside, F_OK) == 0 && t.exists(inVictim))
        #expect(t.exists(junk) && t.exists(shortID))
        #expect(Self.sid84(11).prefix(2) == sid.prefix(2) ? !t.exists(wrongBucket) : t.exists(wrongBucket))
        #expect(s.skipped >= 4)
        #expect(s.errors.isEmpty)
    }

    @Test func aFileTouchedBetweenJudgementAndUnlinkSurvives() throws {
        let t = Tree()
        let sid = Self.sid84(13)
        let path = t.modern(sid, Self.json(uid: 2), age: 8 * 24 * Self.hour)
        let key = Self.deriver.key(for: Array(sid.utf8)[...])
        // The `ended` question is asked after the first stat and before the unlink: Odoo writes the file then.
        let s = try reap(t) { k in
            if k == key { t.setAge(path, 0) }
            return false
        }
        #expect(t.exists(path))
        #expect(s.touchedDuringScan == 1 && s.deletedTotal == 0)
    }

    @Test func refusesWhatIsNotOdoosDirectory() throws {
        let t = Tree()
        t.file(t.root + "/passwd", "root:x:0:0", age: 30 * 24 * Self.hour)
        #expect(throws: Reaper.Refused.self) { try reap(t) }
        #expect(t.exists(t.root + "/passwd"))
        #expect(throws: Reaper.Refused.self) { try Reaper(sessions: "/nonexistent-\(UUID())", rules: Self.rules, deriver: Self.deriver, clock: ManualClock(Self.now)) { _ in false }.run() }
        // A symlink to a sessions directory is not followed either.
        let real = Tree()
        let link = NSTemporaryDirectory() + "link-\(UUID().uuidString)"
        symlink(real.root, link)
        defer { unlink(link) }
        #expect(throws: Reaper.Refused.self) { try Reaper(sessions: link, rules: Self.rules, deriver: Self.deriver, clock: ManualClock(Self.now)) { _ in false }.run() }
    }

    @Test func summaryJSONEscapesErrors() throws {
        var s = Reaper.Summary()
        s.errors = ["cannot delete \"a\\b\"\n\u{1}"]
        s.deleted[.idle] = 2
        let parsed = try JSONSerialization.jsonObject(with: Data(s.json.utf8)) as! [String: Any]
        #expect((parsed["errors"] as! [String]) == ["cannot delete \"a\\b\"\n\u{1}"])
        #expect((parsed["deleted"] as! [String: Int])["idle"] == 2)
    }

    @Test func uidReading() {
        #expect(Reaper.jsonUIDIsNull(Array(Self.json(uid: nil).utf8)[...]))
        #expect(!Reaper.jsonUIDIsNull(Array(Self.json(uid: 2).utf8)[...]))
        #expect(Reaper.jsonUIDIsNull(Array(#"{"uid":null}"#.utf8)[...]))
        #expect(!Reaper.jsonUIDIsNull(Array(#"{"uid" : 7 , "login": "a"}"#.utf8)[...]))
        #expect(Reaper.jsonUIDIsNull(Array(#"{"context": {}}"#.utf8)[...]))
    }
}
