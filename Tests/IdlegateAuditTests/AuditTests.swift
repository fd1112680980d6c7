import Foundation
import IdlegateBase
import Testing
@testable import IdlegateAudit

@Suite("Audit events")
struct AuditEventTests {
    func line(_ e: AuditEvent) -> String {
        var out: [UInt8] = []
        e.encode(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func encodesStableFieldsAndLeavesOutWhatDoesNotApply() throws {
        var e = AuditEvent(.expired, time: 1_795_000_000_123)
        e.key = "0123456789abcdef0123456789abcdef"
        e.login = "ana \"the\" admin\\\n"
        e.client = "10.2.0.7"
        e.policy = "warehouse"
        e.mode = "enforce"
        e.method = "POST"
        e.path = "/web/dataset/call_kw"
        e.idleSeconds = 901
        e.windowSeconds = 900
        e.reason = "idle"
        let text = line(e)
        #expect(text.hasPrefix(#"{"ts":"2026-11-18T"#))
        #expect(text.hasSuffix("}\n"))
        let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        #expect(json["event"] as? String == "expired")
        #expect(json["login"] as? String == "ana \"the\" admin\\\n")
        #expect(json["idle_s"] as? Int == 901 && json["window_s"] as? Int == 900)
        #expect(json["status"] == nil && json["count"] == nil)
        #expect(!text.contains("null"))
    }

    @Test func timestampsAreRFC3339UTCWithMilliseconds() {
        var out: [UInt8] = []
        AuditEvent.appendTimestamp(0, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "1970-01-01T00:00:00.000Z")
        out = []
        AuditEvent.appendTimestamp(1_764_071_964_007, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2025-11-25T11:59:24.007Z")
    }

    @Test func queryValuesNeverReachTheLog() {
        #expect(AuditEvent.pathWithoutQueryValues("/web?session_id=abc&debug=1") == "/web?session_id=&debug=")
        #expect(AuditEvent.pathWithoutQueryValues("/odoo/action-12") == "/odoo/action-12")
        #expect(AuditEvent.pathWithoutQueryValues("/x?") == "/x")
    }

    @Test func controlCharactersAreEscaped() throws {
        var e = AuditEvent(.requestRefused, time: 0)
        e.reason = "bad\u{1}\u{7F}"
        let text = line(e)
        #expect(text.contains(#"bad\u0001\u007f"#))
        _ = try JSONSerialization.jsonObject(with: Data(text.utf8))
    }
}

@Suite("Audit log file")
struct AuditLogTests {
    func tempDir() -> String {
        let d = NSTemporaryDirectory() + "idlegate-audit-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    @Test func closeWritesEverythingQueued() throws {
        let path = tempDir() + "/audit.jsonl"
        let log = try AuditLog(settings: AuditSettings(path: path))
        log.start()
        for i in 0..<5000 {
            var e = AuditEvent(.activityResumed, time: 1_764_000_000_000 + Int64(i))
            e.idleSeconds = Int64(i)
            log.emit(e)
        }
        log.close()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5000)
        #expect(lines.last!.contains(#""idle_s":4999"#))
    }

    @Test func overflowIsCountedAndReported() throws {
        let path = tempDir() + "/audit.jsonl"
        var s = AuditSettings(path: path)
        s.queueCapacity = 10
        final class Count: @unchecked Sendable { var n = 0 }
        let dropped = Count()
        let log = try AuditLog(settings: s, onDrop: { dropped.n += $0 })
        // Not started yet: nothing drains the queue, so the 11th event on is dropped.
        for i in 0..<25 { log.emit(AuditEvent(.login, time: Int64(i))) }
        #expect(dropped.n == 15)
        log.start()
        log.close()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.split(separator: "\n").count == 11)
        #expect(text.contains(#""event":"events_dropped","reason":"queue full","count":15"#))
    }

    @Test func rotatesDailyAtTheFirstWriteOfANewUTCDay() throws {
        let dir = tempDir()
        let path = dir + "/audit.jsonl"
        var s = AuditSettings(path: path)
        s.rotateDaily = true
        let clock = ManualClock(1_764_028_799_000)  // 2025-11-24T23:59:59Z
        let log = try AuditLog(settings: s, clock: clock)
        log.start()
        log.emit(AuditEvent(.login, time: clock.now()))
        log.emit(AuditEvent(.logout, time: clock.now()))
        func lines(_ p: String) -> Int { ((try? String(contentsOfFile: p, encoding: .utf8)) ?? "").split(separator: "\n").count }
        for _ in 0..<200 where lines(path) < 2 { usleep(5000) }
        #expect(lines(path) == 2)
        clock.advance(millis: 2000)  // past midnight
        log.emit(AuditEvent(.kicked, time: clock.now()))
        log.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files == ["audit.jsonl", "audit.jsonl.20251125-000001.gz"])
        #expect(lines(path) == 1)
        let gz = try Data(contentsOf: URL(fileURLWithPath: dir + "/audit.jsonl.20251125-000001.gz"))
        #expect(gz.prefix(2) == Data([0x1F, 0x8B]))
        var report = AuditReport()
        try report.read(path: dir + "/audit.jsonl.20251125-000001.gz")
        #expect(report.lines == 2)
    }

    /// A log in a fresh directory that rotates at `size` bytes and keeps `keep` archives.
    func rotatingLog(size: Int64, keep: Int) throws -> (dir: String, path: String, log: AuditLog) {
        let dir = tempDir()
        var s = AuditSettings(path: dir + "/audit.jsonl")
        s.rotateSize = size
        s.keep = keep
        return (dir, s.path, try AuditLog(settings: s))
    }

    /// Event `i`: the same line each time but for its number.
    func event(_ i: Int) -> AuditEvent {
        var e = AuditEvent(.activityResumed, time: 1_764_000_000_000)
        e.idleSeconds = Int64(i)
        return e
    }

    @Test func rotatesBySizeGzipsAndKeepsN() throws {
        let (dir, path, log) = try rotatingLog(size: 4096, keep: 2)
        log.start()
        for i in 0..<400 {
            log.emit(event(i))
            if i % 20 == 0 { usleep(2000) }  // let the writer take batches
        }
        log.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        let rotated = files.filter { $0.hasSuffix(".gz") }
        #expect(rotated.count == 2)
        #expect(!files.contains { $0.hasSuffix(".tmp") })
        #expect(files.filter { $0.hasPrefix("audit.jsonl.") && !$0.hasSuffix(".gz") }.isEmpty)
        // What is left in the current file and the kept archives are whole lines, readable as gzip.
        var report = AuditReport()
        for f in rotated { try report.read(path: dir + "/" + f) }
        try report.read(path: path)
        #expect(report.unreadable == 0)
        #expect(report.lines > 0 && report.lines < 400)
        #expect(try String(contentsOfFile: path, encoding: .utf8).utf8.count <= 4096)
    }
}

extension AuditLogTests {
    /// One batch far larger than rotate_size (a writer that fell behind) still rotates at line ends: no
    /// file ends up over the size.
    @Test func oneLargeBatchIsSplitAtLineEnds() throws {
        let (dir, path, log) = try rotatingLog(size: 2048, keep: 50)
        for i in 0..<200 { log.emit(event(i)) }  // queued before the writer starts: it takes them as one batch
        log.start()
        log.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        let rotated = files.filter { $0.hasSuffix(".gz") }
        #expect(rotated.count >= 5)
        var lines = 0
        for f in rotated {
            var one = AuditReport()
            try one.read(path: dir + "/" + f)
            #expect(one.unreadable == 0)
            lines += one.lines
        }
        var current = AuditReport()
        try current.read(path: path)
        lines += current.lines
        #expect(lines == 200)
        #expect(try String(contentsOfFile: path, encoding: .utf8).utf8.count <= 2048)
        for f in rotated {
            let size = try #require(gunzippedSize(dir + "/" + f))
            #expect(size <= 2048 && size > 1024, "\(f): \(size) bytes")
        }
    }
}

/// The size of a gzip file's content (Debian's gzip, as an operator would read it).
func gunzippedSize(_ path: String) -> Int? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-dc", path]
    let out = Pipe()
    p.standardOutput = out
    guard (try? p.run()) != nil else { return nil }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return p.terminationStatus == 0 ? data.count : nil
}

@Suite("Audit report")
struct AuditReportTests {
    /// A hand-built log: three sessions under two policies, with gaps chosen around the windows.
    static let log = """
    {"ts":"2026-11-01T08:00:00.000Z","event":"session_started","key":"00000000000000000000000000000001","client":"10.2.0.7","policy":"warehouse","reason":"odoo"}
    {"ts":"2026-11-01T08:00:00.001Z","event":"login","key":"00000000000000000000000000000001","login":"ana","client":"10.2.0.7","policy":"warehouse"}
    {"ts":"2026-11-01T08:00:01.000Z","event":"session_started","key":"00000000000000000000000000000009","client":"10.2.0.8","policy":"warehouse","reason":"odoo"}
    {"ts":"2026-11-01T08:07:00.000Z","event":"activity_resumed","key":"00000000000000000000000000000001","login":"ana","policy":"warehouse","method":"GET","path":"/odoo","idle_s":420,"window_s":900}
    {"ts":"2026-11-01T08:20:00.000Z","event":"activity_resumed","key":"00000000000000000000000000000001","login":"ana","policy":"warehouse","idle_s":120,"window_s":900}
    {"ts":"2026-11-01T09:00:00.000Z","event":"session_started","key":"00000000000000000000000000000002","policy":"default","reason":"first_seen"}
    {"ts":"2026-11-01T09:16:40.000Z","event":"would_expire","key":"00000000000000000000000000000002","login":"bob","policy":"default","mode":"audit","idle_s":1000,"window_s":900,"reason":"idle"}
    {"ts":"2026-11-01T09:30:00.000Z","event":"activity_resumed","key":"00000000000000000000000000000002","login":"bob","policy":"default","idle_s":800,"window_s":900}
    not json at all
    {"ts":"2026-11-01T10:00:00.000Z","event":"session_started","key":"00000000000000000000000000000003","login":"ana","policy":"default","reason":"odoo"}
    {"ts":"2026-11-01T10:40:00.000Z","event":"activity_resumed","key":"00000000000000000000000000000003","login":"ana","policy":"default","idle_s":2400,"window_s":900}
    {"ts":"2026-11-01T11:00:00.000Z","event":"logout","key":"00000000000000000000000000000003","login":"ana","policy":"default"}
    {"ts":"2026-11-01T11:00:01.000Z","event":"request_refused","client":"10.9.9.9","status":400,"reason":"bare LF line ending"}
    {"ts":"2026-11-01T11:00:02.000Z","event":"kicked","key":"00000000000000000000000000000001","login":"ana","reason":"admin"}
    """

    func report() throws -> AuditReport {
        let path = NSTemporaryDirectory() + "report-\(UUID().uuidString).jsonl"
        try Self.log.write(toFile: path, atomically: true, encoding: .utf8)
        var r = AuditReport()
        try r.read(path: path)
        r.finishOpenSessions()
        return r
    }

    @Test func figuresMatchTheHandBuiltLog() throws {
        let r = try report()
        #expect(r.lines == 14)
        #expect(r.unreadable == 1)
        #expect(r.first == "2026-11-01T08:00:00.000Z" && r.last == "2026-11-01T11:00:02.000Z")
        // Policies: warehouse has ana's session 1 (gaps 420, 120; kicked); session 9 was anonymous
        // (never logged in, no activity) and does not count. default has 2 (gaps 1000, 800) and 3 (2400).
        let w = r.byPolicy[r.policyNames.firstIndex(of: "warehouse")!]
        #expect(w.sessions == 1)
        #expect(w.wouldExpire == [1, 0, 0, 0])  // 5m: 420 ≥ 300; 10m and up: none
        #expect(w.gaps == [1, 1, 0, 0, 0, 0, 0])
        let d = r.byPolicy[r.policyNames.firstIndex(of: "default")!]
        #expect(d.sessions == 2)
        #expect(d.wouldExpire == [2, 2, 2, 1])  // longest gaps 1000 and 2400
        #expect(d.gaps == [0, 0, 1, 1, 1, 0, 0])
        #expect(d.longestGap == 2400)
        #expect(d.wouldExpireEvents == 1)
        // Logins: ana has sessions 1 and 3, bob session 2.
        let ana = r.byLogin[r.loginNames.firstIndex(of: "ana")!]
        #expect(ana.sessions == 2)
        #expect(ana.wouldExpire == [2, 1, 1, 1])
        let bob = r.byLogin[r.loginNames.firstIndex(of: "bob")!]
        #expect(bob.sessions == 1 && bob.wouldExpire == [1, 1, 1, 0])
    }

    @Test func tableAndJSONCarryTheFigures() throws {
        let r = try report()
        let table = r.table()
        #expect(table.contains("by policy") && table.contains("by login") && table.contains("expire@15m"))
        #expect(table.contains("2 (100%)"))
        let json = try JSONSerialization.jsonObject(with: Data(r.json().utf8)) as! [String: Any]
        let byLogin = json["by_login"] as! [[String: Any]]
        let bob = byLogin.first { $0["login"] as? String == "bob" }!
        #expect((bob["would_expire_by_window_s"] as! [String: Int])["1800"] == 0)
        #expect((bob["would_expire_by_window_s"] as! [String: Int])["900"] == 1)
    }

    @Test func candidateWindowsCanBeChosen() throws {
        let path = NSTemporaryDirectory() + "report-\(UUID().uuidString).jsonl"
        try Self.log.write(toFile: path, atomically: true, encoding: .utf8)
        var r = AuditReport(windows: [2400, 60])
        try r.read(path: path)
        r.finishOpenSessions()
        #expect(r.windows == [60, 2400])
        #expect(r.byPolicy[r.policyNames.firstIndex(of: "default")!].wouldExpire == [2, 1])
    }
}
