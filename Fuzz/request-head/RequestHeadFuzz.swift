// Request heads: whatever bytes come, the parser answers (a head, "more", or a status) without
// crashing; the answer does not depend on how the bytes were split across reads; and a head that parses
// writes out (as idlegate forwards it) to bytes that parse to the same head.
import FuzzSupport
import IdlegateBase
@testable import IdlegateHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (seed, rest) = FuzzInput(data, size).parameters(3)
    let bytes = Array(rest)
    let whole = parseHead(bytes, .request, cuts: [])
    let split = parseHead(bytes, .request, cuts: cuts(seed, length: bytes.count))
    invariant(whole == split, "split reads differ: \(whole) vs \(split) for \(show(bytes))")
    guard case .request(let head, let length) = whole else { return 0 }
    invariant(length <= bytes.count, "consumed \(length) of \(bytes.count)")
    _ = try? head.framing(limits: HTTPLimits())
    _ = head.wantsKeepAlive
    _ = head.path
    // As idlegate forwards it: always HTTP/1.1, so an HTTP/1.0 request without Host gets one.
    var forwarded = head
    if head.version == .http10 && !head.fields.contains(.host) {
        let sink = ByteSink()
        sink.appendUTF8("GET / HTTP/1.1\r\n")
        head.fields.write(into: sink)
        sink.appendUTF8("Host: odoo:8069\r\n\r\n")
        let text = sink.bytes
        guard case .request(let withHost, _) = parseHead(text, .request, cuts: []) else { return 0 }
        forwarded.fields = withHost.fields
    }
    let sink = ByteSink()
    forwarded.write(into: sink)
    let out = sink.bytes
    let reparsed = parseHead(out, .request, cuts: [], limits: roundTripLimits(out))
    guard case .request(let again, let n) = reparsed else {
        invariant(false, "written head does not parse (\(reparsed)): \(show(out)) (from \(show(bytes)))")
        return 0
    }
    invariant(n == out.count, "written head read as \(n) of \(out.count) bytes")
    invariant(again.method == head.method && again.target == head.target, "request line changed: \(show(out))")
    invariant(fieldPairs(again.fields) == fieldPairs(forwarded.fields), "fields changed: \(show(out)) from \(show(bytes))")
    return 0
}
