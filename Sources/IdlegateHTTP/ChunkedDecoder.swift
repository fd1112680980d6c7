import IdlegateBase

/// Decodes `Transfer-Encoding: chunked` (RFC 9112 §7.1) byte by byte, yielding the chunk data as slices
/// of the input (no copy). Strict: the size is 1–16 hex digits and nothing else; extensions may hold
/// no control characters (a lone LF inside one is how "funky chunks" smuggle requests); every CRLF is
/// exactly CRLF. Extensions and trailers are checked and dropped: idlegate re-frames the body itself.
public struct ChunkedDecoder: Sendable {
    private enum State: Sendable {
        case size, sizeWhitespace, extensions, sizeLF
        case data(remaining: UInt64)
        case dataCR, dataLF
        case trailerStart, trailer, trailerLF, finalLF
        case done
    }

    private var state: State = .size
    private var digits = 0
    private var size: UInt64 = 0
    private var lineLength = 0
    private var trailerBytes = 0
    private let limits: HTTPLimits

    public init(limits: HTTPLimits) { self.limits = limits }

    public var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Consumes bytes from `input` until it is used up or the body ends; calls `emit` with each run of
    /// data. Returns how many bytes were consumed (less than `input.count` only when the body ended).
    public mutating func decode(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        var i = 0
        let n = input.count
        while i < n {
            let b = input[i]
            switch state {
            case .size:
                if let v = ByteClass.hexValue(b) {
                    guard digits < 16 else { throw HTTPParseError.bad("chunk size too large") }
                    size = size << 4 | v
                    digits += 1
                } else {
                    guard digits > 0 else { throw HTTPParseError.bad("malformed chunk size") }
                    switch b {
                    case .cr: state = .sizeLF
                    case UInt8(ascii: ";"): state = .extensions
                    case .sp, .htab: state = .sizeWhitespace  // BWS before ";" (§7.1.1)
                    default: throw HTTPParseError.bad("malformed chunk size")
                    }
                }
                i += 1
            case .sizeWhitespace:
                switch b {
                case .sp, .htab: break
                case UInt8(ascii: ";"): state = .extensions
                default: throw HTTPParseError.bad("malformed chunk size")
                }
                i += 1
            case .extensions:
                if b == .cr {
                    state = .sizeLF
                } else if !ByteClass.isFieldValue(b) {
                    throw HTTPParseError.bad("control character in a chunk extension")
                }
                i += 1
            case .sizeLF:
                guard b == .lf else { throw HTTPParseError.bad("bare CR after chunk size") }
                i += 1
                if size > UInt64(Int64.max) { throw HTTPParseError.bad("chunk size too large") }
                state = size == 0 ? .trailerStart : .data(remaining: size)
                digits = 0
                size = 0
                lineLength = 0
                continue
            case .data(let remaining):
                let take = Int(min(UInt64(n - i), remaining))
                try emit(UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                i += take
                state = remaining == UInt64(take) ? .dataCR : .data(remaining: remaining - UInt64(take))
                continue
            case .dataCR:
                guard b == .cr else { throw HTTPParseError.bad("chunk data not followed by CRLF") }
                state = .dataLF
                i += 1
                continue
            case .dataLF:
                guard b == .lf else { throw HTTPParseError.bad("chunk data not followed by CRLF") }
                state = .size
                i += 1
                continue
            case .trailerStart:
                if b == .cr {
                    state = .finalLF
                } else if b == .sp || b == .htab {
                    throw HTTPParseError.bad("obs-fold in trailer")
                } else if ByteClass.isFieldValue(b) {
                    state = .trailer
                } else {
                    throw HTTPParseError.bad("control character in trailer")
                }
                i += 1
            case .trailer:
                if b == .cr {
                    state = .trailerLF
                } else if !ByteClass.isFieldValue(b) {
                    throw HTTPParseError.bad("control character in trailer")
                }
                i += 1
            case .trailerLF:
                guard b == .lf else { throw HTTPParseError.bad("bare CR in trailer") }
                state = .trailerStart
                lineLength = 0
                i += 1
                continue
            case .finalLF:
                guard b == .lf else { throw HTTPParseError.bad("bare CR after last chunk") }
                state = .done
                return i + 1
            case .done:
                return i
            }
            // Line-length accounting for size lines and trailer lines (data bytes are not lines).
            lineLength += 1
            trailerBytes += 1
            if lineLength > limits.chunkLine { throw HTTPParseError.bad("chunk-size or trailer line too long") }
            if trailerBytes > limits.headerBytes + limits.chunkLine, case .trailer = state {
                throw HTTPParseError.bad("trailer section too large")
            }
        }
        return i
    }
}
