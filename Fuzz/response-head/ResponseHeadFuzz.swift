// Response heads (from Odoo, or whatever sits upstream): the parser answers without crashing; the
// answer does not depend on read boundaries; a head that parses writes out (as idlegate sends it to the
// browser, always HTTP/1.1) to bytes that parse to the same status, reason and fields; its framing for
// any request method is decided without a crash.
import FuzzSupport
@testable import IdlegateHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (seed, rest) = FuzzInput(data, size).parameters(3)
    let bytes = Array(rest)
    let whole = parse(bytes, cuts: [])
    let split = parse(bytes, cuts: cuts(seed, length: bytes.count))
    invariant(whole == split, "split reads differ: \(whole) vs \(split) for \(show(bytes))")
    guard case .head(let head, let length) = whole else { return 0 }
    invariant(length <= bytes.count, "consumed \(length) of \(bytes.count)")
    for method in ["GET", "HEAD", "POST"] { _ = try? head.framing(requestMethod: method) }
    _ = head.allowsReuse
    var out: [UInt8] = []
    head.write(into: &out)
    guard case .head(let again, let n) = parse(out, cuts: []) else {
        invariant(false, "written head does not parse: \(show(out)) (from \(show(bytes)))")
        return 0
    }
    invariant(n == out.count, "written head read as \(n) of \(out.count) bytes")
    invariant(again.status == head.status && again.reason == head.reason, "status line changed: \(show(out))")
    invariant(pairs(again.fields) == pairs(head.fields), "fields changed: \(show(out)) from \(show(bytes))")
    return 0
}

enum Outcome: Equatable {
    case head(ResponseHead, Int)
    case incomplete
    case refused(Int, String)
}

func parse(_ bytes: [UInt8], cuts: [Int]) -> Outcome {
    var p = HeadParser(kind: .response, limits: HTTPLimits())
    do {
        for end in cuts + [bytes.count] {
            let r = try bytes[0..<end].withUnsafeBytes { try p.parse($0) }
            switch r {
            case .incomplete: continue
            case .response(let h, let n): return .head(h, n)
            case .request: return .refused(0, "a request")
            }
        }
        return .incomplete
    } catch let e as HTTPParseError {
        return .refused(e.status, e.reason)
    } catch {
        return .refused(0, "\(error)")
    }
}

func pairs(_ f: HTTPFields) -> [[UInt8]] {
    (0..<f.count).flatMap { [Array(f.name(at: $0).utf8), Array(f.valueBytes(at: $0))] }
}
