// Audit log lines read back by `idlegate audit report`: any line is read or skipped without a crash;
// and every event idlegate writes, whatever its strings hold, reads back with its event, key, idle gap
// and login intact.
import FuzzSupport
@testable import IdlegateAudit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = FuzzInput(data, size).bytes
    // 1. The bytes as a line of someone else's making.
    input.withUnsafeBytes { b in
        var f = Fields()
        if f.parse(b), let login = f.login { _ = Fields.unescape(Array(login)) }
    }
    // 2. The bytes as the contents of an event idlegate writes.
    let (p, rest) = FuzzInput(data, size).parameters(12)
    let parts = rest.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let kinds = AuditEvent.Kind.allCases
    var e = AuditEvent(kinds[Int(p[0]) % kinds.count], time: Int64(p[1]) << 32 | Int64(p[2]) << 24 | Int64(p[3]))
    e.key = (0..<16).map { i in String(p[4 + i % 8] &+ UInt8(i), radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined()
    e.login = parts.count > 0 ? parts[0] : nil
    e.policy = parts.count > 1 ? parts[1] : nil
    e.reason = parts.count > 2 ? parts[2] : nil
    e.path = parts.count > 3 ? parts[3] : nil
    e.idleSeconds = Int64(p[8]) << 8 | Int64(p[9])
    var line: [UInt8] = []
    e.encode(into: &line)
    invariant(line.last == 0x0A && line.dropLast().allSatisfy { $0 != 0x0A }, "one event, one line")
    line.removeLast()
    line.withUnsafeBytes { b in
        var f = Fields()
        invariant(f.parse(b), "an event idlegate wrote does not read: \(show(line))")
        invariant(f.key.map { String(format: $0) } == e.key, "key read back as \(String(describing: f.key))")
        invariant(f.idle == e.idleSeconds, "idle read back as \(String(describing: f.idle))")
        invariant(f.login.map { Fields.unescape(Array($0)) } == e.login, "login read back differently: \(show(line))")
        invariant(f.policy.map { Fields.unescape(Array($0)) } == e.policy, "policy read back differently: \(show(line))")
        let expected = Array(e.kind.rawValue.utf8).withUnsafeBytes { Fields.event($0) }
        invariant(f.event == expected, "event \(e.kind.rawValue) read back as \(String(describing: f.event))")
    }
    return 0
}

func String(format k: AuditReport.Key) -> String {
    func hex(_ v: UInt64) -> String { let s = String(v, radix: 16); return String(repeating: "0", count: 16 - s.count) + s }
    return hex(k.hi) + hex(k.lo)
}
