// Request heads: whatever bytes come, the parser answers (a head, "more", or a status) without
// crashing; the answer does not depend on how the bytes were split across reads; and a head that parses
// writes out (as idlegate forwards it) to bytes that parse to the same head.
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
    _ = try? head.framing(limits: HTTPLimits())
    _ = head.wantsKeepAlive
    _ = head.path
    // As idlegate forwards it: always HTTP/1.1, so an HTTP/1.0 request without Host gets one.
    var forwarded = head
    if head.version == .http10 && !head.fields.contains(.host) {
        var text = Array("GET / HTTP/1.1\r\n".utf8)
        head.fields.write(into: &text)
        text += Array("Host: odoo:8069\r\n\r\n".utf8)
        guard case .head(let withHost, _) = parse(text, cuts: []) else { return 0 }
        forwarded.fields = withHost.fields
    }
    var out: [UInt8] = []
    forwarded.write(into: &out)
    guard case .head(let again, let n) = parse(out, cuts: []) else {
        invariant(false, "written head does not parse: \(show(out)) (from \(show(bytes)))")
        return 0
    }
    invariant(n == out.count, "written head read as \(n) of \(out.count) bytes")
    invariant(again.method == head.method && again.target == head.target, "request line changed: \(show(out))")
    invariant(pairs(again.fields) == pairs(forwarded.fields), "fields changed: \(show(out)) from \(show(bytes))")
    return 0
}

enum Outcome: Equatable {
    case head(RequestHead, Int)
    case incomplete
    case refused(Int, String)
}

func parse(_ bytes: [UInt8], cuts: [Int]) -> Outcome {
    var p = HeadParser(kind: .request, limits: HTTPLimits())
    do {
        for end in cuts + [bytes.count] {
            let r = try bytes[0..<end].withUnsafeBytes { try p.parse($0) }
            switch r {
            case .incomplete: continue
            case .request(let h, let n): return .head(h, n)
            case .response: return .refused(0, "a response")
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
