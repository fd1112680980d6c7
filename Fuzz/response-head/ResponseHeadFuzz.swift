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
    let whole = parseHead(bytes, .response, cuts: [])
    let split = parseHead(bytes, .response, cuts: cuts(seed, length: bytes.count))
    invariant(whole == split, "split reads differ: \(whole) vs \(split) for \(show(bytes))")
    guard case .response(let head, let length) = whole else { return 0 }
    invariant(length <= bytes.count, "consumed \(length) of \(bytes.count)")
    for method in ["GET", "HEAD", "POST"] { _ = try? head.framing(requestMethod: method) }
    _ = head.allowsReuse
    let sink = ByteSink()
    head.write(into: sink)
    let out = sink.bytes
    let reparsed = parseHead(out, .response, cuts: [], limits: roundTripLimits(out))
    guard case .response(let again, let n) = reparsed else {
        invariant(false, "written head does not parse (\(reparsed)): \(show(out)) (from \(show(bytes)))")
        return 0
    }
    invariant(n == out.count, "written head read as \(n) of \(out.count) bytes")
    invariant(again.status == head.status && again.reason == head.reason, "status line changed: \(show(out))")
    invariant(fieldPairs(again.fields) == fieldPairs(head.fields), "fields changed: \(show(out)) from \(show(bytes))")
    return 0
}
