// WebSocket frame boundaries: fed in any split, the tracker reports the boundaries a plain reference
// walk of RFC 6455 §5.2 finds, never one inside a frame; with stopAtBoundary it consumes exactly up to
// the next boundary.
import FuzzSupport
@testable import IdlegateHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let (seed, rest) = FuzzInput(data, size).parameters(4)
    let bytes = Array(rest)
    let truth = boundaries(bytes)
    // Every boundary the tracker reports, feeding in pieces.
    var t = WebSocketFrames()
    var start = 0
    var seen: [Int] = []
    for end in cuts(seed, length: bytes.count) + [bytes.count] where end > start {
        var at = start
        while at < end {
            let r = bytes[at..<end].withUnsafeBytes { t.feed($0, stopAtBoundary: true) }
            guard let r else { at = end; break }
            if r == 0 {  // already at a boundary: step one byte past it without stopping
                let n = bytes[at..<(at + 1)].withUnsafeBytes { t.feed($0) }
                if n != nil { seen.append(at + 1) }
                at += 1
            } else {
                at += r
                seen.append(at)
            }
        }
        invariant(t.atBoundary == (truth.contains(end) || (end == 0)), "atBoundary \(t.atBoundary) at \(end), boundaries \(truth.prefix(20))")
        start = end
    }
    invariant(seen == truth, "tracker saw \(seen.prefix(20)), the frames end at \(truth.prefix(20)) in \(show(bytes.prefix(64)))")
    return 0
}

/// Offsets just after each complete frame header+payload, walking frame by frame.
func boundaries(_ b: [UInt8]) -> [Int] {
    var out: [Int] = []
    var i = 0
    while i + 2 <= b.count {
        let len7 = Int(b[i + 1] & 0x7F)
        var h = 2
        var length: UInt64 = UInt64(len7)
        if len7 == 126 {
            guard i + 4 <= b.count else { break }
            length = UInt64(b[i + 2]) << 8 | UInt64(b[i + 3])
            h = 4
        } else if len7 == 127 {
            guard i + 10 <= b.count else { break }
            length = 0
            for k in 2..<10 { length = length << 8 | UInt64(b[i + k]) }
            h = 10
        }
        if b[i + 1] & 0x80 != 0 { h += 4 }
        guard UInt64(b.count - i) >= UInt64(h), UInt64(b.count - i - h) >= length else { break }
        i += h + Int(length)
        out.append(i)
    }
    return out
}
