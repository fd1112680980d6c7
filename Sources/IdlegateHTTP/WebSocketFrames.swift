/// Follows WebSocket frame boundaries (RFC 6455 §5.2) in one direction of a tunnel, without keeping
/// any payload, so that idlegate can put a frame of its own (a close) between two frames, never inside
/// one. Extensions do not matter here: they change payloads, not frame headers.
public struct WebSocketFrames: Sendable {
    private enum State: Sendable {
        case header(have: Int, need: Int)
        case payload(remaining: UInt64)
    }

    private var state: State = .header(have: 0, need: 2)
    private var head: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    public init() {}

    /// Whether the bytes seen so far end exactly at a frame boundary.
    public var atBoundary: Bool {
        if case .header(0, _) = state { return true }
        return false
    }

    /// Consumes `bytes`; returns the offset just after the first frame boundary reached inside them
    /// (0 when already at one), or nil if none is reached. With `stopAtBoundary`, consumption stops there.
    @discardableResult
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, stopAtBoundary: Bool = false) -> Int? {
        if stopAtBoundary && atBoundary { return 0 }
        var i = 0
        var firstBoundary: Int? = nil
        while i < bytes.count {
            switch state {
            case .payload(let remaining):
                let take = Int(min(UInt64(bytes.count - i), remaining))
                i += take
                if UInt64(take) == remaining {
                    state = .header(have: 0, need: 2)
                    if firstBoundary == nil { firstBoundary = i }
                    if stopAtBoundary { return i }
                } else {
                    state = .payload(remaining: remaining - UInt64(take))
                }
            case .header(let have, let need):
                set(have, bytes[i])
                i += 1
                let now = have + 1
                if now == 2 {
                    let len7 = head.1 & 0x7F
                    let extra = (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (head.1 & 0x80 != 0 ? 4 : 0)
                    if extra == 0 { finishHeader(); } else { state = .header(have: 2, need: 2 + extra) }
                } else if now == need {
                    finishHeader()
                } else {
                    state = .header(have: now, need: need)
                }
                if atBoundary {
                    if firstBoundary == nil { firstBoundary = i }
                    if stopAtBoundary { return i }
                }
            }
        }
        return firstBoundary
    }

    private mutating func set(_ i: Int, _ b: UInt8) {
        switch i {
        case 0: head.0 = b
        case 1: head.1 = b
        case 2: head.2 = b
        case 3: head.3 = b
        case 4: head.4 = b
        case 5: head.5 = b
        case 6: head.6 = b
        case 7: head.7 = b
        case 8: head.8 = b
        case 9: head.9 = b
        default: break  // mask key bytes: not needed
        }
    }

    private mutating func finishHeader() {
        let len7 = head.1 & 0x7F
        var length: UInt64
        switch len7 {
        case 126: length = UInt64(head.2) << 8 | UInt64(head.3)
        case 127:
            length = 0
            for b in [head.2, head.3, head.4, head.5, head.6, head.7, head.8, head.9] { length = length << 8 | UInt64(b) }
        default: length = UInt64(len7)
        }
        state = length == 0 ? .header(have: 0, need: 2) : .payload(remaining: length)
    }

    /// A close frame from the server side (unmasked) with `code` and a short reason.
    public static func closeFrame(code: UInt16, reason: String) -> [UInt8] {
        let r = Array(reason.utf8.prefix(123))
        return [0x88, UInt8(2 + r.count), UInt8(code >> 8), UInt8(code & 0xFF)] + r
    }
}
