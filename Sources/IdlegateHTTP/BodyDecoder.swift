import IdlegateBase

/// Reads one message body, whatever its framing, yielding data slices of the input.
public struct BodyDecoder: Sendable {
    private enum Mode: Sendable {
        case length(remaining: Int64)
        case chunked(ChunkedDecoder)
        case untilClose
        case done
    }

    private var mode: Mode
    public let framing: BodyFraming

    public init(_ framing: BodyFraming, limits: HTTPLimits) {
        self.framing = framing
        switch framing {
        case .none: mode = .done
        case .length(let n): mode = .length(remaining: n)
        case .chunked: mode = .chunked(ChunkedDecoder(limits: limits))
        case .untilClose: mode = .untilClose
        }
    }

    /// Whether the whole body has been read.
    public var isDone: Bool {
        if case .done = mode { return true }
        return false
    }

    /// Bytes still expected (Content-Length framing only).
    public var remainingLength: Int64? {
        if case .length(let r) = mode { return r }
        return nil
    }

    /// Consumes body bytes from `input` and returns how many it took; bytes past the end of the body
    /// are left for the caller (a pipelined request, or junk from an upstream).
    public mutating func decode(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        switch mode {
        case .done:
            return 0
        case .untilClose:
            if !input.isEmpty { try emit(input) }
            return input.count
        case .length(let remaining):
            let take = Int(min(Int64(input.count), remaining))
            if take > 0 { try emit(UnsafeRawBufferPointer(rebasing: input[0..<take])) }
            mode = remaining == Int64(take) ? .done : .length(remaining: remaining - Int64(take))
            return take
        case .chunked(var decoder):
            mode = .done  // avoid a copy-on-write of the decoder while it runs
            let used: Int
            do {
                used = try decoder.decode(input, emit: emit)
            } catch {
                mode = .chunked(decoder)
                throw error
            }
            mode = decoder.isDone ? .done : .chunked(decoder)
            return used
        }
    }

    /// The peer closed its side: a close-delimited body ends here; any other unfinished body is
    /// truncated (the caller must not pass it off as complete).
    public mutating func finishAtEOF() -> Bool {
        if case .untilClose = mode { mode = .done; return true }
        return isDone
    }
}

/// Writes chunked framing around data idlegate forwards (RFC 9112 §7.1).
public enum ChunkedEncoder {
    public static func chunkHeader(_ count: Int, into out: ByteSink) {
        var digits = 1
        while digits < 16 && count >> (4 * digits) != 0 { digits += 1 }
        for k in stride(from: digits - 1, through: 0, by: -1) {
            let d = UInt8((count >> (4 * k)) & 0xF)
            out.append(d < 10 ? 0x30 + d : 0x57 + d)  // lower-case hex, as before
        }
        out.append(.cr)
        out.append(.lf)
    }

    public static let chunkEnd: [UInt8] = [.cr, .lf]
    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)
}
