import IdlegateBase
@testable import IdlegateHTTP

/// What the head parser made of some bytes.
public enum HeadOutcome: Equatable, CustomStringConvertible {
    case request(RequestHead, Int)
    case response(ResponseHead, Int)
    case incomplete
    case refused(Int, String)

    public var description: String {
        switch self {
        case .request(let h, let n): "request \(h.method) \(h.target) (\(n) bytes)"
        case .response(let h, let n): "response \(h.status) (\(n) bytes)"
        case .incomplete: "incomplete"
        case .refused(let s, let r): "refused \(s) \(r)"
        }
    }
}

/// Parses `bytes` as one head of `kind`, offering the parser the prefixes ending at `cuts` first, as
/// reads that stop there would.
public func parseHead(_ bytes: [UInt8], _ kind: HeadParser.Kind, cuts: [Int], limits: HTTPLimits = HTTPLimits()) -> HeadOutcome {
    var p = HeadParser(kind: kind, limits: limits)
    do {
        for end in cuts + [bytes.count] {
            switch try bytes[0..<end].withUnsafeBytes({ try p.parse($0) }) {
            case .incomplete: continue
            case .request(let h, let n): return .request(h, n)
            case .response(let h, let n): return .response(h, n)
            }
        }
        return .incomplete
    } catch let e as HTTPParseError {
        return .refused(e.status, e.reason)
    } catch {
        return .refused(0, "\(error)")
    }
}

/// A head's fields as name and value bytes, in order (what must survive a round trip).
public func fieldPairs(_ f: HTTPFields) -> [[UInt8]] {
    (0..<f.count).flatMap { [Array(f.name(at: $0).utf8), Array(f.valueBytes(at: $0))] }
}

/// The limits a written head is read back under: the same, but for its size, which writing can grow
/// (`name:value` is written `name: value`, an absolute-form target's authority becomes a Host line).
public func roundTripLimits(_ written: [UInt8]) -> HTTPLimits {
    var l = HTTPLimits()
    l.headerBytes = max(l.headerBytes, written.count + 1)
    l.requestLine = max(l.requestLine, written.count + 1)
    return l
}

extension ResponseHead {
    /// The head as idlegate relays it (status line, then the fields as they came): for round trips.
    public func write(into out: ByteSink) {
        writeStatusLine(into: out)
        fields.write(into: out)
        out.append(contentsOf: [0x0D, 0x0A])
    }
}
