// Redis replies (RESP2): whatever bytes a broken or hostile Redis sends, cut anywhere, the parser gives
// the same replies, then the same error, as when it gets them at once; it never crashes or loops; and
// every reply it gives reads back the same after being written out again.
import FuzzSupport
import IdlegateRedis

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (seed, rest) = FuzzInput(data, size).parameters(4)
    let bytes = Array(rest)
    let whole = replies(bytes, cuts: [])
    let pieces = replies(bytes, cuts: cuts(seed, length: bytes.count))
    invariant(whole == pieces, "at once \(whole), in pieces \(pieces), from \(show(bytes.prefix(64)))")
    for v in whole.values {
        var out: [UInt8] = []
        write(v, into: &out)
        let again = replies(out, cuts: [])
        invariant(again.values == [v] && again.error == nil, "\(v) wrote \(show(out.prefix(64))) which reads \(again)")
    }
    return 0
}

struct Outcome: Equatable, CustomStringConvertible {
    var values: [RESPValue] = []
    var error: String?
    var description: String { "\(values.count) replies, error \(error ?? "none")" }
}

func replies(_ bytes: [UInt8], cuts: [Int]) -> Outcome {
    var p = RESPParser()
    var o = Outcome()
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        p.feed(Array(bytes[start..<end]))
        start = end
        do {
            while let v = try p.next() { o.values.append(v) }
        } catch {
            o.error = "\(error)"
            return o
        }
    }
    return o
}

func write(_ v: RESPValue, into out: inout [UInt8]) {
    func line(_ type: Character, _ s: String) { out += Array(String(type).utf8) + Array(s.utf8) + [13, 10] }
    switch v {
    case .simple(let s): line("+", s)
    case .error(let s): line("-", s)
    case .integer(let n): line(":", String(n))
    case .null: line("$", "-1")
    case .bulk(let b):
        line("$", String(b.count))
        out += b + [13, 10]
    case .array(let items):
        line("*", String(items.count))
        for i in items { write(i, into: &out) }
    }
}
