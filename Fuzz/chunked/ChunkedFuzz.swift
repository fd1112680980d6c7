// Chunked bodies: decoded in any split, the data, the bytes consumed and the verdict (done, more, or
// the error) are those of the body decoded whole; data never exceeds the input; and a body that decodes
// re-encodes (as idlegate re-frames it) to bytes that decode to the same data.
import FuzzSupport
import IdlegateBase
@testable import IdlegateHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (seed, rest) = FuzzInput(data, size).parameters(4)
    var limits = HTTPLimits()
    limits.chunkLine = 64 + Int(seed[3])  // small limits, so the fuzzer reaches them
    let bytes = Array(rest)
    let whole = decode(bytes, cuts: [], limits: limits)
    let split = decode(bytes, cuts: cuts(Array(seed.prefix(3)), length: bytes.count), limits: limits)
    invariant(whole == split, "split decode differs: \(whole) vs \(split) for \(show(bytes))")
    invariant(whole.error != nil || (whole.data.count <= whole.used && whole.used <= bytes.count), "data \(whole.data.count), used \(whole.used) of \(bytes.count)")
    if whole.done {
        var framed: [UInt8] = []
        if !whole.data.isEmpty {
            let header = ByteSink()
            ChunkedEncoder.chunkHeader(whole.data.count, into: header)
            framed = header.bytes + whole.data + ChunkedEncoder.chunkEnd
        }
        framed += ChunkedEncoder.lastChunk
        let again = decode(framed, cuts: [], limits: limits)
        invariant(again.done && again.data == whole.data && again.used == framed.count, "re-framed body reads differently: \(again)")
    }
    return 0
}

struct Decoded: Equatable, CustomStringConvertible {
    var data: [UInt8] = []
    var used = 0
    var done = false
    var error: String? = nil
    var description: String { "data \(data.count) used \(used) done \(done) error \(error ?? "-")" }
}

func decode(_ bytes: [UInt8], cuts: [Int], limits: HTTPLimits) -> Decoded {
    var d = ChunkedDecoder(limits: limits)
    var out = Decoded()
    var start = 0
    do {
        for end in cuts + [bytes.count] where end >= start {
            let n = try bytes[start..<end].withUnsafeBytes { buf in
                try d.decode(buf) { out.data += Array($0) }
            }
            out.used += n
            if d.isDone { break }
            invariant(n == end - start, "decoder left \(end - start - n) bytes unread before the end of the body")
            start = end
        }
    } catch let e as HTTPParseError {
        out.error = "\(e.status) \(e.reason)"
        out.used = -1  // where it failed may differ by split; that it failed may not
    } catch {
        out.error = "\(error)"
    }
    out.done = d.isDone
    return out
}
